//! `triton audit`: what a stream's archives cover, and what is wrong.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};
use triton_core::error::Report;

use clap::{Args, ValueEnum};
use triton_checkpoint::{redact, SqlCheckpoints};
use triton_core::checkpoint::{Checkpoint, CheckpointStore, IntentStore};
use triton_core::key::{validate_client_name, ArchiveKey};
use triton_core::time::Date;
use triton_kinesis::KinesisReplay;
use triton_s3::archiver::ArchiverOptions;
use triton_s3::audit::{audit, audit_archives, AuditReport, Checkpointed, Finding};
use triton_s3::repair::{repair, RepairReport};
use triton_s3::{list_with_sidecars, ListError, Location, S3Options};

use super::common::{list_error, multi_thread_runtime, ArchiveArgs};
use super::convert::check::check_converted;
use crate::error::{CliError, CliResult};

/// Check that a stream's archives hold every record exactly once.
///
/// Reads the metadata sidecar of every archive of the stream from
/// --start-date to --end-date (as `triton cat` finds them) and walks, shard
/// by shard, the chain the sidecars carry: each archive says which record
/// (and which archive) its records continue from, or how reading began.
/// Reported: GAP (a link to an archive that is not there, or that does not
/// end where the link says: its key and the missing range), RESTARTED (a
/// chain that begins again after earlier archives), OVERLAP (records
/// archived twice), MISSING (a sidecar whose archive is gone), archives
/// without a sidecar, sidecars that do not match
/// their archive (size, and SHA-256 unless --no-verify: that downloads
/// every archive), missing or mismatched dead-letter archives, archives
/// without a chain (go-triton's: UNVERIFIABLE), and, with a checkpoint
/// database, checkpoints that are not where the archives end (compared
/// only when the range reaches today). A first archive whose link points
/// before --start-date is a BOUNDARY, not a gap.
///
/// No --client-name audits the one client whose archives are in the range
/// (as `triton cat` reads them); several clients need --client-name.
///
/// --repair puts back what is missing, from the Kinesis stream while it
/// still holds the records: each missing archive is read again (exactly
/// the range its neighbours' links, or its remaining sidecar, say) and
/// uploaded create-only under its own key, with its sidecar; so are missing
/// dead-letter archives, and lost sidecars are written again from their
/// archive once the records read again are the archive's own. Records the
/// stream no longer holds are reported LOST and left alone. Repair never
/// writes over an archive and never moves a checkpoint; it audits again
/// after each round.
///
/// Exit codes: 0 clean (with --repair: clean once repaired, nothing lost);
/// 1 problems found (with --repair: still there after it, or records
/// lost; also: no archive at all, unless --allow-empty; archives that
/// cannot be verified); 2 the audit or a repair could not run (listing,
/// reading, the database or the stream failed).
///
/// While it lists, checks and repairs, a spinner with the elapsed time is
/// drawn on standard error when it is a terminal; --quiet turns it off.
#[derive(Args)]
pub struct AuditArgs {
    #[command(flatten)]
    archives: ArchiveArgs,

    /// The store's client name: whose archives and checkpoints [default:
    /// the one client with archives in the range].
    #[arg(long, env = "TRITON_CLIENT", value_name = "NAME")]
    client_name: Option<String>,

    /// Checkpoint database to compare with (postgres://… or sqlite://…).
    #[arg(long, env = "TRITON_DB", hide_env_values = true, value_name = "URL")]
    checkpoint_db: Option<String>,

    /// Do not download archives to check their SHA-256 (sizes are still
    /// compared).
    #[arg(long)]
    no_verify: bool,

    /// A range without any archive is clean (exit 0) instead of exit 1.
    #[arg(long)]
    allow_empty: bool,

    /// Put back missing archives, dead-letter archives and sidecars from
    /// the Kinesis stream (see above), then audit again.
    #[arg(long)]
    repair: bool,

    /// With --repair: directory for archives being rebuilt [default: the
    /// system's temporary directory].
    #[arg(long, value_name = "DIR", requires = "repair")]
    spool_dir: Option<PathBuf>,

