//! The lease statements on SQLite. Every write is `BEGIN IMMEDIATE`: one
//! writer at a time, so checks and writes cannot interleave.

use diesel::sql_types::{BigInt, Double, Text};
use diesel::sqlite::SqliteConnection;
use diesel::RunQueryDsl;
use triton_core::checkpoint::{Checkpoint, IntentId, Result, UploadIntent};
use triton_core::lease::{Fence, Held, LeaseInfo, LeaseScope, LeaseTable, ShardSpec};

use super::{
    claimable, holds, intents, is_mine, split, sql, table, Dialect, FenceRow, HeldRow, IntentRow,
    LeaseRow, TxError, WorkerRow, ADD_SHARD, FENCED_INTENTS, FORGET_WORKERS, HAND_OVER, HEARTBEAT,
    INTENT_FENCE, LEASES, LEAVE, OWNED, RENEW_ONE, SET_FENCE, TAKE, THROUGHPUT, WORKERS,
};
use crate::sqlite::{complete_in, record_in, upsert};
use crate::{check_intent, owned_rows, SqliteCheckpoints};

fn q(template: &str) -> String {
    sql(Dialect::Sqlite, template)
}

pub(super) async fn add_shards(
    s: &SqliteCheckpoints,
    scope: &LeaseScope,
    shards: &[ShardSpec],
) -> Result<()> {
    let (scope, shards) = (scope.clone(), shards.to_vec());
    s.run(move |c| {
        c.immediate_transaction::<_, diesel::result::Error, _>(|c| {
            for spec in &shards {
                diesel::sql_query(q(ADD_SHARD))
                    .bind::<Text, _>(&scope.client)
                    .bind::<Text, _>(&scope.stream)
                    .bind::<Text, _>(&spec.shard)
                    .bind::<Text, _>(spec.parents.join(","))
                    .execute(c)?;
            }
            Ok(())
        })
    })
    .await
}

pub(super) async fn renew(
    s: &SqliteCheckpoints,
    scope: &LeaseScope,
    worker: &str,
    held: &[Held],
    throughput: &[(String, f64)],
    duration_ms: i64,
) -> Result<Vec<Held>> {
    let (scope, worker, throughput) = (scope.clone(), worker.to_owned(), throughput.to_vec());
    let held = held.to_vec();
    s.run(move |c| {
        c.immediate_transaction::<_, diesel::result::Error, _>(|c| {
            diesel::sql_query(q(HEARTBEAT))
                .bind::<Text, _>(&scope.client)
                .bind::<Text, _>(&scope.stream)
                .bind::<Text, _>(&worker)
                .bind::<BigInt, _>(duration_ms)
                .execute(c)?;
            let mut renewed: Vec<HeldRow> = Vec::with_capacity(held.len());
            for h in &held {
                renewed.extend(
                    diesel::sql_query(q(RENEW_ONE))
                        .bind::<Text, _>(&scope.client)
                        .bind::<Text, _>(&scope.stream)
                        .bind::<Text, _>(&worker)
                        .bind::<BigInt, _>(duration_ms)
                        .bind::<Text, _>(&h.shard)
                        .bind::<BigInt, _>(h.epoch)
                        .load::<HeldRow>(c)?,
                );
            }
            for (shard, rate) in &throughput {
                diesel::sql_query(q(THROUGHPUT))
                    .bind::<Text, _>(&scope.client)
                    .bind::<Text, _>(&scope.stream)
                    .bind::<Text, _>(shard)
                    .bind::<Text, _>(&worker)
                    .bind::<Double, _>(*rate)
                    .execute(c)?;
            }
            diesel::sql_query(q(FORGET_WORKERS))
                .bind::<Text, _>(&scope.client)
                .bind::<Text, _>(&scope.stream)
                .execute(c)?;
            Ok(renewed.into_iter().map(Held::from).collect())
        })
    })
    .await
}

pub(super) async fn acquire(
    s: &SqliteCheckpoints,
    scope: &LeaseScope,
    worker: &str,
    shards: &[String],
    max: usize,
    duration_ms: i64,
) -> Result<Vec<Held>> {
    let (scope, worker, shards) = (scope.clone(), worker.to_owned(), shards.to_vec());
    s.run(move |c| {
        c.immediate_transaction::<_, diesel::result::Error, _>(|c| {
            let mut taken = Vec::new();
            for shard in &shards {
                if taken.len() >= max {
                    break;
                }
                let rows: Vec<HeldRow> = diesel::sql_query(q(TAKE))
                    .bind::<Text, _>(&scope.client)
                    .bind::<Text, _>(&scope.stream)
                    .bind::<Text, _>(shard)
                    .bind::<Text, _>(&worker)
                    .bind::<BigInt, _>(duration_ms)
                    .load(c)?;
                taken.extend(rows.into_iter().map(Held::from));
            }
            Ok(taken)
        })
    })
    .await
}

