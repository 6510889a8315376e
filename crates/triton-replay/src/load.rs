//! Loading what the hand-off is planned from: the archives' sidecars and
//! the stream's shards.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt};
use triton_core::source::SequenceNumber;
use triton_kinesis::{list_shards, Client, KinesisError, ShardInfo};
use triton_s3::{read_sidecar, Archive, ArchiveStore, SidecarError};

use crate::plan::{plan, plan_from_checkpoints, Archived, Handoff};

/// Sidecars read at once.
const CONCURRENCY: usize = 16;

/// Why the hand-off could not be planned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// A sidecar could not be read.
    #[error("the sidecar of {key}")]
    Sidecar {
        /// The archive.
        key: String,
        /// Why.
        #[source]
        source: SidecarError,
    },
    /// An archive has no sidecar and is no upload in progress: where its
    /// shards end is unknown.
    #[error(
        "archive {key} has no metadata sidecar (go-triton's archives have none): the hand-off \
         to the stream needs every sidecar (`triton audit --repair` writes missing ones)"
    )]
    MissingSidecar {
        /// The archive.
        key: String,
    },
    /// The stream's shards could not be listed.
    #[error("listing the shards of {stream}")]
    Shards {
        /// The stream.
        stream: String,
        /// Why.
        #[source]
        source: KinesisError,
    },
}

/// The archives to read and the hand-off after them.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The archives to read, in order: those listed, less the trailing
    /// recent ones whose sidecar is not there yet (uploads in progress: the
    /// sidecar follows the archive; their records are read live).
    pub archives: Vec<Archive>,
    /// Where the live stream takes over.
    pub handoff: Handoff,
    /// The Unix second shards without archived lineage start at.
    pub from: u64,
    /// The sidecars of `archives`, in order (none when the hand-off comes
    /// from checkpoints).
    pub sidecars: Vec<Archived>,
    /// The stream's shards.
    pub shards: Vec<ShardInfo>,
}

/// Why the archives cannot be cut at an end.
#[derive(Debug, thiserror::Error)]
#[error(
    "archives opened after the end are left out, and the hand-off before them needs their \
     sidecars (`triton audit --repair` writes missing ones)"
)]
pub struct CutError;

impl Loaded {
    /// The replay to the end `to` (Unix seconds): only the archives opened
    /// at or before it are read (whole: their records carry no time), and
    /// the hand-off is planned after them. Shards whose records go on in
    /// the archives left out are [`Handoff::covered`]: the live part
    /// still reads them up to the end where the stream holds them (a
    /// store writes a record that arrived just before the end into the next
    /// archive), but their records the stream no longer holds are not
    /// reported as lost. Needs sidecars if any archive is left out.
    pub fn until(self, to: u64) -> Result<Loaded, CutError> {
        let read = self.archives.partition_point(|a| a.key.timestamp() <= to);
        if read == self.archives.len() {
            return Ok(self);
        }
        if self.sidecars.len() != self.archives.len() {
            return Err(CutError);
        }
        let (kept, left) = self.sidecars.split_at(read);
        let mut handoff = plan(kept, &self.shards, self.from);
        handoff.covered = left
            .iter()
            .flat_map(|a| a.sidecar.shards.keys().cloned())
            .collect();
        let mut archives = self.archives;
        archives.truncate(read);
        let mut sidecars = self.sidecars;
        sidecars.truncate(read);
        Ok(Loaded {
            archives,
            handoff,
            from: self.from,
            sidecars,
            shards: self.shards,
        })
    }
}

/// Reads the sidecars of `archives` (in reading order) and lists the shards
/// of `stream`, then plans the hand-off; `from` as in [`plan`].
///
/// Trailing archives without a sidecar that were opened after `recent`
/// (Unix seconds; a day ago suits any `--max-file-age` up to a day) are
/// uploads in progress, left to the live stream. Any other archive without
/// a sidecar (go-triton's have none) is an error: where its shards end is
/// unknown, and its records may have left the stream.
pub async fn load(
    store: Arc<dyn ArchiveStore>,
    kinesis: &Client,
    stream: &str,
    archives: Vec<Archive>,
    from: u64,
    recent: u64,
) -> Result<Loaded, LoadError> {
    let sidecars: Vec<_> = futures_util::stream::iter(&archives)
        .map(|a| {
            let store = store.clone();
            async move {
                let key = a.key.to_string();
                match read_sidecar(&*store, &key).await {
                    Ok(s) => Ok(s),
                    Err(source) => Err(LoadError::Sidecar { key, source }),
                }
            }
        })
        .buffered(CONCURRENCY)
        .try_collect()
        .await?;
    let mut read = sidecars.len();
    while read > 0 && sidecars[read - 1].is_none() && archives[read - 1].key.timestamp() > recent {
        read -= 1;
    }
    let mut archived = Vec::with_capacity(read);
    for (a, sidecar) in archives.iter().zip(sidecars).take(read) {
        let Some(sidecar) = sidecar else {
            return Err(LoadError::MissingSidecar {
                key: a.key.to_string(),
            });
        };
        archived.push(Archived {
            key: a.key.clone(),
            sidecar,
        });
    }
    let shards = shards_of(kinesis, stream).await?;
    let mut archives = archives;
    archives.truncate(read);
    Ok(Loaded {
        archives,
        handoff: plan(&archived, &shards, from),
        from,
        sidecars: archived,
        shards,
    })
}

/// As [`load`], for archives without sidecars (go-triton's): the hand-off
/// is `checkpoints` (shard -> sequence number), those of the store that
/// wrote the archives, taken before the archives were listed so that every
/// record up to them is in the archives listed (see
/// [`plan_from_checkpoints`]).
pub async fn load_with_checkpoints(
    kinesis: &Client,
    stream: &str,
    archives: Vec<Archive>,
    from: u64,
    checkpoints: &BTreeMap<String, SequenceNumber>,
) -> Result<Loaded, LoadError> {
    let shards = shards_of(kinesis, stream).await?;
    Ok(Loaded {
        archives,
        handoff: plan_from_checkpoints(checkpoints, &shards, from),
        from,
        sidecars: Vec::new(),
        shards,
    })
}

async fn shards_of(kinesis: &Client, stream: &str) -> Result<Vec<ShardInfo>, LoadError> {
    list_shards(kinesis, stream)
        .await
        .map_err(|source| LoadError::Shards {
            stream: stream.to_owned(),
            source,
        })
}
