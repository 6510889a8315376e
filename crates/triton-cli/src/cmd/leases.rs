//! `triton leases`: who reads which shard in a fleet of `triton store`
//! workers.

use std::io::Write;
use triton_core::error::Report;

use clap::{Args, ValueEnum};
use triton_checkpoint::{redact, SqlCheckpoints, DEFAULT_URL};
use triton_core::key::{validate_client_name, DEFAULT_CLIENT_NAME};
use triton_core::lease::{LeaseScope, LeaseStore, LeaseTable};

use super::common::{runtime, StreamArgs};
use crate::error::{CliError, CliResult};

/// Show the shard leases of a stream's `triton store` workers.
///
/// One line per shard: its owner (the worker id, or - when free), the
/// lease's epoch (raised at every change of owner), how long ago it was
/// renewed (on the database's clock; "expired" once it ran out), its state
/// (active, or ended: closed and its last record committed) and the
/// bytes a second its owner last measured. Then the live workers and how
/// many leases each holds. The database is only read.
#[derive(Args)]
pub struct LeasesArgs {
    #[command(flatten)]
    stream: StreamArgs,

    /// The stores' client name.
    #[arg(long, env = "TRITON_CLIENT", default_value = DEFAULT_CLIENT_NAME, value_name = "NAME")]
    client_name: String,

    /// Checkpoint database: postgres://… or sqlite://path.db.
    #[arg(long, env = "TRITON_DB", hide_env_values = true, default_value = DEFAULT_URL, value_name = "URL")]
    checkpoint_db: String,

    /// Output format: text, or one JSON document ({client, stream, leases:
    /// [{shard, owner, epoch, renewed_ms_ago, expired, state, parents,
    /// bytes_per_second}], workers: [{worker, heartbeat_ms_ago, leases}]}).
    #[arg(long = "output", visible_alias = "format", env = "TRITON_OUTPUT", value_enum, default_value_t = Format::Text)]
    format: Format,
}

/// By hand, so that a logged `LeasesArgs` never shows a database password.
impl std::fmt::Debug for LeasesArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeasesArgs")
            .field("stream", &self.stream)
            .field("client_name", &self.client_name)
            .field("checkpoint_db", &redact(&self.checkpoint_db))
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    Text,
    Json,
}

/// Runs `triton leases`.
pub fn run(args: LeasesArgs) -> CliResult {
    let config = args.stream.load()?;
    validate_client_name(&args.client_name)
        .map_err(|e| CliError::new(format!("--client-name: {e}")))?;
    let scope = LeaseScope {
        client: args.client_name.clone(),
        stream: config.name.clone(),
    };
    let table = runtime()?.block_on(async {
        let db = SqlCheckpoints::open_existing(&args.checkpoint_db)
            .await
            .map_err(CliError::from)?;
        db.leases(&scope).await.map_err(|e| {
            CliError::new(format!(
                "{} (a database no triton store with leases has used has no lease table)",
                Report(&e)
            ))
        })
    })?;
    let text = match args.format {
        Format::Json => json(&scope, &table),
        Format::Text => text(&table),
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| CliError::io("writing to standard output", e))
}

fn held_by(table: &LeaseTable, worker: &str) -> usize {
    table
        .leases
        .iter()
        .filter(|l| l.owner.as_deref() == Some(worker) && !l.expired)
        .count()
}

fn json(scope: &LeaseScope, table: &LeaseTable) -> String {
    let workers: Vec<serde_json::Value> = table
        .workers
        .iter()
        .map(|w| {
            serde_json::json!({
                "worker": w.worker,
                "heartbeat_ms_ago": w.heartbeat_ms_ago,
                "leases": held_by(table, &w.worker),
            })
        })
        .collect();
    let doc = serde_json::json!({
        "client": scope.client,
        "stream": scope.stream,
        "leases": table.leases,
        "workers": workers,
    });
    format!("{doc}\n")
}

fn text(table: &LeaseTable) -> String {
    let mut rows = vec![[
        "shard".to_owned(),
        "owner".to_owned(),
        "epoch".to_owned(),
        "renewed".to_owned(),
        "state".to_owned(),
        "bytes/s".to_owned(),
    ]];
    for l in &table.leases {
        let renewed = match (l.renewed_ms_ago, l.expired) {
            (_, true) => "expired".to_owned(),
            (Some(ms), false) => format!("{:.1}s ago", ms as f64 / 1000.0),
            (None, false) => "-".to_owned(),
        };
        rows.push([
            l.shard.clone(),
            l.owner.clone().unwrap_or_else(|| "-".to_owned()),
            l.epoch.to_string(),
            renewed,
            l.state.as_str().to_owned(),
            format!("{:.0}", l.bytes_per_second),
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out.push_str(&format!("\n{} live worker(s)\n", table.workers.len()));
    for w in &table.workers {
        out.push_str(&format!(
            "  {}  heartbeat {:.1}s ago  {} lease(s)\n",
            w.worker,
            w.heartbeat_ms_ago as f64 / 1000.0,
            held_by(table, &w.worker)
        ));
    }
    out
}
