/*!
The offline core of triton: everything needed to read and write triton
archives without AWS or a database.

- [`value`]: the record model. [`value::Record`] is one event (a MessagePack
  map with string keys); [`value::Value`] keeps every MessagePack distinction
  (int vs uint, float32 vs float64, str vs bin, ext types, timestamps).
- [`archive`]: the `.tri` format (Snappy framed MessagePack).
  [`archive::ArchiveReader`] streams records out of any `Read`,
  [`archive::ArchiveWriter`] writes them; both report byte offsets on errors.
- [`msgpack`]: validating, decoding and encoding single records, and serde
  access to them as your own types.
- [`key`]: archive names in S3 (`<YYYYMMDD>/<stream>-<client>-<ts>.tri`),
  with the times of [`time`].
- [`error`]: [`error::Report`] prints an error with its causes on one line.
- [`json`]: the JSON view printed by `triton decode` and `triton cat`.
- [`health`]: liveness and readiness state of a long-running command.
- `config` (feature `config`): the shared YAML stream config (logical
  name → real stream name, partition key, region).
- `source` (feature `async`): the `RecordSource` trait every reader
  implements (Kinesis, S3, local files), with acknowledgements for
  checkpointing.
- `checkpoint` (feature `async`): the `CheckpointStore` trait through which
  readers save and resume per-shard positions, with an in-memory store.
- `lease` (feature `async`): the `LeaseStore` trait of shard leases for a
  fleet of `triton store` workers (fencing epochs).
- `retry` (feature `async`): the one retry policy (exponential backoff with
  jitter, a budget) and the policies of every call site.

# Features

- `config` (default): the `config` module; pulls serde_yaml and strsim.
- `async` (default): the `source`, `checkpoint`, `lease` and `retry` modules; pulls
  tokio and async-trait.
- `test-util` (implies `async`): the conformance suites that backend crates
  run (`source::conformance`, `checkpoint::conformance`).

A program that only decodes or writes archives can build core with
`default-features = false`: it keeps every module above without a feature
note, and builds no async runtime and no YAML parser.

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
#[cfg(feature = "async")]
pub mod checkpoint;
#[cfg(feature = "config")]
pub mod config;
pub mod error;
pub mod health;
pub mod json;
pub mod key;
#[cfg(feature = "async")]
pub mod lease;
pub mod msgpack;
#[cfg(feature = "async")]
pub mod retry;
#[cfg(feature = "async")]
pub mod source;
pub mod time;
pub mod value;
