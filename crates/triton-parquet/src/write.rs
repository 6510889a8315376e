//! Records into Arrow record batches of a [`Schema`], and batches into a
//! Parquet file, one row group per batch, so memory stays at one batch.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Float32Builder, Float64Builder, Int64Builder, StringBuilder,
    TimestampNanosecondBuilder, UInt64Builder,
};
use arrow_array::{ArrayRef, ListArray, NullArray, RecordBatch, StructArray};
use arrow_buffer::{OffsetBuffer, ScalarBuffer};
use arrow_schema::{DataType, Field as ArrowField, Fields, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use triton_core::value::{Record, Value};

use crate::infer::{ColumnType, Field, Schema};

/// Why records could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// A value does not fit its column (possible only with a schema given
    /// by hand: an inferred one fits every record it was inferred from).
    #[error(
        "{}record {record}: field {path} holds a {kind}, which does not fit its column of {column}",
        in_source(source_id)
    )]
    Mismatch {
        /// The archive the record comes from, when the caller knows it.
        source_id: Option<String>,
        /// The record's index (in its archive, or else in the batch).
        record: u64,
        /// The field, dotted.
        path: String,
        /// The MessagePack kind found.
        kind: &'static str,
        /// The column's type.
        column: String,
    },
    /// A record has a field that a schema given by hand does not: it would
    /// be dropped.
    #[error(
        "{}record {record}: field {path} is not in the schema (add it, see `triton schema`, or let the schema be inferred)",
        in_source(source_id)
    )]
    Unknown {
        /// The archive the record comes from, when the caller knows it.
        source_id: Option<String>,
        /// The record's index (in its archive, or else in the batch).
        record: u64,
        /// The field, dotted.
        path: String,
    },
    /// Arrow refused the arrays (a bug, if it happens).
    #[error("building the columns: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    /// The Parquet writer failed (the output could not be written).
    #[error("writing Parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// The output file could not be written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

fn in_source(source_id: &Option<String>) -> String {
    source_id
        .as_deref()
        .map(|s| format!("{s} "))
        .unwrap_or_default()
}

impl WriteError {
    /// The error with the record located: `at(i)` gives the archive and
    /// index of the batch's record `i`.
    pub fn locate(self, at: impl FnOnce(u64) -> (String, u64)) -> WriteError {
        self.relocate(|i| {
            let (source_id, index) = at(i);
            (Some(source_id), index)
        })
    }

    fn relocate(self, at: impl FnOnce(u64) -> (Option<String>, u64)) -> WriteError {
        match self {
            WriteError::Mismatch {
                record,
                path,
                kind,
                column,
                ..
            } => {
                let (source_id, record) = at(record);
                WriteError::Mismatch {
                    source_id,
                    record,
                    path,
                    kind,
                    column,
                }
            }
            WriteError::Unknown { record, path, .. } => {
                let (source_id, record) = at(record);
                WriteError::Unknown {
                    source_id,
                    record,
                    path,
                }
            }
            other => other,
        }
    }
}

/// Parquet page compression.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Codec {
    /// Snappy (the default: fast, what most engines expect).
    #[default]
    Snappy,
    /// Zstandard at level 3: smaller files, slower to write.
    Zstd,
}

/// The Arrow type of a column type.
pub fn data_type(ty: &ColumnType) -> DataType {
    match ty {
        ColumnType::Null => DataType::Null,
        ColumnType::Bool => DataType::Boolean,
        ColumnType::Int64 => DataType::Int64,
        ColumnType::UInt64 => DataType::UInt64,
        ColumnType::Float32 => DataType::Float32,
        ColumnType::Float64 => DataType::Float64,
        ColumnType::Utf8 | ColumnType::Json { .. } => DataType::Utf8,
        ColumnType::Binary => DataType::Binary,
        ColumnType::TimestampNanos => DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
        ColumnType::List { item } => {
            DataType::List(Arc::new(ArrowField::new("item", data_type(item), true)))
        }
        ColumnType::Struct { fields } => DataType::Struct(arrow_fields(fields)),
    }
}

