//! SQLite: synchronous Diesel connections on tokio's blocking threads.
//!
//! SQLite calls are blocking file I/O, so each operation runs in
//! `spawn_blocking` on a connection taken from a small pool. Every
//! connection sets a busy timeout and the file is in WAL mode, so a reader
//! (`triton stats`) and a writer (`triton store`) never fail on a lock.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;
use diesel::upsert::excluded;
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
use crate::{
    bad_row, check_intent, failed, failed_by, forward_only, intent_row, owned_rows, query_error,
    sub_rows, subs_of, updated_now, Mode, OwnedRow,
};

/// How long a statement waits for another process's lock before failing.
const BUSY_TIMEOUT_MS: u32 = 10_000;
/// SQLite has one writer at a time; a few connections serve concurrent
/// readers.
const CONNECTIONS: usize = 4;
/// Rows per INSERT: 5 binds each, well under SQLite's 32,766.
const ROWS_PER_INSERT: usize = 1000;

/// Checkpoints in an SQLite file.
pub struct SqliteCheckpoints {
    path: PathBuf,
    db: String,
    pool: Pool<SqliteConnection>,
    mode: Mode,
}

impl std::fmt::Debug for SqliteCheckpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteCheckpoints")
            .field("db", &self.db)
            .finish()
    }
}

impl SqliteCheckpoints {
    pub(crate) async fn open(path: &Path, mode: Mode) -> Result<SqliteCheckpoints> {
        let db = format!("sqlite://{}", path.display());
        if mode == Mode::Existing && !path.exists() {
            return Err(failed(&db, "the database file does not exist"));
        }
        let store = SqliteCheckpoints {
            path: path.to_owned(),
            db,
            pool: Pool::new(CONNECTIONS),
            mode,
        };
        if mode == Mode::Create {
            store.run(migrate).await?;
        }
        Ok(store)
    }

    pub(crate) fn db(&self) -> &str {
        &self.db
    }

    /// Runs `f` on a pooled connection on a blocking thread.
    pub(crate) async fn run<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut SqliteConnection) -> Result<R, diesel::result::Error> + Send + 'static,
    {
        let (_permit, idle) = self.pool.checkout(&self.db).await?;
        let path = self.path.clone();
        let db = self.db.clone();
        let mode = self.mode;
        let outcome = tokio::task::spawn_blocking(move || {
            let mut conn = match idle {
                Some(conn) => conn,
                None => connect(&path, &db, mode)?,
            };
            let result = f(&mut conn);
            Ok::<_, CheckpointError>((conn, result))
        })
        .await
        .map_err(|e| CheckpointError::Failed {
            db: self.db.clone(),
            message: "database task failed".into(),
            source: Some(e.into()),
        })?;
        let (conn, result) = outcome?;
        if result.is_ok() {
            self.pool.give_back(conn);
        }
        result.map_err(|e| query_error(&self.db, e))
    }
}

#[async_trait]
impl CheckpointStore for SqliteCheckpoints {
    async fn last(
        &self,
        client: &str,
        stream: &str,
        shard: &str,
    ) -> Result<Option<SequenceNumber>> {
        let key = (client.to_owned(), stream.to_owned(), shard.to_owned());
        let found = self
            .run(move |c| {
                t::table
                    .filter(t::client.eq(&key.0))
                    .filter(t::stream.eq(&key.1))
                    .filter(t::shard.eq(&key.2))
                    .select(t::seq_num)
                    .first::<String>(c)
                    .optional()
            })
            .await?;
        found
            .map(|s| {
                SequenceNumber::new(s.clone())
                    .map_err(|_| bad_row(&self.db, client, stream, shard, s))
            })
            .transpose()
    }

    async fn save_many(&self, checkpoints: &[Checkpoint]) -> Result<()> {
        let rows = owned_rows(&self.db, checkpoints)?;
        if rows.is_empty() {
            return Ok(());
        }
        // BEGIN IMMEDIATE takes the write lock up front, so the busy
        // timeout applies instead of a deadlock error on upgrade.
        self.run(move |c| c.immediate_transaction(|c| upsert(c, &rows)))
            .await
    }