/// Runs `template` ($1 client, $2 stream, $3 shard, $4 worker, $5 epoch)
/// for each lease, in one transaction.
pub(super) async fn each(
    s: &SqliteCheckpoints,
    template: &'static str,
    scope: &LeaseScope,
    worker: &str,
    held: &[Held],
) -> Result<()> {
    if held.is_empty() {
        return Ok(());
    }
    let (scope, worker, held) = (scope.clone(), worker.to_owned(), held.to_vec());
    s.run(move |c| {
        c.immediate_transaction::<_, diesel::result::Error, _>(|c| {
            for h in &held {
                diesel::sql_query(q(template))
                    .bind::<Text, _>(&scope.client)
                    .bind::<Text, _>(&scope.stream)
                    .bind::<Text, _>(&h.shard)
                    .bind::<Text, _>(&worker)
                    .bind::<BigInt, _>(h.epoch)
                    .execute(c)?;
            }
            Ok(())
        })
    })
    .await
}

pub(super) async fn leave(s: &SqliteCheckpoints, scope: &LeaseScope, worker: &str) -> Result<()> {
    let (scope, worker) = (scope.clone(), worker.to_owned());
    s.run(move |c| {
        diesel::sql_query(q(LEAVE))
            .bind::<Text, _>(&scope.client)
            .bind::<Text, _>(&scope.stream)
            .bind::<Text, _>(&worker)
            .execute(c)
            .map(|_| ())
    })
    .await
}

fn load_leases(
    c: &mut SqliteConnection,
    scope: &LeaseScope,
) -> Result<Vec<LeaseRow>, diesel::result::Error> {
    diesel::sql_query(q(LEASES))
        .bind::<Text, _>(&scope.client)
        .bind::<Text, _>(&scope.stream)
        .load(c)
}

pub(super) async fn leases(s: &SqliteCheckpoints, scope: &LeaseScope) -> Result<LeaseTable> {
    let scope = scope.clone();
    s.run(move |c| {
        let leases = load_leases(c, &scope)?;
        let workers: Vec<WorkerRow> = diesel::sql_query(q(WORKERS))
            .bind::<Text, _>(&scope.client)
            .bind::<Text, _>(&scope.stream)
            .load(c)?;
        Ok(table(leases, workers))
    })
    .await
}

fn check(
    c: &mut SqliteConnection,
    client: &str,
    stream: &str,
    fence: &Fence,
) -> Result<(), TxError> {
    let owned: Vec<HeldRow> = diesel::sql_query(q(OWNED))
        .bind::<Text, _>(client)
        .bind::<Text, _>(stream)
        .bind::<Text, _>(&fence.worker)
        .load(c)?;
    holds(fence, owned)
}

fn intent_fence(
    c: &mut SqliteConnection,
    client: &str,
    stream: &str,
    key: &str,
) -> Result<Option<Option<Fence>>, diesel::result::Error> {
    let rows: Vec<FenceRow> = diesel::sql_query(q(INTENT_FENCE))
        .bind::<Text, _>(client)
        .bind::<Text, _>(stream)
        .bind::<Text, _>(key)
        .load(c)?;
    Ok(rows
        .into_iter()
        .next()
        .map(|r| r.fence.as_deref().and_then(Fence::decode)))
}

pub(super) async fn record_fenced(
    s: &SqliteCheckpoints,
    intent: &UploadIntent,
    replaces: Option<&str>,
    fence: &Fence,
) -> Result<()> {
    check_intent(s.db(), &intent.client, &intent.stream, &intent.key)?;
    let (intent, replaces, fence) = (intent.clone(), replaces.map(str::to_owned), fence.clone());
    let key = intent.key.clone();
    let outcome = s
        .run(move |c| {
            split(c.immediate_transaction::<_, TxError, _>(|c| {
                let (client, stream) = (intent.client.as_str(), intent.stream.as_str());
                check(c, client, stream, &fence)?;
                if let Some(existing) = intent_fence(c, client, stream, &intent.key)? {
                    if !is_mine(existing.as_ref(), &fence) {
                        return Err(TxError::KeyTaken);
                    }
                }
                let replaces = match replaces.as_deref() {
                    Some(old) => match intent_fence(c, client, stream, old)? {
                        Some(existing) if !is_mine(existing.as_ref(), &fence) => None,
                        _ => Some(old),
                    },
                    None => None,
                };
                record_in(c, &intent, replaces)?;
                diesel::sql_query(q(SET_FENCE))
                    .bind::<Text, _>(client)
                    .bind::<Text, _>(stream)
                    .bind::<Text, _>(&intent.key)
                    .bind::<Text, _>(fence.encode())
                    .execute(c)?;
                Ok(())
            }))
        })
        .await?;
    outcome.map_err(|e| e.into_checkpoint(s.db(), &key))
}

