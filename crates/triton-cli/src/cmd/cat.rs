//! `triton cat`: archived records of a stream over a range of days, as JSON
//! lines.

use std::io::Write;

use clap::Args;
use triton_core::json::RawWriter;
use triton_core::key::validate_client_name;
use triton_core::source::{RecordSource, SourceError};
use triton_s3::{list_archives, ArchiveSource, ReadOptions, ReadProgress, S3Options};

use super::common::{list_error, multi_thread_runtime, ArchiveArgs};
use super::envelope;
use crate::error::{CliError, CliResult};
use crate::progress::{self, ProgressBar};

/// Print a stream's archived records for a range of days as JSON lines.
///
/// Reads the .tri archives that `triton store` wrote for the stream, day
/// by day from --start-date to --end-date (UTC, inclusive), in the order
/// they were written, and prints each record in the view of `triton
/// decode`. Archives are streamed: memory stays small whatever their size.
///
/// If more than one client (store process name) archived the stream in
/// the range, choose one with --client-name: their archives hold the same
/// records. Keys that are not archives (such as .metadata sidecars) are
/// skipped.
///
/// A damaged archive stops the output with an error naming the archive,
/// the record and the byte offset, after every record before the damage was
/// printed. With --skip-corrupt the other archives are printed too and the
/// damaged ones are listed at the end. Either way the exit code is 1 when an
/// archive could not be read whole.
#[derive(Args, Debug)]
pub struct CatArgs {
    #[command(flatten)]
    archives: ArchiveArgs,

    /// Only archives written by this client (the store's --client-name).
    #[arg(long, env = "TRITON_CLIENT", value_name = "NAME")]
    client_name: Option<String>,

    /// Print the archives that would be read (key and size in bytes,
    /// tab-separated) instead of their records.
    #[arg(long)]
    list: bool,

    /// Print each record inside an envelope saying where it came from:
    /// {"shard","sequence","arrival","partition_key","record"} for records
    /// of the live stream, {"archive","index","record"} for archived ones
    /// (archives keep records only).
    #[arg(long)]
    with_meta: bool,

    /// Go on with the next archive after a damaged one.
    #[arg(long)]
    skip_corrupt: bool,

    /// No progress (a spinner while listing, then archives, bytes, records,
    /// rate, time left) on standard error: the same as --quiet. It is shown
    /// only when standard error is a terminal and the records go to a file
    /// or a pipe.
    #[arg(long)]
    no_progress: bool,
}

/// Runs `triton cat`.
pub fn run(args: CatArgs) -> CliResult {
    let config = args.archives.stream.load()?;
    if let Some(c) = &args.client_name {
        validate_client_name(c).map_err(|e| CliError::new(format!("--client-name: {e}")))?;
    }
    let location = args.archives.location()?;
    let query = args.archives.query(&config.name, args.client_name.clone());
    // Two threads: archives are fetched and decoded beside the formatting.
    let runtime = multi_thread_runtime()?;
    runtime.block_on(async {
        let store = args.archives.open(&config, S3Options::default()).await?;
        // Only when the records go elsewhere: a line redrawn between them
        // would garble both.
        if args.no_progress {
            progress::disable();
        }
        progress::disable_if_stdout_is_terminal();
        let listing = progress::spinner("cat");
        listing.set_message(format!(
            "listing the archives from {} to {}",
            query.start, query.end
        ));
        let archives = list_archives(store.clone(), &query).await;
        listing.finish_and_clear();
        let archives = archives.map_err(list_error)?;
        if archives.is_empty() {
            eprintln!(
                "triton: no archives of {} from {} to {} in {location}",
                query.stream, query.start, query.end
            );
        }
        if args.list {
            let mut out = std::io::stdout().lock();
            for a in &archives {
                writeln!(out, "{}\t{}", a.key, a.size)
                    .map_err(|e| CliError::io("writing to standard output", e))?;
            }
            let total: u64 = archives.iter().map(|a| a.size).sum();
            eprintln!("{} archives, {total} bytes", archives.len());
            return Ok(());
        }
        let bar = if archives.is_empty() {
            ProgressBar::hidden()
        } else {
            progress::bytes(archives.iter().map(|a| a.size).sum(), "cat")
        };
        let source = ArchiveSource::new(store, archives, ReadOptions::default());
        print(source, args.skip_corrupt, args.with_meta, &bar).await
    })
}

/// Prints every record, then lists the damaged archives that were skipped
/// (also when a later error ends the output).
async fn print(
    mut source: ArchiveSource,
    skip_corrupt: bool,
    with_meta: bool,
    bar: &ProgressBar,
) -> CliResult {
    let mut skipped = Vec::new();
    let mut records = 0u64;
    let result = print_records(
        &mut source,
        skip_corrupt,
        with_meta,
        bar,
        &mut skipped,
        &mut records,
    )
    .await;
    let read = source.progress();
    // No request may be left in flight when the runtime shuts down (its
    // failure would be logged after our last line).
    source.close().await;
    match result {
        Ok(()) => {
            show(bar, read, records);
            bar.finish();
        }
        Err(_) => bar.finish_and_clear(),
    }
    if !skipped.is_empty() {
        eprintln!(
            "triton: {} damaged archive(s) were not read to the end:",
            skipped.len()
        );
        for s in &skipped {
            eprintln!("  {s}");
        }
    }
    match result {
        Ok(()) if skipped.is_empty() => Ok(()),
        Ok(()) => Err(CliError::reported()),
        Err(e) => Err(e),
    }
}

async fn print_records(
    source: &mut ArchiveSource,
    skip_corrupt: bool,
    with_meta: bool,
    bar: &ProgressBar,
    skipped: &mut Vec<String>,
    records: &mut u64,
) -> CliResult {
    let mut scratch = RawWriter::new();
    let mut buf = Vec::with_capacity(1 << 20);
    let stdout = std::io::stdout();
    let write_failed = |e| CliError::io("writing to standard output", e);
    loop {
        let batch = match source.next_batch(4096).await {
            Ok(Some(batch)) => batch,
            Ok(None) => break,
            Err(e @ SourceError::Corrupt { .. }) if skip_corrupt => {
                bar.suspend(|| eprintln!("triton: skipping the rest of {e}"));
                skipped.push(e.to_string());
                continue;
            }
            Err(e) => return Err(CliError::from(e)),
        };
        buf.clear();
        for r in &batch {
            // The decoder validated every record, so this cannot fail on
            // archive data; report rather than trust it.
            envelope::write_record(&mut buf, &mut scratch, r, with_meta)
                .map_err(|e| CliError::new(format!("{} {}: {e}", r.source, r.position)))?;
            buf.push(b'\n');
        }
        *records += batch.len() as u64;
        stdout.lock().write_all(&buf).map_err(write_failed)?;
        show(bar, source.progress(), *records);
    }
    stdout.lock().flush().map_err(write_failed)
}

/// Shows how far the reading is: bytes (the bar), archives and records.
fn show(bar: &ProgressBar, p: ReadProgress, records: u64) {
    if bar.is_hidden() {
        return;
    }
    let secs = bar.elapsed().as_secs_f64().max(1e-3);
    bar.set_length(p.bytes_total);
    bar.set_position(p.bytes_read);
    bar.set_message(format!(
        "archives {}/{}, {records} records ({:.0}/s)",
        p.archives_done,
        p.archives_total,
        records as f64 / secs
    ));
}
