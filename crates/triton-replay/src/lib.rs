/*!
Replaying a stream: its archives from a time on, then the live stream from
exactly where the archives end, shard by shard (docs/replay.md).

It depends on both adapters (`triton-s3` for the archives and their
sidecars, `triton-kinesis` for the live stream), which do not depend on
each other.

[`ReplaySource`] is the [`RecordSource`](triton_core::source::RecordSource)
that reads the archives, then the stream from the hand-off. It follows the
live stream, stops at its tip, or at an end time
([`ReplayOptions::end`]); [`ReplaySource::resume`] goes on with a replay
saved in a [`ReplayStore`](triton_core::checkpoint::ReplayStore).
[`load()`] reads the sidecars of the archives
to read and lists the stream's shards, and [`plan::plan`] decides from them
where the live reader starts on each shard and which ranges are lost
between the archive and the stream; [`load_with_checkpoints`] plans it from
the checkpoints of the store that wrote archives without sidecars.
*/
#![deny(missing_docs)]

mod load;
pub mod plan;
mod probe;
mod resume;
mod source;

pub use self::load::{load, load_with_checkpoints, CutError, LoadError, Loaded};
pub use self::resume::Resume;
pub use self::source::{ReplayOptions, ReplaySource};
