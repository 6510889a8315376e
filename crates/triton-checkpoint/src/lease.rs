//! [`LeaseStore`] in SQL: the `triton_lease` and `triton_worker` tables
//! (migration 4), and the fence checks of the writes that move data
//! forward.
//!
//! Times are milliseconds on the database's clock ([`now`]), so that hosts
//! whose clocks disagree still agree on when a lease expired. PostgreSQL
//! takes contended leases with `FOR UPDATE SKIP LOCKED` (a worker never
//! waits on another's acquisition) and locks the fenced leases `FOR SHARE`
//! in the transaction that writes under them, so a takeover and a write
//! are ordered. SQLite's `BEGIN IMMEDIATE` serialises every writer anyway.
//!
//! The statements are written once with `$n` parameters and a `{now}`
//! marker; [`sql`] turns them into each dialect.

mod pg;
mod sqlite;

use std::time::Duration;

use async_trait::async_trait;
use diesel::sql_types::{BigInt, Double, Nullable, Text};
use triton_core::checkpoint::{Checkpoint, CheckpointError, IntentId, Result, UploadIntent};
use triton_core::lease::{
    Fence, Held, LeaseInfo, LeaseScope, LeaseState, LeaseStore, LeaseTable, ShardSpec, WorkerInfo,
};

use crate::SqlCheckpoints;

/// Calls `pg::$f` or `sqlite::$f` with the backend of `$store` first.
macro_rules! backend {
    ($store:expr, $f:ident($($arg:expr),* $(,)?)) => {
        match $store {
            SqlCheckpoints::Postgres(s) => pg::$f(s, $($arg),*).await,
            SqlCheckpoints::Sqlite(s) => sqlite::$f(s, $($arg),*).await,
        }
    };
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Postgres,
    Sqlite,
}

/// `template` in `dialect`: `{now}` becomes the database's clock in
/// milliseconds, and for SQLite `$n` becomes `?n`.
pub(crate) fn sql(dialect: Dialect, template: &str) -> String {
    match dialect {
        Dialect::Postgres => template.replace(
            "{now}",
            "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT",
        ),
        Dialect::Sqlite => template
            .replace(
                "{now}",
                "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
            )
            .replace('$', "?"),
    }
}

pub(crate) const ADD_SHARD: &str = "INSERT INTO triton_lease
  (client, stream, shard, owner, epoch, renewed, expires, state, parents, bytes_per_second)
  VALUES ($1, $2, $3, NULL, 0, NULL, NULL, 'active', $4, 0)
  ON CONFLICT (client, stream, shard) DO NOTHING";

pub(crate) const HEARTBEAT: &str =
    "INSERT INTO triton_worker (client, stream, worker, heartbeat, expires)
  VALUES ($1, $2, $3, {now}, {now} + $4)
  ON CONFLICT (client, stream, worker)
  DO UPDATE SET heartbeat = excluded.heartbeat, expires = excluded.expires";

/// Workers gone for an hour are forgotten (they are listed only while live).
pub(crate) const FORGET_WORKERS: &str =
    "DELETE FROM triton_worker WHERE client = $1 AND stream = $2 AND expires < {now} - 3600000";

/// Only a lease that has not expired is renewed: once expired it may be
/// taken at any moment, and its owner must stop. Only the leases the
/// worker holds are renewed: a lease of an earlier run under the same id
/// runs out unless the worker takes it over.
pub(crate) const RENEW_PG: &str = "UPDATE triton_lease SET renewed = {now}, expires = {now} + $4
  WHERE client = $1 AND stream = $2 AND owner = $3 AND shard = ANY($5) AND expires >= {now}
  RETURNING shard, epoch";

/// [`RENEW_PG`] for one lease (SQLite has no arrays; one writer anyway).
pub(crate) const RENEW_ONE: &str = "UPDATE triton_lease SET renewed = {now}, expires = {now} + $4
  WHERE client = $1 AND stream = $2 AND owner = $3 AND shard = $5 AND epoch = $6
    AND expires >= {now}
  RETURNING shard, epoch";

