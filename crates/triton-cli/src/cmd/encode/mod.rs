//! `triton encode`: JSON lines to a `.tri` archive.

mod lines;

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, IsTerminal};
use std::path::{Path, PathBuf};

use clap::Args;
use triton_core::archive::ArchiveWriter;

use self::lines::encode_lines;
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

fn encode_to_file(name: &str, input: &mut dyn BufRead, target: &Path) -> CliResult {
    let mut tmp = TempFile {
        path: temp_beside(target),
        keep: false,
    };
    let file = File::create(&tmp.path)
        .map_err(|e| CliError::io(format!("creating {}", tmp.path.display()), e))?;
    let mut writer =
        ArchiveWriter::new(io::BufWriter::with_capacity(256 * 1024, file)).with_threads(threads());
    encode_lines(name, input, &mut writer, threads())?;
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

/// One parsing and one compression thread per core (the writer uses its
/// threads only for archives larger than a few blocks).
fn threads() -> usize {
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

fn encode(args: &EncodeArgs, name: &str, mut input: Box<dyn BufRead>) -> CliResult {
    match &args.output {
        Some(target) => encode_to_file(name, &mut *input, target),
        None => {
            let stdout = io::stdout();
            if stdout.is_terminal() {
                return Err(CliError::new(
                    "refusing to write a binary archive to a terminal; use -o PATH or redirect",
                ));
            }
            let mut writer =
                ArchiveWriter::new(io::BufWriter::with_capacity(256 * 1024, stdout.lock()))
                    .with_threads(threads());
            encode_lines(name, &mut *input, &mut writer, threads())?;
            writer
                .finish()
                .map_err(|e| CliError::io("writing to standard output", e.into()))?;
            Ok(())
        }
    }
}
