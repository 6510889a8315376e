//! `triton encode`: JSON lines to a `.tri` archive.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::Args;
use triton_core::archive::ArchiveWriter;
use triton_core::msgpack;

use super::common::json_line_error;
use crate::error::{CliError, CliResult};
use crate::progress::{self, ProgressBar};

/// Write JSON lines as a .tri archive.
///
/// Each non-blank line must be one JSON object; it becomes one record.
/// Numbers map as go-triton's writer maps Go values: integers to signed
/// MessagePack ints (unsigned only above 2^63-1), other numbers to float64,
/// strings to str, null to nil, arrays and objects as they are. (JSON cannot
/// say bin, float32 or timestamp, so `decode | encode` keeps those as their
/// JSON forms.)
///
/// A line that is not a JSON object stops the command with its line number;
/// with -o nothing is left at PATH (the archive is written to a temporary
/// file beside it and renamed into place only when complete).
///
/// Progress (bytes read, rate, time left) is drawn on standard error when
/// it is a terminal; --quiet turns it off.
#[derive(Args, Debug)]
pub struct EncodeArgs {
    /// JSON lines to read; none or "-" reads standard input.
    #[arg(value_name = "FILE")]
    input: Option<PathBuf>,

    /// Where to write the archive; standard output if not given (refused
    /// when standard output is a terminal).
    #[arg(short, long, value_name = "PATH")]
    output: Option<PathBuf>,
}

/// Reads JSON lines from `input` into `writer`: each line is written as
/// MessagePack straight from the JSON tokens (no values built), through
/// one reused line and one reused record buffer.
fn encode_lines<W: Write>(
    name: &str,
    mut input: impl BufRead,
    writer: &mut ArchiveWriter<W>,
) -> CliResult {
    let (mut line, mut record) = (String::new(), Vec::new());
    for line_no in 1.. {
        line.clear();
        let n = input
            .read_line(&mut line)
            .map_err(|e| CliError::io(format!("{name} line {line_no}"), e))?;
        if n == 0 {
            break;
        }
        let text = line.trim_end_matches(['\n', '\r']);
        if text.trim().is_empty() {
            continue;
        }
        record.clear();
        let mut de = serde_json::Deserializer::from_str(text);
        msgpack::transcode_record(&mut de, &mut record)
            .and_then(|()| de.end())
            .map_err(|e| json_line_error(name, line_no, &e))?;
        writer.write_raw(&record).map_err(|e| {
            CliError::new(format!("writing record from {name} line {line_no}: {e}"))
        })?;
    }
    Ok(())
}

/// A file at `<dir>/.<name>.<pid>.tmp` that is removed unless kept.
struct TempFile {
    path: PathBuf,
    keep: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_file(&self.path);
        }
    }
}

fn temp_beside(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "archive".into());
    let tmp = format!(".{name}.{}.tmp", std::process::id());
    match target.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(tmp),
        _ => PathBuf::from(tmp),
    }
}

fn encode_to_file(name: &str, input: impl BufRead, target: &Path) -> CliResult {
    let mut tmp = TempFile {
        path: temp_beside(target),
        keep: false,
    };
    let file = File::create(&tmp.path)
        .map_err(|e| CliError::io(format!("creating {}", tmp.path.display()), e))?;
    let mut writer = ArchiveWriter::new(io::BufWriter::with_capacity(256 * 1024, file))
        .with_threads(compression_threads());
    encode_lines(name, input, &mut writer)?;
    let buffered = writer
        .finish()
        .map_err(|e| CliError::new(format!("writing {}: {e}", target.display())))?;
    let file = buffered
        .into_inner()
        .map_err(|e| CliError::io(format!("writing {}", target.display()), e.into_error()))?;
    // The archive must be on disk before its name appears.
    file.sync_all()
        .map_err(|e| CliError::io(format!("syncing {}", target.display()), e))?;
    fs::rename(&tmp.path, target)
        .map_err(|e| CliError::io(format!("renaming into {}", target.display()), e))?;
    tmp.keep = true;
    Ok(())
}

/// One compression thread per core: the writer uses them only for
/// archives larger than a few blocks.
fn compression_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Runs `triton encode`.
pub fn run(args: EncodeArgs) -> CliResult {
    let (name, input, bar): (String, Box<dyn BufRead>, ProgressBar) = match &args.input {
        Some(p) if p.as_os_str() != "-" => {
            let f = File::open(p).map_err(|e| CliError::io(p.display(), e))?;
            let bar = progress::bytes_or_spinner(progress::file_size(&f), "encode");
            let input = BufReader::with_capacity(256 * 1024, bar.wrap_read(f));
            (p.display().to_string(), Box::new(input), bar)
        }
        _ => {
            let bar = progress::bytes_or_spinner(progress::stdin_size(), "encode");
            let input = BufReader::with_capacity(256 * 1024, bar.wrap_read(io::stdin()));
            ("<stdin>".to_string(), Box::new(input), bar)
        }
    };
    // An error drops the bar, which clears it before the error is printed.
    encode(&args, &name, input)?;
    bar.finish();
    Ok(())
}

fn encode(args: &EncodeArgs, name: &str, input: Box<dyn BufRead>) -> CliResult {
    match &args.output {
        Some(target) => encode_to_file(name, input, target),
        None => {
            let stdout = io::stdout();
            if stdout.is_terminal() {
                return Err(CliError::new(
                    "refusing to write a binary archive to a terminal; use -o PATH or redirect",
                ));
            }
            let mut writer =
                ArchiveWriter::new(io::BufWriter::with_capacity(256 * 1024, stdout.lock()))
                    .with_threads(compression_threads());
            encode_lines(name, input, &mut writer)?;
            writer
                .finish()
                .map_err(|e| CliError::io("writing to standard output", e.into()))?;
            Ok(())
        }
    }
}
