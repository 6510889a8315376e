//! `triton convert` and `triton schema`: `.tri` archives as Parquet, with a
//! schema inferred from the MessagePack records.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use triton_core::error::Report;
use triton_parquet::{convert_to_path, infer_files, Codec, ConvertOptions, Damaged, Schema};

use triton_core::time::Date;

use super::aws::AwsArgs;
use super::common::{ArchiveArgs, BucketArgs, StreamArgs};
use super::parse::parse_date;
use super::parse::parse_size;
use crate::error::{CliError, CliResult};

pub mod check;
mod dataset;

/// Convert .tri archives into Parquet: files given, or a stream's archives
/// as a partitioned dataset.
///
/// `triton convert FILE.tri... -o OUT.parquet` writes the archives into
/// one file. `triton convert --stream S --bucket B --start-date D --to DEST`
/// writes a stream's archives for a range of days (selected as `triton
/// cat` selects them; go-triton's archives without a sidecar too) under
/// DEST, an S3 prefix (s3://bucket/prefix) or a local directory
/// (./lake, file:///path), partitioned the Hive way: dt=YYYY-MM-DD/, and
/// hour=HH/ below it with --partition-by hour (the hour the archive was
/// opened). Each partition's files are part-00000.parquet, ... closed at
/// --target-file-size, and its manifest _triton_manifest.json, written
/// last, names the archives it holds (SHA-256, records), its files and
/// which records each holds, the settings and the schema. One run writes
/// one schema into every file of its range, so one glob reads them:
/// read_parquet('DEST/**/*.parquet', hive_partitioning = 1) (ranges of
/// other runs may have other schemas: add union_by_name = true).
///
/// Re-running is idempotent: a partition whose manifest says it was
/// converted from the same archives with the same settings and schema is
/// kept; any other (a new archive, a new field in the range, an
/// interrupted run) is written again under the same names and its extra
/// files are deleted, so no record is ever there twice. --replace
/// rewrites every partition; --dry-run says what would be written.
///
/// Every record is read twice: first to infer the schema (exact: a field
/// whose values do not share a type becomes a JSON text column, never one
/// that drops or rounds them; see `triton schema`), then to write row
/// groups of --row-group-size records, so memory stays bounded whatever
/// the archives' size. --schema skips the first pass. Integers stay int64
/// or uint64, float32 stays float32, bin is binary, timestamps (go-triton's
/// time.Time, MessagePack timestamps) are UTC nanoseconds, nested maps are
/// structs and arrays lists.
///
/// Records before a damaged spot of an archive are converted; the error
/// names the archive and offset, the other archives are converted, and the
/// exit code is 1. Every file is written under a temporary name and moved
/// into place whole: a failed run leaves no partial file (with --to, the
/// partitions it finished stay, and the one it was writing has no manifest
/// until a re-run writes it again).
#[derive(Args, Debug)]
pub struct ConvertArgs {
    /// Archives to convert into one file (with -o), in order.
    #[arg(value_name = "FILE", required_unless_present = "to")]
    files: Vec<PathBuf>,

