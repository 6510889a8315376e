//! Arguments and helpers shared by the commands that talk to a stream.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::Arc;

use aws_config::SdkConfig;
use clap::Args;
use triton_core::config::{Config, StreamConfig};
use triton_core::json::RawWriter;
use triton_core::source::SourceRecord;
use triton_core::time::Date;
use triton_core::value::Record;
use triton_s3::{ArchiveQuery, ArchiveStore, ListError, Location, S3Options};

use super::aws::AwsArgs;
pub use super::parse::{parse_date, parse_duration};
use crate::error::{CliError, CliResult};

/// `--config` and `--stream`, or `--stream-name`; and the AWS options.
#[derive(Args, Debug)]
pub struct StreamArgs {
    /// The stream config (YAML: logical name -> stream name, partition_key,
    /// region). Not needed with --stream-name.
    #[arg(
        long,
        env = "TRITON_CONFIG",
        default_value = "triton.yaml",
        value_name = "PATH"
    )]
    pub config: PathBuf,

    /// The stream's logical name in the config.
    #[arg(
        long,
        env = "TRITON_STREAM",
        value_name = "LOGICAL",
        required_unless_present = "stream_name"
    )]
    pub stream: Option<String>,

    /// The real Kinesis stream name, without a config file (the region
    /// then comes from --region or the AWS settings); wins over --stream.
    // No `conflicts_with`: clap counts a variable as given, and a container
    // with TRITON_STREAM set must still take --stream-name.
    #[arg(long, env = "TRITON_STREAM_NAME", value_name = "NAME")]
    pub stream_name: Option<String>,

    #[command(flatten)]
    pub aws: AwsArgs,
}

/// The stream a command works on, resolved from the config or the flags.
#[derive(Clone, Debug)]
pub struct Stream {
    /// The real Kinesis stream name.
    pub name: String,
    /// The record field that becomes the partition key, if configured.
    pub partition_key: Option<String>,
    /// The stream's region, when the config or --region gives it.
    pub region: Option<String>,
    aws: AwsArgs,
}

impl StreamArgs {
    /// Loads the config and looks the stream up (or takes --stream-name).
    /// Broken entries of other streams and unknown keys are warnings.
    pub fn load(&self) -> Result<Stream, CliError> {
        let logical = match &self.stream_name {
            Some(_) => None,
            None => self.stream.as_ref(),
        };
        let Some(logical) = logical else {
            let name = self.stream_name.clone().unwrap_or_default();
            if name.is_empty() {
                return Err(CliError::new("--stream-name must not be empty"));
            }
            return Ok(Stream {
                name,
                partition_key: None,
                region: self.aws.region.clone(),
                aws: self.aws.clone(),
            });
        };
        let lenient = Config::from_path_lenient(&self.config).map_err(CliError::from)?;
        let mut ours = None;
        for broken in lenient.broken {
            if broken.stream() == Some(logical.as_str()) {
                ours = Some(broken);
            } else {
                tracing::warn!("{broken} (another stream: ignored)");
            }
        }
        if let Some(e) = ours {
            return Err(CliError::from(e));
        }
        let config = &lenient.config;
        for unknown in config
            .unknown_keys()
            .iter()
            .filter(|k| &k.stream == logical)
        {
            tracing::warn!("config {}: {unknown}", config.origin());
        }
        let stream = config.stream(logical).map_err(CliError::from)?;
        Ok(Stream {
            name: stream.name.clone(),
            partition_key: stream.partition_key.clone(),
            region: Some(
                self.aws
                    .region
                    .clone()
                    .unwrap_or_else(|| stream.region.clone()),
            ),
            aws: self.aws.clone(),
        })
    }
}

impl Stream {
    /// The stream as the libraries take it.
    pub fn config(&self) -> StreamConfig {
        StreamConfig {
            name: self.name.clone(),
            partition_key: self.partition_key.clone(),
            region: self.region.clone().unwrap_or_default(),
        }
    }