    /// Also check the Parquet dataset `triton convert --to DEST` wrote for
    /// the range: from its partitions' manifests, every archive converted
    /// as it is now (size, and the SHA-256 and record count of its sidecar),
    /// none converted partly (damaged), none that is gone, every file
    /// there. Problems are exit 1 as the archives' are.
    #[arg(long, value_name = "DEST", conflicts_with = "repair")]
    converted: Option<String>,

    /// Output format. With --repair, JSON is one object: the first audit
    /// (`before`), each round's repair (`repairs`) and the last audit
    /// (`after`).
    #[arg(long = "output", visible_alias = "format", env = "TRITON_OUTPUT", value_enum, default_value_t = Format::Text)]
    format: Format,
}

/// Rounds of repair at most: a round can reveal what the next puts back
/// (an archive missing before a missing one).
const REPAIR_ROUNDS: usize = 5;

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
            .field("archives", &self.archives)
            .field("checkpoint_db", &self.checkpoint_db.as_deref().map(redact))
            .finish_non_exhaustive()
    }
}

/// Runs `triton audit`.
pub fn run(args: AuditArgs) -> CliResult {
    let config = args.archives.stream.load()?;
    if let Some(client) = &args.client_name {
        validate_client_name(client).map_err(|e| CliError::new(format!("--client-name: {e}")))?;
    }
    // A bad --bucket is an error before anything is opened.
    args.archives.location()?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    multi_thread_runtime()?.block_on(async {
        // Anything that keeps the audit from running is exit 2.
        let failed = |e: &dyn std::error::Error| CliError::chain(e).with_code(2);
        let mut query = args.archives.query(&config.name, args.client_name.clone());
        let reaches_today = query.end >= Date::from_unix(now as i64);
        // The database first: a bad URL is an error whatever the bucket holds.
        let db = match (&args.checkpoint_db, reaches_today) {
            (Some(url), true) => Some(
                SqlCheckpoints::open_existing(url)
                    .await
                    .map_err(|e| failed(&e))?,
            ),
            (Some(_), false) => {
                eprintln!("triton: checkpoints not compared: the range ends before today");
                None
            }
            (None, _) => None,
        };
        let store = args
            .archives
            .open(&config, S3Options::default())
            .await
            .map_err(|e| e.with_code(2))?;
        let listing = with_spinner(
            format!("listing the archives from {} to {}", query.start, query.end),
            list_with_sidecars(store.clone(), &query),
        )
        .await
        .map_err(|e| match e {
            ListError::MixedClients { .. } => list_error(e).with_code(2),
            e => failed(&e),
        })?;
        // Sidecars alone (their archives gone) are something to audit too.
        let first = listing.archives.first().map(|a| a.key.clone()).or_else(|| {
            listing
                .sidecars
                .iter()
                .find_map(|k| ArchiveKey::parse(k).ok())
        });
        let Some(first) = first else {
            if args.allow_empty {
                println!("0 archives: nothing to audit");
                return Ok(());
            }
            return Err(CliError::new(format!(
                "nothing to audit: no archive of {} from {} to {}{} (--allow-empty makes that clean)",
                query.stream,
                query.start,
                query.end,
                query.client.as_deref().map(|c| format!(" by client {c}")).unwrap_or_default()
            )));
        };
        let client = first.client().to_owned();
        query.client = Some(client.clone());
        let (checkpoints, holding, intents) = match &db {
            Some(db) => {
                let checkpoints: Vec<Checkpoint> = db
                    .list(&client)
                    .await
                    .map_err(|e| failed(&e))?
                    .into_iter()
                    .map(|s| s.checkpoint)
                    .collect();
                // A database of a version before upload intents (or the
                // archives of checkpoints) has none.
                let intents = db.intents(&client, &config.name).await.unwrap_or_else(|e| {
                    tracing::debug!(error = %Report(&e), "no upload intents read");
                    Vec::new()
                });
                let holding = db
                    .checkpoint_archives(&client, &config.name)
                    .await
                    .unwrap_or_else(|e| {
                        tracing::debug!(error = %Report(&e), "no archives of checkpoints read");
                        Vec::new()
                    });
                (checkpoints, holding, intents)
            }
            None => Default::default(),
        };
        let db = Checkpointed {
            checkpoints: &checkpoints,
            archives: &holding,
            intents: &intents,
        };
        let verify = !args.no_verify;
        let checking = format!(
            "checking {} archives{}",
            listing.archives.len(),
            if verify { " (downloading each to verify its SHA-256)" } else { "" }
        );
        let listed = args.converted.as_ref().map(|_| listing.clone());
        let report = with_spinner(checking, audit_archives(store.clone(), &query, listing, &db, verify))
            .await
            .map_err(|e| failed(&e))?;
        if !args.repair {
            let conversion = match (&args.converted, &listed) {
                (Some(dest), Some(listed)) => {
                    let location = Location::parse(dest)
                        .map_err(|e| CliError::new(format!("--converted: {e}")))?;
                    let dest = config
                        .open_store(&location, args.archives.bucket.bucket_region.as_deref(), S3Options::default())
                        .await
                        .map_err(|e| e.with_code(2))?;
                    let range = (query.start, query.end);
                    let checking = check_converted(&*store, &*dest, &config.name, range, listed);
                    Some(with_spinner("checking the Parquet dataset".into(), checking).await?)
                }
                _ => None,
            };
            match args.format {
                Format::Json => {
                    let mut document = serde_json::to_value(&report).map_err(|e| failed(&e))?;
                    if let (Some(c), Some(map)) = (&conversion, document.as_object_mut()) {
                        map.insert("conversion".into(), serde_json::to_value(c).map_err(|e| failed(&e))?);
                    }
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&document).map_err(|e| failed(&e))?
                    );
                }
                Format::Text => {
                    print_text(&report, &checkpoints);
                    if let Some(c) = &conversion {
                        c.print_text();
                    }
                }
            }
            let converted_clean = conversion.as_ref().is_none_or(|c| c.is_clean());
            return if report.is_clean() && converted_clean {
                Ok(())
            } else {
                Err(CliError::reported())
            };
        }
        if let Format::Text = args.format {
            print_text(&report, &checkpoints);
        }
        let kinesis = config.kinesis().await?;
        let replay = KinesisReplay::new(kinesis, config.name.clone());
        let mut options = ArchiverOptions::new(config.name.clone(), client);
        if let Some(dir) = &args.spool_dir {
            options.spool_dir = dir.clone();
        }
        let mut before = None;
        let mut after = report;
        let mut repairs: Vec<RepairReport> = Vec::new();
        for _ in 0..REPAIR_ROUNDS {
            if after.is_clean() {
                break;
            }
            let repaired = with_spinner("repairing".into(), repair(store.clone(), &replay, &after, &options))
                .await
                .map_err(|e| failed(&e))?;
            if let Format::Text = args.format {
                print_repair(&repaired);
            }
            let progress = !repaired.repaired.is_empty();
            let failed_now = !repaired.failed.is_empty();
            repairs.push(repaired);
            let again = with_spinner("auditing again".into(), audit(store.clone(), &query, &db, verify))
                .await
                .map_err(|e| failed(&e))?;
            before.get_or_insert(std::mem::replace(&mut after, again));
            if after.is_clean() || !progress || failed_now {
                break;
            }
        }
        let before = before.unwrap_or_else(|| after.clone());
        let lost = repairs.iter().any(|r| !r.lost.is_empty());
        let failures = repairs.iter().flat_map(|r| &r.failed).count();
        match args.format {
            Format::Json => {
                let document = serde_json::json!({
                    "before": before,
                    "repairs": repairs,
                    "after": after,
                });
                println!(
                    "{}",
                    serde_json::to_string_pretty(&document).map_err(|e| failed(&e))?
                );
            }
            Format::Text if repairs.is_empty() => {}
            Format::Text => {
                println!("after repair:");
                print_text(&after, &checkpoints);
            }
        }
        if failures > 0 {
            Err(CliError::new(format!(
                "the repair of {failures} archives failed (FAILED above); what was put back stays"
            ))
            .with_code(2))
        } else if after.is_clean() && !lost {
            Ok(())
        } else {
            Err(CliError::reported())
        }
    })
}