/// Every field nullable: a record may lack any of them, and a null struct
/// or list holds nulls beneath it.
fn arrow_fields(fields: &[Field]) -> Fields {
    fields
        .iter()
        .map(|f| ArrowField::new(&f.name, data_type(&f.ty), true))
        .collect()
}

/// The Arrow schema of `schema`.
pub fn arrow_schema(schema: &Schema) -> arrow_schema::Schema {
    arrow_schema::Schema::new(arrow_fields(&schema.fields))
}

/// The records as one batch of `schema`'s columns.
pub fn batch(schema: &Schema, records: &[Record]) -> Result<RecordBatch, WriteError> {
    let rows = records
        .iter()
        .map(|r| Some(r.fields().iter().map(|(k, v)| (k.as_bytes(), v))));
    let columns = spread(&schema.fields, rows, records.len())
        .into_iter()
        .zip(&schema.fields)
        .map(|(values, f)| column(&f.ty, &values, &f.name))
        .collect::<Result<Vec<_>, _>>()?;
    let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(records.len()));
    Ok(RecordBatch::try_new_with_options(
        Arc::new(arrow_schema(schema)),
        columns,
        &options,
    )?)
}

fn mismatch(record: usize, path: &str, v: &Value, ty: &ColumnType) -> WriteError {
    WriteError::Mismatch {
        source_id: None,
        record: record as u64,
        path: path.to_owned(),
        kind: v.kind(),
        column: format!("{:?}", data_type(ty)),
    }
}

