//! [`LeaseStore`]: shard leases for a fleet of `triton store` workers, kept
//! in the checkpoint database beside the checkpoints.
//!
//! Each (client, stream, shard) has one lease. A worker reads a shard only
//! while it holds its lease, renewed every few seconds; a lease not renewed
//! in time expires (on the database's clock, never by comparing hosts'
//! clocks) and another worker takes it. Every change of owner raises the
//! lease's **epoch**, and every write that moves data forward (recording an
//! upload intent, completing it, saving checkpoints) checks in its own
//! transaction that the writer still holds its leases at the epochs it read
//! them under: a worker that lost a lease, however late it wakes up, cannot
//! commit anything for it. This crate holds the trait and its types;
//! `triton-checkpoint` implements it in SQL.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use crate::checkpoint::{Checkpoint, CheckpointStore, IntentId, IntentStore, Result, UploadIntent};
use crate::source::{RecordSource, Replay, SourceError};

/// A lease held at an epoch.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Held {
    /// The shard id.
    pub shard: String,
    /// The epoch the lease was taken at.
    pub epoch: i64,
}

/// What a fenced write requires: that `worker` still holds every lease at
/// its epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fence {
    /// The worker's id.
    pub worker: String,
    /// Shard -> epoch.
    pub leases: BTreeMap<String, i64>,
}

impl Fence {
    /// A fence over `held`.
    pub fn new(worker: impl Into<String>, held: &[Held]) -> Fence {
        Fence {
            worker: worker.into(),
            leases: held.iter().map(|h| (h.shard.clone(), h.epoch)).collect(),
        }
    }

    /// The text stored beside an upload intent: the worker's id on the
    /// first line, then one `shard epoch` line per lease (ids hold no
    /// whitespace).
    pub fn encode(&self) -> String {
        let mut text = self.worker.clone();
        for (shard, epoch) in &self.leases {
            text.push('\n');
            text.push_str(shard);
            text.push(' ');
            text.push_str(&epoch.to_string());
        }
        text
    }

    /// Reads [`encode`](Fence::encode)'s text; `None` if it is not one.
    pub fn decode(text: &str) -> Option<Fence> {
        let mut lines = text.lines();
        let worker = lines.next()?.to_owned();
        let mut leases = BTreeMap::new();
        for line in lines {
            let (shard, epoch) = line.split_once(' ')?;
            leases.insert(shard.to_owned(), epoch.parse().ok()?);
        }
        Some(Fence { worker, leases })
    }

    /// Why this fence no longer holds, given the leases its worker holds
    /// now (`held_now`), or `None` while it does.
    pub fn broken_against(&self, held_now: &[Held]) -> Option<String> {
        for (shard, epoch) in &self.leases {
            match held_now.iter().find(|h| &h.shard == shard) {
                Some(h) if h.epoch == *epoch => {}
                Some(h) => {
                    return Some(format!(
                        "{} holds {shard} at epoch {}, not {epoch}: it lost the lease and took it again",
                        self.worker, h.epoch
                    ))
                }
                None => {
                    return Some(format!(
                        "{} no longer holds {shard} (epoch {epoch})",
                        self.worker
                    ))
                }
            }
        }
        None
    }

    /// [`broken_against`](Fence::broken_against) the current `leases` of
    /// its stream.
    pub fn broken_by(&self, leases: &[LeaseInfo]) -> Option<String> {
        let held_now: Vec<Held> = leases
            .iter()
            .filter(|l| l.owner.as_deref() == Some(self.worker.as_str()))
            .map(|l| Held {
                shard: l.shard.clone(),
                epoch: l.epoch,
            })
            .collect();
        self.broken_against(&held_now)
    }
}

/// Shards a reader has read to their end, each with the last sequence
/// number it delivered (`None`: nothing, the shard was already read to its
/// end). Shared between a worker and the reader of its leased shards: the
/// worker marks a lease ended once that record is committed.
#[derive(Clone, Debug, Default)]
pub struct FinishedShards(Arc<Mutex<BTreeMap<String, Option<String>>>>);

