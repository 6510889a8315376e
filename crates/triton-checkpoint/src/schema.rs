//! The checkpoint table (docs/format.md §5), shared with go-triton, and the
//! migrations that create it and anything this project adds beside it.

diesel::table! {
    /// One row per (client, stream, shard): the last sequence number
    /// processed and when it was saved (unix seconds).
    triton_checkpoint (client, stream, shard) {
        client -> Text,
        stream -> Text,
        shard -> Text,
        seq_num -> Text,
        /// `INTEGER`: 32 bits in PostgreSQL, as go-triton created it.
        updated -> Integer,
    }
}

diesel::table! {
    /// Which archive holds each shard's checkpointed record, written with
    /// the checkpoint when an upload intent completes (sidecar chains).
    triton_checkpoint_archive (client, stream, shard) {
        client -> Text,
        stream -> Text,
        shard -> Text,
        archive_key -> Text,
    }
}

diesel::table! {
    /// Uploads `triton store` is making: recorded before the upload,
    /// deleted in the transaction that advances the checkpoints after it.
    triton_upload_intent (client, stream, archive_key) {
        client -> Text,
        stream -> Text,
        archive_key -> Text,
        /// What the upload holds (the metadata sidecar's JSON).
        metadata -> Text,
        /// When the intent was recorded (unix seconds).
        created -> BigInt,
        /// The leases it was recorded under (`triton_core::lease::Fence`),
        /// NULL when recorded without leases.
        fence -> Nullable<Text>,
    }
}

diesel::table! {
    /// Where each resumable replay is (`triton replay --consumer`).
    triton_replay (consumer, stream) {
        consumer -> Text,
        stream -> Text,
        /// Unix seconds shards without archived lineage are read from.
        from_time -> BigInt,
        /// The archives to read, `key size` per line.
        archives -> Text,
        /// With `record_index`, the last record handled; NULL before any.
        archive_key -> Nullable<Text>,
        record_index -> Nullable<BigInt>,
        /// 1 once every archive is handled.
        live -> Integer,
        /// The end (`--to`, ms since the epoch), NULL for none.
        to_ms -> Nullable<BigInt>,
        updated -> BigInt,
    }
}

diesel::table! {
    /// Where a consumer stopped inside an aggregated Kinesis record (the
    /// KPL's format), beside its checkpoint: every record before `seq_num`
    /// and the user records 0 through `sub` of it were handled. Stale once
    /// the shard's checkpoint reaches `seq_num`.
    triton_subsequence (client, stream, shard) {
        client -> Text,
        stream -> Text,
        shard -> Text,
        seq_num -> Text,
        sub -> BigInt,
        updated -> BigInt,
    }
}

/// A row of `triton_subsequence`.
#[derive(diesel::Insertable)]
#[diesel(table_name = triton_subsequence)]
#[diesel(treat_none_as_default_value = false)]
pub(crate) struct SubRow {
    pub client: String,
    pub stream: String,
    pub shard: String,
    pub seq_num: String,
    pub sub: i64,
    pub updated: i64,
}

/// A row of `triton_replay`.
#[derive(diesel::Insertable, diesel::Queryable, diesel::Selectable, diesel::AsChangeset)]
#[diesel(table_name = triton_replay)]
#[diesel(treat_none_as_null = true)]
pub(crate) struct ReplayRow {
    pub consumer: String,
    pub stream: String,
    pub from_time: i64,
    pub archives: String,
    pub archive_key: Option<String>,
    pub record_index: Option<i64>,
    pub live: i32,
    pub to_ms: Option<i64>,
    pub updated: i64,
}

/// A row to write.
#[derive(diesel::Insertable)]
#[diesel(table_name = triton_checkpoint)]
#[diesel(treat_none_as_default_value = false)]
pub(crate) struct Row<'a> {
    pub client: &'a str,
    pub stream: &'a str,
    pub shard: &'a str,
    pub seq_num: &'a str,
    pub updated: i32,
}

