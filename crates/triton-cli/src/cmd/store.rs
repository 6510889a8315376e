//! `triton store`: archive a Kinesis stream to S3 (or a directory).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use tokio::sync::mpsc;
use triton_checkpoint::{redact, SqlCheckpoints, DEFAULT_URL};
use triton_core::key::{validate_client_name, DEFAULT_CLIENT_NAME};
use triton_kinesis::{Checkpointing, KinesisReader, ReaderOptions, StartPosition};
use triton_s3::archiver::{clean_stale, Archiver, ArchiverOptions};
use triton_s3::{Location, S3Options, Sse};

use super::common::{parse_duration, StreamArgs};
use super::metrics;
use crate::error::{CliError, CliResult};

/// Archive a stream to S3 as .tri files, checkpointing only what is stored.
///
/// Every shard is read into one archive, spooled on local disk, sealed at
/// each UTC hour boundary, after --max-file-age or at --max-file-size, and
/// uploaded as <YYYYMMDD>/<stream>-<client>-<unix seconds>.tri (the time the
/// archive was opened). Only after the upload are the shards' checkpoints
/// moved, in one transaction, to the last record the archive holds: a crash
/// at any moment loses nothing (records after the checkpoints are read
/// again, so a crash may archive some twice).
///
/// Records that are not one MessagePack map are kept in a dead-letter
/// archive under _invalid/<same key> ({shard, sequence_number, arrival,
/// reason, data}). S3, Kinesis or the database being unavailable is waited
/// out with retries, the data staying spooled.
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

    /// Seal an archive at the latest this long after it was opened.
    #[arg(long, value_parser = parse_duration, default_value = "1h", value_name = "DURATION")]
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

    /// Serve Prometheus metrics on this address (e.g. 127.0.0.1:9464).
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<SocketAddr>,

    /// Server-side encryption of uploaded archives.
    #[arg(long, value_enum, value_name = "KIND")]
    sse: Option<SseKind>,

    /// KMS key id or ARN for --sse aws:kms (default: the account's S3 key).
    #[arg(long, value_name = "KEY")]
    sse_kms_key_id: Option<String>,
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
    // Spool files of a killed store hold records that were never
    // checkpointed: they will be read again, so uploading them would only
    // duplicate them.
    let stale = clean_stale(&options.spool_dir, &config.name, &args.client_name)
        .map_err(|e| CliError::io(format!("cleaning {}", options.spool_dir.display()), e))?;
    for path in stale {
        tracing::info!(path = %path.display(), "removed the spool file of a store that did not finish");
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::io("starting the async runtime", e))?;
    runtime.block_on(async {
        let mut signals = signals()?;
        let checkpoints = SqlCheckpoints::open(&args.checkpoint_db)
            .await
            .map_err(|e| CliError::new(e.to_string()))?;
        let start = match (args.skip_to_latest, args.from) {
            (true, _) | (false, From::Latest) => StartPosition::Latest,
            (false, From::TrimHorizon) => StartPosition::TrimHorizon,
        };
        let checkpointing = Checkpointing {
            store: Arc::new(checkpoints),
            client: args.client_name.clone(),
            resume: !args.skip_to_latest,
        };
        let kinesis = triton_kinesis::client(&config.region).await;
        let reader_options = ReaderOptions {
            start,
            ..ReaderOptions::default()
        };
        let reader = KinesisReader::open(kinesis, &config.name, reader_options, Some(checkpointing))
            .await
            .map_err(|e| CliError::new(e.to_string()))?;
        let s3_options = S3Options {
            sse,
            ..S3Options::default()
        };
        let store = location.open(&config.region, s3_options).await;
        tracing::info!(stream = config.name, bucket = %location, client = args.client_name, "store started");
        let archiver = Archiver::new(reader, store, options);
        if let Some(addr) = args.metrics_addr {
            metrics::serve(addr, archiver.stats(), &config.name).await?;
        }
        let shutdown_timeout = args.shutdown_timeout;
        let shutdown = async move {
            signals.recv().await;
            tracing::info!("stopping: sealing, uploading and checkpointing what was read");
            // A second signal, or the timeout, ends the process at once.
            tokio::spawn(async move {
                tokio::select! {
                    _ = signals.recv() => eprintln!("triton: second signal: exiting at once"),
                    () = tokio::time::sleep(shutdown_timeout) => {
                        eprintln!("triton: the graceful stop took longer than --shutdown-timeout: exiting");
                    }
                }
                std::process::exit(130);
            });
        };
        let summary = archiver
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

/// SIGINT and SIGTERM, each as one message.
fn signals() -> Result<mpsc::UnboundedReceiver<()>, CliError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term =
        signal(SignalKind::terminate()).map_err(|e| CliError::io("listening for SIGTERM", e))?;
    let mut int =
        signal(SignalKind::interrupt()).map_err(|e| CliError::io("listening for SIGINT", e))?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            if tx.send(()).is_err() {
                return;
            }
        }
    });
    Ok(rx)
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
