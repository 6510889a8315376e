//! `triton decode`: `.tri` archives to JSON lines.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use clap::Args;
use triton_core::archive::ArchiveReader;
use triton_core::json;

use crate::error::{CliError, CliResult};
use crate::output::Stdout;

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

fn is_stdin(p: &Path) -> bool {
    p.as_os_str() == "-"
}

/// Decodes one input to `out`; returns the error line if the input is bad.
fn decode_one(name: &str, input: impl Read, out: &mut Stdout) -> CliResult<Option<String>> {
    let mut reader = ArchiveReader::new(input);
    let mut scratch = json::RawWriter::new();
    loop {
        // Raw bytes straight to JSON: no values are built per record.
        let index = reader.records_read();
        match reader.next_raw() {
            Ok(Some(raw)) => {
                if let Err(e) = json::write_raw_record(&mut out.buf, &mut scratch, raw) {
                    return Ok(Some(format!("{name}: record {index}: {e}")));
                }
                out.buf.push(b'\n');
                out.maybe_flush()?;
            }
            Ok(None) => return Ok(None),
            Err(e) => return Ok(Some(format!("{name}: {e}"))),
        }
    }
}

/// Runs `triton decode`.
pub fn run(args: DecodeArgs) -> CliResult {
    let mut files = args.files;
    if files.is_empty() {
        files.push(PathBuf::from("-"));
    }
    let mut out = Stdout::new();
    let mut failed = false;
    for path in &files {
        let failure = if is_stdin(path) {
            decode_one("<stdin>", io::stdin().lock(), &mut out)?
        } else {
            let name = path.display().to_string();
            match File::open(path) {
                Ok(f) => decode_one(&name, f, &mut out)?,
                Err(e) => Some(format!("{name}: {e}")),
            }
        };
        if let Some(line) = failure {
            // Records already decoded go out before the error is reported.
            out.flush()?;
            eprintln!("triton: {line}");
            failed = true;
        }
    }
    out.flush()?;
    if failed {
        Err(CliError::reported())
    } else {
        Ok(())
    }
}