    /// The Parquet file to write from FILE....
    #[arg(
        short,
        long,
        value_name = "OUT.parquet",
        required_unless_present = "to",
        conflicts_with = "to"
    )]
    output: Option<PathBuf>,

    /// Write the stream's archives as a dataset under DEST: an S3 prefix
    /// (s3://bucket/prefix) or a local directory (./lake, file:///path).
    #[arg(long, value_name = "DEST", conflicts_with = "files")]
    to: Option<String>,

    #[command(flatten)]
    stream: StreamSelection,

    /// Only archives written by this client (the store's --client-name);
    /// by default the one client that archived the range.
    // No `requires = "to"`: clap counts TRITON_CLIENT as given.
    #[arg(long, env = "TRITON_CLIENT", value_name = "NAME")]
    client_name: Option<String>,

    /// Partition directories: dt=YYYY-MM-DD/, or with hour=HH/ below.
    #[arg(long, value_enum, default_value_t = PartitionBy::Day, requires = "to")]
    partition_by: PartitionBy,

    /// Close a file once it has this many bytes (K, M, G, KiB..., KB...);
    /// the next rows go into the partition's next file.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "256MiB", requires = "to")]
    target_file_size: u64,

    /// Provenance columns first in every row: _archive (the archive's key),
    /// _index (the record's index in it) and _shard (when the archive's
    /// sidecar names a single shard; null otherwise).
    #[arg(long, requires = "to")]
    with_meta: bool,

    /// Rewrite every partition, even those up to date.
    #[arg(long, requires = "to")]
    replace: bool,

    /// Say which partitions would be written, and why, without writing.
    #[arg(long, requires = "to")]
    dry_run: bool,

    /// Page compression.
    #[arg(long, value_enum, default_value_t = Compression::Snappy)]
    compression: Compression,

    /// Records per row group.
    #[arg(long, value_name = "N", default_value_t = 65_536,
          value_parser = clap::value_parser!(u32).range(1..))]
    row_group_size: u32,

    /// Write this schema instead of inferring one: JSON as `triton schema`
    /// prints it, or the same in YAML (a .yaml or .yml file; `nullable`
    /// may be left out, and is then true). A record that does not fit it
    /// is an error naming the record and field.
    #[arg(long, value_name = "FILE")]
    schema: Option<PathBuf>,

    /// No progress (archives, bytes and rate of each pass) on standard
    /// error: the same as --quiet. It is shown only when standard error is
    /// a terminal.
    #[arg(long)]
    no_progress: bool,

    /// Replace OUT.parquet if it exists (by default an existing output is
    /// refused, so that a re-run never silently replaces data).
    #[arg(long, conflicts_with = "to")]
    overwrite: bool,
}

/// The archives `--to` converts: the options of `triton cat`, optional
/// here because FILE... needs none of them (clap cannot make a flattened
/// group with defaults and variables optional).
#[derive(Args, Debug)]
#[command(next_help_heading = "Stream (with --to)")]
struct StreamSelection {
    /// The stream config (YAML: logical name -> stream name, partition_key,
    /// region). Not needed with --stream-name.
    #[arg(
        long,
        env = "TRITON_CONFIG",
        default_value = "triton.yaml",
        value_name = "PATH"
    )]
    config: PathBuf,

    /// The stream's logical name in the config.
    #[arg(long, env = "TRITON_STREAM", value_name = "LOGICAL")]
    stream: Option<String>,

    /// The real Kinesis stream name, without a config file; wins over
    /// --stream.
    #[arg(long, env = "TRITON_STREAM_NAME", value_name = "NAME")]
    stream_name: Option<String>,

    /// Where the archives are: an S3 bucket (NAME, s3://NAME or
    /// s3://NAME/PREFIX) or a local directory (file:///PATH, or a path
    /// containing '/'). DEST is opened in the same region.
    #[arg(long, env = "TRITON_BUCKET", value_name = "BUCKET")]
    bucket: Option<String>,

    /// The bucket's region, when it is not the stream's.
    #[arg(long, env = "TRITON_BUCKET_REGION", value_name = "REGION")]
    bucket_region: Option<String>,

    /// First day (UTC): 2026-12-01, 20261201, today or yesterday.
    #[arg(long, value_parser = parse_date, value_name = "DATE")]
    start_date: Option<Date>,

    /// Last day, inclusive [default: the start date].
    #[arg(long, value_parser = parse_date, value_name = "DATE")]
    end_date: Option<Date>,

    #[command(flatten)]
    aws: AwsArgs,
}

impl StreamSelection {
    /// The archive options, or which of them `--to` lacks.
    fn archives(&self) -> Result<ArchiveArgs, CliError> {
        let mut missing = Vec::new();
        if self.stream.is_none() && self.stream_name.is_none() {
            missing.push("--stream (or --stream-name)");
        }
        if self.bucket.is_none() {
            missing.push("--bucket");
        }
        if self.start_date.is_none() {
            missing.push("--start-date");
        }
        let (Some(bucket), Some(start_date), true) =
            (&self.bucket, self.start_date, missing.is_empty())
        else {
            return Err(CliError::new(format!("--to needs {}", missing.join(", "))));
        };
        Ok(ArchiveArgs {
            stream: StreamArgs {
                config: self.config.clone(),
                stream: self.stream.clone(),
                stream_name: self.stream_name.clone(),
                aws: self.aws.clone(),
            },
            bucket: BucketArgs {
                bucket: bucket.clone(),
                bucket_region: self.bucket_region.clone(),
            },
            start_date,
            end_date: self.end_date,
        })
    }
}

