//! `triton replay`: a stream's archives from a time on, then the live
//! stream from exactly where they end, as JSON lines.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;
use triton_core::json::RawWriter;
use triton_core::key::validate_client_name;
use triton_core::source::RecordSource;
use triton_core::time::Date;
use triton_replay::plan::Start;
use triton_replay::{ReplayOptions, ReplaySource};
use triton_s3::{list_from, FromQuery};

use super::common::{
    interrupted, list_error, multi_thread_runtime, parse_duration, print_live_batch, BucketArgs,
    StreamArgs,
};
use super::parse::{parse_from, From};
use crate::error::{CliError, CliResult};

/// Print a stream's records from a time on: its archives, then the live
/// stream from where they end.
///
/// Starts with the last archive `triton store` opened at or before --from
/// (records inside an archive carry no time, so records from a little
/// before --from are printed too, never records after it left out), prints
/// every archive after it, then reads each shard of the live stream just
/// after its last archived record: records are printed once, in order per
/// shard (and so per partition key). Shards split or merged after the
/// archives are read after their parents; other shards from the first
/// archive's time. Where the hand-off comes from is the archives' metadata
/// sidecars; trailing archives whose sidecar is not uploaded yet are read
/// from the stream instead.
///
/// Without --follow it stops at the live stream's tip; with it, it keeps
/// going until interrupted (Ctrl-C or SIGTERM, exit 0).
///
/// Records neither the archives nor the stream still hold (a gap in the
/// chain of sidecars, a shard past the stream's retention) are reported on
/// standard error, and make the exit code 1.
#[derive(Args, Debug)]
pub struct ReplayArgs {
    #[command(flatten)]
    stream: StreamArgs,

    #[command(flatten)]
    bucket: BucketArgs,

    /// Where to start: a time as `tail --from` takes it
    /// (2026-11-29T10:00:00Z, 2026-11-29, 15m or "1h30m ago", Unix seconds,
    /// AT_TIMESTAMP=<time>), `latest` (now: the archive being written, then
    /// live) or `trim-horizon` (the oldest time the stream keeps records
    /// for, by its retention period).
    #[arg(long, value_name = "WHEN")]
    from: String,

    /// Only archives written by this client (the store's --client-name);
    /// needed when more than one client archived the stream.
    #[arg(long, env = "TRITON_CLIENT", value_name = "NAME")]
    client_name: Option<String>,

    /// Keep reading the live stream until interrupted.
    #[arg(long)]
    follow: bool,

    /// Days before --from searched for the archive open at that time: one
    /// covers archives sealed within a day (the store's --max-file-age).
    #[arg(long, default_value_t = 1, value_name = "DAYS")]
    lookback_days: u32,

    /// Wait between GetRecords calls of a shard that is caught up.
    #[arg(long, value_parser = parse_duration, default_value = "1s", value_name = "DURATION")]
    poll_interval: Duration,
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Runs `triton replay`.
pub fn run(args: ReplayArgs) -> CliResult {
    let config = args.stream.load()?;
    if let Some(c) = &args.client_name {
        validate_client_name(c).map_err(|e| CliError::new(format!("--client-name: {e}")))?;
    }
    let from = parse_from(&args.from).map_err(|e| CliError::new(format!("--from: {e}")))?;
    multi_thread_runtime()?.block_on(async {
        let kinesis = config.kinesis().await?;
        let now = unix(SystemTime::now());
        let at = match from {
            From::At(t) => unix(t),
            From::Latest => now,
            From::TrimHorizon => {
                let summary = kinesis
                    .describe_stream_summary()
                    .stream_name(&config.name)
                    .send()
                    .await
                    .map_err(|e| {
                        CliError::new(format!(
                            "--from trim-horizon: the retention period of {}: {}",
                            config.name,
                            triton_core::error::Report(&e)
                        ))
                    })?;
                let hours = summary
                    .stream_description_summary()
                    .map_or(24, |s| s.retention_period_hours());
                now.saturating_sub(u64::try_from(hours).unwrap_or(24) * 3600)
            }
            From::Checkpoint => {
                return Err(CliError::new(
                    "--from checkpoint: replay keeps no checkpoints; give a time",
                ))
            }
        };
        let store = args
            .bucket
            .open(&config, triton_s3::S3Options::default())
            .await?;
        let query = FromQuery {
            stream: config.name.clone(),
            client: args.client_name.clone(),
            at,
            end: Date::from_unix(i64::try_from(now).unwrap_or(i64::MAX)),
            lookback_days: args.lookback_days,
        };
        let listing = list_from(store.clone(), &query).await.map_err(list_error)?;
        let start = listing.archives.first().map_or(at, |a| a.key.timestamp());
        let loaded = triton_replay::load(
            store.clone(),
            &kinesis,
            &config.name,
            listing.archives,
            start,
            // Uploads in progress are at most a --max-file-age old.
            now.saturating_sub(u64::from(args.lookback_days.max(1)) * 86_400),
        )
        .await
        .map_err(CliError::from)?;
        tracing::info!(
            archives = loaded.archives.len(),
            shards = loaded.handoff.starts.len(),
            "replay: archives, then the live stream"
        );
        for (shard, s) in &loaded.handoff.starts {
            let archived = loaded.handoff.archived.get(shard).copied().unwrap_or(0);
            tracing::info!(shard, archived, live_from = %describe(s), "hand-off");
        }
        let mut options = ReplayOptions {
            follow: args.follow,
            ..ReplayOptions::default()
        };
        options.live.poll_interval = args.poll_interval;
        let mut source = ReplaySource::new(store, kinesis, &config.name, loaded, options);
        let mut reported = 0;
        let outcome = tokio::select! {
            r = print(&mut source, &mut reported) => r,
            r = interrupted() => r,
        };
        report_lost(&source, &mut reported);
        outcome?;
        if source.lost().is_empty() {
            Ok(())
        } else {
            eprintln!(
                "triton: {} range(s) of records could not be replayed (above)",
                source.lost().len()
            );
            Err(CliError::reported())
        }
    })
}

/// Where the live part of a shard starts, in words.
fn describe(start: &Start) -> String {
    match start {
        Start::After(seq) => format!("after {seq}"),
        Start::Ended(seq) => format!("nowhere: archived to its end ({seq})"),
        Start::Done => "nowhere: a descendant was archived".into(),
        Start::TrimHorizon => "its beginning, after its parents".into(),
        Start::AtTimestamp(t) => format!("records from Unix second {t} on"),
    }
}

/// Prints the lost ranges found since the last call.
fn report_lost(source: &ReplaySource, reported: &mut usize) {
    for l in source.lost().iter().skip(*reported) {
        eprintln!(
            "triton: LOST: shard {} after {} before {}: {}",
            l.shard,
            l.after.as_deref().unwrap_or("its start"),
            l.before.as_deref().unwrap_or("what the stream holds"),
            l.reason
        );
    }
    *reported = source.lost().len();
}

/// Prints every record as a JSON line (records of the live stream that
/// are not one map are reported on standard error), acknowledging each
/// batch.
async fn print(source: &mut ReplaySource, reported: &mut usize) -> CliResult {
    let mut scratch = RawWriter::new();
    let mut buf = Vec::new();
    loop {
        report_lost(source, reported);
        let Some(batch) = source.next_batch(10_000).await.map_err(CliError::from)? else {
            return Ok(());
        };
        print_live_batch(&mut buf, &mut scratch, &batch)?;
        if let Some(last) = batch.last() {
            source
                .ack(&last.source, &last.position)
                .await
                .map_err(CliError::from)?;
        }
    }
}
