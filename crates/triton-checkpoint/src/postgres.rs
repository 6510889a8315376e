//! PostgreSQL: diesel-async over tokio-postgres, TLS by rustls.

use std::time::Duration;

use async_trait::async_trait;
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use triton_core::checkpoint::{
    Checkpoint, CheckpointError, CheckpointStore, IntentId, IntentStore, ReplayPosition,
    ReplayState, ReplayStore, Result, SavedCheckpoint, SubCheckpoint, UploadIntent,
};
use triton_core::source::SequenceNumber;

use crate::pool::Pool;
use crate::schema::{
    intent_of, intent_upsert_statement, triton_checkpoint as t, triton_checkpoint_archive as a,
    triton_replay as r, triton_subsequence as sq, triton_upload_intent as i, upsert_statement,
    ReplayRow, Row, MIGRATIONS, MIGRATIONS_TABLE,
};
use crate::url::{PostgresUrl, SslMode};
use crate::{
    bad_row, check_intent, failed, failed_by, forward_only, intent_row, owned_rows, query_error,
    sub_rows, subs_of, unavailable_by, updated_now, Mode, OwnedRow,
};

mod tls;

/// Connections kept open for concurrent callers.
const CONNECTIONS: usize = 8;
/// Rows per INSERT: 5 binds each, well under PostgreSQL's 65,535.
const ROWS_PER_INSERT: usize = 5000;
/// How long connecting may take unless the URL sets `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one operation may take before its connection is given up.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);
/// Key of the advisory lock that serialises migrations across processes.
const MIGRATION_LOCK: i64 = 0x7472_6974_6f6e; // "triton"

/// Checkpoints in a PostgreSQL database.
pub struct PgCheckpoints {
    url: PostgresUrl,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    pool: Pool<AsyncPgConnection>,
}

impl std::fmt::Debug for PgCheckpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgCheckpoints")
            .field("url", &self.url)
            .finish()
    }
}

impl PgCheckpoints {
    pub(crate) async fn open(url: &PostgresUrl, mode: Mode) -> Result<PgCheckpoints> {
        let tls = match url.ssl_mode {
            SslMode::Disable => None,
            mode => Some(
                tls::connector(mode, url.root_cert.as_deref())
                    .map_err(|e| failed(&url.redacted, &e))?,
            ),
        };
        let store = PgCheckpoints {
            url: url.clone(),
            tls,
            pool: Pool::new(CONNECTIONS),
        };
        // Connecting now reports a wrong URL or password at once.
        let mut conn = store.connect().await?;
        if mode == Mode::Create {
            migrate(&mut conn)
                .await
                .map_err(|e| query_error(&url.redacted, e))?;
        }
        store.pool.give_back(conn);
        Ok(store)
    }

    pub(crate) fn db(&self) -> &str {
        &self.url.redacted
    }

    /// A new connection, outside the pool.
    pub(crate) async fn connect(&self) -> Result<AsyncPgConnection> {
        // The server answered and said no (wrong password, no such database,
        // pg_hba): retrying will not help. Network trouble and a server
        // starting up or full (08xxx, 57P03, 53300) may pass.
        let refused = |e: tokio_postgres::Error| match e.code().map(|c| c.code()) {
            Some(code) if !(code.starts_with("08") || code == "57P03" || code == "53300") => {
                failed_by(self.db(), e)
            }
            _ => unavailable_by(self.db(), e),
        };
        let mut config: tokio_postgres::Config = self
            .url
            .connect
            .parse()
            .map_err(|e| failed_by(self.db(), e))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        // Notice a silently dropped connection in about a minute, not hours.
        config.keepalives_idle(Duration::from_secs(30));
        let conn = match &self.tls {
            None => {
                config.ssl_mode(tokio_postgres::config::SslMode::Disable);
                let (client, conn) = config
                    .connect(tokio_postgres::NoTls)
                    .await
                    .map_err(refused)?;
                AsyncPgConnection::try_from_client_and_connection(client, conn).await
            }
            Some(tls) => {
                config.ssl_mode(if self.url.ssl_mode == SslMode::Prefer {
                    tokio_postgres::config::SslMode::Prefer
                } else {
                    tokio_postgres::config::SslMode::Require
                });
                let (client, conn) = config.connect(tls.clone()).await.map_err(refused)?;
                AsyncPgConnection::try_from_client_and_connection(client, conn).await
            }
        };
        conn.map_err(|e| unavailable_by(self.db(), e))
    }

    /// Runs `f` on a pooled connection, within [`OPERATION_TIMEOUT`]. A
    /// connection whose operation failed is dropped rather than reused: its
    /// transaction state may be broken.
    pub(crate) async fn run<R>(
        &self,
        f: impl AsyncFnOnce(&mut AsyncPgConnection) -> Result<R, diesel::result::Error>,
    ) -> Result<R> {
        let (_permit, idle) = self.pool.checkout(self.db()).await?;
        let mut conn = match idle {
            Some(conn) => conn,
            None => self.connect().await?,
        };
        match tokio::time::timeout(OPERATION_TIMEOUT, f(&mut conn)).await {
            Ok(Ok(r)) => {
                self.pool.give_back(conn);
                Ok(r)
            }
            Ok(Err(e)) => Err(query_error(self.db(), e)),
            Err(_) => Err(CheckpointError::Unavailable {
                db: self.db().to_owned(),
                message: format!("no answer within {} s", OPERATION_TIMEOUT.as_secs()),
                source: None,
            }),
        }
    }
}

