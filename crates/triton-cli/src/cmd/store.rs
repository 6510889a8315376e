//! `triton store`: archive a Kinesis stream to S3 (or a directory).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use triton_checkpoint::{redact, SqlCheckpoints, DEFAULT_URL};
use triton_core::checkpoint::CheckpointError;
use triton_core::key::{validate_client_name, DEFAULT_CLIENT_NAME};
use triton_core::retry::Backoff;
use triton_kinesis::{list_shards, KinesisError, KinesisShards, ReaderOptions, StartPosition};
use triton_s3::archiver::fleet::{Worker, WorkerOptions};
use triton_s3::archiver::ArchiverOptions;
use triton_s3::{Location, S3Options, Sse};

use super::common::{multi_thread_runtime, parse_duration, StreamArgs};
use super::{metrics, signals};
use crate::error::{CliError, CliResult};

/// Archive a stream to S3 as .tri files, checkpointing only what is stored.
///
/// Every shard is read into one archive, spooled on local disk, sealed at
/// each UTC hour boundary, after --max-file-age or at --max-file-size, and
/// uploaded as <YYYYMMDD>/<stream>-<client>-<unix seconds>.tri (the time the
/// archive was opened, or a later second if that key is taken), with a <key>.metadata sidecar (per-shard sequence
/// ranges, counts, SHA-256).
///
/// Exactly once: before each upload, an upload intent (the key and each
/// shard's range) is recorded in the checkpoint database; after it, the
/// shards' checkpoints move to the archive's last records and the intent
/// is deleted, in one transaction. On start, unfinished intents are
/// finished first: an archive found in the bucket is only checkpointed, a
/// missing one is rebuilt from exactly its ranges in Kinesis and uploaded
/// under the same key. A crash at any moment neither loses nor duplicates
/// records (records past the stream's retention are reported).
///
/// Records that are not one MessagePack map are kept in a dead-letter
/// archive under _invalid/<same key> ({shard, sequence_number, arrival,
/// reason, data}). S3, Kinesis or the database being unavailable is waited
/// out with retries, the data staying spooled.
///
/// Many stores may run per client name and stream (a fleet): each reads
/// the shards it leases in the checkpoint database, and the leases spread
/// evenly over the live workers. A lease not renewed for --lease-duration
/// (a crashed or paused worker) is taken by another worker, which first
/// finishes the uploads the old owner left; every upload intent and commit
/// checks in its transaction that its worker still holds the leases, so a
/// worker that lost one commits nothing more. See docs/store.md, "Running
/// a fleet".
///
/// SIGINT or SIGTERM: stop reading, upload and checkpoint what was read,
/// exit 0 (within --shutdown-timeout); a second signal exits at once, which
/// is safe.
#[derive(Args)]
pub struct StoreArgs {
    #[command(flatten)]
    stream: StreamArgs,

    /// Where archives go: an S3 bucket (NAME or s3://NAME) or a local
    /// directory (file:///PATH, or a path containing '/').
    #[arg(long, env = "TRITON_BUCKET", value_name = "BUCKET")]
    bucket: String,

    /// This store's name: in archive names and checkpoints.
    #[arg(long, env = "TRITON_CLIENT", default_value = DEFAULT_CLIENT_NAME, value_name = "NAME")]
    client_name: String,

    /// Checkpoint database: postgres://… or sqlite://path.db.
    #[arg(long, env = "TRITON_DB", hide_env_values = true, default_value = DEFAULT_URL, value_name = "URL")]
    checkpoint_db: String,

    /// Where shards without a checkpoint start.
    #[arg(long, value_enum, default_value_t = From::Latest)]
    from: From,

    /// Ignore the checkpoints and start every shard at LATEST (new
    /// checkpoints are still saved).
    #[arg(long)]
    skip_to_latest: bool,

    /// Seal an archive at the latest this long after it was opened (at
    /// least 1s: archive names hold whole seconds).
    #[arg(long, value_parser = parse_age, default_value = "1h", value_name = "DURATION")]
    max_file_age: Duration,

    /// Seal an archive when it reaches this size (e.g. 512MiB, 1GiB).
    #[arg(long, value_parser = parse_size, default_value = "1GiB", value_name = "SIZE")]
    max_file_size: u64,

    /// Directory for archives being written and waiting for upload.
    #[arg(long, value_name = "DIR")]
    spool_dir: Option<PathBuf>,

    /// Sealed archives that may wait for upload before reading pauses.
    #[arg(long, default_value_t = 2, value_name = "N")]
    max_pending_uploads: usize,

    /// Longest time a graceful stop may take before the process exits
    /// anyway (safe: nothing unuploaded was checkpointed).
    #[arg(long, value_parser = parse_duration, default_value = "60s", value_name = "DURATION")]
    shutdown_timeout: Duration,