    async fn list(&self, client: &str) -> Result<Vec<SavedCheckpoint>> {
        let key = client.to_owned();
        let rows = self
            .run(move |c| {
                t::table
                    .filter(t::client.eq(&key))
                    .order((t::stream, t::shard))
                    .select((t::stream, t::shard, t::seq_num, t::updated))
                    .load::<(String, String, String, i32)>(c)
            })
            .await?;
        crate::saved(&self.db, client, rows)
    }
    async fn save_subsequences(&self, subs: &[SubCheckpoint]) -> Result<()> {
        let rows = sub_rows(&self.db, subs)?;
        if rows.is_empty() {
            return Ok(());
        }
        self.run(move |c| {
            c.immediate_transaction(|c| {
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
                    .map(drop)
            })
        })
        .await
    }

    async fn subsequences(&self, client: &str) -> Result<Vec<SubCheckpoint>> {
        let key = client.to_owned();
        let rows = self
            .run(move |c| {
                sq::table
                    .filter(sq::client.eq(&key))
                    .order((sq::stream, sq::shard))
                    .select((sq::stream, sq::shard, sq::seq_num, sq::sub))
                    .load::<(String, String, String, i64)>(c)
            })
            .await?;
        subs_of(&self.db, client, rows)
    }
}

#[async_trait]
impl IntentStore for SqliteCheckpoints {
    async fn record_intent(&self, intent: &UploadIntent, replaces: Option<&str>) -> Result<()> {
        check_intent(&self.db, &intent.client, &intent.stream, &intent.key)?;
        let intent = intent.clone();
        let replaces = replaces.map(str::to_owned);
        self.run(move |c| {
            c.immediate_transaction::<_, diesel::result::Error, _>(|c| {
                record_in(c, &intent, replaces.as_deref())
            })
        })
        .await
    }

    async fn complete_intent(
        &self,
        intent: IntentId<'_>,
        checkpoints: &[Checkpoint],
    ) -> Result<()> {
        let rows = owned_rows(&self.db, checkpoints)?;
        let id = (
            intent.client.to_owned(),
            intent.stream.to_owned(),
            intent.key.to_owned(),
        );
        self.run(move |c| {
            c.immediate_transaction::<_, diesel::result::Error, _>(|c| {
                complete_in(c, &id.0, &id.1, &id.2, &rows)
            })
        })
        .await
    }

    async fn intents(&self, client: &str, stream: &str) -> Result<Vec<UploadIntent>> {
        let id = (client.to_owned(), stream.to_owned());
        let rows = self
            .run(move |c| {
                i::table
                    .filter(i::client.eq(&id.0))
                    .filter(i::stream.eq(&id.1))
                    .select((i::archive_key, i::metadata))
                    .load::<(String, String)>(c)
            })
            .await?;
        Ok(crate::intents_of(client, stream, rows))
    }

    async fn checkpoint_archives(
        &self,
        client: &str,
        stream: &str,
    ) -> Result<Vec<(String, String)>> {
        let id = (client.to_owned(), stream.to_owned());
        self.run(move |c| {
            a::table
                .filter(a::client.eq(&id.0))
                .filter(a::stream.eq(&id.1))
                .select((a::shard, a::archive_key))
                .order(a::shard)
                .load::<(String, String)>(c)
        })
        .await
    }
}

#[async_trait]
impl ReplayStore for SqliteCheckpoints {
    async fn replay(&self, consumer: &str, stream: &str) -> Result<Option<ReplayState>> {
        let id = (consumer.to_owned(), stream.to_owned());
        let row = self
            .run(move |c| {
                r::table
                    .filter(r::consumer.eq(&id.0))
                    .filter(r::stream.eq(&id.1))
                    .select(ReplayRow::as_select())
                    .first(c)
                    .optional()
            })
            .await?;
        row.map(|row| crate::replay_of(&self.db, row)).transpose()
    }