    /// The AWS configuration for the stream's region, with credentials
    /// checked.
    pub async fn aws(&self) -> Result<SdkConfig, CliError> {
        self.aws.load(self.region.as_deref()).await
    }

    /// A Kinesis client.
    pub async fn kinesis(&self) -> Result<triton_kinesis::Client, CliError> {
        Ok(triton_kinesis::client_from(&self.aws().await?))
    }

    /// The archive store at `location`: S3 in `bucket_region` (default:
    /// the stream's), or a directory, which needs no AWS configuration.
    pub async fn open_store(
        &self,
        location: &Location,
        bucket_region: Option<&str>,
        options: S3Options,
    ) -> Result<Arc<dyn ArchiveStore>, CliError> {
        let aws = match location.is_s3() {
            true => Some(
                self.aws
                    .load(bucket_region.or(self.region.as_deref()))
                    .await?,
            ),
            false => None,
        };
        location
            .open_with(aws.as_ref(), options)
            .map_err(CliError::from)
    }
}

/// `--bucket` and `--bucket-region`: where a stream's archives are.
#[derive(Args, Debug)]
pub struct BucketArgs {
    /// Where the archives are: an S3 bucket (NAME, s3://NAME or
    /// s3://NAME/PREFIX) or a local directory (file:///PATH, or a path
    /// containing '/', such as ./archive).
    #[arg(long, env = "TRITON_BUCKET", value_name = "BUCKET")]
    pub bucket: String,

    /// The bucket's region, when it is not the stream's.
    #[arg(long, env = "TRITON_BUCKET_REGION", value_name = "REGION")]
    pub bucket_region: Option<String>,
}

impl BucketArgs {
    /// The bucket or directory.
    pub fn location(&self) -> Result<Location, CliError> {
        Location::parse(&self.bucket).map_err(CliError::from)
    }

    /// Opens the bucket or directory for `stream`.
    pub async fn open(
        &self,
        stream: &Stream,
        options: S3Options,
    ) -> Result<Arc<dyn ArchiveStore>, CliError> {
        stream
            .open_store(&self.location()?, self.bucket_region.as_deref(), options)
            .await
    }
}

/// The stream, `--bucket`, `--start-date` and `--end-date`: which
/// archives, for the commands that read them (`cat`, `audit`).
#[derive(Args, Debug)]
pub struct ArchiveArgs {
    #[command(flatten)]
    pub stream: StreamArgs,

    #[command(flatten)]
    pub bucket: BucketArgs,

    /// First day (UTC): 2026-12-01, 20261201, today or yesterday.
    #[arg(long, value_parser = parse_date, value_name = "DATE")]
    pub start_date: Date,

    /// Last day, inclusive [default: the start date].
    #[arg(long, value_parser = parse_date, value_name = "DATE")]
    pub end_date: Option<Date>,
}

impl ArchiveArgs {
    /// The bucket or directory.
    pub fn location(&self) -> Result<Location, CliError> {
        self.bucket.location()
    }

    /// The archives of `stream` (the real name) in the range, by `client`.
    pub fn query(&self, stream: &str, client: Option<String>) -> ArchiveQuery {
        ArchiveQuery {
            stream: stream.to_string(),
            start: self.start_date,
            end: self.end_date.unwrap_or(self.start_date),
            client,
        }
    }

    /// Opens the bucket or directory for `stream`.
    pub async fn open(
        &self,
        stream: &Stream,
        options: S3Options,
    ) -> Result<Arc<dyn ArchiveStore>, CliError> {
        self.bucket.open(stream, options).await
    }
}

/// A listing error as one line; several clients in the range name the flag
/// that picks one.
pub fn list_error(e: ListError) -> CliError {
    match &e {
        ListError::MixedClients { stream, clients } => {
            let names: Vec<String> = clients
                .iter()
                .map(|(c, n)| format!("{c} ({n} archives)"))
                .collect();
            let first = clients.first().map_or("NAME", |(c, _)| c.as_str());
            CliError::new(format!(
                "archives of {stream} from more than one client in the range: {}; choose one with --client-name (e.g. --client-name {first})",
                names.join(", ")
            ))
        }
        _ => CliError::from(e),
    }
}

