/*!
Checkpoints for triton in PostgreSQL or SQLite, in the `triton_checkpoint`
table go-triton uses (docs/format.md §5), so existing go-triton databases work
unchanged.

```no_run
# async fn demo() -> Result<(), Box<dyn std::error::Error>> {
use triton_checkpoint::SqlCheckpoints;
use triton_core::checkpoint::CheckpointStore;

let store = SqlCheckpoints::open("sqlite://triton.db").await?;
let last = store.last("store", "user_activity_prod", "shardId-000000000000").await?;
# Ok(()) }
```

# Choices

- **One URL picks the backend**: `postgres://…` / `postgresql://…` (libpq
  parameters, `sslmode` and `sslrootcert` honoured) or `sqlite://path.db`
  (relative) / `sqlite:///path.db` (absolute). See [`DatabaseUrl`].
- **Nothing to install**: PostgreSQL is spoken by tokio-postgres (pure Rust)
  through diesel-async, with TLS by rustls; SQLite is compiled in
  (libsqlite3-sys `bundled`).
- **Never blocking the runtime**: PostgreSQL is asynchronous all the way;
  SQLite calls are blocking file I/O, so they run on tokio's blocking threads
  (`spawn_blocking`) with a small pool of synchronous connections. That is
  simpler and more robust than diesel-async's SQLite wrapper, which cannot
  insert several rows at once and panics when a query is cancelled on a
  current-thread runtime.
- **Upserts**: every save is `INSERT … ON CONFLICT (client, stream, shard) DO
  UPDATE`, never select-then-insert, so concurrent savers cannot race.
  [`CheckpointStore::save_many`](triton_core::checkpoint::CheckpointStore::save_many)
  is one transaction.
- **Schema changes** are numbered migrations recorded in
  `triton_schema_migrations`, applied once each in a transaction when a store
  is opened with [`SqlCheckpoints::open`]; they only ever add tables beside
  `triton_checkpoint`. (Diesel's own migration harness needs a blocking
  connection, which a library must not force on its caller's runtime.)
- **Secrets**: a password in the URL never appears in `Display`, `Debug`,
  errors or logs.
- `updated` is unix seconds in a 32-bit `INTEGER`, as go-triton created the
  column; rows where the Python tools wrote a float are read truncated.
*/
#![deny(missing_docs)]

mod lease;
mod pool;
mod postgres;
mod schema;
mod sqlite;
mod url;

use diesel::expression::SqlLiteral;
use diesel::sql_types::BigInt;
use triton_core::checkpoint::{
    archives_from_text, archives_to_text, unix_now, BoxError, Checkpoint, CheckpointError,
    IntentStore, ReplayEnd, ReplayPosition, ReplayState, ReplayStore, SavedCheckpoint,
    SubCheckpoint, UploadIntent,
};
use triton_core::source::SequenceNumber;

pub use self::postgres::PgCheckpoints;
pub use self::sqlite::SqliteCheckpoints;
pub use self::url::{redact, DatabaseUrl, PostgresUrl, SslMode, UrlError, DEFAULT_URL};

/// Why a checkpoint database could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The URL is malformed or names an unknown scheme.
    #[error(transparent)]
    Url(#[from] UrlError),
    /// The database cannot be reached or set up.
    #[error(transparent)]
    Database(#[from] CheckpointError),
}

/// Whether opening may create the database and its tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Create the file (SQLite) and apply pending migrations.
    Create,
    /// Use what exists; change nothing (for read-only tools like `stats`).
    Existing,
}

/// A checkpoint store in PostgreSQL or SQLite, chosen by URL.
#[derive(Debug)]
pub enum SqlCheckpoints {
    /// PostgreSQL.
    Postgres(PgCheckpoints),
    /// SQLite.
    Sqlite(SqliteCheckpoints),
}