#[async_trait]
impl CheckpointStore for PgCheckpoints {
    async fn last(
        &self,
        client: &str,
        stream: &str,
        shard: &str,
    ) -> Result<Option<SequenceNumber>> {
        let found = self
            .run(async |c| {
                t::table
                    .filter(t::client.eq(client))
                    .filter(t::stream.eq(stream))
                    .filter(t::shard.eq(shard))
                    .select(t::seq_num)
                    .first::<String>(c)
                    .await
                    .optional()
            })
            .await?;
        found
            .map(|s| {
                SequenceNumber::new(s.clone())
                    .map_err(|_| bad_row(self.db(), client, stream, shard, s))
            })
            .transpose()
    }

    async fn save_many(&self, checkpoints: &[Checkpoint]) -> Result<()> {
        let rows = owned_rows(self.db(), checkpoints)?;
        if rows.is_empty() {
            return Ok(());
        }
        self.run(async |c| {
            c.transaction::<_, diesel::result::Error, _>(async |c| upsert(c, &rows).await)
                .await
        })
        .await
    }

    async fn list(&self, client: &str) -> Result<Vec<SavedCheckpoint>> {
        let rows = self
            .run(async |c| {
                t::table
                    .filter(t::client.eq(client))
                    .order((t::stream, t::shard))
                    .select((t::stream, t::shard, t::seq_num, t::updated))
                    .load::<(String, String, String, i32)>(c)
                    .await
            })
            .await?;
        crate::saved(self.db(), client, rows)
    }
    async fn save_subsequences(&self, subs: &[SubCheckpoint]) -> Result<()> {
        let rows = sub_rows(self.db(), subs)?;
        if rows.is_empty() {
            return Ok(());
        }
        self.run(async |c| {
            diesel::insert_into(sq::table)
                .values(&rows)
                .on_conflict((sq::client, sq::stream, sq::shard))
                .do_update()
                .set((
                    sq::seq_num.eq(excluded(sq::seq_num)),
                    sq::sub.eq(excluded(sq::sub)),
                    sq::updated.eq(excluded(sq::updated)),
                ))
                .execute(c)
                .await
                .map(drop)
        })
        .await
    }

    async fn subsequences(&self, client: &str) -> Result<Vec<SubCheckpoint>> {
        let rows = self
            .run(async |c| {
                sq::table
                    .filter(sq::client.eq(client))
                    .order((sq::stream, sq::shard))
                    .select((sq::stream, sq::shard, sq::seq_num, sq::sub))
                    .load::<(String, String, String, i64)>(c)
                    .await
            })
            .await?;
        subs_of(self.db(), client, rows)
    }
}

#[async_trait]
impl IntentStore for PgCheckpoints {
    async fn record_intent(&self, intent: &UploadIntent, replaces: Option<&str>) -> Result<()> {
        check_intent(self.db(), &intent.client, &intent.stream, &intent.key)?;
        self.run(async |c| {
            c.transaction::<_, diesel::result::Error, _>(async |c| {
                record_in(c, intent, replaces).await
            })
            .await
        })
        .await
    }

    async fn complete_intent(
        &self,
        intent: IntentId<'_>,
        checkpoints: &[Checkpoint],
    ) -> Result<()> {
        let rows = owned_rows(self.db(), checkpoints)?;
        self.run(async |c| {
            c.transaction::<_, diesel::result::Error, _>(async |c| {
                complete_in(c, intent.client, intent.stream, intent.key, &rows).await
            })
            .await
        })
        .await
    }

    async fn intents(&self, client: &str, stream: &str) -> Result<Vec<UploadIntent>> {
        let rows = self
            .run(async |c| {
                i::table
                    .filter(i::client.eq(client))
                    .filter(i::stream.eq(stream))
                    .select((i::archive_key, i::metadata))
                    .load::<(String, String)>(c)
                    .await
            })
            .await?;
        Ok(crate::intents_of(client, stream, rows))
    }

    async fn checkpoint_archives(
        &self,
        client: &str,
        stream: &str,
    ) -> Result<Vec<(String, String)>> {
        self.run(async |c| {
            a::table
                .filter(a::client.eq(client))
                .filter(a::stream.eq(stream))
                .select((a::shard, a::archive_key))
                .order(a::shard)
                .load::<(String, String)>(c)
                .await
        })
        .await
    }
}