pub(crate) const THROUGHPUT: &str = "UPDATE triton_lease SET bytes_per_second = $5
  WHERE client = $1 AND stream = $2 AND shard = $3 AND owner = $4";

pub(crate) const TAKE: &str = "UPDATE triton_lease SET owner = $4, epoch = epoch + 1,
    renewed = {now}, expires = {now} + $5, handoff_to = NULL, handoff_until = NULL
  WHERE client = $1 AND stream = $2 AND shard = $3 AND state = 'active'
    AND (owner IS NULL OR owner = $4 OR expires < {now})
    AND (handoff_to IS NULL OR handoff_to = $4 OR handoff_until < {now})
  RETURNING shard, epoch";

pub(crate) const HAND_OVER: &str = "UPDATE triton_lease
  SET owner = NULL, renewed = NULL, expires = NULL, handoff_to = $6, handoff_until = {now} + $7
  WHERE client = $1 AND stream = $2 AND shard = $3 AND owner = $4 AND epoch = $5";

pub(crate) const RELEASE: &str =
    "UPDATE triton_lease SET owner = NULL, renewed = NULL, expires = NULL
  WHERE client = $1 AND stream = $2 AND shard = $3 AND owner = $4 AND epoch = $5";

pub(crate) const END: &str = "UPDATE triton_lease SET state = 'ended'
  WHERE client = $1 AND stream = $2 AND shard = $3 AND owner = $4 AND epoch = $5";

pub(crate) const LEAVE: &str =
    "DELETE FROM triton_worker WHERE client = $1 AND stream = $2 AND worker = $3";

pub(crate) const LEASES: &str = "SELECT shard, owner, epoch, renewed, expires, state, parents,
    bytes_per_second, handoff_to, handoff_until, {now} AS now
  FROM triton_lease WHERE client = $1 AND stream = $2";

pub(crate) const WORKERS: &str = "SELECT worker, {now} - heartbeat AS ago
  FROM triton_worker WHERE client = $1 AND stream = $2 AND expires >= {now}";

/// The fenced leases, as they are now (PostgreSQL appends `FOR SHARE`).
pub(crate) const OWNED: &str = "SELECT shard, epoch FROM triton_lease
  WHERE client = $1 AND stream = $2 AND owner = $3";

pub(crate) const INTENT_FENCE: &str = "SELECT fence FROM triton_upload_intent
  WHERE client = $1 AND stream = $2 AND archive_key = $3";

pub(crate) const SET_FENCE: &str = "UPDATE triton_upload_intent SET fence = $4
  WHERE client = $1 AND stream = $2 AND archive_key = $3";

pub(crate) const FENCED_INTENTS: &str = "SELECT archive_key, metadata, fence
  FROM triton_upload_intent WHERE client = $1 AND stream = $2";

#[derive(diesel::QueryableByName)]
pub(crate) struct LeaseRow {
    #[diesel(sql_type = Text)]
    shard: String,
    #[diesel(sql_type = Nullable<Text>)]
    owner: Option<String>,
    #[diesel(sql_type = BigInt)]
    epoch: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    renewed: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    expires: Option<i64>,
    #[diesel(sql_type = Text)]
    state: String,
    #[diesel(sql_type = Text)]
    parents: String,
    #[diesel(sql_type = Double)]
    bytes_per_second: f64,
    #[diesel(sql_type = Nullable<Text>)]
    handoff_to: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    handoff_until: Option<i64>,
    #[diesel(sql_type = BigInt)]
    now: i64,
}

impl LeaseRow {
    pub(crate) fn info(self) -> LeaseInfo {
        LeaseInfo {
            expired: self.owner.is_some() && self.expires.is_none_or(|e| e < self.now),
            renewed_ms_ago: self.renewed.map(|r| self.now - r),
            shard: self.shard,
            owner: self.owner,
            epoch: self.epoch,
            state: if self.state == "ended" {
                LeaseState::Ended
            } else {
                LeaseState::Active
            },
            parents: self
                .parents
                .split(',')
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect(),
            bytes_per_second: self.bytes_per_second,
            handoff_to: self
                .handoff_to
                .filter(|_| self.handoff_until.is_some_and(|u| u >= self.now)),
        }
    }
}

