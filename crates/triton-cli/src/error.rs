//! The CLI's error: one readable line, and whether it is a closed pipe.

use std::fmt;
use std::io;

use triton_core::error::Report;

/// An error that ends a command. Its Display is the whole line printed after
/// `triton: `.
#[derive(Debug)]
pub struct CliError {
    message: String,
    broken_pipe: bool,
    reported: bool,
    code: u8,
}

impl CliError {
    /// An error with `message`.
    pub fn new(message: impl Into<String>) -> CliError {
        CliError {
            message: message.into(),
            broken_pipe: false,
            reported: false,
            code: 1,
        }
    }

    /// The same error with another exit code (1 by default).
    pub fn with_code(mut self, code: u8) -> CliError {
        self.code = code;
        self
    }

    /// The process's exit code for this error.
    pub fn code(&self) -> u8 {
        self.code
    }

    /// A failure whose details the command already printed (one line per
    /// bad input); only the exit code remains to be set.
    pub fn reported() -> CliError {
        CliError {
            reported: true,
            ..CliError::new("")
        }
    }

    /// True when nothing more should be printed.
    pub fn is_reported(&self) -> bool {
        self.reported
    }

    /// An I/O error, with what was being done; a closed pipe is remembered so
    /// that `triton decode f.tri | head` ends quietly.
    pub fn io(context: impl fmt::Display, e: io::Error) -> CliError {
        CliError {
            broken_pipe: e.kind() == io::ErrorKind::BrokenPipe,
            ..CliError::new(format!("{context}: {e}"))
        }
    }

    /// True when the reader of our output went away.
    pub fn is_broken_pipe(&self) -> bool {
        self.broken_pipe
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Any error, printed with its causes on one line (`what: why: why`).
impl<E: std::error::Error> From<E> for CliError {
    fn from(e: E) -> CliError {
        CliError::chain(&e)
    }
}

impl CliError {
    /// `e` with its causes on one line (`what: why: why`).
    pub fn chain(e: &dyn std::error::Error) -> CliError {
        CliError::new(Report(e).to_string())
    }
}

/// Result of a CLI command.
pub type CliResult<T = ()> = Result<T, CliError>;