impl SqlCheckpoints {
    /// Opens the database at `url`, creating the SQLite file and any missing
    /// table (readers and writers of checkpoints use this).
    pub async fn open(url: &str) -> Result<SqlCheckpoints, OpenError> {
        SqlCheckpoints::open_with(&DatabaseUrl::parse(url)?, Mode::Create).await
    }

    /// Opens an existing database without creating or changing anything: a
    /// missing SQLite file is an error, and so is a missing table at the
    /// first query. For tools that only look, like `triton stats`.
    pub async fn open_existing(url: &str) -> Result<SqlCheckpoints, OpenError> {
        SqlCheckpoints::open_with(&DatabaseUrl::parse(url)?, Mode::Existing).await
    }

    async fn open_with(url: &DatabaseUrl, mode: Mode) -> Result<SqlCheckpoints, OpenError> {
        Ok(match url {
            DatabaseUrl::Postgres(pg) => {
                SqlCheckpoints::Postgres(PgCheckpoints::open(pg, mode).await?)
            }
            DatabaseUrl::Sqlite(path) => {
                SqlCheckpoints::Sqlite(SqliteCheckpoints::open(path, mode).await?)
            }
        })
    }
}

impl SqlCheckpoints {
    /// The backend, as a store.
    fn backend(&self) -> &dyn IntentStore {
        match self {
            SqlCheckpoints::Postgres(s) => s,
            SqlCheckpoints::Sqlite(s) => s,
        }
    }
}

triton_core::forward_checkpoint_stores!(CheckpointStore [] SqlCheckpoints, |s| s.backend());
triton_core::forward_checkpoint_stores!(IntentStore [] SqlCheckpoints, |s| s.backend());
triton_core::forward_replay_store!([] SqlCheckpoints, |s| s.replay_backend());

impl SqlCheckpoints {
    fn replay_backend(&self) -> &dyn ReplayStore {
        match self {
            SqlCheckpoints::Postgres(s) => s,
            SqlCheckpoints::Sqlite(s) => s,
        }
    }
}

/// The columns of a replay position: (archive_key, record_index, live).
type PositionColumns = (Option<String>, Option<i64>, i32);

/// `position` as columns, refusing what they cannot hold.
fn position_columns(
    db: &str,
    position: &ReplayPosition,
) -> Result<PositionColumns, CheckpointError> {
    Ok(match position {
        ReplayPosition::Start => (None, None, 0),
        ReplayPosition::Live => (None, None, 1),
        ReplayPosition::Archive { key, index } => {
            check_length(
                db,
                "save a replay position",
                "archive key",
                key,
                schema::MAX_KEY,
            )?;
            let index = i64::try_from(*index)
                .map_err(|_| failed(db, &format!("record index {index} is too large")))?;
            (Some(key.clone()), Some(index), 0)
        }
    })
}

/// The row saving `state` as the replay of `consumer` on `stream`.
fn replay_row(
    db: &str,
    consumer: &str,
    stream: &str,
    state: &ReplayState,
) -> Result<schema::ReplayRow, CheckpointError> {
    for (field, value) in [("consumer", consumer), ("stream", stream)] {
        check_length(db, "save a replay", field, value, schema::MAX_FIELD)?;
    }
    if let Some((key, _)) = state
        .archives
        .iter()
        .find(|(k, _)| k.is_empty() || k.contains([' ', '\n', '\r']))
    {
        return Err(failed(
            db,
            &format!("cannot save a replay of an archive key with a space or line break: {key:?}"),
        ));
    }
    let (archive_key, record_index, live) = position_columns(db, &state.position)?;
    Ok(schema::ReplayRow {
        consumer: consumer.to_owned(),
        stream: stream.to_owned(),
        from_time: i64::try_from(state.from).unwrap_or(i64::MAX),
        archives: archives_to_text(&state.archives),
        archive_key,
        record_index,
        live,
        to_ms: state.end.map(|e| e.to_ms),
        updated: unix_now(),
    })
}

/// No replay of `consumer` on `stream` is saved.
fn no_replay(db: &str, consumer: &str, stream: &str) -> CheckpointError {
    failed(db, &format!("no replay of {consumer} on {stream} is saved"))
}

