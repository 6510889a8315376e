//! `triton audit`: what a stream's archives cover, and what is wrong.

use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Args, ValueEnum};
use triton_checkpoint::{redact, SqlCheckpoints};
use triton_core::checkpoint::{Checkpoint, CheckpointStore};
use triton_core::key::{validate_client_name, DEFAULT_CLIENT_NAME};
use triton_core::time::Date;
use triton_s3::audit::{audit, AuditReport, Finding};
use triton_s3::S3Options;

use super::common::{multi_thread_runtime, ArchiveRangeArgs, StreamArgs};
use crate::error::{CliError, CliResult};

/// Check a stream's archives: covered ranges, duplicates, gaps.
///
/// Reads the metadata sidecar of every archive of the stream from
/// --start-date to --end-date (as `triton cat` finds them) and reports, per
/// shard, the sequence ranges the archives cover, every overlap between
/// them (records archived twice), archives without a sidecar, sidecars
/// that do not match their archive (size, and SHA-256 unless --no-verify:
/// that downloads every archive), and, with a checkpoint database, each
/// checkpoint beyond the last archived record of its shard (records
/// acknowledged but in no archive). Checkpoints are compared only when the
/// range reaches today.
///
/// Exit code 0 only when nothing is wrong.
#[derive(Args)]
pub struct AuditArgs {
    #[command(flatten)]
    stream: StreamArgs,

    #[command(flatten)]
    range: ArchiveRangeArgs,

    /// The store's client name: whose archives and checkpoints.
    #[arg(long, env = "TRITON_CLIENT", default_value = DEFAULT_CLIENT_NAME, value_name = "NAME")]
    client_name: String,

    /// Checkpoint database to compare with (postgres://… or sqlite://…).
    #[arg(long, env = "TRITON_DB", hide_env_values = true, value_name = "URL")]
    checkpoint_db: Option<String>,

    /// Do not download archives to check their SHA-256 (sizes are still
    /// compared).
    #[arg(long)]
    no_verify: bool,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    /// Readable lines.
    Text,
    /// One JSON object.
    Json,
}

/// By hand, so that a logged `AuditArgs` never shows a database password.
impl std::fmt::Debug for AuditArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditArgs")
            .field("stream", &self.stream)
            .field("range", &self.range)
            .field("checkpoint_db", &self.checkpoint_db.as_deref().map(redact))
            .finish_non_exhaustive()
    }
}

/// Runs `triton audit`.
pub fn run(args: AuditArgs) -> CliResult {
    let config = args.stream.load()?;
    validate_client_name(&args.client_name)
        .map_err(|e| CliError::new(format!("--client-name: {e}")))?;
    let location = args.range.location()?;
    let query = args
        .range
        .query(&config.name, Some(args.client_name.clone()));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let reaches_today = query.end >= Date::from_unix(now as i64);
    multi_thread_runtime()?.block_on(async {
        let failed = |e: &dyn std::fmt::Display| CliError::new(e.to_string());
        let (checkpoints, intents) = match (&args.checkpoint_db, reaches_today) {
            (Some(url), true) => {
                let db = SqlCheckpoints::open_existing(url)
                    .await
                    .map_err(|e| failed(&e))?;
                let checkpoints: Vec<Checkpoint> = db
                    .list(&args.client_name)
                    .await
                    .map_err(|e| failed(&e))?
                    .into_iter()
                    .map(|s| s.checkpoint)
                    .collect();
                // A database of a version before upload intents has none.
                let intents = match db.intents(&args.client_name, &config.name).await {
                    Ok(intents) => intents,
                    Err(e) => {
                        tracing::debug!(error = %e, "no upload intents read");
                        Vec::new()
                    }
                };
                (checkpoints, intents)
            }
            (Some(_), false) => {
                eprintln!("triton: checkpoints not compared: the range ends before today");
                (Vec::new(), Vec::new())
            }
            (None, _) => (Vec::new(), Vec::new()),
        };
        let store = location.open(&config.region, S3Options::default()).await;
        let report = audit(store, &query, &checkpoints, &intents, !args.no_verify)
            .await
            .map_err(|e| CliError::new(e.to_string()))?;
        match args.format {
            Format::Json => println!(
                "{}",
                serde_json::to_string_pretty(&report).map_err(|e| CliError::new(e.to_string()))?
            ),
            Format::Text => print_text(&report, &checkpoints),
        }
        if report.is_clean() {
            Ok(())
        } else {
            Err(CliError::reported())
        }
    })
}

fn print_text(report: &AuditReport, checkpoints: &[Checkpoint]) {
    println!("{} archives, {} records", report.archives, report.records);
    for (shard, ranges) in &report.shards {
        let (Some(first), Some(last)) = (ranges.first(), ranges.last()) else {
            continue;
        };
        let checkpoint = checkpoints
            .iter()
            .find(|c| &c.shard == shard)
            .map_or_else(|| "none".to_string(), |c| c.sequence.to_string());
        println!(
            "{shard}: {} archives, {} to {}, checkpoint {checkpoint}",
            ranges.len(),
            first.min,
            last.max
        );
    }
    for f in &report.findings {
        match f {
            Finding::Overlap { shard, first, second } => println!(
                "OVERLAP {shard}: {} ({}..{}) and {} ({}..{})",
                first.archive, first.min, first.max, second.archive, second.min, second.max
            ),
            Finding::MissingSidecar { archive } => println!("NO SIDECAR {archive}"),
            Finding::Mismatch { archive, detail } => println!("MISMATCH {archive}: {detail}"),
            Finding::BadSidecar { sidecar, detail } => println!("BAD SIDECAR {sidecar}: {detail}"),
            Finding::Gap {
                shard,
                checkpoint,
                last_archived,
            } => println!(
                "GAP {shard}: checkpoint {checkpoint} is past the last archived record {last_archived}"
            ),
        }
    }
    for f in &report.foreign {
        println!(
            "FOREIGN {}: not an archive of this store; the archive meant for this key is {} ({}); left alone, not counted",
            f.key, f.moved_to, f.reason
        );
    }
    for key in &report.pending {
        println!("PENDING {key}: an upload in progress, or interrupted and finished when `triton store` starts");
    }
    if report.is_clean() {
        println!("clean");
    } else {
        println!("{} problems", report.findings.len());
    }
}