    /// An S3 request that makes no progress for this long (no byte of its
    /// body sent, no answer) is given up and retried, with a warning that
    /// names the key.
    #[arg(long, value_parser = parse_duration, default_value = "30s", value_name = "DURATION")]
    s3_stall_timeout: Duration,

    /// Serve Prometheus metrics on this address (e.g. 127.0.0.1:9464).
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<SocketAddr>,

    /// Server-side encryption of uploaded archives.
    #[arg(long, value_enum, value_name = "KIND")]
    sse: Option<SseKind>,

    /// KMS key id or ARN for --sse aws:kms (default: the account's S3 key).
    #[arg(long, value_name = "KEY")]
    sse_kms_key_id: Option<String>,

    /// This worker's id in the lease table (default: host:pid-random). A
    /// worker restarted with the same id takes its leases back at once,
    /// instead of waiting for them to expire.
    #[arg(long, env = "TRITON_WORKER_ID", value_name = "ID")]
    worker_id: Option<String>,

    /// How long a lease lasts without renewal: after a crash, the worker's
    /// shards are read again by another worker this long after. Renewed
    /// every third of it.
    #[arg(long, value_parser = parse_lease, default_value = "20s", value_name = "DURATION")]
    lease_duration: Duration,

    /// Archive at least once, as go-triton does: no upload intents, so a
    /// crash between an upload and its checkpoint archives those records
    /// again. (Intents a previous exactly-once run left are still finished
    /// on start.)
    #[arg(long)]
    at_least_once: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum From {
    /// New records only.
    Latest,
    /// The oldest record the stream keeps.
    TrimHorizon,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum SseKind {
    #[value(name = "AES256")]
    Aes256,
    #[value(name = "aws:kms")]
    Kms,
}

/// By hand, so that a logged `StoreArgs` never shows a database password.
impl std::fmt::Debug for StoreArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreArgs")
            .field("stream", &self.stream)
            .field("bucket", &self.bucket)
            .field("client_name", &self.client_name)
            .field("checkpoint_db", &redact(&self.checkpoint_db))
            .field("max_file_age", &self.max_file_age)
            .field("max_file_size", &self.max_file_size)
            .finish_non_exhaustive()
    }
}

fn parse_lease(s: &str) -> Result<Duration, String> {
    let lease = parse_duration(s)?;
    if lease < Duration::from_secs(1) {
        return Err(format!("{s:?}: at least 1s"));
    }
    Ok(lease)
}

/// `host:pid-xxxxxx`: readable in `triton leases`, unique across restarts.
fn default_worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let suffix = (u64::from(nanos) ^ (u64::from(std::process::id()) << 20)) % 0x100_0000;
    format!("{host}:{}-{suffix:06x}", std::process::id())
}

fn check_worker_id(id: &str) -> Result<(), CliError> {
    if id.is_empty()
        || id.chars().count() > 255
        || id.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(CliError::new(format!(
            "--worker-id {id:?}: 1 to 255 characters, no spaces or control characters"
        )));
    }
    Ok(())
}

fn parse_age(s: &str) -> Result<Duration, String> {
    let age = parse_duration(s)?;
    if age < Duration::from_secs(1) {
        return Err(format!(
            "{s:?}: at least 1s (archive names hold whole seconds)"
        ));
    }
    Ok(age)
}

/// Parses `1024`, `64KiB`, `512MiB`, `1GiB` (also KB, MB, GB as powers of
/// 1000).
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 512MiB, 1GiB)"))?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        u => return Err(format!("{s:?}: unknown unit {u:?} (use B, KiB, MiB, GiB)")),
    };
    n.checked_mul(scale)
        .filter(|&b| b > 0)
        .ok_or_else(|| format!("{s:?}: out of range"))
}

