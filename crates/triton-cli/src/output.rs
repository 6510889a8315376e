//! Buffered standard output that reports a closed pipe as such.

use std::io::{self, Write};

use crate::error::{CliError, CliResult};

/// Flush to the terminal or pipe once this much output has accumulated:
/// large enough that a write call costs little per record.
const FLUSH_AT: usize = 256 * 1024;

/// Standard output with a buffer the caller appends to directly.
pub struct Stdout {
    out: io::StdoutLock<'static>,
    /// Bytes waiting to be written.
    pub buf: Vec<u8>,
}

impl Stdout {
    /// Locks standard output for the life of the command.
    pub fn new() -> Stdout {
        Stdout {
            out: io::stdout().lock(),
            buf: Vec::with_capacity(FLUSH_AT + 64 * 1024),
        }
    }

    /// Writes the buffer out if it is full enough.
    pub fn maybe_flush(&mut self) -> CliResult {
        if self.buf.len() >= FLUSH_AT {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes everything buffered.
    pub fn flush(&mut self) -> CliResult {
        let r = self
            .out
            .write_all(&self.buf)
            .and_then(|()| self.out.flush());
        self.buf.clear();
        r.map_err(|e| CliError::io("writing to standard output", e))
    }
}