#[derive(diesel::QueryableByName)]
pub(crate) struct HeldRow {
    #[diesel(sql_type = Text)]
    shard: String,
    #[diesel(sql_type = BigInt)]
    epoch: i64,
}

impl From<HeldRow> for Held {
    fn from(r: HeldRow) -> Held {
        Held {
            shard: r.shard,
            epoch: r.epoch,
        }
    }
}

#[derive(diesel::QueryableByName)]
pub(crate) struct WorkerRow {
    #[diesel(sql_type = Text)]
    worker: String,
    #[diesel(sql_type = BigInt)]
    ago: i64,
}

#[derive(diesel::QueryableByName)]
pub(crate) struct FenceRow {
    #[diesel(sql_type = Nullable<Text>)]
    fence: Option<String>,
}

#[derive(diesel::QueryableByName)]
pub(crate) struct IntentRow {
    #[diesel(sql_type = Text)]
    archive_key: String,
    #[diesel(sql_type = Text)]
    metadata: String,
    #[diesel(sql_type = Nullable<Text>)]
    fence: Option<String>,
}

/// A lease table from its rows, in shard order.
pub(crate) fn table(leases: Vec<LeaseRow>, workers: Vec<WorkerRow>) -> LeaseTable {
    let mut leases: Vec<LeaseInfo> = leases.into_iter().map(LeaseRow::info).collect();
    leases.sort_by(|a, b| a.shard.cmp(&b.shard));
    let mut workers: Vec<WorkerInfo> = workers
        .into_iter()
        .map(|w| WorkerInfo {
            worker: w.worker,
            heartbeat_ms_ago: w.ago,
        })
        .collect();
    workers.sort_by(|a, b| a.worker.cmp(&b.worker));
    LeaseTable { leases, workers }
}

/// Intents from their rows, by key.
pub(crate) fn intents(
    client: &str,
    stream: &str,
    rows: Vec<IntentRow>,
) -> Vec<(UploadIntent, Option<Fence>)> {
    let mut all: Vec<(UploadIntent, Option<Fence>)> = rows
        .into_iter()
        .map(|r| {
            (
                UploadIntent {
                    client: client.to_owned(),
                    stream: stream.to_owned(),
                    key: r.archive_key,
                    document: r.metadata,
                },
                r.fence.as_deref().and_then(Fence::decode),
            )
        })
        .collect();
    all.sort_by(|a, b| a.0.key.cmp(&b.0.key));
    all
}

/// Whether an existing intent, recorded under `existing`, is this
/// worker's own.
pub(crate) fn is_mine(existing: Option<&Fence>, mine: &Fence) -> bool {
    existing.is_some_and(|f| f.worker == mine.worker)
}

/// Whether another worker may take over an intent recorded under
/// `existing`: its writer no longer holds its leases, or it was recorded
/// without any.
pub(crate) fn claimable(existing: Option<&Fence>, mine: &Fence, leases: &[LeaseInfo]) -> bool {
    match existing {
        Some(f) => f.worker == mine.worker || f.broken_by(leases).is_some(),
        None => true,
    }
}

/// The error of a fenced write whose fence broke.
pub(crate) fn fenced(db: &str, message: String) -> CheckpointError {
    CheckpointError::Fenced {
        db: db.to_owned(),
        message,
    }
}

/// What can end a fenced transaction: a database error, or a check that
/// failed (the transaction is rolled back either way).
#[derive(Debug)]
pub(crate) enum TxError {
    Db(diesel::result::Error),
    Fenced(String),
    KeyTaken,
}

impl From<diesel::result::Error> for TxError {
    fn from(e: diesel::result::Error) -> TxError {
        TxError::Db(e)
    }
}

/// A fence-checked transaction's outcome: database errors stay database
/// errors (the connection is then dropped), refusals are answers.
fn split<R>(r: Result<R, TxError>) -> Result<Result<R, TxError>, diesel::result::Error> {
    match r {
        Err(TxError::Db(e)) => Err(e),
        other => Ok(other),
    }
}