/// Runs `triton store`.
pub fn run(args: StoreArgs) -> CliResult {
    let config = args.stream.load()?;
    validate_client_name(&args.client_name)
        .map_err(|e| CliError::new(format!("--client-name: {e}")))?;
    if let Some(id) = &args.worker_id {
        check_worker_id(id)?;
    }
    let location = Location::parse(&args.bucket).map_err(|e| CliError::new(e.to_string()))?;
    let sse = match (args.sse, args.sse_kms_key_id.clone()) {
        (None, None) => None,
        (None, Some(_)) => return Err(CliError::new("--sse-kms-key-id needs --sse aws:kms")),
        (Some(SseKind::Aes256), None) => Some(Sse::Aes256),
        (Some(SseKind::Aes256), Some(_)) => {
            return Err(CliError::new(
                "--sse-kms-key-id goes with --sse aws:kms, not AES256",
            ))
        }
        (Some(SseKind::Kms), key_id) => Some(Sse::Kms { key_id }),
    };
    let mut options = ArchiverOptions::new(config.name.clone(), args.client_name.clone());
    // For the crash tests only: a window in which to kill the store between
    // an upload and its checkpoint commit.
    if let Ok(pause) = std::env::var("TRITON_TEST_PAUSE_BEFORE_COMMIT") {
        options.pause_before_commit = parse_duration(&pause)
            .map_err(|e| CliError::new(format!("TRITON_TEST_PAUSE_BEFORE_COMMIT: {e}")))?;
    }
    options.max_file_age = args.max_file_age;
    options.max_file_size = args.max_file_size;
    options.max_pending_uploads = args.max_pending_uploads.max(1);
    if let Some(dir) = &args.spool_dir {
        options.spool_dir = dir.clone();
    }
    std::fs::create_dir_all(&options.spool_dir).map_err(|e| {
        CliError::io(
            format!("spool directory {}", options.spool_dir.display()),
            e,
        )
    })?;
    let runtime = multi_thread_runtime()?;
    runtime.block_on(async {
        // Signals are watched from the start, whatever the store is doing
        // (opening, waiting for S3 or the database): the first asks for a
        // graceful stop, a second or --shutdown-timeout ends the process.
        let stop = signals::watch_process(args.shutdown_timeout)?;
        let opened = async {
            let checkpoints = retry_open(
                "the checkpoint database",
                || SqlCheckpoints::open(&args.checkpoint_db),
                |e| {
                    matches!(
                        e,
                        triton_checkpoint::OpenError::Database(CheckpointError::Unavailable { .. })
                    )
                },
            )
            .await?;
            let start = match (args.skip_to_latest, args.from) {
                (true, _) | (false, From::Latest) => StartPosition::Latest,
                (false, From::TrimHorizon) => StartPosition::TrimHorizon,
            };
            let checkpoints: Arc<SqlCheckpoints> = Arc::new(checkpoints);
            let kinesis = triton_kinesis::client(&config.region).await;
            let store = location
                .open(
                    &config.region,
                    S3Options {
                        sse,
                        stall_timeout: args.s3_stall_timeout,
                        ..S3Options::default()
                    },
                )
                .await;
            // A wrong stream name or region is an error here, not every
            // interrupted upload's records taken for expired.
            retry_open(
                "the Kinesis stream",
                || list_shards(&kinesis, &config.name),
                KinesisError::is_retryable,
            )
            .await?;
            let reader_options = ReaderOptions {
                start,
                // The archiver acknowledges a shard's records only once
                // their archive is sealed and uploaded: waiting up to the
                // archive age is expected, not a consumer that forgot.
                ack_warning: args.max_file_age + Duration::from_secs(300),
                ..ReaderOptions::default()
            };
            let shards = KinesisShards::new(
                kinesis,
                config.name.clone(),
                args.client_name.clone(),
                !args.skip_to_latest,
                reader_options,
            );
            Ok::<_, CliError>((shards, store, checkpoints))
        };
        let mut stopping = stop.clone();
        let (shards, store, checkpoints) = tokio::select! {
            opened = opened => opened?,
            _ = stopping.changed() => {
                tracing::info!("stopped before the store started");
                return Ok(());
            }
        };
        let worker_id = args.worker_id.clone().unwrap_or_else(default_worker_id);
        tracing::info!(stream = config.name, bucket = %location, client = args.client_name, worker = worker_id, lease_duration_ms = args.lease_duration.as_millis() as u64, exactly_once = !args.at_least_once, "store started");
        let worker = Worker::new(
            shards,
            store,
            checkpoints,
            options,
            WorkerOptions::new(worker_id, args.lease_duration),
            !args.at_least_once,
        );
        if let Some(addr) = args.metrics_addr {
            metrics::serve(addr, worker.archiver_stats(), Some(worker.stats()), &config.name).await?;
        }
        let shutdown = async move {
            let _ = stopping.changed().await;
            tracing::info!("stopping: sealing, uploading and checkpointing what was read, then releasing the leases");
        };
        let summary = worker
            .run(shutdown)
            .await
            .map_err(|e| CliError::new(e.to_string()))?;
        tracing::info!(
            archives = summary.archives,
            records = summary.records,
            invalid = summary.invalid,
            "store stopped"
        );
        Ok(())
    })
}

/// Opens something the store cannot start without, retrying while it is
/// unavailable (a signal still stops the process meanwhile); errors that
/// retrying cannot fix (a bad URL, a missing stream) end the command.
async fn retry_open<T, E, F, Fut>(
    what: &str,
    mut open: F,
    retryable: impl Fn(&E) -> bool,
) -> Result<T, CliError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
    loop {
        match open().await {
            Ok(t) => return Ok(t),
            Err(e) if !retryable(&e) => return Err(CliError::new(e.to_string())),
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "waiting for {what}");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("64KiB"), Ok(65_536));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("5MB"), Ok(5_000_000));
        assert!(parse_size("0").is_err());
        assert!(parse_size("1TiB").is_err());
        assert!(parse_size("big").is_err());
    }
}