impl FinishedShards {
    /// Notes that `shard` is finished, `last` its last delivered record.
    pub fn finish(&self, shard: &str, last: Option<String>) {
        if let Ok(mut f) = self.0.lock() {
            f.insert(shard.to_owned(), last);
        }
    }

    /// Every finished shard so far.
    pub fn snapshot(&self) -> BTreeMap<String, Option<String>> {
        self.0.lock().map(|f| f.clone()).unwrap_or_default()
    }
}

/// A shard as a lease is made for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardSpec {
    /// The shard id.
    pub shard: String,
    /// Its parents (a split has one, a merge two).
    pub parents: Vec<String>,
}

/// Whether a shard still has records to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LeaseState {
    /// Open, or closed with records not yet committed.
    Active,
    /// Closed, and its last record is committed: its children may start.
    Ended,
}

impl LeaseState {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            LeaseState::Active => "active",
            LeaseState::Ended => "ended",
        }
    }
}

/// One lease as listed.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct LeaseInfo {
    /// The shard id.
    pub shard: String,
    /// The worker holding it, if any.
    pub owner: Option<String>,
    /// Raised on every change of owner.
    pub epoch: i64,
    /// Milliseconds since the last renewal (database clock), if ever held.
    pub renewed_ms_ago: Option<i64>,
    /// Whether the lease ran out without being renewed or released.
    pub expired: bool,
    /// Active or ended.
    pub state: LeaseState,
    /// Parent shards.
    pub parents: Vec<String>,
    /// Bytes a second read from the shard, as its owner last measured.
    pub bytes_per_second: f64,
    /// The worker it is being handed over to, while that handoff lasts
    /// (only that worker may take it meanwhile).
    pub handoff_to: Option<String>,
}

impl LeaseInfo {
    /// Whether `worker` may take it: active, free or expired, not being
    /// handed over to another worker, and every parent that has a lease
    /// has ended.
    pub fn takeable_by(&self, all: &[LeaseInfo], worker: &str) -> bool {
        self.state == LeaseState::Active
            && (self.owner.is_none() || self.expired)
            && self.handoff_to.as_deref().is_none_or(|to| to == worker)
            && self.parents_ended(all)
    }

    /// Whether every parent with a lease has ended (a parent without one is
    /// gone from the stream).
    pub fn parents_ended(&self, all: &[LeaseInfo]) -> bool {
        self.parents.iter().all(|p| {
            all.iter()
                .find(|l| &l.shard == p)
                .is_none_or(|l| l.state == LeaseState::Ended)
        })
    }
}

/// A live worker as listed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct WorkerInfo {
    /// Its id.
    pub worker: String,
    /// Milliseconds since its last heartbeat (database clock).
    pub heartbeat_ms_ago: i64,
}

/// Every lease of a stream and its live workers.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct LeaseTable {
    /// By shard.
    pub leases: Vec<LeaseInfo>,
    /// Workers whose heartbeat has not run out, by id.
    pub workers: Vec<WorkerInfo>,
}

/// Which client and stream, and how long a lease lasts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseScope {
    /// The consumer's name.
    pub client: String,
    /// The real stream name.
    pub stream: String,
}

/// The stream a worker archives: its shards, a reader of a chosen set of
/// them, and a replay of recorded ranges (to rebuild interrupted uploads).
#[async_trait]
pub trait ShardSource: Send + Sync {
    /// What reads the leased shards.
    type Source: RecordSource + Send;

    /// The stream's shards now, with their parents.
    async fn shards(&self) -> Result<Vec<ShardSpec>, SourceError>;

    /// A source of exactly `shards`, saving checkpoints (when it does) in
    /// `checkpoints` and noting in `finished` each shard read to its end.
    async fn open(
        &self,
        shards: BTreeSet<String>,
        checkpoints: Arc<dyn CheckpointStore>,
        finished: FinishedShards,
    ) -> Result<Self::Source, SourceError>;

