//! The `triton` binary end to end, in one test binary: each module tests
//! one part of it, with the helpers of `util` (a temporary directory per
//! test, the binary run without the caller's configuration, the local
//! AWS servers).
//!
//! Some need the local Kinesis and S3 servers (`eval "$(scripts/services
//! start)"`), PostgreSQL (`TRITON_TEST_POSTGRES`) or Python
//! (`TRITON_PYTHON`); `scripts/test` provides them all.

mod util;

// `triton audit` of a local directory of archives.
mod audit;
// `triton cat` from the local S3 server and from a directory.
mod cat;
// Exit codes, output and one-line errors of the commands that need no
// server: decode, encode, put's input checks, stats, completions, man.
mod cli;
mod convert;
// `triton shards`, `put` and `tail` against the local Kinesis server.
mod kinesis;
// Progress bars on a terminal.
mod progress;
// Database passwords never reach the terminal.
mod secrets;
// `triton store` as a service: start-up checks, health, metrics.
mod service;
// `triton store` killed, restarted, faulted: every record archived once.
mod store;
