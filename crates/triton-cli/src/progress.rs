//! Progress bars and spinners on standard error (indicatif).
//!
//! Drawn only when standard error is a terminal, never with `--quiet`
//! (one process-wide setting, made in `main`). A command whose records go
//! to standard output also calls [`disable_if_stdout_is_terminal`]: a bar
//! redrawn between the records would garble both. When progress is off the
//! constructors return hidden bars, so commands update them without asking.
//!
//! A finished bar stays on the screen with its final numbers
//! ([`ProgressBar::finish`] always draws), so even a run shorter than one
//! redraw interval shows what it did.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub use indicatif::ProgressBar;
use indicatif::ProgressStyle;

static DISABLED: AtomicBool = AtomicBool::new(false);

/// How often a spinner turns (and its elapsed time is redrawn) while
/// nothing else moves it.
const TICK: Duration = Duration::from_millis(120);

/// Sets the process-wide choice; `quiet` is `--quiet` (or TRITON_QUIET).
pub fn init(quiet: bool) {
    DISABLED.store(quiet, Ordering::Relaxed);
}

/// No progress from now on (`cat --no-progress`).
pub fn disable() {
    DISABLED.store(true, Ordering::Relaxed);
}

/// No progress when standard output is a terminal: for commands that print
/// records there.
pub fn disable_if_stdout_is_terminal() {
    if std::io::stdout().is_terminal() {
        disable();
    }
}

/// True when progress is drawn.
pub fn enabled() -> bool {
    !DISABLED.load(Ordering::Relaxed) && std::io::stderr().is_terminal()
}

fn style(template: &str) -> ProgressStyle {
    // The templates are constants of this module; a bad one is a bug that
    // every test drawing it would show, so fall back rather than fail.
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// A bar over `total` bytes (position: bytes done), with rate and time
/// left; `what` names the work (`decode`). The message shows after the
/// numbers.
pub fn bytes(total: u64, what: &'static str) -> ProgressBar {
    if !enabled() {
        return ProgressBar::hidden();
    }
    ProgressBar::new(total)
        .with_style(
            style("{prefix} [{bar:25}] {bytes}/{total_bytes} {binary_bytes_per_sec}, {eta} left {msg}")
                .progress_chars("=> "),
        )
        .with_prefix(what)
}

/// A bar over `total` bytes for input of known size, or a counting spinner
/// when the size is not known (a pipe).
pub fn bytes_or_spinner(total: Option<u64>, what: &'static str) -> ProgressBar {
    match total {
        Some(total) => bytes(total, what),
        None => byte_spinner(what),
    }
}

/// A spinner counting bytes (position), with rate and elapsed time.
pub fn byte_spinner(what: &'static str) -> ProgressBar {
    if !enabled() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner()
        .with_style(style(
            "{spinner} {prefix} {bytes} {binary_bytes_per_sec}, {elapsed} {msg}",
        ))
        .with_prefix(what);
    bar.enable_steady_tick(TICK);
    bar
}

/// A spinner with elapsed time for work of unknown length (`listing`); the
/// message says more.
pub fn spinner(what: &'static str) -> ProgressBar {
    if !enabled() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner()
        .with_style(style("{spinner} {prefix} {msg} ({elapsed})"))
        .with_prefix(what);
    bar.enable_steady_tick(TICK);
    bar
}

/// The size of `file` if it is a regular file (not a pipe or a device).
pub fn file_size(file: &std::fs::File) -> Option<u64> {
    file.metadata()
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.len())
}

/// The size of standard input if it is a regular file (`< input.json`).
pub fn stdin_size() -> Option<u64> {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        let fd = std::io::stdin().as_fd().try_clone_to_owned().ok()?;
        file_size(&std::fs::File::from(fd))
    }
    #[cfg(not(unix))]
    {
        None
    }
}