/// The lease tables; valid in both dialects.
macro_rules! lease_tables {
    () => {
        "CREATE TABLE IF NOT EXISTS triton_lease (
  client           VARCHAR(255) NOT NULL,
  stream           VARCHAR(255) NOT NULL,
  shard            VARCHAR(255) NOT NULL,
  owner            VARCHAR(255),
  epoch            BIGINT NOT NULL,
  renewed          BIGINT,
  expires          BIGINT,
  state            VARCHAR(16) NOT NULL,
  parents          VARCHAR(1024) NOT NULL,
  bytes_per_second DOUBLE PRECISION NOT NULL,
  handoff_to       VARCHAR(255),
  handoff_until    BIGINT,
  PRIMARY KEY (client, stream, shard));
CREATE TABLE IF NOT EXISTS triton_worker (
  client    VARCHAR(255) NOT NULL,
  stream    VARCHAR(255) NOT NULL,
  worker    VARCHAR(255) NOT NULL,
  heartbeat BIGINT NOT NULL,
  expires   BIGINT NOT NULL,
  PRIMARY KEY (client, stream, worker))"
    };
}

/// Schema changes, applied in order, each once, each in its own transaction,
/// recorded in `triton_schema_migrations`. `triton_checkpoint` is never
/// altered (go-triton creates and uses it); changes add tables beside it or
/// columns to this project's own tables, and `CREATE` statements tolerate
/// objects that already exist.
///
/// (version, PostgreSQL SQL, SQLite SQL)
pub(crate) const MIGRATIONS: &[(i32, &str, &str)] = &[
    (1, CHECKPOINT_TABLE, CHECKPOINT_TABLE),
    (2, INTENT_TABLE, INTENT_TABLE),
    (3, CHECKPOINT_ARCHIVE_TABLE, CHECKPOINT_ARCHIVE_TABLE),
    (4, LEASE_TABLES_PG, LEASE_TABLES_SQLITE),
    (5, REPLAY_TABLE, REPLAY_TABLE),
    (6, SUBSEQUENCE_TABLE, SUBSEQUENCE_TABLE),
];

/// Positions inside aggregated records; valid in both dialects.
const SUBSEQUENCE_TABLE: &str = "CREATE TABLE IF NOT EXISTS triton_subsequence (
  client   VARCHAR(255) NOT NULL,
  stream   VARCHAR(255) NOT NULL,
  shard    VARCHAR(255) NOT NULL,
  seq_num  VARCHAR(255) NOT NULL,
  sub      BIGINT NOT NULL,
  updated  BIGINT NOT NULL,
  PRIMARY KEY (client, stream, shard))";

/// Resumable replays; valid in both dialects.
const REPLAY_TABLE: &str = "CREATE TABLE IF NOT EXISTS triton_replay (
  consumer      VARCHAR(255) NOT NULL,
  stream        VARCHAR(255) NOT NULL,
  from_time     BIGINT NOT NULL,
  archives      TEXT NOT NULL,
  archive_key   VARCHAR(1024),
  record_index  BIGINT,
  live          INTEGER NOT NULL,
  to_ms         BIGINT,
  updated       BIGINT NOT NULL,
  PRIMARY KEY (consumer, stream))";

/// Shard leases and live workers (a fleet of stores), and the fence of
/// each upload intent. Times are milliseconds since the epoch on the
/// database's clock.
const LEASE_TABLES_PG: &str = concat!(
    lease_tables!(),
    ";\nALTER TABLE triton_upload_intent ADD COLUMN IF NOT EXISTS fence TEXT"
);
/// (SQLite has no `ADD COLUMN IF NOT EXISTS`; the migration runs once.)
const LEASE_TABLES_SQLITE: &str = concat!(
    lease_tables!(),
    ";\nALTER TABLE triton_upload_intent ADD COLUMN fence TEXT"
);

/// The archive of each checkpoint; valid in both dialects.
const CHECKPOINT_ARCHIVE_TABLE: &str = "CREATE TABLE IF NOT EXISTS triton_checkpoint_archive (
  client      VARCHAR(255) NOT NULL,
  stream      VARCHAR(255) NOT NULL,
  shard       VARCHAR(255) NOT NULL,
  archive_key VARCHAR(1024) NOT NULL,
  PRIMARY KEY (client, stream, shard))";

