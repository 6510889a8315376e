//! `triton convert` and `triton schema`: `.tri` archives as Parquet, with a
//! schema inferred from the MessagePack records.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use triton_core::error::Report;
use triton_parquet::{convert_to_path, infer_files, Codec, ConvertOptions, Damaged, Schema};

use crate::error::{CliError, CliResult};

/// Convert .tri archives into one Parquet file.
///
/// Every record is read twice: first to infer the schema (exact: a field
/// whose values do not share a type becomes a JSON text column, never one
/// that drops or rounds them; see `triton schema`), then to write row
/// groups of --row-group-size records, so memory stays bounded whatever
/// the archives' size. Integers stay int64 or uint64, float32 stays
/// float32, bin is binary, timestamps (go-triton's time.Time, MessagePack
/// timestamps) are UTC nanoseconds, nested maps are structs and arrays
/// lists.
///
/// Records before a damaged spot of an archive are converted; the error
/// names the file and offset, the other archives are converted, and the
/// exit code is 1. The output is written under a temporary name and renamed
/// into place: a failed run leaves no partial file.
#[derive(Args, Debug)]
pub struct ConvertArgs {
    /// Archives to convert, in order.
    #[arg(value_name = "FILE", required = true)]
    files: Vec<PathBuf>,

    /// The Parquet file to write.
    #[arg(short, long, value_name = "OUT.parquet")]
    output: PathBuf,

    /// Page compression.
    #[arg(long, value_enum, default_value_t = Compression::Snappy)]
    compression: Compression,

    /// Records per row group.
    #[arg(long, value_name = "N", default_value_t = 65_536,
          value_parser = clap::value_parser!(u32).range(1..))]
    row_group_size: u32,

    /// Write this schema (JSON, as `triton schema` prints it) instead of
    /// inferring one; a record that does not fit it is an error naming the
    /// record and field.
    #[arg(long, value_name = "FILE")]
    schema: Option<PathBuf>,

    /// Replace OUT.parquet if it exists (by default an existing output is
    /// refused, so that a re-run never silently replaces data).
    #[arg(long)]
    overwrite: bool,
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

/// Runs `triton convert`.
pub fn run(args: ConvertArgs) -> CliResult {
    if args.output.exists() && !args.overwrite {
        return Err(CliError::new(format!(
            "{} exists; give --overwrite to replace it",
            args.output.display()
        )));
    }
    let schema = match &args.schema {
        None => None,
        Some(p) => {
            let text = std::fs::read(p).map_err(|e| CliError::io(p.display(), e))?;
            let schema: Schema = serde_json::from_slice(&text)
                .map_err(|e| CliError::new(format!("{}: not a schema: {e}", p.display())))?;
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
    let converted =
        convert_to_path(&args.files, &args.output, &options).map_err(|e| CliError::chain(&e))?;
    report_json_columns(&converted.schema);
    eprintln!(
        "convert: {} records from {} archives into {} ({} columns)",
        converted.records,
        args.files.len(),
        args.output.display(),
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