/// One column from each row's value (`None`: absent).
fn column(ty: &ColumnType, values: &[Option<&Value>], path: &str) -> Result<ArrayRef, WriteError> {
    macro_rules! scalar {
        ($builder:expr, |$v:ident| $convert:expr) => {{
            let mut b = $builder;
            for (i, v) in values.iter().enumerate() {
                match present(v) {
                    None => b.append_null(),
                    Some($v) => match $convert {
                        Some(x) => b.append_value(x),
                        None => return Err(mismatch(i, path, $v, ty)),
                    },
                }
            }
            Arc::new(b.finish()) as ArrayRef
        }};
    }
    Ok(match ty {
        ColumnType::Null => Arc::new(NullArray::new(values.len())),
        ColumnType::Bool => scalar!(BooleanBuilder::new(), |v| match v {
            Value::Bool(b) => Some(*b),
            _ => None,
        }),
        ColumnType::Int64 => scalar!(Int64Builder::new(), |v| match v {
            Value::Int(i) => Some(*i),
            Value::UInt(u) => i64::try_from(*u).ok(),
            _ => None,
        }),
        ColumnType::UInt64 => scalar!(UInt64Builder::new(), |v| match v {
            Value::UInt(u) => Some(*u),
            Value::Int(i) => u64::try_from(*i).ok(),
            _ => None,
        }),
        ColumnType::Float32 => scalar!(Float32Builder::new(), |v| match v {
            Value::F32(f) => Some(*f),
            _ => None,
        }),
        ColumnType::Float64 => scalar!(Float64Builder::new(), |v| match v {
            Value::F64(f) => Some(*f),
            Value::F32(f) => Some(f64::from(*f)),
            // Inference takes ints into a float column only when exact.
            Value::Int(i) => Some(*i as f64),
            Value::UInt(u) => Some(*u as f64),
            _ => None,
        }),
        ColumnType::Utf8 => scalar!(StringBuilder::new(), |v| match v {
            Value::Str(s) => s.as_str(),
            _ => None,
        }),
        ColumnType::Binary => scalar!(BinaryBuilder::new(), |v| match v {
            Value::Bin(b) => Some(b.as_slice()),
            Value::Str(s) => Some(s.as_bytes()),
            _ => None,
        }),
        ColumnType::TimestampNanos => scalar!(
            TimestampNanosecondBuilder::new().with_timezone("UTC"),
            |v| match v {
                Value::Timestamp(t) => t
                    .secs()
                    .checked_mul(1_000_000_000)
                    .and_then(|n| n.checked_add(i64::from(t.nanos()))),
                _ => None,
            }
        ),
        ColumnType::Json { .. } => {
            let mut b = StringBuilder::new();
            let mut text = Vec::new();
            for v in values {
                match present(v) {
                    None => b.append_null(),
                    Some(v) => {
                        text.clear();
                        triton_core::json::write_value(&mut text, v);
                        b.append_value(String::from_utf8_lossy(&text));
                    }
                }
            }
            Arc::new(b.finish())
        }
        ColumnType::List { item } => {
            let mut offsets = Vec::with_capacity(values.len() + 1);
            let mut valid = Vec::with_capacity(values.len());
            let mut items: Vec<Option<&Value>> = Vec::new();
            offsets.push(0i32);
            for (i, v) in values.iter().enumerate() {
                match present(v) {
                    None => valid.push(false),
                    Some(Value::Array(a)) => {
                        valid.push(true);
                        items.extend(a.iter().map(Some));
                    }
                    Some(v) => return Err(mismatch(i, path, v, ty)),
                }
                let end = i32::try_from(items.len()).map_err(|_| {
                    arrow_schema::ArrowError::ComputeError(format!(
                        "{path}: more than 2^31 list items in one batch"
                    ))
                })?;
                offsets.push(end);
            }
            // An item's error names its row, not its place among all items.
            let child = column(item, &items, &format!("{path}[]")).map_err(|e| {
                e.relocate(|at| {
                    let row = offsets.partition_point(|&o| i64::from(o) <= at as i64);
                    (None, row.saturating_sub(1) as u64)
                })
            })?;
            Arc::new(ListArray::try_new(
                Arc::new(ArrowField::new("item", data_type(item), true)),
                OffsetBuffer::new(ScalarBuffer::from(offsets)),
                child,
                Some(valid.into()),
            )?)
        }
        ColumnType::Struct { fields } => {
            let mut valid = Vec::with_capacity(values.len());
            let mut maps: Vec<Option<&[(Value, Value)]>> = Vec::with_capacity(values.len());
            for (i, v) in values.iter().enumerate() {
                match present(v) {
                    None => {
                        valid.push(false);
                        maps.push(None);
                    }
                    Some(Value::Map(m)) => {
                        valid.push(true);
                        maps.push(Some(m));
                    }
                    Some(v) => return Err(mismatch(i, path, v, ty)),
                }
            }
            let rows = maps.iter().map(|m| {
                m.map(|m| {
                    m.iter().filter_map(|(k, v)| match k {
                        Value::Str(k) => Some((k.as_bytes(), v)),
                        _ => None,
                    })
                })
            });
            let children = spread(fields, rows, maps.len())
                .into_iter()
                .zip(fields)
                .map(|(child, f)| column(&f.ty, &child, &format!("{path}.{}", f.name)))
                .collect::<Result<Vec<_>, _>>()?;
            Arc::new(StructArray::try_new(
                arrow_fields(fields),
                children,
                Some(valid.into()),
            )?)
        }
    })
}

/// Checks that `schema` has a column for every field of every record, at
/// every depth: a schema given by hand must not drop a field silently.
pub fn check_fields(schema: &Schema, records: &[Record]) -> Result<(), WriteError> {
    fn walk(v: &Value, ty: &ColumnType, path: &str) -> Result<(), String> {
        match (v, ty) {
            (Value::Map(m), ColumnType::Struct { fields }) => {
                for (k, v) in m {
                    let Value::Str(k) = k else {
                        return Err(format!("{path}.<{} key>", k.kind()));
                    };
                    let name = String::from_utf8_lossy(k.as_bytes());
                    let here = format!("{path}.{name}");
                    match fields.iter().find(|f| f.name.as_bytes() == k.as_bytes()) {
                        Some(f) => walk(v, &f.ty, &here)?,
                        None => return Err(here),
                    }
                }
                Ok(())
            }
            (Value::Array(items), ColumnType::List { item }) => items
                .iter()
                .try_for_each(|v| walk(v, item, &format!("{path}[]"))),
            _ => Ok(()),
        }
    }
    for (i, r) in records.iter().enumerate() {
        for (k, v) in r.fields() {
            let name = String::from_utf8_lossy(k.as_bytes());
            let found = schema
                .fields
                .iter()
                .find(|f| f.name.as_bytes() == k.as_bytes());
            let result = match found {
                Some(f) => walk(v, &f.ty, &name),
                None => Err(name.into_owned()),
            };
            if let Err(path) = result {
                return Err(WriteError::Unknown {
                    source_id: None,
                    record: i as u64,
                    path,
                });
            }
        }
    }
    Ok(())
}

