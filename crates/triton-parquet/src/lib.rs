/*!
triton archives for the engines people query with: Parquet, with a schema
inferred from the MessagePack records themselves.

The schema is inferred ([`infer`]) from every record (a first pass, so it
is exact: no record can fail to fit it), each field given a column type by
the rules documented on [`ColumnType`]; [`write`] turns records into Arrow
batches and Parquet row groups; [`files`] converts local `.tri` files into
one Parquet file; [`lake`] lays archives out as a Hive-partitioned dataset
(partitions, file names, provenance columns, the manifest that marks a
partition converted) and [`parts`] writes a partition's files of a target
size.
*/
#![deny(missing_docs)]

pub mod files;
pub mod infer;
pub mod lake;
pub mod parts;
pub mod write;

pub use self::files::{
    convert_files, convert_to_path, infer_files, ConvertError, ConvertOptions, Converted, Damaged,
};
pub use self::infer::{ColumnType, Field, Inference, Schema};
pub use self::lake::{Manifest, Partition, Settings, Stale};
pub use self::parts::{Part, PartWriter};
pub use self::write::{Codec, ParquetWriter, WriteError};