/// Awaits `work` under a spinner with elapsed time saying `what`, cleared
/// when it ends (the library reports no progress of its own).
async fn with_spinner<T>(what: String, work: impl std::future::Future<Output = T>) -> T {
    let spinner = crate::progress::spinner("audit");
    spinner.set_message(what);
    let out = work.await;
    spinner.finish_and_clear();
    out
}

fn print_repair(r: &RepairReport) {
    for done in &r.repaired {
        println!(
            "REPAIRED {} {} ({} records)",
            done.what, done.key, done.records
        );
    }
    for lost in &r.lost {
        println!(
            "LOST {} of {}: {}; no longer in the stream, left alone",
            lost.shard, lost.archive, lost.detail
        );
    }
    for left in &r.left {
        println!("LEFT {}: {}", left.archive, left.reason);
    }
    for failed in &r.failed {
        println!("FAILED {}: {}", failed.archive, failed.reason);
    }
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
    for b in &report.boundaries {
        println!(
            "BOUNDARY {}: {} continues from {}{}, before the range (not a gap)",
            b.shard,
            b.archive,
            b.after,
            b.after_archive
                .as_deref()
                .map(|k| format!(" in {k}"))
                .unwrap_or_default()
        );
    }
    for f in &report.findings {
        print_finding(f);
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

fn print_finding(f: &Finding) {
    let or_none = |o: &Option<String>| o.clone().unwrap_or_else(|| "none".into());
    match f {
        Finding::Gap {
            shard,
            missing_archive,
            after,
            through,
            previous,
            next,
            ..
        } => println!(
            "GAP {shard}: missing {} (records {}{through}), between {} and {next}",
            missing_archive.as_deref().unwrap_or("an unnamed archive"),
            after
                .as_deref()
                .map_or_else(|| "up to ".to_owned(), |a| format!("after {a} through ")),
            or_none(previous),
        ),
        Finding::Restarted {
            shard,
            archive,
            start,
            previous,
        } => println!(
            "RESTARTED {shard}: {archive} starts again at {start} after {previous}; records between may be missing"
        ),
        Finding::Overlap {
            shard,
            first,
            second,
        } => println!(
            "OVERLAP {shard}: {} ({}..{}) and {} ({}..{})",
            first.archive, first.min, first.max, second.archive, second.min, second.max
        ),
        Finding::MissingSidecar { archive, links } => println!(
            "NO SIDECAR {archive}{}",
            links
                .iter()
                .map(|l| format!(
                    "; by its neighbours it holds {} records {}through {}",
                    l.shard,
                    l.after
                        .as_deref()
                        .map(|a| format!("after {a} "))
                        .unwrap_or_default(),
                    l.through
                ))
                .collect::<String>()
        ),
        Finding::Mismatch { archive, detail } => println!("MISMATCH {archive}: {detail}"),
        Finding::MissingArchive { archive, records } => println!(
            "MISSING {archive}: its sidecar remains ({records} records), the archive is gone"
        ),
        Finding::BadSidecar { sidecar, detail } => println!("BAD SIDECAR {sidecar}: {detail}"),
        Finding::DeadLetters {
            archive,
            dead_letters,
            detail,
        } => println!("DEAD LETTERS {dead_letters} of {archive}: {detail}"),
        Finding::Unverifiable { archive } => println!(
            "UNVERIFIABLE {archive}: its sidecar carries no chain (go-triton or an older triton)"
        ),
        Finding::CheckpointAhead {
            shard,
            checkpoint,
            last_archived,
            missing_archive,
            ..
        } => println!(
            "GAP {shard}: checkpoint {checkpoint} is past {}{}",
            last_archived.as_deref().map_or_else(
                || "every archive of the range (none holds the shard)".to_owned(),
                |l| format!("the last archived record {l}")
            ),
            missing_archive
                .as_deref()
                .map(|k| format!("; it is in {k}, which is missing"))
                .unwrap_or_default()
        ),
        Finding::CheckpointBehind {
            shard,
            checkpoint,
            last_archived,
        } => println!(
            "CHECKPOINT BEHIND {shard}: checkpoint {checkpoint}, archived through {last_archived}, no upload pending"
        ),
    }
}
