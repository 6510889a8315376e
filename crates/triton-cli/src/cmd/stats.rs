//! `triton stats`: the age of each shard's checkpoint.

use std::io::Write;

use clap::{Args, ValueEnum};
use triton_checkpoint::{redact, SqlCheckpoints, DEFAULT_URL};
use triton_core::checkpoint::{unix_now, CheckpointStore};
use triton_core::key::validate_client_name;

use crate::error::{CliError, CliResult};

/// Print how old each shard's checkpoint is.
///
/// One line per shard of every stream the client has checkpoints for, in
/// Graphite's plaintext format as go-triton printed it:
///
///   <client>.<stream>.<shard>.age <seconds since the last save> <unix now>
///
/// so that `triton stats ... | nc graphite 2003` feeds a dashboard. A shard
/// whose age keeps growing has a consumer that stopped. The database is only
/// read: a missing database or table is an error (exit code 1).
#[derive(Args)]
pub struct StatsArgs {
    /// The consumer whose checkpoints to show (`store` for `triton store`).
    /// No `-`: archive names use it as a separator.
    #[arg(long, env = "TRITON_CLIENT", value_name = "NAME")]
    client_name: String,

    /// Checkpoint database: postgres://user@host/db (libpq parameters such as
    /// sslmode honoured), sqlite://relative/path.db or sqlite:///absolute/path.db.
    #[arg(long, env = "TRITON_DB", hide_env_values = true, default_value = DEFAULT_URL, value_name = "URL")]
    checkpoint_db: String,

    /// Output format.
    #[arg(long = "output", visible_alias = "format", env = "TRITON_OUTPUT", value_enum, default_value_t = Format::Graphite)]
    format: Format,
}

/// By hand, so that a logged `StatsArgs` never shows a database password.
impl std::fmt::Debug for StatsArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatsArgs")
            .field("client_name", &self.client_name)
            .field("checkpoint_db", &redact(&self.checkpoint_db))
            .field("format", &self.format)
            .finish()
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    /// `<client>.<stream>.<shard>.age <age> <now>` lines.
    Graphite,
    /// One JSON document: {"checkpoints": [{client, stream, shard,
    /// sequence_number, updated, age}]}.
    Json,
}

/// Runs `triton stats`.
pub fn run(args: StatsArgs) -> CliResult {
    validate_client_name(&args.client_name).map_err(CliError::from)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::io("starting the async runtime", e))?;
    let saved = runtime.block_on(async {
        let store = SqlCheckpoints::open_existing(&args.checkpoint_db).await?;
        Ok::<_, Box<dyn std::error::Error>>(store.list(&args.client_name).await?)
    });
    let saved = saved.map_err(|e| CliError::chain(&*e))?;
    if saved.is_empty() {
        tracing::warn!(client = %args.client_name, "no checkpoints for this client");
    }
    let now = unix_now();
    let mut out = std::io::stdout().lock();
    let mut lines: Vec<String> = Vec::new();
    let mut json = Vec::new();
    for s in &saved {
        let c = &s.checkpoint;
        let age = now - s.updated;
        match args.format {
            Format::Graphite => lines.push(format!(
                "{}.{}.{}.age {age} {now}",
                c.client, c.stream, c.shard
            )),
            Format::Json => json.push(serde_json::json!({
                "client": c.client,
                "stream": c.stream,
                "shard": c.shard,
                "sequence_number": c.sequence.as_str(),
                "updated": s.updated,
                "age": age,
            })),
        }
    }
    if let Format::Json = args.format {
        lines.push(serde_json::json!({ "checkpoints": json }).to_string());
    }
    for line in lines {
        writeln!(out, "{line}").map_err(|e| CliError::io("writing to standard output", e))?;
    }
    out.flush()
        .map_err(|e| CliError::io("writing to standard output", e))
}
