/*!
S3 for triton: where archives are stored and how they are read back.

- [`ArchiveStore`]: list, head, streaming get, streaming put and delete over
  [`S3Store`] (a bucket, through `aws-sdk-s3`) or [`LocalStore`] (a directory
  laid out like a bucket). [`Location::parse`] turns a user's `--bucket`
  value (`name`, `s3://name`, `s3://name/prefix/`, `file:///path`,
  `./path`) into either.
- Uploads stream from a file: one request up to the part size, multipart
  with bounded parallelism beyond it, retried with backoff, aborted on
  failure, optionally create-only (`If-None-Match: *`) and encrypted
  ([`Sse`]).
- [`list_archives`] finds a stream's archives over an inclusive date range
  (docs/format.md §4: every page of every day, non-archive keys skipped, one
  client only), and [`ArchiveSource`] reads them as a
  [`RecordSource`](triton_core::source::RecordSource), streaming and
  decoding each body with bounded memory.
- [`audit::audit`]: the sequence ranges a stream's archives cover, from
  their metadata sidecars, with overlaps, missing or mismatched sidecars
  and checkpoints beyond the archives.
- [`archiver::Archiver`]: the pipeline of `triton store`: any `RecordSource`
  into sealed, uploaded archives, acknowledging and committing the source's
  positions only after each upload.

```no_run
use std::sync::Arc;
use triton_core::source::RecordSource;
use triton_core::time::Date;
use triton_s3::{list_archives, ArchiveQuery, ArchiveSource, Location, ReadOptions, S3Options};

# async fn run() -> Result<(), Box<dyn std::error::Error>> {
let store = Location::parse("my-archive-bucket")?.open("us-west-1", S3Options::default()).await;
let query = ArchiveQuery {
    stream: "user_activity_prod".into(),
    start: Date::parse_yyyymmdd("20241001")?,
    end: Date::parse_yyyymmdd("20241015")?,
    client: None,
};
let archives = list_archives(store.clone(), &query).await?;
let mut source = ArchiveSource::new(store, archives, ReadOptions::default());
while let Some(batch) = source.next_batch(1000).await? {
    for r in batch {
        println!("{:?}", r.record()?);
    }
}
# Ok(())
# }
```
*/
#![deny(missing_docs)]

pub mod archiver;
pub mod audit;
mod error;
mod local;
mod location;
mod reader;
pub mod repair;
mod s3;
mod store;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;

pub use self::error::{ErrorKind, Result, StoreError};
pub use self::local::LocalStore;
pub use self::location::{Location, LocationError};
pub use self::reader::{
    list_archives, list_from, list_with_sidecars, read_sidecar, Archive, ArchiveQuery,
    ArchiveSource, FromQuery, ListError, Listing, ReadOptions, ReadProgress, SidecarError,
};
pub use self::s3::{
    check_tags, client, client_from, parse_storage_class, parse_tag, sdk_config, S3Options,
    S3Store, Sse, MIN_PART_SIZE,
};
pub use self::store::{
    read_object, ArchiveStore, BodyRead, ObjectBody, ObjectInfo, PutOptions, PutReceipt,
    ARCHIVE_CONTENT_TYPE,
};
/// The storage classes of [`S3Options::storage_class`].
pub use aws_sdk_s3::types::StorageClass;
