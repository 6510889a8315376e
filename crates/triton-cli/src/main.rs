//! The `triton` command line: glue between clap and the triton crates.

mod cmd;
mod error;
mod progress;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

use crate::error::CliResult;

/// Archive and replay event streams: Kinesis streams of MessagePack records,
/// stored in S3 as .tri files (Snappy framed MessagePack).
///
/// Logging goes to standard error, at level info for `store` and warn for
/// the other commands; set RUST_LOG (e.g. RUST_LOG=debug or
/// RUST_LOG=triton_core=trace) to choose.
#[derive(Parser, Debug)]
#[command(name = "triton", version, about, long_about)]
struct Cli {
    /// Log format on standard error.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "TRITON_LOG_FORMAT")]
    log_format: LogFormat,

    /// No progress bars or spinners on standard error (they are drawn only
    /// when standard error is a terminal). Errors and summaries still print.
    #[arg(
        short,
        long,
        global = true,
        env = "TRITON_QUIET",
        value_parser = clap::builder::FalseyValueParser::new()
    )]
    quiet: bool,

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
    // Boxed: its flags outweigh every other command's.
    Store(Box<cmd::store::StoreArgs>),
    Cat(cmd::cat::CatArgs),
    Audit(cmd::audit::AuditArgs),
    Tail(cmd::tail::TailArgs),
    Replay(cmd::replay::ReplayArgs),
    Put(cmd::put::PutArgs),
    Shards(cmd::shards::ShardsArgs),
    Stats(cmd::stats::StatsArgs),
    Leases(cmd::leases::LeasesArgs),
    Decode(cmd::decode::DecodeArgs),
    Convert(cmd::convert::ConvertArgs),
    Schema(cmd::convert::SchemaArgs),
    Encode(cmd::encode::EncodeArgs),
    Completions(cmd::completions::CompletionsArgs),
    Man(cmd::man::ManArgs),
}

/// A service logs what it does; a tool that prints data only what went
/// wrong.
fn init_logging(format: LogFormat, service: bool) {
    // aws-config logs each credential provider that failed; a missing
    // credential is reported in one line of our own (details at debug).
    let default = if service {
        "info,aws_config=error"
    } else {
        "warn,aws_config=error"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
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
        Command::Convert(args) => cmd::convert::run(args),
        Command::Schema(args) => cmd::convert::run_schema(args),
        Command::Encode(args) => cmd::encode::run(args),
        Command::Stats(args) => cmd::stats::run(args),
        Command::Leases(args) => cmd::leases::run(args),
        Command::Store(args) => cmd::store::run(*args),
        Command::Shards(args) => cmd::shards::run(args),
        Command::Put(args) => cmd::put::run(args),
        Command::Tail(args) => cmd::tail::run(args),
        Command::Replay(args) => cmd::replay::run(args),
        Command::Completions(args) => cmd::completions::run(args, Cli::command()),
        Command::Man(args) => cmd::man::run(args, Cli::command()),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    progress::init(cli.quiet);
    let format = cli.log_format;
    init_logging(format, matches!(cli.command, Command::Store(_)));
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of our output went away (`triton decode | head`): not an error.
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) if e.is_reported() => ExitCode::from(e.code()),
        Err(e) => {
            match format {
                LogFormat::Text => eprintln!("triton: {e}"),
                // The same shape as the log lines, so that a log pipeline
                // sees why the process ended.
                LogFormat::Json => eprintln!(
                    "{}",
                    serde_json::json!({
                        "timestamp": jiff::Timestamp::now().to_string(),
                        "level": "ERROR",
                        "fields": { "message": e.to_string(), "exit_code": e.code() },
                        "target": "triton",
                    })
                ),
            }
            ExitCode::from(e.code())
        }
    }
}
