//! `triton decode`: `.tri` archives to JSON lines.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::thread;
use triton_core::error::Report;

use clap::Args;
use triton_core::archive::{ArchiveError, ArchiveErrorKind, ArchiveReader};
use triton_core::json::{self, LinesError};

use crate::error::{CliError, CliResult};
use crate::progress::{self, ProgressBar};

/// Print the records of .tri archives as JSON lines.
///
/// One JSON object per record, keys sorted. The view matches go-triton's
/// `triton cat` for every value it could print: integers exact, float32 in
/// its shortest float32 form, bin as padded base64, timestamps (ext 5 and
/// ext -1) as RFC 3339 UTC with nanoseconds, other ext types as
/// {"Data":"<base64>","Type":N}, NaN and infinities as the strings "NaN",
/// "+Inf", "-Inf", invalid UTF-8 as U+FFFD.
///
/// Records before a damaged spot are printed; the error names the file and
/// the byte offset, the remaining files are still decoded, and the exit code
/// is 1.
///
/// Progress (bytes, rate, time left) is drawn on standard error when it is
/// a terminal and standard output is not; --quiet turns it off.
#[derive(Args, Debug)]
pub struct DecodeArgs {
    /// Archives to decode, in order; none or "-" reads standard input.
    #[arg(value_name = "FILE")]
    files: Vec<PathBuf>,
}

/// More formatting threads than this gain nothing: the reading thread is
/// then the bottleneck.
const MAX_THREADS: usize = 4;

fn is_stdin(p: &Path) -> bool {
    p.as_os_str() == "-"
}

/// True for an input that does not even begin as an archive.
fn not_an_archive(e: &ArchiveError) -> bool {
    e.offset == 0
        && matches!(
            e.kind,
            ArchiveErrorKind::MissingStreamIdentifier { .. }
                | ArchiveErrorKind::BadStreamIdentifier
        )
}

/// Decodes one input to `out`, counting its bytes on `bar`; returns the
/// error line if the input is bad.
fn decode_one(
    name: &str,
    input: impl Read + Send + 'static,
    out: &mut impl Write,
    bar: &ProgressBar,
) -> CliResult<Option<String>> {
    // Decompression runs on a helper thread and JSON formatting on one
    // thread per core, so the reading thread only delimits records.
    let mut reader = ArchiveReader::with_read_ahead(bar.wrap_read(input))
        .map_err(|e| CliError::new(format!("cannot start a read-ahead thread: {e}")))?;
    let threads = thread::available_parallelism().map_or(1, |n| n.get().min(MAX_THREADS));
    // Every line before a failure is written (and flushed) before it returns.
    match json::write_lines(&mut reader, out, threads) {
        Ok(_) => Ok(None),
        Err(LinesError::Write(e)) => Err(CliError::io("writing to standard output", e)),
        Err(LinesError::Archive(e)) if not_an_archive(&e) => Ok(Some(format!(
            "{name} is not a .tri archive (it does not start with the Snappy framing stream identifier)"
        ))),
        Err(e) => Ok(Some(format!("{name}: {}", Report(&e)))),
    }
}

/// Runs `triton decode`.
pub fn run(args: DecodeArgs) -> CliResult {
    let mut files = args.files;
    if files.is_empty() {
        files.push(PathBuf::from("-"));
    }
    // Records go to standard output: no bar between them on a terminal.
    progress::disable_if_stdout_is_terminal();
    let bar = progress::bytes_or_spinner(total_size(&files), "decode");
    let mut out = io::stdout().lock();
    let mut failed = false;
    for path in &files {
        if files.len() > 1 {
            bar.set_message(path.display().to_string());
        }
        let before = bar.position();
        let failure = if is_stdin(path) {
            decode_one("<stdin>", io::stdin(), &mut out, &bar)?
        } else {
            let name = path.display().to_string();
            match File::open(path) {
                Ok(f) => {
                    let size = progress::file_size(&f);
                    let failure = decode_one(&name, f, &mut out, &bar)?;
                    // A file that failed part way counts whole, so the bar
                    // still ends at the total.
                    if let Some(size) = size {
                        bar.set_position(before + size);
                    }
                    failure
                }
                Err(e) => Some(format!("{name}: {}", Report(&e))),
            }
        };
        if let Some(line) = failure {
            bar.suspend(|| eprintln!("triton: {line}"));
            failed = true;
        }
    }
    if failed {
        bar.abandon();
        Err(CliError::reported())
    } else {
        bar.set_message("");
        bar.finish();
        Ok(())
    }
}

/// The bytes of all `files`, when each is a regular file (not standard
/// input or a pipe); files that cannot be opened count 0.
fn total_size(files: &[PathBuf]) -> Option<u64> {
    files.iter().try_fold(0u64, |sum, path| {
        if is_stdin(path) {
            return None;
        }
        match std::fs::metadata(path) {
            Ok(m) if m.is_file() => Some(sum + m.len()),
            Ok(_) => None,
            Err(_) => Some(sum),
        }
    })
}
