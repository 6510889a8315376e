//! The `triton` command line: glue between clap and the triton crates.

mod cmd;
mod error;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::error::CliResult;

/// Archive and replay event streams: Kinesis streams of MessagePack records,
/// stored in S3 as .tri files (Snappy framed MessagePack).
///
/// Logging goes to standard error; set RUST_LOG (e.g. RUST_LOG=debug or
/// RUST_LOG=triton_core=trace) to see more.
#[derive(Parser, Debug)]
#[command(name = "triton", version, about, long_about)]
struct Cli {
    /// Log format on standard error.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "TRITON_LOG_FORMAT")]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    Store(cmd::store::StoreArgs),
    Cat(cmd::cat::CatArgs),
    Audit(cmd::audit::AuditArgs),
    Tail(cmd::tail::TailArgs),
    Put(cmd::put::PutArgs),
    Shards(cmd::shards::ShardsArgs),
    Stats(cmd::stats::StatsArgs),
    Leases(cmd::leases::LeasesArgs),
    Decode(cmd::decode::DecodeArgs),
    Encode(cmd::encode::EncodeArgs),
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal, never in a log file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn run(cli: Cli) -> CliResult {
    match cli.command {
        Command::Audit(args) => cmd::audit::run(args),
        Command::Cat(args) => cmd::cat::run(args),
        Command::Decode(args) => cmd::decode::run(args),
        Command::Encode(args) => cmd::encode::run(args),
        Command::Stats(args) => cmd::stats::run(args),
        Command::Leases(args) => cmd::leases::run(args),
        Command::Store(args) => cmd::store::run(args),
        Command::Shards(args) => cmd::shards::run(args),
        Command::Put(args) => cmd::put::run(args),
        Command::Tail(args) => cmd::tail::run(args),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of our output went away (`triton decode | head`): not an error.
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) if e.is_reported() => ExitCode::from(e.code()),
        Err(e) => {
            eprintln!("triton: {e}");
            ExitCode::from(e.code())
        }
    }
}
