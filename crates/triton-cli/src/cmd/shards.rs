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
}

/// Runs `triton shards`.
pub fn run(args: ShardsArgs) -> CliResult {
    let config = args.stream.load()?;
    let shards = runtime()?.block_on(async {
        let client = triton_kinesis::client(&config.region).await;
        triton_kinesis::list_shards(&client, &config.name).await
    });
    let shards = shards.map_err(|e| CliError::new(e.to_string()))?;
    let mut out = std::io::stdout().lock();
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
