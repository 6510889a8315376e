/*!
Replaying a stream: its archives from a time on, then the live stream from
exactly where the archives end, shard by shard (docs: issue 20, in
progress).

It depends on both adapters (`triton-s3` for the archives and their
sidecars, `triton-kinesis` for the live stream), which do not depend on
each other.

Today it holds the hand-off: [`load()`] reads the sidecars of the archives
to read and lists the stream's shards, and [`plan::plan`] decides from them
where the live reader starts on each shard and which ranges are lost
between the archive and the stream.
*/
#![deny(missing_docs)]

mod load;
pub mod plan;

pub use self::load::{load, LoadError, Loaded};
