//! `triton store`: archive a Kinesis stream to S3 (or a directory).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use triton_core::error::Report;

use clap::builder::FalseyValueParser;
use clap::{Args, ValueEnum};
use triton_checkpoint::{redact, SqlCheckpoints, DEFAULT_URL};
use triton_core::checkpoint::CheckpointError;
use triton_core::health::{health, Phase};
use triton_core::key::{validate_client_name, DEFAULT_CLIENT_NAME};
use triton_core::retry::{policies, retry};
use triton_kinesis::{KinesisShards, ReaderOptions, StartPosition};
use triton_s3::archiver::fleet::{CheckError, CheckKind, Worker, WorkerOptions};
use triton_s3::archiver::ArchiverOptions;
use triton_s3::{Location, S3Options, Sse};

use super::common::{multi_thread_runtime, parse_duration, Stream, StreamArgs};
use super::parse::{parse_from, parse_size, From};
use super::{metrics, signals, systemd};
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

    /// Where archives go: an S3 bucket (NAME, s3://NAME or s3://NAME/PREFIX,
    /// the archive layout below the prefix) or a local directory
    /// (file:///PATH, or a path containing '/').
    #[arg(long, env = "TRITON_BUCKET", value_name = "BUCKET")]
    bucket: String,

    /// The bucket's region, when it is not the stream's.
    #[arg(long, env = "TRITON_BUCKET_REGION", value_name = "REGION")]
    bucket_region: Option<String>,

    /// This store's name: in archive names and checkpoints.
    #[arg(long, env = "TRITON_CLIENT", default_value = DEFAULT_CLIENT_NAME, value_name = "NAME")]
    client_name: String,

    /// Checkpoint database: postgres://… or sqlite://path.db (created, with
    /// its tables, if missing).
    #[arg(long, env = "TRITON_DB", hide_env_values = true, default_value = DEFAULT_URL, value_name = "URL")]
    checkpoint_db: String,

    /// Where shards without a checkpoint start: latest (LATEST),
    /// trim-horizon (TRIM_HORIZON), or a time (2026-12-01T22:00:00+01:00,
    /// 2026-12-01, 15m for 15 minutes ago, Unix seconds; AT_TIMESTAMP).
    #[arg(long, env = "TRITON_FROM", value_parser = parse_from, default_value = "latest", value_name = "WHERE")]
    from: From,

    /// Ignore the checkpoints and start every shard at LATEST (new
    /// checkpoints are still saved).
    #[arg(long, env = "TRITON_SKIP_TO_LATEST", value_parser = FalseyValueParser::new())]
    skip_to_latest: bool,

    /// Seal an archive at the latest this long after it was opened (e.g.
    /// 1h, 30m, 1h30m; at least 1s: archive names hold whole seconds).
    #[arg(long, env = "TRITON_MAX_FILE_AGE", value_parser = parse_age, default_value = "1h", value_name = "DURATION")]
    max_file_age: Duration,

    /// Seal an archive when it reaches this size (e.g. 512M, 1G = 1GiB,
    /// 1GB = 10^9 bytes).
    #[arg(long, env = "TRITON_MAX_FILE_SIZE", value_parser = parse_size, default_value = "1GiB", value_name = "SIZE")]
    max_file_size: u64,

    /// Directory for archives being written and waiting for upload.
    #[arg(long, env = "TRITON_SPOOL_DIR", default_value_os_t = default_spool_dir(), value_name = "DIR")]
    spool_dir: PathBuf,

    /// Sealed archives that may wait for upload before reading pauses.
    #[arg(
        long,
        env = "TRITON_MAX_PENDING_UPLOADS",
        default_value_t = 2,
        value_name = "N"
    )]
    max_pending_uploads: usize,

    /// Longest time a graceful stop may take before the process exits
    /// anyway (safe: nothing unuploaded was checkpointed).
    #[arg(long, env = "TRITON_SHUTDOWN_TIMEOUT", value_parser = parse_duration, default_value = "60s", value_name = "DURATION")]
    shutdown_timeout: Duration,

    /// An S3 request that makes no progress for this long (no byte of its
    /// body sent, no answer) is given up and retried, with a warning that
    /// names the key.
    #[arg(long, env = "TRITON_S3_STALL_TIMEOUT", value_parser = parse_duration, default_value = "30s", value_name = "DURATION")]
    s3_stall_timeout: Duration,

    /// Serve Prometheus metrics at /metrics, liveness at /healthz and
    /// readiness at /readyz on this address (127.0.0.1:9464,
    /// localhost:9464, or :9464 for every interface).
    #[arg(long, env = "TRITON_METRICS_ADDR", value_parser = metrics::parse_addr, value_name = "ADDR")]
    metrics_addr: Option<SocketAddr>,

    /// /readyz answers 503 while an upload or a checkpoint commit has been
    /// retrying this long.
    #[arg(long, env = "TRITON_UNREADY_AFTER", value_parser = parse_duration, default_value = "60s", value_name = "DURATION")]
    unready_after: Duration,

    /// Server-side encryption of uploaded archives.
    #[arg(long, env = "TRITON_SSE", value_enum, value_name = "KIND")]
    sse: Option<SseKind>,

    /// KMS key id or ARN for --sse aws:kms (default: the account's S3 key).
    #[arg(long, env = "TRITON_SSE_KMS_KEY_ID", value_name = "KEY")]
    sse_kms_key_id: Option<String>,

    /// S3 storage class of uploads (STANDARD, STANDARD_IA,
    /// INTELLIGENT_TIERING, GLACIER_IR, ...) [default: the bucket's].
    #[arg(long, env = "TRITON_STORAGE_CLASS", value_name = "CLASS")]
    storage_class: Option<String>,

    /// A tag of every uploaded object, KEY=VALUE (repeat, or separate with
    /// commas; at most 10).
    #[arg(
        long = "tag",
        env = "TRITON_TAGS",
        value_delimiter = ',',
        value_name = "KEY=VALUE"
    )]
    tags: Vec<String>,

    /// This worker's id in the lease table (default: host:pid-random). A
    /// worker restarted with the same id takes its leases back at once,
    /// instead of waiting for them to expire.
    #[arg(long, env = "TRITON_WORKER_ID", value_name = "ID")]
    worker_id: Option<String>,

    /// How long a lease lasts without renewal: after a crash, the worker's
    /// shards are read again by another worker this long after. Renewed
    /// every third of it.
    #[arg(long, env = "TRITON_LEASE_DURATION", value_parser = parse_lease, default_value = "20s", value_name = "DURATION")]
    lease_duration: Duration,

    /// Archive at least once, as go-triton does: no upload intents, so a
    /// crash between an upload and its checkpoint archives those records
    /// again. (Intents a previous exactly-once run left are still finished
    /// on start.)
    #[arg(long, env = "TRITON_AT_LEAST_ONCE", value_parser = FalseyValueParser::new())]
    at_least_once: bool,

    /// Only check that the stream, the bucket (with a probe object, deleted
    /// again) and the database are there and usable, then exit: 0 when
    /// everything is, 1 otherwise.
    #[arg(long, env = "TRITON_DRY_RUN", value_parser = FalseyValueParser::new())]
    dry_run: bool,
}

