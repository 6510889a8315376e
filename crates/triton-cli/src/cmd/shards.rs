//! `triton shards`: the shards of a stream.

use std::io::Write;

use clap::Args;

use super::common::{runtime, StreamArgs};
use crate::error::{CliError, CliResult};

/// List the shards of a stream.
///
/// Prints one shard id a line, as go-triton did: open shards and closed
/// ones still within the retention period. With --long, a header and
/// tab-separated columns: id, open/closed, parent, adjacent parent, and
/// the hash key range.
#[derive(Args, Debug)]
pub struct ShardsArgs {
    #[command(flatten)]
    stream: StreamArgs,

    /// Also print state, parents and hash key range.
    #[arg(long, short)]
    long: bool,

    /// Output format: text, or one JSON document ({stream, shards: [{id,
    /// state, parent, adjacent_parent, starting_hash_key,
    /// ending_hash_key}]}).
    #[arg(long = "output", visible_alias = "format", env = "TRITON_OUTPUT", value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Format {
    /// Lines.
    Text,
    /// One JSON document.
    Json,
}

/// Runs `triton shards`.
pub fn run(args: ShardsArgs) -> CliResult {
    let config = args.stream.load()?;
    let shards = runtime()?.block_on(async {
        let client = config.kinesis().await?;
        triton_kinesis::list_shards(&client, &config.name)
            .await
            .map_err(CliError::from)
    })?;
    let mut out = std::io::stdout().lock();
    if let Format::Json = args.format {
        let shards: Vec<_> = shards
            .iter()
            .map(|s| {
                serde_json::json!({
                    "id": s.id,
                    "state": if s.is_open() { "open" } else { "closed" },
                    "parent": s.parent,
                    "adjacent_parent": s.adjacent_parent,
                    "starting_hash_key": s.starting_hash_key,
                    "ending_hash_key": s.ending_hash_key,
                })
            })
            .collect();
        let doc = serde_json::json!({ "stream": config.name, "shards": shards });
        return writeln!(out, "{doc}")
            .and_then(|()| out.flush())
            .map_err(|e| CliError::io("writing to standard output", e));
    }
    let mut write = |line: String| {
        writeln!(out, "{line}").map_err(|e| CliError::io("writing to standard output", e))
    };
    if args.long {
        write("shard\tstate\tparent\tadjacent_parent\tstarting_hash_key\tending_hash_key".into())?;
    }
    for s in &shards {
        if args.long {
            write(format!(
                "{}\t{}\t{}\t{}\t{}\t{}",
                s.id,
                if s.is_open() { "open" } else { "closed" },
                s.parent.as_deref().unwrap_or("-"),
                s.adjacent_parent.as_deref().unwrap_or("-"),
                s.starting_hash_key,
                s.ending_hash_key
            ))?;
        } else {
            write(s.id.clone())?;
        }
    }
    out.flush()
        .map_err(|e| CliError::io("writing to standard output", e))
}