/// A stored row as a replay.
fn replay_of(db: &str, row: schema::ReplayRow) -> Result<ReplayState, CheckpointError> {
    let bad = |what: &str| CheckpointError::Failed {
        db: db.to_owned(),
        message: format!(
            "the replay of {} on {} in triton_replay has {what}",
            row.consumer, row.stream
        ),
        source: None,
    };
    let archives =
        archives_from_text(&row.archives).ok_or_else(|| bad("an unreadable archive list"))?;
    let position = match (row.live, row.archive_key.clone(), row.record_index) {
        (1, _, _) => ReplayPosition::Live,
        (0, None, None) => ReplayPosition::Start,
        (0, Some(key), Some(index)) => ReplayPosition::Archive {
            key,
            index: u64::try_from(index).map_err(|_| bad("a negative record index"))?,
        },
        _ => return Err(bad("an unreadable position")),
    };
    let end = row.to_ms.map(|to_ms| ReplayEnd { to_ms });
    Ok(ReplayState {
        from: u64::try_from(row.from_time).map_err(|_| bad("a negative from_time"))?,
        archives,
        end,
        position,
    })
}

/// Refuses intents the table cannot hold.
pub(crate) fn check_intent(
    db: &str,
    client: &str,
    stream: &str,
    key: &str,
) -> Result<(), CheckpointError> {
    for (field, value, max) in [
        ("client", client, schema::MAX_FIELD),
        ("stream", stream, schema::MAX_FIELD),
        ("key", key, schema::MAX_KEY),
    ] {
        check_length(db, "record an upload intent", field, value, max)?;
    }
    Ok(())
}

/// Refuses a `field` the table cannot hold (empty, or over `max`
/// characters) for `action` ("save a checkpoint").
fn check_length(
    db: &str,
    action: &str,
    field: &str,
    value: &str,
    max: usize,
) -> Result<(), CheckpointError> {
    if value.is_empty() || value.chars().count() > max {
        return Err(failed(
            db,
            &format!(
                "cannot {action} whose {field} is empty or longer than {max} characters: \
                 {value:?}"
            ),
        ));
    }
    Ok(())
}

/// Sub-sequence checkpoints as rows, refused (all) if a name does not fit.
fn sub_rows(db: &str, subs: &[SubCheckpoint]) -> Result<Vec<schema::SubRow>, CheckpointError> {
    let now = unix_now();
    subs.iter()
        .map(|s| {
            for (field, value) in [
                ("client", &s.client),
                ("stream", &s.stream),
                ("shard", &s.shard),
            ] {
                check_length(db, "save a sub-sequence checkpoint", field, value, 255)?;
            }
            Ok(schema::SubRow {
                client: s.client.clone(),
                stream: s.stream.clone(),
                shard: s.shard.clone(),
                seq_num: s.sequence.to_string(),
                sub: i64::from(s.sub),
                updated: now,
            })
        })
        .collect()
}

/// Rows of `triton_subsequence` (stream, shard, seq_num, sub) as
/// sub-sequence checkpoints of `client`; a row that holds no sequence
/// number or index is refused.
fn subs_of(
    db: &str,
    client: &str,
    rows: Vec<(String, String, String, i64)>,
) -> Result<Vec<SubCheckpoint>, CheckpointError> {
    rows.into_iter()
        .map(|(stream, shard, seq, sub)| {
            let value = format!("{seq}/{sub}");
            let bad = || bad_row(db, client, &stream, &shard, value.clone());
            Ok(SubCheckpoint {
                sequence: SequenceNumber::new(seq.as_str()).map_err(|_| bad())?,
                sub: u32::try_from(sub).map_err(|_| bad())?,
                client: client.to_owned(),
                stream,
                shard,
            })
        })
        .collect()
}