/// How a dataset is partitioned.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum PartitionBy {
    /// dt=YYYY-MM-DD/
    Day,
    /// dt=YYYY-MM-DD/hour=HH/
    Hour,
}

/// Page compression of the Parquet output.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Compression {
    /// Fast; what most engines expect.
    Snappy,
    /// Smaller, slower to write (level 3).
    Zstd,
}

/// Print the Parquet schema `triton convert` would write for .tri archives.
///
/// JSON: each field's name, type (null, bool, int64, uint64, float32,
/// float64, utf8, binary, timestamp_nanos, list, struct, json) and whether
/// it is nullable (absent from some record, or nil). The columns that are
/// JSON text, and why, are listed on standard error. Give the JSON (edited
/// if you like) to `triton convert --schema` to pin it.
#[derive(Args, Debug)]
pub struct SchemaArgs {
    /// Archives to read.
    #[arg(value_name = "FILE", required = true)]
    files: Vec<PathBuf>,
}

fn report_damaged(damaged: &[Damaged]) -> CliResult {
    for d in damaged {
        eprintln!("{}: {}", d.path.display(), Report(&d.error));
    }
    match damaged.len() {
        0 => Ok(()),
        n => Err(CliError::new(format!(
            "{n} of the archives are damaged; their records before the damage were read"
        ))),
    }
}

fn report_json_columns(schema: &Schema) {
    for (path, reason) in schema.json_columns() {
        eprintln!("schema: column {path:?} is JSON text: {reason}");
    }
}

/// The name of a codec, as `--compression` and manifests spell it.
fn codec_name(codec: Codec) -> &'static str {
    match codec {
        Codec::Snappy => "snappy",
        Codec::Zstd => "zstd",
    }
}

/// Runs `triton convert`.
pub fn run(args: ConvertArgs) -> CliResult {
    if args.no_progress {
        crate::progress::disable();
    }
    let schema = match &args.schema {
        None => None,
        Some(p) => {
            let text = std::fs::read(p).map_err(|e| CliError::io(p.display(), e))?;
            let not_a_schema = |e: &dyn std::fmt::Display| {
                CliError::new(format!("{}: not a schema: {e}", p.display()))
            };
            let yaml = p.extension().is_some_and(|e| e == "yaml" || e == "yml");
            let schema: Schema = match yaml {
                true => serde_yaml::from_slice(&text).map_err(|e| not_a_schema(&e))?,
                false => serde_json::from_slice(&text).map_err(|e| not_a_schema(&e))?,
            };
            Some(schema)
        }
    };
    let options = ConvertOptions {
        codec: match args.compression {
            Compression::Snappy => Codec::Snappy,
            Compression::Zstd => Codec::Zstd,
        },
        row_group: args.row_group_size as usize,
        schema,
    };
    if let Some(to) = &args.to {
        let archives = args.stream.archives()?;
        return dataset::run(dataset::Request {
            archives: &archives,
            client_name: args.client_name.clone(),
            to,
            by_hour: matches!(args.partition_by, PartitionBy::Hour),
            target_file_size: args.target_file_size,
            with_meta: args.with_meta,
            replace: args.replace,
            dry_run: args.dry_run,
            options,
        });
    }
    let Some(output) = &args.output else {
        return Err(CliError::new(
            "give -o OUT.parquet, or --to DEST with a stream",
        ));
    };
    if output.exists() && !args.overwrite {
        return Err(CliError::new(format!(
            "{} exists; give --overwrite to replace it",
            output.display()
        )));
    }
    let converted =
        convert_to_path(&args.files, output, &options).map_err(|e| CliError::chain(&e))?;
    report_json_columns(&converted.schema);
    eprintln!(
        "convert: {} records from {} archives into {} ({} columns)",
        converted.records,
        args.files.len(),
        output.display(),
        converted.schema.fields.len()
    );
    report_damaged(&converted.damaged)
}

/// Runs `triton schema`.
pub fn run_schema(args: SchemaArgs) -> CliResult {
    let (schema, damaged) = infer_files(&args.files).map_err(|e| CliError::chain(&e))?;
    let text = serde_json::to_string_pretty(&schema)
        .map_err(|e| CliError::new(format!("printing the schema: {e}")))?;
    println!("{text}");
    report_json_columns(&schema);
    report_damaged(&damaged)
}