fn default_spool_dir() -> PathBuf {
    std::env::temp_dir().join("triton-spool")
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

/// Runs `triton store`.
pub fn run(args: StoreArgs) -> CliResult {
    let stream = args.stream.load()?;
    validate_client_name(&args.client_name)
        .map_err(|e| CliError::new(format!("--client-name: {e}")))?;
    if let Some(id) = &args.worker_id {
        check_worker_id(id)?;
    }
    let location = Location::parse(&args.bucket).map_err(CliError::from)?;
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
    let storage_class = args
        .storage_class
        .as_deref()
        .map(triton_s3::parse_storage_class)
        .transpose()
        .map_err(|e| CliError::new(format!("--storage-class: {e}")))?;
    let tags = args
        .tags
        .iter()
        .map(|t| triton_s3::parse_tag(t))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CliError::new(format!("--tag: {e}")))?;
    if tags.len() > 10 {
        return Err(CliError::new(format!(
            "--tag: {} tags, S3 allows at most 10 per object",
            tags.len()
        )));
    }
    let mut options = ArchiverOptions::new(stream.name.clone(), args.client_name.clone());
    // For the crash tests only: a window in which to kill the store between
    // an upload and its checkpoint commit.
    // Builds without the test hooks (release binaries) ignore it, loudly.
    if let Ok(pause) = std::env::var("TRITON_TEST_PAUSE_BEFORE_COMMIT") {
        let pause = parse_duration(&pause)
            .map_err(|e| CliError::new(format!("TRITON_TEST_PAUSE_BEFORE_COMMIT: {e}")))?;
        if !options.pause_before_commit(pause) {
            tracing::warn!("TRITON_TEST_PAUSE_BEFORE_COMMIT ignored: this build has no test hooks");
        }
    }
    options.max_file_age = args.max_file_age;
    options.max_file_size = args.max_file_size;
    options.max_pending_uploads = args.max_pending_uploads.max(1);
    options.spool_dir = args.spool_dir.clone();
    std::fs::create_dir_all(&options.spool_dir)
        .map_err(|e| CliError::io(format!("--spool-dir {}", options.spool_dir.display()), e))?;
    let start = match (args.skip_to_latest, args.from) {
        (true, _) | (false, From::Latest | From::Checkpoint) => StartPosition::Latest,
        (false, From::TrimHorizon) => StartPosition::TrimHorizon,
        (false, From::At(t)) => StartPosition::AtTimestamp(t),
    };
    let bounds = metrics::Bounds {
        unready_after: args.unready_after,
        // The renewal loop beats every third of a lease; startup retries
        // at least every 30 s.
        stale_after: args
            .lease_duration
            .saturating_mul(3)
            .max(Duration::from_secs(90)),
    };
    let runtime = multi_thread_runtime()?;
    runtime.block_on(async {
        // Signals are watched from the start, whatever the store is doing
        // (opening, waiting for S3 or the database): the first asks for a
        // graceful stop, a second or --shutdown-timeout ends the process.
        let stop = signals::watch_process(args.shutdown_timeout)?;
        health().set_phase(Phase::Starting);
        // Served from the first moment: readiness says "starting" while the
        // database or the stream is awaited.
        let endpoint = match args.metrics_addr {
            Some(addr) => {
                let endpoint = metrics::Endpoint::install(&stream.name, bounds)?;
                endpoint.serve(addr).await?;
                Some(endpoint)
            }
            None => None,
        };
        let opened = async {
            let checkpoints = retry_open(
                "the checkpoint database",
                || SqlCheckpoints::open(&args.checkpoint_db),
                // A dry run reports an outage instead of waiting it out.
                |e| {
                    !args.dry_run
                        && matches!(
                            e,
                            triton_checkpoint::OpenError::Database(CheckpointError::Unavailable { .. })
                        )
                },
            )
            .await
            .map_err(CliError::from)?;
            let checkpoints: Arc<SqlCheckpoints> = Arc::new(checkpoints);
            let kinesis = stream.kinesis().await?;
            let store = stream
                .open_store(
                    &location,
                    args.bucket_region.as_deref(),
                    S3Options {
                        sse,
                        stall_timeout: args.s3_stall_timeout,
                        storage_class,
                        tags,
                        ..S3Options::default()
                    },
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
                stream.name.clone(),
                args.client_name.clone(),
                !args.skip_to_latest,
                reader_options,
            );
            let worker_id = args.worker_id.clone().unwrap_or_else(default_worker_id);
            let worker = Worker::new(
                shards,
                store,
                checkpoints,
                options,
                WorkerOptions {
                    exactly_once: !args.at_least_once,
                    ..WorkerOptions::new(worker_id.clone(), args.lease_duration)
                },
            );
            // A wrong stream name, bucket or region is an error here, not
            // every interrupted upload's records taken for expired.
            retry_open(
                "the stream, the bucket and the database",
                || worker.check(),
                |e| !args.dry_run && e.is_transient(),
            )
            .await
            .map_err(|e| explain(e, &stream, &location))?;
            Ok::<_, CliError>((worker, worker_id))
        };
        let mut stopping = stop.clone();
        let (worker, worker_id) = tokio::select! {
            opened = opened => opened?,
            _ = stopping.changed() => {
                tracing::info!("stopped before the store started");
                return Ok(());
            }
        };
        if args.dry_run {
            tracing::info!(stream = stream.name, bucket = %location, "dry run: the stream, the bucket and the database are usable");
            eprintln!("triton: store can start: stream {}, {location} and the checkpoint database are usable", stream.name);
            return Ok(());
        }
        tracing::info!(stream = stream.name, bucket = %location, client = args.client_name, worker = worker_id, lease_duration_ms = args.lease_duration.as_millis() as u64, exactly_once = !args.at_least_once, "store started");
        if let Some(endpoint) = &endpoint {
            endpoint.set_stats(worker.archiver_stats());
        }
        let notifier = tokio::spawn(systemd::notify_when_ready(bounds));
        let shutdown = async move {
            let _ = stopping.changed().await;
            systemd::notify("STOPPING=1");
            tracing::info!("stopping: sealing, uploading and checkpointing what was read, then releasing the leases");
        };
        let summary = worker.run(shutdown).await;
        notifier.abort();
        let summary = summary.map_err(CliError::from)?;
        tracing::info!(
            archives = summary.archives,
            records = summary.records,
            invalid = summary.invalid,
            "store stopped"
        );
        Ok(())
    })
}