/// An intent as a row.
fn intent_row(intent: &UploadIntent) -> schema::IntentRow<'_> {
    schema::IntentRow {
        client: &intent.client,
        stream: &intent.stream,
        archive_key: &intent.key,
        metadata: &intent.document,
        created: unix_now(),
    }
}

/// Loaded (key, document) rows as intents, by key in byte order.
fn intents_of(client: &str, stream: &str, rows: Vec<(String, String)>) -> Vec<UploadIntent> {
    let mut intents: Vec<UploadIntent> = rows
        .into_iter()
        .map(|(key, document)| UploadIntent {
            client: client.to_owned(),
            stream: stream.to_owned(),
            key,
            document,
        })
        .collect();
    intents.sort_by(|a, b| a.key.cmp(&b.key));
    intents
}

fn failed(db: &str, message: &str) -> CheckpointError {
    CheckpointError::Failed {
        db: db.to_owned(),
        message: message.to_owned(),
        source: None,
    }
}

/// [`CheckpointError::Failed`] caused by `e` (kept as the source, not
/// repeated in the message).
pub(crate) fn failed_by(db: &str, e: impl Into<BoxError>) -> CheckpointError {
    CheckpointError::Failed {
        db: db.to_owned(),
        message: String::new(),
        source: Some(e.into()),
    }
}

/// [`CheckpointError::Unavailable`] caused by `e`.
pub(crate) fn unavailable_by(db: &str, e: impl Into<BoxError>) -> CheckpointError {
    CheckpointError::Unavailable {
        db: db.to_owned(),
        message: String::new(),
        source: Some(e.into()),
    }
}

fn bad_row(db: &str, client: &str, stream: &str, shard: &str, value: String) -> CheckpointError {
    CheckpointError::BadRow {
        db: db.to_owned(),
        client: client.to_owned(),
        stream: stream.to_owned(),
        shard: shard.to_owned(),
        value,
    }
}

/// Sorts a Diesel error into "try again later" and "will not work".
pub(crate) fn query_error(db: &str, e: diesel::result::Error) -> CheckpointError {
    use diesel::result::{DatabaseErrorKind as K, Error};
    let message = one_line(&e.to_string());
    let transient = match &e {
        Error::DatabaseError(
            K::ClosedConnection
            | K::UnableToSendCommand
            | K::SerializationFailure
            | K::ReadOnlyTransaction,
            _,
        ) => true,
        // SQLite's busy timeout, PostgreSQL's deadlock and lock timeouts,
        // a connection killed or a server restarting.
        Error::DatabaseError(_, _) => {
            let m = message.to_ascii_lowercase();
            [
                "database is locked",
                "deadlock detected",
                "could not obtain lock",
                "lock timeout",
                // The connection was killed (pg_terminate_backend, an
                // idle-connection reaper) or the server is restarting:
                // a new connection will do.
                "terminating connection",
                "server closed the connection",
                "connection closed",
                "the database system is",
            ]
            .iter()
            .any(|t| m.contains(t))
        }
        _ => false,
    };
    if transient {
        unavailable_by(db, e)
    } else {
        failed_by(db, e)
    }
}

/// Database messages may carry DETAIL/HINT lines; errors here are one line.
pub(crate) fn one_line(message: &str) -> String {
    message.trim().replace('\n', "; ")
}

/// `updated` as stored: unix seconds in 32 bits (until 2038).
fn updated_now() -> i32 {
    i32::try_from(unix_now()).unwrap_or(i32::MAX)
}

/// An owned checkpoint row, checked against the column sizes.
#[derive(Clone)]
pub(crate) struct OwnedRow {
    client: String,
    stream: String,
    pub(crate) shard: String,
    seq_num: String,
}

impl OwnedRow {
    /// The row recording that `key` holds this checkpoint.
    fn archive_row<'a>(&'a self, key: &'a str) -> schema::ArchiveRow<'a> {
        schema::ArchiveRow {
            client: &self.client,
            stream: &self.stream,
            shard: &self.shard,
            archive_key: key,
        }
    }

