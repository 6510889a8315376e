/*!
Replaying a stream: its archives from a time on, then the live stream from
exactly where the archives end, shard by shard (docs: issue 20, in
progress).

It depends on both adapters (`triton-s3` for the archives and their
sidecars, `triton-kinesis` for the live stream), which do not depend on
each other.

Today it holds the hand-off planner, [`plan::plan`]: from the sidecars of
the archives read and the stream's shards, where the live reader starts on
each shard, and which ranges are lost between the archive and the stream.
*/
#![deny(missing_docs)]

pub mod plan;