    /// Reads recorded ranges again.
    fn replay(&self) -> &dyn Replay;
}

/// Leases in the checkpoint database; see the module documentation.
/// Every method is one transaction.
#[async_trait]
pub trait LeaseStore: IntentStore {
    /// Adds a free, active lease for each shard that has none.
    async fn add_shards(&self, scope: &LeaseScope, shards: &[ShardSpec]) -> Result<()>;

    /// Records that `worker` is alive for `duration`, renews for `duration`
    /// those of `held` it still holds at their epoch (storing each one's
    /// throughput, bytes a second) and returns them: a lease missing from
    /// the answer is lost. A lease that expired is not renewed, even if
    /// nobody took it yet.
    async fn renew(
        &self,
        scope: &LeaseScope,
        worker: &str,
        held: &[Held],
        throughput: &[(String, f64)],
        duration: Duration,
    ) -> Result<Vec<Held>>;

    /// Takes, with a new epoch each, up to `max` of `shards` that are still
    /// takeable by `worker` ([`LeaseInfo::takeable_by`]), for `duration`. Leases `worker`
    /// itself holds (a restart under the same id) are taken over too, with
    /// a new epoch, whatever `max`. Contended leases are skipped, not
    /// waited for.
    async fn acquire(
        &self,
        scope: &LeaseScope,
        worker: &str,
        shards: &[String],
        max: usize,
        duration: Duration,
    ) -> Result<Vec<Held>>;

    /// Frees the leases of `held` that `worker` still holds at their epoch.
    async fn release(&self, scope: &LeaseScope, worker: &str, held: &[Held]) -> Result<()>;

    /// Frees a lease `worker` holds at its epoch for `to` alone to take
    /// within `within` (after that, for anyone): a handoff to balance
    /// throughput, made after the owner committed everything it read.
    async fn hand_over(
        &self,
        scope: &LeaseScope,
        worker: &str,
        lease: &Held,
        to: &str,
        within: Duration,
    ) -> Result<()>;

    /// Marks a held lease ended (its shard is closed and its last record
    /// committed); the owner keeps it until it releases it.
    async fn mark_ended(&self, scope: &LeaseScope, worker: &str, lease: &Held) -> Result<()>;

    /// Removes `worker` from the live workers (a graceful stop).
    async fn leave(&self, scope: &LeaseScope, worker: &str) -> Result<()>;

    /// Every lease and live worker of the stream.
    async fn leases(&self, scope: &LeaseScope) -> Result<LeaseTable>;

    /// [`IntentStore::record_intent`], in a transaction that first
    /// checks `fence` ([`CheckpointError::Fenced`](crate::checkpoint::CheckpointError::Fenced) if it broke), and refuses
    /// with [`CheckpointError::KeyTaken`](crate::checkpoint::CheckpointError::KeyTaken) a key whose intent is not this
    /// worker's (another worker's, or one of before leases): only
    /// [`claim_intent`](LeaseStore::claim_intent) takes those over. The
    /// intent `replaces` is deleted only if it is this worker's.
    async fn record_intent_fenced(
        &self,
        intent: &UploadIntent,
        replaces: Option<&str>,
        fence: &Fence,
    ) -> Result<()>;

    /// [`IntentStore::complete_intent`] after checking `fence` in the
    /// same transaction.
    async fn complete_intent_fenced(
        &self,
        intent: IntentId<'_>,
        checkpoints: &[Checkpoint],
        fence: &Fence,
    ) -> Result<()>;

    /// [`CheckpointStore::save_many`] after checking `fence` in the same
    /// transaction.
    async fn save_many_fenced(&self, checkpoints: &[Checkpoint], fence: &Fence) -> Result<()>;

