//! `triton put`: JSON lines into a Kinesis stream.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use triton_kinesis::{ProduceError, Producer, ProducerOptions};

use super::common::{json_records, runtime, StreamArgs};
use crate::error::{CliError, CliResult};

/// Write JSON lines to a Kinesis stream, one record per line.
///
/// Each non-blank line must be a JSON object; it is sent as a MessagePack
/// map (numbers map as in `triton encode`). The partition key is the
/// record's field named by the stream config's partition_key (a string, or
/// an integer written in decimal). Records are sent 500 to a call (5 MiB at
/// most), one call at a time, one record per key in each call; entries
/// Kinesis refuses (throttling) are sent again ahead of later records, so
/// each key's records keep their order (see --unordered).
///
/// A summary goes to standard error. On a bad line or when Kinesis keeps
/// failing, the command stops with exit code 1 and says how many records
/// were written; those before are in the stream.
#[derive(Args, Debug)]
pub struct PutArgs {
    #[command(flatten)]
    stream: StreamArgs,

    /// JSON lines to read; none or "-" reads standard input.
    #[arg(value_name = "FILE")]
    input: Option<PathBuf>,

    /// Give records without the partition key field a random key instead
    /// of refusing them.
    #[arg(long)]
    random_key: bool,

    /// Allow several records of one partition key in a call: fewer calls
    /// when few keys carry many records, but a key's records may change
    /// order when Kinesis refuses part of a call (counted as "reordered"
    /// in the summary). By default a call holds one record per key.
    #[arg(long)]
    unordered: bool,
}

/// Runs `triton put`.
pub fn run(args: PutArgs) -> CliResult {
    let config = args.stream.load()?;
    let (name, input): (String, Box<dyn BufRead>) = match &args.input {
        Some(p) if p.as_os_str() != "-" => {
            let f = File::open(p).map_err(|e| CliError::io(p.display(), e))?;
            (p.display().to_string(), Box::new(BufReader::new(f)))
        }
        _ => ("standard input".into(), Box::new(io::stdin().lock())),
    };
    let options = ProducerOptions {
        random_keys: args.random_key,
        strict_order: !args.unordered,
        ..ProducerOptions::default()
    };
    let started = Instant::now();
    runtime()?.block_on(async {
        let client = config.kinesis().await?;
        let mut producer = Producer::new(client, &config.config(), options);
        let result = send_lines(&mut producer, &name, input).await;
        // Whatever was queued before a bad line still goes out.
        let flushed = producer.flush().await;
        let stats = producer.stats();
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "put: {} records to stream {} in {} calls, {} retries, {} reordered, {secs:.2} s ({:.0} records/s)",
            stats.records,
            config.name,
            stats.calls,
            stats.retries,
            stats.reordered,
            stats.records as f64 / secs.max(1e-9)
        );
        result?;
        flushed.map(drop).map_err(|e| produce_error(&name, None, e))
    })
}

/// A multiple of the 500 records a call takes, so flushes add no calls.
const FLUSH_EVERY: usize = 50_000;

async fn send_lines(producer: &mut Producer, name: &str, input: Box<dyn BufRead>) -> CliResult {
    for item in json_records(name, input) {
        let (line_no, record) = item?;
        producer
            .send(&record)
            .await
            .map_err(|e| produce_error(name, Some(line_no), e))?;
        // The producer keeps a receipt per record until a flush; flushing
        // now and then keeps memory flat on inputs of any size.
        if line_no % FLUSH_EVERY == 0 {
            producer
                .flush()
                .await
                .map_err(|e| produce_error(name, None, e))?;
        }
    }
    Ok(())
}

fn produce_error(name: &str, line: Option<usize>, e: ProduceError) -> CliError {
    match (line, e) {
        (Some(n), e @ (ProduceError::PartitionKey(_) | ProduceError::TooLarge { .. })) => {
            CliError::new(format!("{name} line {n}: {e}"))
        }
        (_, e) => CliError::new(e.to_string()),
    }
}
