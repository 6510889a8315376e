//! `triton replay`: a stream's archives from a time on, then the live
//! stream from exactly where they end, as JSON lines.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;
use triton_checkpoint::{redact, SqlCheckpoints, DEFAULT_URL};
use triton_core::checkpoint::{
    CheckpointStore, IntentStore, ReplayEnd, ReplayPosition, ReplayState, ReplayStore,
};
use triton_core::json::RawWriter;
use triton_core::key::validate_client_name;
use triton_core::source::RecordSource;
use triton_core::source::SequenceNumber;
use triton_core::time::Date;
use triton_replay::plan::Start;
use triton_replay::{Loaded, ReplayOptions, ReplaySource, Resume};
use triton_s3::{list_from, Archive, ArchiveStore, FromQuery};

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
///
/// With --consumer, the replay is saved in the checkpoint database under
/// that name as it prints, and the next `replay --consumer` with the name
/// goes on after the last record printed, in the archives or live, with
/// the same archives and hand-off as the first run (--from then needs not
/// be given and is not used). Its live part saves ordinary checkpoints
/// under the name: give it a name of its own, not a store's or a tail's.
#[derive(Args)]
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
    from: Option<String>,

    /// Where to end (inclusive), as --from takes a time, or `latest` (now).
    /// Archives opened at or before it are read whole (archives carry no
    /// time per record, so records a little after it may be printed); if
    /// none was opened after it, the live part follows, leaving out each
    /// shard's records that arrived after it. Not with --follow.
    #[arg(long, value_name = "WHEN", conflicts_with = "follow")]
    to: Option<String>,

    /// Make the replay resumable under this name (see above).
    #[arg(long, value_name = "NAME")]
    consumer: Option<String>,

    /// Checkpoint database: postgres://… or sqlite://path.db. A resumable
    /// replay (--consumer) is saved there (default sqlite://triton.db).
    /// Given with --client-name, archives without sidecars (go-triton's)
    /// are handed off from that store's checkpoints, read before the
    /// archives are listed.
    #[arg(long, env = "TRITON_DB", hide_env_values = true, value_name = "URL")]
    checkpoint_db: Option<String>,

    /// Only archives written by this client (the store's --client-name);
    /// needed when more than one client archived the stream.
    #[arg(long, env = "TRITON_CLIENT", value_name = "NAME")]
    client_name: Option<String>,

    /// Keep reading the live stream until interrupted.
    #[arg(long)]
    follow: bool,

    /// Print each record inside an envelope saying where it came from:
    /// {"shard","sequence","arrival","partition_key","record"} for records
    /// of the live stream, {"archive","index","record"} for archived ones
    /// (archives keep records only).
    #[arg(long)]
    with_meta: bool,

    /// Stop after printing this many records (with --consumer, the next
    /// run goes on with the one after).
    #[arg(long, short = 'n', value_name = "N")]
    max_records: Option<u64>,

    /// Days before --from searched for the archive open at that time: one
    /// covers archives sealed within a day (the store's --max-file-age).
    #[arg(long, default_value_t = 1, value_name = "DAYS")]
    lookback_days: u32,

    /// Wait between GetRecords calls of a shard that is caught up.
    #[arg(long, value_parser = parse_duration, default_value = "1s", value_name = "DURATION")]
    poll_interval: Duration,
}

