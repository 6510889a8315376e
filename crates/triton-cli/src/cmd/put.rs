//! `triton put`: JSON lines into a Kinesis stream.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use triton_kinesis::{ProduceError, Producer, ProducerOptions};

use super::common::{json_records, runtime, StreamArgs};
use crate::error::{CliError, CliResult};
use crate::progress::{self, ProgressBar};

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
/// --aggregate packs records into aggregated Kinesis records (the Kinesis
/// Producer Library's format, read by triton, the KCL and the KPL's ports):
/// up to --aggregate-size bytes each, grouped by the shard each key maps
/// to. Kinesis bills and throttles per Kinesis record, so many small
/// records cost far fewer records and calls this way.
///
/// A summary goes to standard error. On a bad line or when Kinesis keeps
/// failing, the command stops with exit code 1 and says how many records
/// were written; those before are in the stream.
///
/// Progress (input bytes read with rate and time left, records sent) is
/// drawn on standard error when it is a terminal; --quiet turns it off.
#[derive(Args, Debug)]
pub struct PutArgs {
    #[command(flatten)]
    stream: StreamArgs,

    /// JSON lines to read; none or "-" reads standard input.
    #[arg(value_name = "FILE")]
    input: Option<PathBuf>,

    /// The record field whose value is the partition key [default: the
    /// stream config's partition_key].
    #[arg(long, env = "TRITON_PARTITION_KEY", value_name = "FIELD")]
    partition_key: Option<String>,

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

    /// Pack records into KPL aggregated records (one Kinesis record holds
    /// many), grouped by shard; keys keep their order.
    #[arg(long)]
    aggregate: bool,

    /// The largest aggregate, in bytes (the KPL's AggregationMaxSize);
    /// records too big for one are sent alone. At most 1,047,552 (1 MiB
    /// less room for the longest partition key).
    #[arg(long, value_name = "BYTES", default_value_t = 51_200, requires = "aggregate",
          value_parser = clap::value_parser!(u32).range(64..=1_047_552))]
    aggregate_size: u32,
}

/// Runs `triton put`.
pub fn run(args: PutArgs) -> CliResult {
    let config = args.stream.load()?;
    let (name, input, bar): (String, Box<dyn BufRead>, ProgressBar) = match &args.input {
        Some(p) if p.as_os_str() != "-" => {
            let f = File::open(p).map_err(|e| CliError::io(p.display(), e))?;
            let bar = progress::bytes_or_spinner(progress::file_size(&f), "put");
            let input = BufReader::new(bar.wrap_read(f));
            (p.display().to_string(), Box::new(input), bar)
        }
        _ => {
            let bar = progress::bytes_or_spinner(progress::stdin_size(), "put");
            let input = BufReader::new(bar.wrap_read(io::stdin()));
            ("standard input".into(), Box::new(input), bar)
        }
    };
    let options = ProducerOptions {
        random_keys: args.random_key,
        strict_order: !args.unordered,
        aggregation: args.aggregate.then(|| triton_kpl::Limits {
            max_bytes: args.aggregate_size as usize,
            ..triton_kpl::Limits::default()
        }),
        ..ProducerOptions::default()
    };
    let mut stream_config = config.config();
    if let Some(field) = &args.partition_key {
        stream_config.partition_key = Some(field.clone()).filter(|f| !f.is_empty());
    }
    let started = Instant::now();
    runtime()?.block_on(async {
        let client = config.kinesis().await?;
        let mut producer = Producer::new(client, &stream_config, options);
        let key_field = stream_config.partition_key.as_deref();
        let lines = Lines {
            name: &name,
            key_field,
            bar: &bar,
        };
        let result = send_lines(&mut producer, &lines, input).await;
        // Whatever was queued before a bad line still goes out.
        let flushed = producer.flush().await;
        let stats = producer.stats();
        if result.is_ok() && flushed.is_ok() {
            bar.set_message(format!("{} records sent", stats.records));
            bar.finish();
        } else {
            bar.abandon();
        }
        let secs = started.elapsed().as_secs_f64();
        let aggregated = match args.aggregate {
            true => format!(" in {} Kinesis records", stats.kinesis_records),
            false => String::new(),
        };
        eprintln!(
            "put: {} records{aggregated} to stream {} in {} calls, {} retries, {} reordered, {secs:.2} s ({:.0} records/s)",
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

/// What `send_lines` reads and shows.
struct Lines<'a> {
    /// The input's name in errors.
    name: &'a str,
    /// The partition key field, if any.
    key_field: Option<&'a str>,
    /// Progress: input bytes, and records sent as its message.
    bar: &'a ProgressBar,
}

async fn send_lines(
    producer: &mut Producer,
    lines: &Lines<'_>,
    input: Box<dyn BufRead>,
) -> CliResult {
    let name = lines.name;
    let mut shown = None;
    for item in json_records(name, input) {
        let (line_no, record) = item?;
        if let Err(e) = producer.send(&record).await {
            let missing_key = matches!(e, ProduceError::PartitionKey(_))
                && lines.key_field.is_none_or(|f| record.get(f).is_none());
            return Err(match lines.key_field {
                // Only --random-key can help (not so a key of a wrong type).
                Some(_) if missing_key => CliError::new(format!(
                    "{name} line {line_no}: {e} (give such records a random key with --random-key)"
                )),
                None if missing_key => CliError::new(format!(
                    "{name} line {line_no}: no partition key field is set (partition_key in \
                     the stream config, or --partition-key FIELD); or give every record a \
                     random key with --random-key"
                )),
                _ => produce_error(name, Some(line_no), e),
            });
        }
        let sent = producer.stats().records;
        if shown != Some(sent) {
            lines.bar.set_message(format!("{sent} records sent"));
            shown = Some(sent);
        }
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
        (_, e) => CliError::from(e),
    }
}