pub(super) async fn complete_fenced(
    s: &SqliteCheckpoints,
    client: &str,
    stream: &str,
    key: Option<&str>,
    checkpoints: &[Checkpoint],
    fence: &Fence,
) -> Result<()> {
    let rows = owned_rows(s.db(), checkpoints)?;
    let (client, stream, key, fence) = (
        client.to_owned(),
        stream.to_owned(),
        key.map(str::to_owned),
        fence.clone(),
    );
    let shown = key.clone().unwrap_or_default();
    let outcome = s
        .run(move |c| {
            split(c.immediate_transaction::<_, TxError, _>(|c| {
                check(c, &client, &stream, &fence)?;
                match &key {
                    Some(key) => complete_in(c, &client, &stream, key, &rows)?,
                    None => upsert(c, &rows)?,
                }
                Ok(())
            }))
        })
        .await?;
    outcome.map_err(|e| e.into_checkpoint(s.db(), &shown))
}

pub(super) async fn fenced_intents(
    s: &SqliteCheckpoints,
    client: &str,
    stream: &str,
) -> Result<Vec<(UploadIntent, Option<Fence>)>> {
    let id = (client.to_owned(), stream.to_owned());
    let rows: Vec<IntentRow> = s
        .run(move |c| {
            diesel::sql_query(q(FENCED_INTENTS))
                .bind::<Text, _>(&id.0)
                .bind::<Text, _>(&id.1)
                .load(c)
        })
        .await?;
    Ok(intents(client, stream, rows))
}

pub(super) async fn claim(
    s: &SqliteCheckpoints,
    intent: IntentId<'_>,
    fence: &Fence,
) -> Result<bool> {
    let (client, stream, key, fence) = (
        intent.client.to_owned(),
        intent.stream.to_owned(),
        intent.key.to_owned(),
        fence.clone(),
    );
    let shown = key.clone();
    let outcome = s
        .run(move |c| {
            split(c.immediate_transaction::<_, TxError, _>(|c| {
                check(c, &client, &stream, &fence)?;
                let Some(existing) = intent_fence(c, &client, &stream, &key)? else {
                    return Ok(false);
                };
                let scope = LeaseScope {
                    client: client.clone(),
                    stream: stream.clone(),
                };
                let leases: Vec<LeaseInfo> = load_leases(c, &scope)?
                    .into_iter()
                    .map(LeaseRow::info)
                    .collect();
                if !claimable(existing.as_ref(), &fence, &leases) {
                    return Ok(false);
                }
                diesel::sql_query(q(SET_FENCE))
                    .bind::<Text, _>(&client)
                    .bind::<Text, _>(&stream)
                    .bind::<Text, _>(&key)
                    .bind::<Text, _>(fence.encode())
                    .execute(c)?;
                Ok(true)
            }))
        })
        .await?;
    outcome.map_err(|e| e.into_checkpoint(s.db(), &shown))
}

pub(super) async fn hand_over(
    s: &SqliteCheckpoints,
    scope: &LeaseScope,
    worker: &str,
    lease: &Held,
    to: &str,
    within_ms: i64,
) -> Result<()> {
    let (scope, worker, lease, to) = (
        scope.clone(),
        worker.to_owned(),
        lease.clone(),
        to.to_owned(),
    );
    s.run(move |c| {
        c.immediate_transaction::<_, diesel::result::Error, _>(|c| {
            diesel::sql_query(q(HAND_OVER))
                .bind::<Text, _>(&scope.client)
                .bind::<Text, _>(&scope.stream)
                .bind::<Text, _>(&lease.shard)
                .bind::<Text, _>(&worker)
                .bind::<BigInt, _>(lease.epoch)
                .bind::<Text, _>(&to)
                .bind::<BigInt, _>(within_ms)
                .execute(c)
                .map(|_| ())
        })
    })
    .await
}