#[async_trait]
impl ReplayStore for PgCheckpoints {
    async fn replay(&self, consumer: &str, stream: &str) -> Result<Option<ReplayState>> {
        let row = self
            .run(async |c| {
                r::table
                    .filter(r::consumer.eq(consumer))
                    .filter(r::stream.eq(stream))
                    .select(ReplayRow::as_select())
                    .first(c)
                    .await
                    .optional()
            })
            .await?;
        row.map(|row| crate::replay_of(self.db(), row)).transpose()
    }

    async fn save_replay(&self, consumer: &str, stream: &str, state: &ReplayState) -> Result<()> {
        let row = crate::replay_row(self.db(), consumer, stream, state)?;
        self.run(async |c| {
            diesel::insert_into(r::table)
                .values(&row)
                .on_conflict((r::consumer, r::stream))
                .do_update()
                .set(&row)
                .execute(c)
                .await
                .map(drop)
        })
        .await
    }

    async fn move_replay(
        &self,
        consumer: &str,
        stream: &str,
        position: &ReplayPosition,
        checkpoints: &[Checkpoint],
    ) -> Result<()> {
        let rows = owned_rows(self.db(), checkpoints)?;
        let (key, index, live) = crate::position_columns(self.db(), position)?;
        let moved = self
            .run(async |c| {
                c.transaction::<_, diesel::result::Error, _>(async |c| {
                    let moved = diesel::update(r::table)
                        .filter(r::consumer.eq(consumer))
                        .filter(r::stream.eq(stream))
                        .set((
                            r::archive_key.eq(key),
                            r::record_index.eq(index),
                            r::live.eq(live),
                            r::updated.eq(triton_core::checkpoint::unix_now()),
                        ))
                        .execute(c)
                        .await?;
                    if moved == 1 {
                        upsert(c, &rows).await?;
                    }
                    Ok(moved)
                })
                .await
            })
            .await?;
        if moved == 1 {
            Ok(())
        } else {
            Err(crate::no_replay(self.db(), consumer, stream))
        }
    }
}

/// Records an intent (replacing `replaces`), in the caller's transaction.
pub(crate) async fn record_in(
    c: &mut AsyncPgConnection,
    intent: &UploadIntent,
    replaces: Option<&str>,
) -> Result<(), diesel::result::Error> {
    if let Some(old) = replaces {
        diesel::delete(intent_of(&intent.client, &intent.stream, old))
            .execute(c)
            .await?;
    }
    intent_upsert_statement!(intent_row(intent))
        .execute(c)
        .await?;
    Ok(())
}

/// Moves checkpoints forward, records their archive and deletes the intent
/// `key`, in the caller's transaction.
pub(crate) async fn complete_in(
    c: &mut AsyncPgConnection,
    client: &str,
    stream: &str,
    key: &str,
    rows: &[OwnedRow],
) -> Result<(), diesel::result::Error> {
    let shards: Vec<&str> = rows.iter().map(|r| r.shard.as_str()).collect();
    let stored: Vec<(String, String)> = t::table
        .filter(t::client.eq(client))
        .filter(t::stream.eq(stream))
        .filter(t::shard.eq_any(&shards))
        .select((t::shard, t::seq_num))
        .for_update()
        .load(c)
        .await?;
    let forward = forward_only(rows, &stored);
    upsert(c, &forward).await?;
    let archives: Vec<_> = forward.iter().map(|r| r.archive_row(key)).collect();
    if !archives.is_empty() {
        diesel::insert_into(a::table)
            .values(&archives)
            .on_conflict((a::client, a::stream, a::shard))
            .do_update()
            .set(a::archive_key.eq(excluded(a::archive_key)))
            .execute(c)
            .await?;
    }
    diesel::delete(intent_of(client, stream, key))
        .execute(c)
        .await?;
    Ok(())
}

/// Inserts or updates checkpoint rows, in the caller's transaction.
pub(crate) async fn upsert(
    c: &mut AsyncPgConnection,
    rows: &[OwnedRow],
) -> Result<(), diesel::result::Error> {
    let updated = updated_now();
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let chunk: Vec<Row<'_>> = chunk.iter().map(|r| r.row(updated)).collect();
        upsert_statement!(&chunk).execute(c).await?;
    }
    Ok(())
}

async fn migrate(c: &mut AsyncPgConnection) -> Result<(), diesel::result::Error> {
    // One transaction under an advisory lock: processes starting at once on
    // a fresh database wait for each other instead of racing on CREATE
    // TABLE (DDL is transactional in PostgreSQL).
    c.transaction::<_, diesel::result::Error, _>(async |c| {
        c.batch_execute(&format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
            .await?;
        c.batch_execute(MIGRATIONS_TABLE).await?;
        for &(version, sql, _) in MIGRATIONS {
            let applied: i64 = diesel::select(crate::applied_count(version))
                .get_result(c)
                .await?;
            if applied == 0 {
                c.batch_execute(sql).await?;
                c.batch_execute(&format!(
                    "INSERT INTO triton_schema_migrations (version, applied) VALUES ({version}, {})",
                    triton_core::checkpoint::unix_now()
                ))
                .await?;
            }
        }
        Ok(())
    })
    .await
}
