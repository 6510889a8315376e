/*!
triton archives for the engines people query with: Parquet, with a schema
inferred from the MessagePack records themselves.

This first part is the inference ([`infer`]): it reads every record (a
first pass, so the schema is exact: no record can fail to fit it), and
gives each field a column type by the rules documented on [`ColumnType`].
*/
#![deny(missing_docs)]

pub mod infer;
pub mod write;

pub use self::infer::{ColumnType, Field, Inference, Schema};
pub use self::write::{Codec, ParquetWriter, WriteError};
