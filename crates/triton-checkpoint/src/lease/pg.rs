//! The lease statements on PostgreSQL.

use diesel::sql_types::{Array, BigInt, Double, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use triton_core::checkpoint::{Checkpoint, IntentId, Result, UploadIntent};
use triton_core::lease::{Fence, Held, LeaseInfo, LeaseScope, LeaseTable, ShardSpec};

use super::{
    claimable, holds, intents, is_mine, split, sql, table, Dialect, FenceRow, HeldRow, IntentRow,
    LeaseRow, TxError, WorkerRow, ADD_SHARD, FENCED_INTENTS, FORGET_WORKERS, HAND_OVER, HEARTBEAT,
    INTENT_FENCE, LEASES, LEAVE, OWNED, RENEW_PG, SET_FENCE, TAKE, THROUGHPUT, WORKERS,
};
use crate::postgres::{complete_in, record_in, upsert};
use crate::{check_intent, owned_rows, PgCheckpoints};

/// Locks an intent's key (client, stream, key) until the transaction ends;
/// a hash collision only makes two unrelated keys wait for each other.
const LOCK_KEY: &str =
    "SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2 || '/' || $3, 0))";

fn q(template: &str) -> String {
    sql(Dialect::Postgres, template)
}

pub(super) async fn add_shards(
    s: &PgCheckpoints,
    scope: &LeaseScope,
    shards: &[ShardSpec],
) -> Result<()> {
    s.run(async |c| {
        c.transaction::<_, diesel::result::Error, _>(async |c| {
            for spec in shards {
                diesel::sql_query(q(ADD_SHARD))
                    .bind::<Text, _>(&scope.client)
                    .bind::<Text, _>(&scope.stream)
                    .bind::<Text, _>(&spec.shard)
                    .bind::<Text, _>(spec.parents.join(","))
                    .execute(c)
                    .await?;
            }
            Ok(())
        })
        .await
    })
    .await
}

pub(super) async fn renew(
    s: &PgCheckpoints,
    scope: &LeaseScope,
    worker: &str,
    held: &[Held],
    throughput: &[(String, f64)],
    duration_ms: i64,
) -> Result<Vec<Held>> {
    let shards: Vec<&str> = held.iter().map(|h| h.shard.as_str()).collect();
    s.run(async |c| {
        c.transaction::<_, diesel::result::Error, _>(async |c| {
            diesel::sql_query(q(HEARTBEAT))
                .bind::<Text, _>(&scope.client)
                .bind::<Text, _>(&scope.stream)
                .bind::<Text, _>(worker)
                .bind::<BigInt, _>(duration_ms)
                .execute(c)
                .await?;
            let renewed: Vec<HeldRow> = diesel::sql_query(q(RENEW_PG))
                .bind::<Text, _>(&scope.client)
                .bind::<Text, _>(&scope.stream)
                .bind::<Text, _>(worker)
                .bind::<BigInt, _>(duration_ms)
                .bind::<Array<Text>, _>(&shards)
                .load(c)
                .await?;
            for (shard, rate) in throughput {
                diesel::sql_query(q(THROUGHPUT))
                    .bind::<Text, _>(&scope.client)
                    .bind::<Text, _>(&scope.stream)
                    .bind::<Text, _>(shard)
                    .bind::<Text, _>(worker)
                    .bind::<Double, _>(*rate)
                    .execute(c)
                    .await?;
            }
            diesel::sql_query(q(FORGET_WORKERS))
                .bind::<Text, _>(&scope.client)
                .bind::<Text, _>(&scope.stream)
                .execute(c)
                .await?;
            Ok(renewed.into_iter().map(Held::from).collect())
        })
        .await
    })
    .await
}

pub(super) async fn acquire(
    s: &PgCheckpoints,
    scope: &LeaseScope,
    worker: &str,
    shards: &[String],
    max: usize,
    duration_ms: i64,
) -> Result<Vec<Held>> {
    s.run(async |c| {
        c.transaction::<_, diesel::result::Error, _>(async |c| {
            // Rows another worker is taking right now are skipped, not
            // waited for: it will have them.
            let free: Vec<ShardRow> = diesel::sql_query(q("SELECT shard FROM triton_lease
                  WHERE client = $1 AND stream = $2 AND shard = ANY($3) AND state = 'active'
                    AND (owner IS NULL OR owner = $4 OR expires < {now})
                  ORDER BY shard FOR UPDATE SKIP LOCKED"))
            .bind::<Text, _>(&scope.client)
            .bind::<Text, _>(&scope.stream)
            .bind::<Array<Text>, _>(shards)
            .bind::<Text, _>(worker)
            .load(c)
            .await?;
            // In the caller's order: it puts first what it wants most.
            let mut taken = Vec::new();
            for shard in shards {
                if taken.len() >= max {
                    break;
                }
                if !free.iter().any(|f| &f.shard == shard) {
                    continue;
                }
                let rows: Vec<HeldRow> = diesel::sql_query(q(TAKE))
                    .bind::<Text, _>(&scope.client)
                    .bind::<Text, _>(&scope.stream)
                    .bind::<Text, _>(shard)
                    .bind::<Text, _>(worker)
                    .bind::<BigInt, _>(duration_ms)
                    .load(c)
                    .await?;
                taken.extend(rows.into_iter().map(Held::from));
            }
            Ok(taken)
        })
        .await
    })
    .await
}

#[derive(diesel::QueryableByName)]
struct ShardRow {
    #[diesel(sql_type = Text)]
    shard: String,
}

/// Runs `template` ($1 client, $2 stream, $3 shard, $4 worker, $5 epoch)
/// for each lease, in one transaction.
pub(super) async fn each(
    s: &PgCheckpoints,
    template: &str,
    scope: &LeaseScope,
    worker: &str,
    held: &[Held],
) -> Result<()> {
    if held.is_empty() {
        return Ok(());
    }
    s.run(async |c| {
        c.transaction::<_, diesel::result::Error, _>(async |c| {
            for h in held {
                diesel::sql_query(q(template))
                    .bind::<Text, _>(&scope.client)
                    .bind::<Text, _>(&scope.stream)
                    .bind::<Text, _>(&h.shard)
                    .bind::<Text, _>(worker)
                    .bind::<BigInt, _>(h.epoch)
                    .execute(c)
                    .await?;
            }
            Ok(())
        })
        .await
    })
    .await
}

pub(super) async fn leave(s: &PgCheckpoints, scope: &LeaseScope, worker: &str) -> Result<()> {
    s.run(async |c| {
        diesel::sql_query(q(LEAVE))
            .bind::<Text, _>(&scope.client)
            .bind::<Text, _>(&scope.stream)
            .bind::<Text, _>(worker)
            .execute(c)
            .await
            .map(|_| ())
    })
    .await
}

async fn load_leases(
    c: &mut AsyncPgConnection,
    scope: &LeaseScope,
) -> Result<Vec<LeaseRow>, diesel::result::Error> {
    diesel::sql_query(q(LEASES))
        .bind::<Text, _>(&scope.client)
        .bind::<Text, _>(&scope.stream)
        .load(c)
        .await
}

pub(super) async fn leases(s: &PgCheckpoints, scope: &LeaseScope) -> Result<LeaseTable> {
    s.run(async |c| {
        let leases = load_leases(c, scope).await?;
        let workers: Vec<WorkerRow> = diesel::sql_query(q(WORKERS))
            .bind::<Text, _>(&scope.client)
            .bind::<Text, _>(&scope.stream)
            .load(c)
            .await?;
        Ok(table(leases, workers))
    })
    .await
}

/// Checks `fence` with its leases locked until the transaction ends.
async fn check(
    c: &mut AsyncPgConnection,
    client: &str,
    stream: &str,
    fence: &Fence,
) -> Result<(), TxError> {
    let owned: Vec<HeldRow> = diesel::sql_query(format!("{} FOR SHARE", q(OWNED)))
        .bind::<Text, _>(client)
        .bind::<Text, _>(stream)
        .bind::<Text, _>(&fence.worker)
        .load(c)
        .await?;
    holds(fence, owned)
}

async fn intent_fence(
    c: &mut AsyncPgConnection,
    client: &str,
    stream: &str,
    key: &str,
) -> Result<Option<Option<Fence>>, diesel::result::Error> {
    let rows: Vec<FenceRow> = diesel::sql_query(q(INTENT_FENCE))
        .bind::<Text, _>(client)
        .bind::<Text, _>(stream)
        .bind::<Text, _>(key)
        .load(c)
        .await?;
    Ok(rows
        .into_iter()
        .next()
        .map(|r| r.fence.as_deref().and_then(Fence::decode)))
}

pub(super) async fn record_fenced(
    s: &PgCheckpoints,
    intent: &UploadIntent,
    replaces: Option<&str>,
    fence: &Fence,
) -> Result<()> {
    check_intent(s.db(), &intent.client, &intent.stream, &intent.key)?;
    let (client, stream) = (intent.client.as_str(), intent.stream.as_str());
    let outcome = s
        .run(async |c| {
            split(
                c.transaction::<_, TxError, _>(async |c| {
                    check(c, client, stream, fence).await?;
                    // Two workers recording one fresh key would both read
                    // "no row" (there is nothing to lock yet) and the
                    // second's upsert would take the first's intent over:
                    // the key is locked for the transaction first.
                    diesel::sql_query(q(LOCK_KEY))
                        .bind::<Text, _>(client)
                        .bind::<Text, _>(stream)
                        .bind::<Text, _>(&intent.key)
                        .execute(c)
                        .await?;
                    if let Some(existing) = intent_fence(c, client, stream, &intent.key).await? {
                        if !is_mine(existing.as_ref(), fence) {
                            return Err(TxError::KeyTaken);
                        }
                    }
                    // The intent an archive moved from is deleted only if
                    // it is this worker's.
                    let replaces = match replaces {
                        Some(old) => match intent_fence(c, client, stream, old).await? {
                            Some(existing) if !is_mine(existing.as_ref(), fence) => None,
                            _ => Some(old),
                        },
                        None => None,
                    };
                    record_in(c, intent, replaces).await?;
                    diesel::sql_query(q(SET_FENCE))
                        .bind::<Text, _>(client)
                        .bind::<Text, _>(stream)
                        .bind::<Text, _>(&intent.key)
                        .bind::<Text, _>(fence.encode())
                        .execute(c)
                        .await?;
                    Ok(())
                })
                .await,
            )
        })
        .await?;
    outcome.map_err(|e| e.into_checkpoint(s.db(), &intent.key))
}

/// Saves checkpoints and, with `key`, completes that intent, after checking
/// `fence`.
pub(super) async fn complete_fenced(
    s: &PgCheckpoints,
    client: &str,
    stream: &str,
    key: Option<&str>,
    checkpoints: &[Checkpoint],
    fence: &Fence,
) -> Result<()> {
    let rows = owned_rows(s.db(), checkpoints)?;
    let outcome = s
        .run(async |c| {
            split(
                c.transaction::<_, TxError, _>(async |c| {
                    check(c, client, stream, fence).await?;
                    match key {
                        Some(key) => complete_in(c, client, stream, key, &rows).await?,
                        None => upsert(c, &rows).await?,
                    }
                    Ok(())
                })
                .await,
            )
        })
        .await?;
    outcome.map_err(|e| e.into_checkpoint(s.db(), key.unwrap_or("")))
}

pub(super) async fn fenced_intents(
    s: &PgCheckpoints,
    client: &str,
    stream: &str,
) -> Result<Vec<(UploadIntent, Option<Fence>)>> {
    let rows: Vec<IntentRow> = s
        .run(async |c| {
            diesel::sql_query(q(FENCED_INTENTS))
                .bind::<Text, _>(client)
                .bind::<Text, _>(stream)
                .load(c)
                .await
        })
        .await?;
    Ok(intents(client, stream, rows))
}

pub(super) async fn claim(s: &PgCheckpoints, intent: IntentId<'_>, fence: &Fence) -> Result<bool> {
    let (client, stream, key) = (intent.client, intent.stream, intent.key);
    let scope = LeaseScope {
        client: client.to_owned(),
        stream: stream.to_owned(),
    };
    let outcome = s
        .run(async |c| {
            split(
                c.transaction::<_, TxError, _>(async |c| {
                    check(c, client, stream, fence).await?;
                    // The intent's row is locked: two claimers are ordered.
                    let rows: Vec<FenceRow> =
                        diesel::sql_query(format!("{} FOR UPDATE", q(INTENT_FENCE)))
                            .bind::<Text, _>(client)
                            .bind::<Text, _>(stream)
                            .bind::<Text, _>(key)
                            .load(c)
                            .await?;
                    let Some(row) = rows.into_iter().next() else {
                        return Ok(false);
                    };
                    let leases: Vec<LeaseInfo> = load_leases(c, &scope)
                        .await?
                        .into_iter()
                        .map(LeaseRow::info)
                        .collect();
                    let existing = row.fence.as_deref().and_then(Fence::decode);
                    if !claimable(existing.as_ref(), fence, &leases) {
                        return Ok(false);
                    }
                    diesel::sql_query(q(SET_FENCE))
                        .bind::<Text, _>(client)
                        .bind::<Text, _>(stream)
                        .bind::<Text, _>(key)
                        .bind::<Text, _>(fence.encode())
                        .execute(c)
                        .await?;
                    Ok(true)
                })
                .await,
            )
        })
        .await?;
    outcome.map_err(|e| e.into_checkpoint(s.db(), key))
}

pub(super) async fn hand_over(
    s: &PgCheckpoints,
    scope: &LeaseScope,
    worker: &str,
    lease: &Held,
    to: &str,
    within_ms: i64,
) -> Result<()> {
    s.run(async |c| {
        diesel::sql_query(q(HAND_OVER))
            .bind::<Text, _>(&scope.client)
            .bind::<Text, _>(&scope.stream)
            .bind::<Text, _>(&lease.shard)
            .bind::<Text, _>(worker)
            .bind::<BigInt, _>(lease.epoch)
            .bind::<Text, _>(to)
            .bind::<BigInt, _>(within_ms)
            .execute(c)
            .await
            .map(|_| ())
    })
    .await
}
