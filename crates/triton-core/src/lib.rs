/*!
The offline core of triton: everything needed to read and write triton
archives without AWS or a database.

- [`config`]: the shared YAML stream config (logical name → real stream name,
  partition key, region).
- [`value`]: the record model. [`value::Record`] is one event (a MessagePack
  map with string keys); [`value::Value`] keeps every MessagePack distinction
  (int vs uint, float32 vs float64, str vs bin, ext types, timestamps).
- [`archive`]: the `.tri` format (Snappy framed MessagePack).
  [`archive::ArchiveReader`] streams records out of any `Read`,
  [`archive::ArchiveWriter`] writes them; both report byte offsets on errors.
- [`msgpack`]: validating, decoding and encoding single records, and serde
  access to them as your own types.
- [`key`]: archive names in S3 (`<YYYYMMDD>/<stream>-<client>-<ts>.tri`).
- [`error`]: [`error::Report`] prints an error with its causes on one line.
- [`json`]: the JSON view printed by `triton decode` and `triton cat`.
- [`checkpoint`]: the [`checkpoint::CheckpointStore`] trait through which
  readers save and resume per-shard positions, with an in-memory store.
- [`lease`]: the [`lease::LeaseStore`] trait of shard leases for a fleet
  of `triton store` workers (fencing epochs).
- [`retry`]: exponential backoff with jitter, shared by the AWS adapters.
- [`source`]: the [`source::RecordSource`] trait every reader implements
  (Kinesis, S3, local files), with acknowledgements for checkpointing.

```
use serde::{Deserialize, Serialize};
use triton_core::archive::{ArchiveReader, ArchiveWriter};

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Click { user_id: u64, page: String }

let mut w = ArchiveWriter::new(Vec::new());
w.write_serialize(&Click { user_id: 7, page: "/home".into() })?;
let file = w.finish()?;

let mut r = ArchiveReader::new(&file[..]);
let click: Option<Click> = r.next_typed()?;
assert_eq!(click, Some(Click { user_id: 7, page: "/home".into() }));
# Ok::<(), triton_core::archive::ArchiveError>(())
```
*/
#![deny(missing_docs)]

pub mod archive;
pub mod checkpoint;
pub mod config;
pub mod error;
pub mod health;
pub mod json;
pub mod key;
pub mod lease;
pub mod msgpack;
pub mod retry;
pub mod source;
pub mod time;
pub mod value;