/// Whether `fence` holds, given the leases its worker owns (read in the
/// transaction about to write under it).
fn holds(fence: &Fence, owned: Vec<HeldRow>) -> Result<(), TxError> {
    let owned: Vec<Held> = owned.into_iter().map(Held::from).collect();
    match fence.broken_against(&owned) {
        Some(why) => Err(TxError::Fenced(why)),
        None => Ok(()),
    }
}

impl TxError {
    pub(crate) fn into_checkpoint(self, db: &str, key: &str) -> CheckpointError {
        match self {
            TxError::Db(e) => crate::query_error(db, e),
            TxError::Fenced(message) => fenced(db, message),
            TxError::KeyTaken => CheckpointError::KeyTaken {
                db: db.to_owned(),
                key: key.to_owned(),
            },
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

#[async_trait]
impl LeaseStore for SqlCheckpoints {
    async fn add_shards(&self, scope: &LeaseScope, shards: &[ShardSpec]) -> Result<()> {
        if shards.is_empty() {
            return Ok(());
        }
        backend!(self, add_shards(scope, shards))
    }

    async fn renew(
        &self,
        scope: &LeaseScope,
        worker: &str,
        held: &[Held],
        throughput: &[(String, f64)],
        duration: Duration,
    ) -> Result<Vec<Held>> {
        let renewed = backend!(
            self,
            renew(scope, worker, held, throughput, millis(duration))
        )?;
        Ok(held
            .iter()
            .filter(|h| renewed.contains(h))
            .cloned()
            .collect())
    }

    async fn acquire(
        &self,
        scope: &LeaseScope,
        worker: &str,
        shards: &[String],
        max: usize,
        duration: Duration,
    ) -> Result<Vec<Held>> {
        if shards.is_empty() || max == 0 {
            return Ok(Vec::new());
        }
        backend!(self, acquire(scope, worker, shards, max, millis(duration)))
    }

    async fn release(&self, scope: &LeaseScope, worker: &str, held: &[Held]) -> Result<()> {
        backend!(self, each(RELEASE, scope, worker, held))
    }

    async fn hand_over(
        &self,
        scope: &LeaseScope,
        worker: &str,
        lease: &Held,
        to: &str,
        within: Duration,
    ) -> Result<()> {
        let within = millis(within);
        backend!(self, hand_over(scope, worker, lease, to, within))
    }

    async fn mark_ended(&self, scope: &LeaseScope, worker: &str, lease: &Held) -> Result<()> {
        let one = std::slice::from_ref(lease);
        backend!(self, each(END, scope, worker, one))
    }

    async fn leave(&self, scope: &LeaseScope, worker: &str) -> Result<()> {
        backend!(self, leave(scope, worker))
    }

    async fn leases(&self, scope: &LeaseScope) -> Result<LeaseTable> {
        backend!(self, leases(scope))
    }

    async fn record_intent_fenced(
        &self,
        intent: &UploadIntent,
        replaces: Option<&str>,
        fence: &Fence,
    ) -> Result<()> {
        backend!(self, record_fenced(intent, replaces, fence))
    }

    async fn complete_intent_fenced(
        &self,
        intent: IntentId<'_>,
        checkpoints: &[Checkpoint],
        fence: &Fence,
    ) -> Result<()> {
        backend!(
            self,
            complete_fenced(
                intent.client,
                intent.stream,
                Some(intent.key),
                checkpoints,
                fence
            )
        )
    }

    async fn save_many_fenced(&self, checkpoints: &[Checkpoint], fence: &Fence) -> Result<()> {
        let Some(first) = checkpoints.first() else {
            return Ok(());
        };
        let (client, stream) = (first.client.clone(), first.stream.clone());
        backend!(
            self,
            complete_fenced(&client, &stream, None, checkpoints, fence)
        )
    }

    async fn claim_intent(&self, intent: IntentId<'_>, fence: &Fence) -> Result<bool> {
        backend!(self, claim(intent, fence))
    }

    async fn fenced_intents(
        &self,
        client: &str,
        stream: &str,
    ) -> Result<Vec<(UploadIntent, Option<Fence>)>> {
        backend!(self, fenced_intents(client, stream))
    }
}
