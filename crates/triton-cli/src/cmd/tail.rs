//! `triton tail`: a live stream as JSON lines.

use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use triton_checkpoint::{redact, SqlCheckpoints, DEFAULT_URL};
use triton_core::json::RawWriter;
use triton_core::key::validate_client_name;
use triton_core::source::{RecordSource, SourceRecord};
use triton_kinesis::{Checkpointing, KinesisReader, ReaderOptions, StartPosition};

use super::common::{interrupted, parse_duration, print_live_batch, runtime, StreamArgs};
use super::parse::{parse_from, From};
use crate::error::{CliError, CliResult};

/// Print a live stream's records as JSON lines (the view of `triton decode`).
///
/// Reads every shard until interrupted (Ctrl-C or SIGTERM), --max-records
/// records were printed, or nothing arrived for --idle-timeout. Shards
/// created by splits and merges are followed, each after its parents.
///
/// With --client-name, the position of every printed record is saved in
/// the checkpoint database under that client, and the next `tail` with that
/// name goes on from there, shard by shard. Use a name of its own: sharing
/// one with `triton store` would move the store's checkpoints.
///
/// Records that are not one MessagePack map are not printed; each is
/// reported on standard error with its shard, sequence number and why.
#[derive(Args)]
pub struct TailArgs {
    #[command(flatten)]
    stream: StreamArgs,

    /// Where shards start: `latest` (new records only; the default; also
    /// LATEST), `trim-horizon` (the oldest record kept; also TRIM_HORIZON)
    /// or a time: 2026-11-29T10:00:00Z, 2026-11-29T11:00:00+01:00,
    /// 2026-11-29 (midnight UTC), 15m or "1h30m ago" (before now), Unix
    /// seconds, or AT_TIMESTAMP=<time>. With --client-name, a shard that has a
    /// checkpoint always goes on after it, and this only decides where the
    /// others start; `checkpoint` insists on a client name and is `latest`
    /// otherwise.
    #[arg(long, value_name = "WHERE")]
    from: Option<String>,

    /// Save checkpoints under this consumer name (not read from
    /// TRITON_CLIENT, which names the store's checkpoints).
    #[arg(long, value_name = "NAME")]
    client_name: Option<String>,

    /// Checkpoint database (used with --client-name): postgres://… or
    /// sqlite://path.db.
    #[arg(long, env = "TRITON_DB", hide_env_values = true, default_value = DEFAULT_URL, value_name = "URL")]
    checkpoint_db: String,

    /// Print each record inside an envelope saying where it came from:
    /// {"shard","sequence","arrival","partition_key","record"} for records
    /// of the live stream, {"archive","index","record"} for archived ones
    /// (archives keep records only).
    #[arg(long)]
    with_meta: bool,

    /// Stop after printing this many records.
    #[arg(long, short = 'n', value_name = "N")]
    max_records: Option<u64>,

    /// Stop when no record arrived for this long (e.g. 10s, 5m).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    idle_timeout: Option<Duration>,

    /// Wait between GetRecords calls of a shard that is caught up.
    #[arg(long, value_parser = parse_duration, default_value = "1s", value_name = "DURATION")]
    poll_interval: Duration,

    /// Records per GetRecords call (1 to 10000).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u16).range(1..=10_000))]
    limit: u16,
}

/// By hand, so that a logged `TailArgs` never shows a database password.
impl std::fmt::Debug for TailArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TailArgs")
            .field("stream", &self.stream)
            .field("from", &self.from)
            .field("client_name", &self.client_name)
            .field("checkpoint_db", &redact(&self.checkpoint_db))
            .field("max_records", &self.max_records)
            .field("idle_timeout", &self.idle_timeout)
            .finish()
    }
}

/// Where `--from` says shards without a checkpoint start.
fn start_of(from: Option<&str>, client: Option<&str>) -> Result<StartPosition, CliError> {
    let Some(from) = from else {
        return Ok(StartPosition::Latest);
    };
    match parse_from(from).map_err(|e| CliError::new(format!("--from: {e}")))? {
        From::Checkpoint if client.is_none() => Err(CliError::new(
            "--from checkpoint needs --client-name: checkpoints belong to a client",
        )),
        From::Latest | From::Checkpoint => Ok(StartPosition::Latest),
        From::TrimHorizon => Ok(StartPosition::TrimHorizon),
        From::At(t) => Ok(StartPosition::AtTimestamp(t)),
    }
}

