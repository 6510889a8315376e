//! `triton decode`: `.tri` archives to JSON lines.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::thread;

use clap::Args;
use triton_core::archive::ArchiveReader;
use triton_core::json::{self, LinesError};

use crate::error::{CliError, CliResult};

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

/// Decodes one input to `out`; returns the error line if the input is bad.
fn decode_one(
    name: &str,
    input: impl Read + Send + 'static,
    out: &mut impl Write,
) -> CliResult<Option<String>> {
    // Decompression runs on a helper thread and JSON formatting on one
    // thread per core, so the reading thread only delimits records.
    let mut reader = ArchiveReader::with_read_ahead(input)
        .map_err(|e| CliError::new(format!("cannot start a read-ahead thread: {e}")))?;
    let threads = thread::available_parallelism().map_or(1, |n| n.get().min(MAX_THREADS));
    // Every line before a failure is written (and flushed) before it returns.
    match json::write_lines(&mut reader, out, threads) {
        Ok(_) => Ok(None),
        Err(LinesError::Write(e)) => Err(CliError::io("writing to standard output", e)),
        Err(e) => Ok(Some(format!("{name}: {e}"))),
    }
}

/// Runs `triton decode`.
pub fn run(args: DecodeArgs) -> CliResult {
    let mut files = args.files;
    if files.is_empty() {
        files.push(PathBuf::from("-"));
    }
    let mut out = io::stdout().lock();
    let mut failed = false;
    for path in &files {
        let failure = if is_stdin(path) {
            decode_one("<stdin>", io::stdin(), &mut out)?
        } else {
            let name = path.display().to_string();
            match File::open(path) {
                Ok(f) => decode_one(&name, f, &mut out)?,
                Err(e) => Some(format!("{name}: {e}")),
            }
        };
        if let Some(line) = failure {
            eprintln!("triton: {line}");
            failed = true;
        }
    }
    if failed {
        Err(CliError::reported())
    } else {
        Ok(())
    }
}