/// The records of JSON lines input, each with its line number (from 1);
/// blank lines are skipped, and a line that is not one JSON object is an
/// error naming `name`, the line and the column (`in.json line 3, column
/// 7: expected value`).
pub fn json_records<'a>(
    name: &'a str,
    input: impl BufRead + 'a,
) -> impl Iterator<Item = Result<(usize, Record), CliError>> + 'a {
    input
        .lines()
        .enumerate()
        .map(move |(i, line)| {
            let line_no = i + 1;
            let line = line.map_err(|e| CliError::io(format!("{name} line {line_no}"), e))?;
            if line.trim().is_empty() {
                return Ok(None);
            }
            let record =
                serde_json::from_str(&line).map_err(|e| json_line_error(name, line_no, &e))?;
            Ok(Some((line_no, record)))
        })
        .filter_map(Result::transpose)
}

/// The error for line `line_no` of `name` that is not one JSON object.
pub fn json_line_error(name: &str, line_no: usize, e: &serde_json::Error) -> CliError {
    // serde_json ends its message with its own " at line 1 column N" (the
    // line within this one line): keep the column, give the input's line
    // number instead. Column 0 is no position (a value of the wrong type).
    let message = e.to_string();
    let position = format!(" at line {} column {}", e.line(), e.column());
    let bare = message.strip_suffix(&position).unwrap_or(&message);
    if e.line() > 0 && e.column() > 0 && bare.len() < message.len() {
        CliError::new(format!(
            "{name} line {line_no}, column {}: {bare}",
            e.column()
        ))
    } else {
        CliError::new(format!("{name} line {line_no}: {bare}"))
    }
}

/// A Tokio runtime for one command: one thread is plenty for network waits.
pub fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::io("starting the async runtime", e))
}

/// A Tokio runtime with two worker threads, for commands that decode or
/// encode archives beside their I/O (`cat`, `store`).
pub fn multi_thread_runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::io("starting the async runtime", e))
}

/// Waits for SIGINT or SIGTERM.
pub async fn interrupted() -> CliResult {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())
            .map_err(|e| CliError::io("listening for SIGTERM", e))?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.map_err(|e| CliError::io("listening for SIGINT", e)),
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c()
            .await
            .map_err(|e| CliError::io("listening for Ctrl-C", e))
    }
}

/// Prints the records of a batch read from a live stream as JSON lines
/// (the view of `triton decode`) on standard output, flushed: the consumer
/// may wait long for the next batch. A record that is not one MessagePack
/// map is not printed; it is reported on standard error with its shard,
/// sequence number, why and its first bytes. With `with_meta`, each line
/// is the envelope of [`envelope`](super::envelope). Returns how many were
/// reported.
pub fn print_live_batch(
    buf: &mut Vec<u8>,
    scratch: &mut RawWriter,
    batch: &[SourceRecord],
    with_meta: bool,
) -> Result<u64, CliError> {
    buf.clear();
    let mut invalid = 0;
    for r in batch {
        match super::envelope::write_record(buf, scratch, r, with_meta) {
            Ok(()) => buf.push(b'\n'),
            Err(e) => {
                invalid += 1;
                let head: String = r.data.iter().take(32).map(|b| format!("{b:02x}")).collect();
                eprintln!(
                    "triton: invalid record in shard {} at {}: {e} ({} bytes, starting {head})",
                    r.source,
                    r.position,
                    r.data.len()
                );
            }
        }
    }
    let mut out = std::io::stdout().lock();
    out.write_all(buf)
        .and_then(|()| out.flush())
        .map_err(|e| CliError::io("writing to standard output", e))?;
    Ok(invalid)
}