    /// Makes the intent this worker's, to finish it: only if `fence`
    /// holds and the intent's own fence does not (its writer lost a lease,
    /// or it was recorded without leases). False when there is no such
    /// intent or its writer still holds its leases.
    async fn claim_intent(&self, intent: IntentId<'_>, fence: &Fence) -> Result<bool>;

    /// The pending intents of the stream with the fence each was recorded
    /// under (`None`: recorded without leases, by an older version).
    async fn fenced_intents(
        &self,
        client: &str,
        stream: &str,
    ) -> Result<Vec<(UploadIntent, Option<Fence>)>>;
}

/// Implements [`LeaseStore`] for pointers to a store (`Box`, `Arc`, `&`),
/// forwarding every method (`deny(clippy::missing_trait_methods)` checks
/// none is missing); [`CheckpointStore`] and [`IntentStore`] are forwarded
/// in [`crate::checkpoint`].
macro_rules! forward_lease_store {
    ($($ptr:ty),*) => {$(
        #[deny(clippy::missing_trait_methods)]
        #[async_trait]
        impl<T: LeaseStore + ?Sized> LeaseStore for $ptr {
            async fn add_shards(&self, scope: &LeaseScope, shards: &[ShardSpec]) -> Result<()> {
                (**self).add_shards(scope, shards).await
            }

            async fn renew(&self, scope: &LeaseScope, worker: &str, held: &[Held], throughput: &[(String, f64)], duration: Duration) -> Result<Vec<Held>> {
                (**self).renew(scope, worker, held, throughput, duration).await
            }

            async fn acquire(&self, scope: &LeaseScope, worker: &str, shards: &[String], max: usize, duration: Duration) -> Result<Vec<Held>> {
                (**self).acquire(scope, worker, shards, max, duration).await
            }

            async fn release(&self, scope: &LeaseScope, worker: &str, held: &[Held]) -> Result<()> {
                (**self).release(scope, worker, held).await
            }

            async fn hand_over(&self, scope: &LeaseScope, worker: &str, lease: &Held, to: &str, within: Duration) -> Result<()> {
                (**self).hand_over(scope, worker, lease, to, within).await
            }

            async fn mark_ended(&self, scope: &LeaseScope, worker: &str, lease: &Held) -> Result<()> {
                (**self).mark_ended(scope, worker, lease).await
            }

            async fn leave(&self, scope: &LeaseScope, worker: &str) -> Result<()> {
                (**self).leave(scope, worker).await
            }

            async fn leases(&self, scope: &LeaseScope) -> Result<LeaseTable> {
                (**self).leases(scope).await
            }

            async fn record_intent_fenced(&self, intent: &UploadIntent, replaces: Option<&str>, fence: &Fence) -> Result<()> {
                (**self).record_intent_fenced(intent, replaces, fence).await
            }

            async fn complete_intent_fenced(&self, intent: IntentId<'_>, checkpoints: &[Checkpoint], fence: &Fence) -> Result<()> {
                (**self).complete_intent_fenced(intent, checkpoints, fence).await
            }

            async fn save_many_fenced(&self, checkpoints: &[Checkpoint], fence: &Fence) -> Result<()> {
                (**self).save_many_fenced(checkpoints, fence).await
            }

            async fn claim_intent(&self, intent: IntentId<'_>, fence: &Fence) -> Result<bool> {
                (**self).claim_intent(intent, fence).await
            }

            async fn fenced_intents(&self, client: &str, stream: &str) -> Result<Vec<(UploadIntent, Option<Fence>)>> {
                (**self).fenced_intents(client, stream).await
            }
        }
    )*};
}

forward_lease_store!(Box<T>, Arc<T>, &T);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fence_reads_back_what_it_wrote() {
        let fence = Fence::new(
            "host:12-ab",
            &[
                Held {
                    shard: "shardId-000000000001".into(),
                    epoch: 7,
                },
                Held {
                    shard: "shardId-000000000000".into(),
                    epoch: 3,
                },
            ],
        );
        assert_eq!(Fence::decode(&fence.encode()), Some(fence));
        assert_eq!(Fence::decode("w\nshard x"), None);
    }
}