/// The start-up check's failure as one line with its fix.
fn explain(e: CheckError, stream: &Stream, location: &Location) -> CliError {
    let region = stream.region.as_deref().unwrap_or("the configured region");
    let line = match (e.what, e.kind) {
        ("the Kinesis stream", CheckKind::Missing) => format!(
            "the Kinesis stream {} does not exist in {region} (check the stream name and --region)",
            stream.name
        ),
        ("the archive store", CheckKind::Missing) if location.is_s3() => format!(
            "the bucket {location} does not exist (create it, or check --bucket and --bucket-region)"
        ),
        (_, CheckKind::Denied) => format!(
            "{}: access denied ({}; check the credentials' permissions, --profile and --region)",
            e.what, e.message
        ),
        _ => e.to_string(),
    };
    CliError::new(line)
}

/// Opens something the store cannot start without, retrying while it is
/// unavailable (a signal still stops the process meanwhile); errors that
/// retrying cannot fix (a bad URL, a missing stream) end the command.
async fn retry_open<T, E, F, Fut>(
    what: &str,
    mut open: F,
    retryable: impl Fn(&E) -> bool,
) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: std::error::Error,
{
    retry(
        &policies::STARTUP,
        || {
            // One attempt may take minutes against a hung server (each
            // request retried within its timeouts): the process is alive
            // meanwhile.
            let attempt = open();
            async move {
                tokio::pin!(attempt);
                loop {
                    health().beat();
                    tokio::select! {
                        answer = &mut attempt => return answer,
                        () = tokio::time::sleep(Duration::from_secs(10)) => {}
                    }
                }
            }
        },
        retryable,
        |e, r| tracing::warn!(error = %Report(&e), retry_in_ms = r.delay.as_millis() as u64, "waiting for {what}"),
    )
    .await
}