    async fn save_replay(&self, consumer: &str, stream: &str, state: &ReplayState) -> Result<()> {
        let row = crate::replay_row(&self.db, consumer, stream, state)?;
        self.run(move |c| {
            diesel::insert_into(r::table)
                .values(&row)
                .on_conflict((r::consumer, r::stream))
                .do_update()
                .set(&row)
                .execute(c)
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
        let rows = owned_rows(&self.db, checkpoints)?;
        let (key, index, live) = crate::position_columns(&self.db, position)?;
        let id = (consumer.to_owned(), stream.to_owned());
        let moved = self
            .run(move |c| {
                c.immediate_transaction::<_, diesel::result::Error, _>(|c| {
                    let moved = diesel::update(r::table)
                        .filter(r::consumer.eq(&id.0))
                        .filter(r::stream.eq(&id.1))
                        .set((
                            r::archive_key.eq(key),
                            r::record_index.eq(index),
                            r::live.eq(live),
                            r::updated.eq(triton_core::checkpoint::unix_now()),
                        ))
                        .execute(c)?;
                    if moved == 1 {
                        upsert(c, &rows)?;
                    }
                    Ok(moved)
                })
            })
            .await?;
        if moved == 1 {
            Ok(())
        } else {
            Err(crate::no_replay(&self.db, consumer, stream))
        }
    }
}

/// Records an intent (replacing `replaces`), in the caller's transaction.
pub(crate) fn record_in(
    c: &mut SqliteConnection,
    intent: &UploadIntent,
    replaces: Option<&str>,
) -> Result<(), diesel::result::Error> {
    if let Some(old) = replaces {
        diesel::delete(intent_of(&intent.client, &intent.stream, old)).execute(c)?;
    }
    intent_upsert_statement!(intent_row(intent)).execute(c)?;
    Ok(())
}

/// Moves checkpoints forward, records their archive and deletes the intent
/// `key`, in the caller's transaction.
pub(crate) fn complete_in(
    c: &mut SqliteConnection,
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
        .load(c)?;
    let forward = forward_only(rows, &stored);
    upsert(c, &forward)?;
    let archives: Vec<_> = forward.iter().map(|r| r.archive_row(key)).collect();
    if !archives.is_empty() {
        diesel::insert_into(a::table)
            .values(&archives)
            .on_conflict((a::client, a::stream, a::shard))
            .do_update()
            .set(a::archive_key.eq(excluded(a::archive_key)))
            .execute(c)?;
    }
    diesel::delete(intent_of(client, stream, key)).execute(c)?;
    Ok(())
}

/// Inserts or updates checkpoint rows, in the caller's transaction.
pub(crate) fn upsert(
    c: &mut SqliteConnection,
    rows: &[OwnedRow],
) -> Result<(), diesel::result::Error> {
    let updated = updated_now();
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let chunk: Vec<Row<'_>> = chunk.iter().map(|r| r.row(updated)).collect();
        upsert_statement!(&chunk).execute(c)?;
    }
    Ok(())
}

fn connect(path: &Path, db: &str, mode: Mode) -> Result<SqliteConnection> {
    let Some(path_str) = path.to_str() else {
        return Err(failed(db, "the path is not valid UTF-8"));
    };
    // Opening fails for reasons retrying will not fix (no such folder, no
    // permission, not a database).
    let mut conn = SqliteConnection::establish(path_str).map_err(|e| failed_by(db, e))?;
    // The busy timeout first: switching to WAL itself may wait for a lock.
    // Read-only users (`triton stats`) leave the journal mode alone: they
    // must not convert or write to the file.
    let mut setup = format!("PRAGMA busy_timeout = {BUSY_TIMEOUT_MS};");
    if mode == Mode::Create {
        setup.push_str(" PRAGMA journal_mode = WAL;");
    }
    conn.batch_execute(&setup).map_err(|e| query_error(db, e))?;
    Ok(conn)
}

fn migrate(c: &mut SqliteConnection) -> Result<(), diesel::result::Error> {
    c.batch_execute(MIGRATIONS_TABLE)?;
    for &(version, _, sql) in MIGRATIONS {
        c.immediate_transaction::<_, diesel::result::Error, _>(|c| {
            let applied: i64 = diesel::select(crate::applied_count(version)).get_result(c)?;
            if applied == 0 {
                c.batch_execute(sql)?;
                c.batch_execute(&format!(
                    "INSERT INTO triton_schema_migrations (version, applied) VALUES ({version}, {})",
                    triton_core::checkpoint::unix_now()
                ))?;
            }
            Ok(())
        })?;
    }
    Ok(())
}