    fn row(&self, updated: i32) -> schema::Row<'_> {
        schema::Row {
            client: &self.client,
            stream: &self.stream,
            shard: &self.shard,
            seq_num: &self.seq_num,
            updated,
        }
    }
}

/// Checks and de-duplicates checkpoints (the last one per shard wins, as if
/// saved in order; PostgreSQL refuses to upsert one row twice in a
/// statement).
pub(crate) fn owned_rows(
    db: &str,
    checkpoints: &[Checkpoint],
) -> Result<Vec<OwnedRow>, CheckpointError> {
    let mut rows: Vec<OwnedRow> = Vec::with_capacity(checkpoints.len());
    let mut seen = std::collections::HashMap::new();
    for c in checkpoints {
        for (field, value) in [
            ("client", &c.client),
            ("stream", &c.stream),
            ("shard", &c.shard),
        ] {
            check_length(db, "save a checkpoint", field, value, schema::MAX_FIELD)?;
        }
        let row = OwnedRow {
            client: c.client.clone(),
            stream: c.stream.clone(),
            shard: c.shard.clone(),
            seq_num: c.sequence.as_str().to_owned(),
        };
        let key = (c.client.as_str(), c.stream.as_str(), c.shard.as_str());
        match seen.get(&key) {
            Some(&i) => rows[i] = row,
            None => {
                seen.insert(key, rows.len());
                rows.push(row);
            }
        }
    }
    // One lock order for every writer: overlapping batches saved in
    // different orders would otherwise deadlock in PostgreSQL.
    rows.sort_by(|a, b| (&a.client, &a.stream, &a.shard).cmp(&(&b.client, &b.stream, &b.shard)));
    Ok(rows)
}

/// The rows that move their shard's checkpoint forward, given the stored
/// (shard, seq_num) of the same client and stream: completing an upload
/// intent never moves a checkpoint back (another writer, e.g. an
/// at-least-once run or go-triton, may have moved it past the intent).
fn forward_only(rows: &[OwnedRow], stored: &[(String, String)]) -> Vec<OwnedRow> {
    rows.iter()
        .filter(|row| {
            let Some((_, seq)) = stored.iter().find(|(shard, _)| *shard == row.shard) else {
                return true;
            };
            match (
                SequenceNumber::new(seq.as_str()),
                SequenceNumber::new(row.seq_num.as_str()),
            ) {
                (Ok(old), Ok(new)) => new > old,
                // An unreadable stored value is replaced.
                _ => true,
            }
        })
        .cloned()
        .collect()
}

/// Rows of `list` as checkpoints, refusing rows that hold no sequence number.
fn saved(
    db: &str,
    client: &str,
    rows: Vec<(String, String, String, i32)>,
) -> Result<Vec<SavedCheckpoint>, CheckpointError> {
    let mut saved = rows
        .into_iter()
        .map(|(stream, shard, seq, updated)| {
            let sequence = SequenceNumber::new(seq.clone())
                .map_err(|_| bad_row(db, client, &stream, &shard, seq))?;
            Ok(SavedCheckpoint {
                checkpoint: Checkpoint {
                    client: client.to_owned(),
                    stream,
                    shard,
                    sequence,
                },
                updated: i64::from(updated),
            })
        })
        .collect::<Result<Vec<_>, CheckpointError>>()?;
    // Byte order on every backend (PostgreSQL's ORDER BY follows the
    // database's collation).
    saved.sort_by(|a, b| {
        let (a, b) = (&a.checkpoint, &b.checkpoint);
        (&a.stream, &a.shard).cmp(&(&b.stream, &b.shard))
    });
    Ok(saved)
}

/// `1` if migration `version` was applied, else `0`.
fn applied_count(version: i32) -> SqlLiteral<BigInt> {
    diesel::dsl::sql::<BigInt>(&format!(
        "(SELECT COUNT(*) FROM triton_schema_migrations WHERE version = {version})"
    ))
}