/// Runs `triton tail`.
pub fn run(args: TailArgs) -> CliResult {
    let config = args.stream.load()?;
    if let Some(c) = &args.client_name {
        validate_client_name(c).map_err(CliError::from)?;
    }
    let start = start_of(args.from.as_deref(), args.client_name.as_deref())?;
    let options = ReaderOptions {
        start,
        poll_interval: args.poll_interval,
        limit: args.limit,
        ..ReaderOptions::default()
    };
    runtime()?.block_on(async {
        let checkpointing = match &args.client_name {
            Some(client) => Some(Checkpointing {
                store: Arc::new(
                    SqlCheckpoints::open(&args.checkpoint_db)
                        .await
                        .map_err(CliError::from)?,
                ),
                client: client.clone(),
                resume: true,
            }),
            None => None,
        };
        let client = config.kinesis().await?;
        let reader = KinesisReader::open(client, &config.name, options, checkpointing)
            .await
            .map_err(CliError::from)?;
        let mut tail = Tail {
            reader,
            printed: 0,
            invalid: 0,
            max: args.max_records,
            with_meta: args.with_meta,
        };
        let outcome = tokio::select! {
            r = tail.print(args.idle_timeout) => r,
            r = interrupted() => r,
        };
        // Whatever was printed is acknowledged; save it even after an error.
        let committed = tail.reader.commit().await;
        tracing::info!(
            printed = tail.printed,
            invalid = tail.invalid,
            "tail stopped"
        );
        outcome?;
        committed.map_err(CliError::from)
    })
}

/// Cuts `batch` after its `n`th valid record (invalid ones are reported,
/// not printed, so they do not count toward -n), if it has that many.
fn cut_after_valid(batch: &mut Vec<SourceRecord>, n: u64) {
    let mut valid = 0;
    let cut = batch.iter().position(|r| {
        valid += u64::from(r.validate().is_ok());
        valid == n
    });
    if let Some(i) = cut {
        batch.truncate(i + 1);
    }
}

struct Tail {
    reader: KinesisReader,
    printed: u64,
    invalid: u64,
    max: Option<u64>,
    with_meta: bool,
}

impl Tail {
    /// Prints batches until the limit, the idle timeout or the end.
    async fn print(&mut self, idle: Option<Duration>) -> CliResult {
        let mut scratch = RawWriter::new();
        let mut buf = Vec::new();
        loop {
            let want = match self.max {
                Some(max) if self.printed >= max => return Ok(()),
                Some(max) => (max - self.printed).min(10_000) as usize,
                None => 10_000,
            };
            let next = self.reader.next_batch(want);
            let batch = match idle {
                Some(idle) => match tokio::time::timeout(idle, next).await {
                    Ok(b) => b,
                    Err(_) => {
                        tracing::info!(?idle, "no record arrived for the idle timeout");
                        return Ok(());
                    }
                },
                None => next.await,
            };
            let Some(mut batch) = batch.map_err(CliError::from)? else {
                return Ok(());
            };
            // A batch ends at a Kinesis record, so it may hold more user
            // records of an aggregate than asked for: those past the -n
            // limit are not printed, nor acknowledged (a resumable tail
            // starts with them next time). Only at the limit: the run ends
            // with this batch.
            if let Some(max) = self.max {
                cut_after_valid(&mut batch, max - self.printed);
            }
            let invalid = print_live_batch(&mut buf, &mut scratch, &batch, self.with_meta)?;
            self.invalid += invalid;
            self.printed += batch.len() as u64 - invalid;
            // Printed (or reported): acknowledge, then save.
            if let Some(last) = batch.last() {
                self.reader
                    .ack(&last.source, &last.position)
                    .await
                    .map_err(CliError::from)?;
                self.reader.commit().await.map_err(CliError::from)?;
            }
        }
    }
}