/// The value, unless absent or nil (null in every column).
fn present<'a>(v: &Option<&'a Value>) -> Option<&'a Value> {
    v.filter(|v| !matches!(v, Value::Nil))
}

/// Each field's value in each row (`None`: the row is null or lacks it),
/// column by column: one pass over each row's keys instead of a search
/// per field (records usually hold their fields in the schema's order, so
/// the next field is tried first). The first of repeated keys wins, as in
/// [`Record::get`].
fn spread<'a, K>(
    fields: &[Field],
    rows: impl Iterator<Item = Option<K>>,
    len: usize,
) -> Vec<Vec<Option<&'a Value>>>
where
    K: Iterator<Item = (&'a [u8], &'a Value)>,
{
    let index: HashMap<&[u8], usize> = fields
        .iter()
        .enumerate()
        .map(|(i, f)| (f.name.as_bytes(), i))
        .collect();
    let mut columns = vec![vec![None; len]; fields.len()];
    for (row, keys) in rows.enumerate() {
        let Some(keys) = keys else { continue };
        let mut next = 0;
        for (key, value) in keys {
            let at = match fields.get(next) {
                Some(f) if f.name.as_bytes() == key => Some(next),
                _ => index.get(key).copied(),
            };
            if let Some(i) = at {
                next = i + 1;
                let slot = &mut columns[i][row];
                if slot.is_none() {
                    *slot = Some(value);
                }
            }
        }
    }
    columns
}

/// Writes batches of one schema into a Parquet file, one row group each.
pub struct ParquetWriter<W: Write + Send> {
    schema: Schema,
    inner: ArrowWriter<W>,
    strict: bool,
}

impl<W: Write + Send> ParquetWriter<W> {
    /// A writer of `schema`'s columns into `out`.
    pub fn new(out: W, schema: Schema, codec: Codec) -> Result<ParquetWriter<W>, WriteError> {
        let compression = match codec {
            Codec::Snappy => Compression::SNAPPY,
            Codec::Zstd => Compression::ZSTD(ZstdLevel::try_new(3)?),
        };
        let properties = WriterProperties::builder()
            .set_compression(compression)
            .build();
        let inner = ArrowWriter::try_new(out, Arc::new(arrow_schema(&schema)), Some(properties))?;
        Ok(ParquetWriter {
            schema,
            inner,
            strict: false,
        })
    }

    /// Refuse records with a field the schema has no column for (for a
    /// schema given by hand; one inferred from the records has them all).
    pub fn reject_unknown_fields(mut self, strict: bool) -> ParquetWriter<W> {
        self.strict = strict;
        self
    }

    /// Writes `records` as one row group.
    pub fn write(&mut self, records: &[Record]) -> Result<(), WriteError> {
        if self.strict {
            check_fields(&self.schema, records)?;
        }
        let batch = batch(&self.schema, records)?;
        self.inner.write(&batch)?;
        self.inner.flush()?;
        Ok(())
    }

    /// Bytes written to the output so far (every row group written is
    /// flushed, so this is the file's size without its footer).
    pub fn bytes_written(&self) -> u64 {
        self.inner.bytes_written() as u64
    }

    /// Finishes the file (its footer) and gives back the output.
    pub fn finish(self) -> Result<W, WriteError> {
        Ok(self.inner.into_inner()?)
    }
}

#[cfg(test)]
mod tests;