/// A row of `triton_checkpoint_archive`.
#[derive(diesel::Insertable)]
#[diesel(table_name = triton_checkpoint_archive)]
#[diesel(treat_none_as_default_value = false)]
pub(crate) struct ArchiveRow<'a> {
    pub client: &'a str,
    pub stream: &'a str,
    pub shard: &'a str,
    pub archive_key: &'a str,
}

/// Upload intents (exactly-once archiving); valid in both dialects.
const INTENT_TABLE: &str = "CREATE TABLE IF NOT EXISTS triton_upload_intent (
  client      VARCHAR(255) NOT NULL,
  stream      VARCHAR(255) NOT NULL,
  archive_key VARCHAR(1024) NOT NULL,
  metadata    TEXT NOT NULL,
  created     BIGINT NOT NULL,
  PRIMARY KEY (client, stream, archive_key))";

/// go-triton's own DDL, word for word: valid in both dialects.
const CHECKPOINT_TABLE: &str = "CREATE TABLE IF NOT EXISTS triton_checkpoint (
  client  VARCHAR(255) NOT NULL,
  stream  VARCHAR(255) NOT NULL,
  shard   VARCHAR(255) NOT NULL,
  seq_num VARCHAR(255) NOT NULL,
  updated INTEGER NOT NULL,
  PRIMARY KEY (client, stream, shard))";

/// Bookkeeping of applied migrations; same SQL in both dialects.
pub(crate) const MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS triton_schema_migrations (
  version INTEGER PRIMARY KEY,
  applied BIGINT NOT NULL)";

/// Longest client, stream, shard or sequence number the table holds.
pub(crate) const MAX_FIELD: usize = 255;
/// Longest archive key the intent table holds.
pub(crate) const MAX_KEY: usize = 1024;

/// One intent, for deletes; the same query on both backends.
pub(crate) type IntentOf<'a> = diesel::dsl::Filter<
    triton_upload_intent::table,
    diesel::dsl::And<
        diesel::dsl::And<
            diesel::dsl::Eq<triton_upload_intent::client, &'a str>,
            diesel::dsl::Eq<triton_upload_intent::stream, &'a str>,
        >,
        diesel::dsl::Eq<triton_upload_intent::archive_key, &'a str>,
    >,
>;

/// The statement that inserts checkpoint `rows` (`&[Row]`), or moves the
/// existing rows of their shards to their values. A macro, so that the
/// synchronous (SQLite) and asynchronous (PostgreSQL) connections execute
/// the same text without spelling out its type.
macro_rules! upsert_statement {
    ($rows:expr) => {{
        use diesel::upsert::excluded;
        use $crate::schema::triton_checkpoint as t;
        diesel::insert_into(t::table)
            .values($rows)
            .on_conflict((t::client, t::stream, t::shard))
            .do_update()
            .set((
                t::seq_num.eq(excluded(t::seq_num)),
                t::updated.eq(excluded(t::updated)),
            ))
    }};
}
pub(crate) use upsert_statement;

/// The statement that inserts an intent row (`IntentRow`), or replaces the
/// document and time of the intent of its key (see [`upsert_statement`]).
macro_rules! intent_upsert_statement {
    ($row:expr) => {{
        use diesel::upsert::excluded;
        use $crate::schema::triton_upload_intent as i;
        diesel::insert_into(i::table)
            .values($row)
            .on_conflict((i::client, i::stream, i::archive_key))
            .do_update()
            .set((
                i::metadata.eq(excluded(i::metadata)),
                i::created.eq(excluded(i::created)),
            ))
    }};
}
pub(crate) use intent_upsert_statement;

/// The intent `key` of `client` and `stream`.
pub(crate) fn intent_of<'a>(client: &'a str, stream: &'a str, key: &'a str) -> IntentOf<'a> {
    use diesel::prelude::*;
    use triton_upload_intent as i;
    i::table.filter(
        i::client
            .eq(client)
            .and(i::stream.eq(stream))
            .and(i::archive_key.eq(key)),
    )
}

/// An intent row to write.
#[derive(diesel::Insertable)]
#[diesel(table_name = triton_upload_intent)]
pub(crate) struct IntentRow<'a> {
    pub client: &'a str,
    pub stream: &'a str,
    pub archive_key: &'a str,
    pub metadata: &'a str,
    pub created: i64,
}