/// By hand, so that a logged `ReplayArgs` never shows a database password.
impl std::fmt::Debug for ReplayArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayArgs")
            .field("stream", &self.stream)
            .field("from", &self.from)
            .field("to", &self.to)
            .field("consumer", &self.consumer)
            .field("checkpoint_db", &self.checkpoint_db.as_deref().map(redact))
            .field("client_name", &self.client_name)
            .field("follow", &self.follow)
            .finish()
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Runs `triton replay`.
pub fn run(args: ReplayArgs) -> CliResult {
    let config = args.stream.load()?;
    for (flag, name) in [
        ("--client-name", &args.client_name),
        ("--consumer", &args.consumer),
    ] {
        if let Some(n) = name {
            validate_client_name(n).map_err(|e| CliError::new(format!("{flag}: {e}")))?;
        }
    }
    let from = args
        .from
        .as_deref()
        .map(|f| parse_from(f).map_err(|e| CliError::new(format!("--from: {e}"))))
        .transpose()?;
    let to = args.to.as_deref().map(parse_to).transpose()?;
    multi_thread_runtime()?.block_on(async {
        let kinesis = config.kinesis().await?;
        let store = args
            .bucket
            .open(&config, triton_s3::S3Options::default())
            .await?;
        let now = unix(SystemTime::now());
        let saved = match &args.consumer {
            Some(consumer) => {
                let url = args.checkpoint_db.as_deref().unwrap_or(DEFAULT_URL);
                let db = SqlCheckpoints::open(url).await.map_err(CliError::from)?;
                let db: Arc<dyn ReplayStore> = Arc::new(db);
                let state = db
                    .replay(consumer, &config.name)
                    .await
                    .map_err(CliError::from)?;
                Some((db, consumer.clone(), state))
            }
            None => None,
        };
        let (loaded, end) = match &saved {
            Some((_, consumer, Some(state))) => {
                if args.from.is_some() || args.to.is_some() {
                    tracing::warn!(
                        consumer = %consumer,
                        from = state.from,
                        to_ms = ?state.end.map(|e| e.to_ms),
                        "going on with the saved replay; --from and --to are not used (delete \
                         the consumer's row of triton_replay and its checkpoints to start over)"
                    );
                }
                let archives = saved_archives(state)?;
                // Each was read with its sidecar by the first run.
                let loaded = triton_replay::load(
                    store.clone(),
                    &kinesis,
                    &config.name,
                    archives,
                    state.from,
                    u64::MAX,
                )
                .await
                .map_err(CliError::from)?;
                (loaded, state.end)
            }
            _ => {
                let Some(from) = from else {
                    return Err(CliError::new(match &args.consumer {
                        Some(c) => format!("--from is needed to start the replay of consumer {c}"),
                        None => "--from is needed".to_owned(),
                    }));
                };
                let at = start_time(&kinesis, &config.name, from, now).await?;
                let to_ms = match to {
                    Some(To::At(ms)) => Some(ms),
                    Some(To::Now) => Some(i64::try_from(now).unwrap_or(i64::MAX) * 1000),
                    None => None,
                };
                if let Some(ms) = to_ms {
                    if ms < i64::try_from(at).unwrap_or(i64::MAX).saturating_mul(1000) {
                        return Err(CliError::new("--to is before --from"));
                    }
                }
                let loaded =
                    load_from(store.clone(), &kinesis, &config.name, &args, at, now).await?;
                (loaded, to_ms.map(|to_ms| ReplayEnd { to_ms }))
            }
        };
        // A resumable replay saves every archive listed: each run cuts them
        // at the end the same way.
        let listed: Vec<(String, u64)> = loaded
            .archives
            .iter()
            .map(|a| (a.key.to_string(), a.size))
            .collect();
        let from_secs = loaded.from;
        let loaded = match end {
            Some(e) => loaded
                .until(u64::try_from(e.to_ms.div_euclid(1000)).unwrap_or(0))
                .map_err(|e| CliError::new(format!("--to: {e}")))?,
            None => loaded,
        };
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
            end,
            ..ReplayOptions::default()
        };
        options.live.poll_interval = args.poll_interval;
        let mut source = match saved {
            None => ReplaySource::new(store, kinesis, &config.name, loaded, options),
            Some((db, consumer, state)) => {
                let position = match state {
                    Some(state) => state.position,
                    None => {
                        let state = ReplayState {
                            from: from_secs,
                            archives: listed,
                            end,
                            position: ReplayPosition::Start,
                        };
                        start_saved(&*db, &consumer, &config.name, &state).await?
                    }
                };
                tracing::info!(consumer = %consumer, position = ?position, "resumable replay");
                let resume = Resume {
                    store: db,
                    consumer,
                    position,
                };
                ReplaySource::resume(store, kinesis, &config.name, loaded, options, resume)
                    .map_err(CliError::from)?
            }
        };
        let mut reported = 0;
        let outcome = tokio::select! {
            r = print(&mut source, &mut reported, args.max_records, args.with_meta) => r,
            r = interrupted() => r,
        };
        // Whatever was printed is acknowledged; save it even after an error.
        let committed = source.commit().await.map_err(CliError::from);
        report_lost(&source, &mut reported);
        outcome?;
        committed?;
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

/// The Unix second `--from` names.
async fn start_time(
    kinesis: &triton_kinesis::Client,
    stream: &str,
    from: From,
    now: u64,
) -> Result<u64, CliError> {
    Ok(match from {
        From::At(t) => unix(t),
        From::Latest => now,
        From::TrimHorizon => {
            let summary = kinesis
                .describe_stream_summary()
                .stream_name(stream)
                .send()
                .await
                .map_err(|e| {
                    CliError::new(format!(
                        "--from trim-horizon: the retention period of {stream}: {}",
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
                "--from checkpoint: a replay goes on from where it stopped with --consumer; \
                 give a time",
            ))
        }
    })
}

/// Lists the archives from `at` on and loads their hand-off. Archives
/// without sidecars are handed off from the checkpoints of the store that
/// wrote them, given --checkpoint-db and --client-name (not for a
/// resumable replay: a restart could not plan the same hand-off); without
/// them, trailing recent ones are left to the live part, others refused.
async fn load_from(
    store: Arc<dyn ArchiveStore>,
    kinesis: &triton_kinesis::Client,
    stream: &str,
    args: &ReplayArgs,
    at: u64,
    now: u64,
) -> Result<Loaded, CliError> {
    let archives = list(store.clone(), stream, args, at, now).await?;
    let start = archives.first().map_or(at, |a| a.key.timestamp());
    // Uploads in progress are at most a --max-file-age old.
    let recent = now.saturating_sub(u64::from(args.lookback_days.max(1)) * 86_400);
    let sidecars = triton_replay::load(
        store.clone(),
        kinesis,
        stream,
        archives.clone(),
        start,
        recent,
    )
    .await;
    let writer = match (&args.checkpoint_db, &args.client_name, &args.consumer) {
        (Some(url), Some(client), None) => Some((url, client.as_str())),
        _ => None,
    };
    let Some((url, client)) = writer else {
        return match sidecars {
            // Recent archives without sidecars are left to the live part.
            Ok(loaded) => Ok(loaded),
            Err(triton_replay::LoadError::MissingSidecar { key }) => Err(CliError::new(format!(
                "archive {key} has no metadata sidecar (go-triton's archives have none): \
                 `triton audit --repair` writes missing ones, or, without --consumer, give \
                 --checkpoint-db and --client-name of the store that wrote them to hand off \
                 from its checkpoints"
            ))),
            Err(e) => Err(CliError::from(e)),
        };
    };
    let missing = match sidecars {
        Ok(loaded) if loaded.archives.len() == archives.len() => return Ok(loaded),
        Ok(loaded) => archives[loaded.archives.len()].key.to_string(),
        Err(triton_replay::LoadError::MissingSidecar { key }) => key,
        Err(e) => return Err(CliError::from(e)),
    };
    tracing::info!(
        key = missing,
        "an archive without a sidecar: handing off from the checkpoints of {client}"
    );
    let db = SqlCheckpoints::open_existing(url)
        .await
        .map_err(CliError::from)?;
    let mut tries = 0;
    loop {
        // Before the listing: every record up to them is in an archive
        // listed after.
        let before = store_checkpoints(&db, client, stream).await?;
        let mut archives = list(store.clone(), stream, args, at, now).await?;
        // An archive whose upload is still recorded as an intent may be
        // listed before its checkpoint moved: its records are read live.
        match db.intents(client, stream).await {
            Ok(intents) => {
                let pending: Vec<String> = intents.into_iter().map(|i| i.key).collect();
                archives.retain(|a| !pending.contains(&a.key.to_string()));
            }
            Err(e) => tracing::warn!(
                error = %triton_core::error::Report(&e),
                "no upload intents to read (a go-triton database has none): an archive \
                 uploaded but not yet checkpointed would be printed twice"
            ),
        }
        // An upload finished while listing moves a checkpoint: list again.
        if store_checkpoints(&db, client, stream).await? != before {
            tries += 1;
            if tries < 5 {
                continue;
            }
            return Err(CliError::new(format!(
                "the checkpoints of {client} moved while the archives were listed, {tries} \
                 times: the store is archiving right now; try again"
            )));
        }
        let start = archives.first().map_or(at, |a| a.key.timestamp());
        return triton_replay::load_with_checkpoints(kinesis, stream, archives, start, &before)
            .await
            .map_err(CliError::from);
    }
}

/// The archives from `at` on.
async fn list(
    store: Arc<dyn ArchiveStore>,
    stream: &str,
    args: &ReplayArgs,
    at: u64,
    now: u64,
) -> Result<Vec<Archive>, CliError> {
    let query = FromQuery {
        stream: stream.to_owned(),
        client: args.client_name.clone(),
        at,
        end: Date::from_unix(i64::try_from(now).unwrap_or(i64::MAX)),
        lookback_days: args.lookback_days,
    };
    Ok(list_from(store, &query).await.map_err(list_error)?.archives)
}

/// The checkpoints of `client` on `stream`, by shard.
async fn store_checkpoints(
    db: &SqlCheckpoints,
    client: &str,
    stream: &str,
) -> Result<BTreeMap<String, SequenceNumber>, CliError> {
    Ok(db
        .list(client)
        .await
        .map_err(CliError::from)?
        .into_iter()
        .filter(|s| s.checkpoint.stream == stream)
        .map(|s| (s.checkpoint.shard, s.checkpoint.sequence))
        .collect())
}

/// An end time as `--to` takes it.
enum To {
    /// Milliseconds since the Unix epoch.
    At(i64),
    /// When the replay starts.
    Now,
}

fn parse_to(text: &str) -> Result<To, CliError> {
    let parsed = parse_from(text).map_err(|_| {
        CliError::new(format!(
            "--to {text:?}: not a time; give 2026-11-29T10:00:00Z, 2026-11-29 (midnight UTC), \
             15m or \"1h30m ago\", Unix seconds, or `latest` for now"
        ))
    })?;
    match parsed {
        From::At(t) => {
            Ok(To::At(t.duration_since(UNIX_EPOCH).map_or(0, |d| {
                i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
            })))
        }
        From::Latest => Ok(To::Now),
        From::TrimHorizon | From::Checkpoint => Err(CliError::new(format!(
            "--to {text}: give a time, or `latest` for now"
        ))),
    }
}

/// The archives of a saved replay.
fn saved_archives(state: &ReplayState) -> Result<Vec<Archive>, CliError> {
    state
        .archives
        .iter()
        .map(|(key, size)| {
            let key = triton_core::key::ArchiveKey::parse(key).map_err(|e| {
                CliError::new(format!(
                    "the saved replay names an archive that is not one: {e}"
                ))
            })?;
            Ok(Archive { key, size: *size })
        })
        .collect()
}

/// Saves a new replay of `consumer`; refuses a name that already has
/// checkpoints on the stream (a tail's or a store's: the replay would move
/// them).
async fn start_saved(
    db: &dyn ReplayStore,
    consumer: &str,
    stream: &str,
    state: &ReplayState,
) -> Result<ReplayPosition, CliError> {
    let taken = db.list(consumer).await.map_err(CliError::from)?;
    let inside = db.subsequences(consumer).await.map_err(CliError::from)?;
    if taken.iter().any(|c| c.checkpoint.stream == stream)
        || inside.iter().any(|s| s.stream == stream)
    {
        return Err(CliError::new(format!(
            "--consumer {consumer}: that name already has checkpoints on {stream} (a tail's or a \
             store's?); give the replay a name of its own"
        )));
    }
    db.save_replay(consumer, stream, state)
        .await
        .map_err(CliError::from)?;
    Ok(ReplayPosition::Start)
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
async fn print(
    source: &mut ReplaySource,
    reported: &mut usize,
    max: Option<u64>,
    with_meta: bool,
) -> CliResult {
    let mut scratch = RawWriter::new();
    let mut buf = Vec::new();
    let mut left = max.unwrap_or(u64::MAX);
    loop {
        report_lost(source, reported);
        if left == 0 {
            return Ok(());
        }
        let want = usize::try_from(left.min(10_000)).unwrap_or(10_000);
        let Some(mut batch) = source.next_batch(want).await.map_err(CliError::from)? else {
            return Ok(());
        };
        // Batches end at Kinesis records: one may hold more user records
        // of an aggregate than asked for. Past -n they are left for the
        // next run (this is the run's last batch then: nothing after the
        // cut is acknowledged).
        batch.truncate(usize::try_from(left).unwrap_or(usize::MAX));
        left = left.saturating_sub(batch.len() as u64);
        print_live_batch(&mut buf, &mut scratch, &batch, with_meta)?;
        // Printed (or reported): acknowledge, then save.
        if let Some(last) = batch.last() {
            source
                .ack(&last.source, &last.position)
                .await
                .map_err(CliError::from)?;
            source.commit().await.map_err(CliError::from)?;
        }
    }
}
