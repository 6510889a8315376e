//! [`Worker`]: one member of a fleet of archivers of a stream, reading the
//! shards it leases ([`LeaseStore`]) and archiving them with an
//! [`Archiver`]. A single store is a fleet of one.
//!
//! A worker runs in **generations**: it takes its fair share of the leases
//! (shards it may read: active, free or expired, parents ended), finishes
//! the upload intents other owners of those shards left, reads the shards
//! into archives, and ends the generation gracefully (seal, upload,
//! commit) when its share changes: a shard ended (its lease is marked
//! ended once its last record is committed, and released, so that its
//! children start), it holds more than its share (it releases one lease),
//! or it holds less and a lease is free. Leases it keeps stay at their
//! epoch across generations.
//!
//! Leases are renewed in the background, every
//! [`WorkerOptions::renew_interval`]. If a renewal says a lease was lost,
//! or no renewal succeeded for nearly a lease duration, the generation's
//! [`Fuse`] trips: the archiver stops at once, uploads and commits nothing
//! more, and the worker releases what it still holds and starts again.
//! Every write that moves data forward checks the leases in its own
//! transaction ([`FencedCheckpoints`]), so a worker that was paused while
//! another took over commits nothing, however late it wakes.
//!
//! Who finishes an interrupted upload: the holder of the first shard (in
//! byte order) of the archive, once the intent's fence is broken (its
//! writer lost a lease). Holders of the other shards of that archive wait
//! for it before reading them.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use triton_core::error::Report;

use async_trait::async_trait;
use tokio::sync::watch;
use tokio::time::Instant;
use triton_core::checkpoint::{
    Checkpoint, CheckpointError, CheckpointStore, IntentId, IntentStore, Result, SavedCheckpoint,
    UploadIntent,
};
use triton_core::health::{health, Phase};
use triton_core::lease::{
    Fence, FinishedShards, Held, LeaseInfo, LeaseScope, LeaseState, LeaseStore, LeaseTable,
    ShardSource,
};
use triton_core::retry::policies;
use triton_core::source::SourceError;

use super::retry::watched;
use super::tally::{Level, Tally};
use super::{
    clean_stale, recover_intents, Archiver, ArchiverError, ArchiverOptions, ArchiverStats, Fuse,
    Metadata, RecoveryError, Summary,
};
use crate::store::ArchiveStore;

/// How a worker names itself and paces its leases.
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    /// The worker's id, unique in the fleet (in the lease table).
    pub worker: String,
    /// How long a lease lasts without renewal (default 20 s): after a
    /// crash, the worker's shards are read again this long after.
    pub lease_duration: Duration,
    /// How often leases are renewed and the share looked at (default a
    /// third of the lease duration).
    pub renew_interval: Duration,
    /// Exactly-once archiving, with upload intents (the default); false for
    /// at-least-once.
    pub exactly_once: bool,
}

impl WorkerOptions {
    /// `worker` with a lease of `lease_duration`, renewed every third of it.
    pub fn new(worker: impl Into<String>, lease_duration: Duration) -> WorkerOptions {
        WorkerOptions {
            worker: worker.into(),
            lease_duration,
            renew_interval: lease_duration / 3,
            exactly_once: true,
        }
    }
}

/// Why a worker stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerError {
    /// The lease database refused (not an outage: those are waited out).
    #[error(transparent)]
    Leases(#[from] CheckpointError),
    /// The stream could not be read.
    #[error("reading")]
    Source(#[from] SourceError),
    /// The archiver failed.
    #[error(transparent)]
    Archiver(#[from] ArchiverError),
    /// Finishing interrupted uploads failed.
    #[error("finishing interrupted uploads")]
    Recovery(#[from] RecoveryError),
}

/// What [`Worker::check`] found unusable.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {message}")]
pub struct CheckError {
    /// `the Kinesis stream`, `the archive store` or `the checkpoint
    /// database`.
    pub what: &'static str,
    /// The problem.
    pub message: String,
    /// What kind of problem.
    pub kind: CheckKind,
}

/// Kinds of [`CheckError`], for callers that explain the fix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CheckKind {
    /// The stream or the bucket does not exist.
    Missing,
    /// The credentials may not use it.
    Denied,
    /// An outage, which may end by itself.
    Unavailable,
    /// Anything else that retrying cannot fix.
    Other,
}

impl CheckError {
    /// An outage rather than a mistake to fix.
    pub fn is_transient(&self) -> bool {
        self.kind == CheckKind::Unavailable
    }
}

/// Lease counters, also exported through the [`metrics`] facade:
/// `triton_store_leases_held` (gauge) and
/// `triton_store_leases_{acquired,lost,released}_total`, labelled `stream`.
#[derive(Debug)]
pub struct LeaseStats {
    held: Level,
    acquired: Tally,
    lost: Tally,
    released: Tally,
}

impl LeaseStats {
    fn new(stream: &str) -> LeaseStats {
        LeaseStats {
            held: Level::new("triton_store_leases_held", stream),
            acquired: Tally::new("triton_store_leases_acquired_total", stream),
            lost: Tally::new("triton_store_leases_lost_total", stream),
            released: Tally::new("triton_store_leases_released_total", stream),
        }
    }

    /// Leases held now.
    pub fn held(&self) -> u64 {
        self.held.get()
    }

    /// Leases taken so far (each with a new epoch).
    pub fn acquired_total(&self) -> u64 {
        self.acquired.get()
    }

    /// Times a lease was lost (taken by another worker, or not renewed in
    /// time).
    pub fn lost_total(&self) -> u64 {
        self.lost.get()
    }

    /// Leases given up gracefully (to balance, at a stop, or ended).
    pub fn released_total(&self) -> u64 {
        self.released.get()
    }
}

/// A [`CheckpointStore`] and [`IntentStore`] whose writes check `fence` in their transaction,
/// tripping `fuse` when it broke.
#[derive(Debug)]
pub struct FencedCheckpoints {
    leases: Arc<dyn LeaseStore>,
    fence: Fence,
    fuse: Fuse,
}

impl FencedCheckpoints {
    /// Writes to `leases` under `fence`.
    pub fn new(leases: Arc<dyn LeaseStore>, fence: Fence, fuse: Fuse) -> FencedCheckpoints {
        FencedCheckpoints {
            leases,
            fence,
            fuse,
        }
    }

    fn checked<T>(&self, r: Result<T>) -> Result<T> {
        if let Err(e @ CheckpointError::Fenced { .. }) = &r {
            self.fuse.trip(e.to_string());
        }
        r
    }
}

#[async_trait]
impl CheckpointStore for FencedCheckpoints {
    async fn last(
        &self,
        client: &str,
        stream: &str,
        shard: &str,
    ) -> Result<Option<triton_core::source::SequenceNumber>> {
        self.leases.last(client, stream, shard).await
    }

    async fn save_many(&self, checkpoints: &[Checkpoint]) -> Result<()> {
        let r = self.leases.save_many_fenced(checkpoints, &self.fence).await;
        self.checked(r)
    }

    async fn list(&self, client: &str) -> Result<Vec<SavedCheckpoint>> {
        self.leases.list(client).await
    }
}

#[async_trait]
impl IntentStore for FencedCheckpoints {
    async fn record_intent(&self, intent: &UploadIntent, replaces: Option<&str>) -> Result<()> {
        let r = self
            .leases
            .record_intent_fenced(intent, replaces, &self.fence)
            .await;
        self.checked(r)
    }

    async fn complete_intent(
        &self,
        intent: IntentId<'_>,
        checkpoints: &[Checkpoint],
    ) -> Result<()> {
        let r = self
            .leases
            .complete_intent_fenced(intent, checkpoints, &self.fence)
            .await;
        self.checked(r)
    }

    async fn intents(&self, client: &str, stream: &str) -> Result<Vec<UploadIntent>> {
        self.leases.intents(client, stream).await
    }

    async fn checkpoint_archives(
        &self,
        client: &str,
        stream: &str,
    ) -> Result<Vec<(String, String)>> {
        self.leases.checkpoint_archives(client, stream).await
    }
}

/// The leases a worker holds, shared with its renewer.
#[derive(Debug, Default)]
struct Holding {
    held: Vec<Held>,
    /// The current generation's fuse.
    fuse: Fuse,
}

/// A fleet member; see the module documentation.
pub struct Worker<F: ShardSource> {
    source: F,
    store: Arc<dyn ArchiveStore>,
    leases: Arc<dyn LeaseStore>,
    archiver: ArchiverOptions,
    options: WorkerOptions,
    stats: Arc<LeaseStats>,
    /// Shared by the archivers of every generation.
    archiver_stats: Arc<ArchiverStats>,
    scope: LeaseScope,
}

impl<F: ShardSource> Worker<F> {
    /// A worker archiving `source` into `store` with `archiver`'s options
    /// (its `intents` and `fuse` are set per generation), keeping leases
    /// and checkpoints in `leases`.
    pub fn new(
        source: F,
        store: Arc<dyn ArchiveStore>,
        leases: Arc<dyn LeaseStore>,
        archiver: ArchiverOptions,
        options: WorkerOptions,
    ) -> Worker<F> {
        let scope = LeaseScope {
            client: archiver.client.clone(),
            stream: archiver.stream.clone(),
        };
        Worker {
            source,
            store,
            leases,
            archiver,
            options,
            stats: Arc::new(LeaseStats::new(&scope.stream)),
            archiver_stats: Arc::new(ArchiverStats::new(&scope.stream)),
            scope,
        }
    }

    /// Checks, before [`run`](Worker::run), that the stream, the archive
    /// store and the database are there and usable: the shards are listed,
    /// the store takes a probe object (deleted again, under a prefix no
    /// listing of archives reads), and the lease table is read. Nothing
    /// joins the fleet or takes a lease.
    pub async fn check(&self) -> Result<(), CheckError> {
        if let Err(e) = self.source.shards().await {
            let kind = match e {
                SourceError::Unavailable { .. } => CheckKind::Unavailable,
                SourceError::NotFound { .. } => CheckKind::Missing,
                _ => CheckKind::Other,
            };
            return Err(CheckError {
                what: "the Kinesis stream",
                message: Report(&e).to_string(),
                kind,
            });
        }
        if let Err(e) = self.store.check_writable().await {
            let kind = if e.is_transient() {
                CheckKind::Unavailable
            } else if e.code.as_deref() == Some("NoSuchBucket") || e.is_not_found() {
                CheckKind::Missing
            } else if e.is_access_denied() {
                CheckKind::Denied
            } else {
                CheckKind::Other
            };
            return Err(CheckError {
                what: "the archive store",
                message: Report(&e).to_string(),
                kind,
            });
        }
        if let Err(e) = self.leases.leases(&self.scope).await {
            let kind = match e.is_retryable() {
                true => CheckKind::Unavailable,
                false => CheckKind::Other,
            };
            return Err(CheckError {
                what: "the checkpoint database",
                message: Report(&e).to_string(),
                kind,
            });
        }
        Ok(())
    }

    /// Lease counters, updated as the worker runs.
    pub fn stats(&self) -> Arc<LeaseStats> {
        self.stats.clone()
    }

    /// Archiving counters of every generation, updated as the worker runs.
    pub fn archiver_stats(&self) -> Arc<ArchiverStats> {
        self.archiver_stats.clone()
    }

    /// Runs until `shutdown` completes: then the current generation ends
    /// gracefully (sealed, uploaded, committed), every lease is released
    /// and the worker leaves the fleet.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<Summary, WorkerError> {
        let (stop_tx, stop) = watch::channel(false);
        let holding = Arc::new(Mutex::new(Holding::default()));
        let renewer = tokio::spawn(renew_loop(
            self.leases.clone(),
            self.scope.clone(),
            self.options.clone(),
            holding.clone(),
            self.archiver_stats.clone(),
        ));
        let main = self.generations(stop, holding);
        tokio::pin!(main);
        tokio::pin!(shutdown);
        let mut stopping = false;
        let outcome = loop {
            tokio::select! {
                r = &mut main => break r,
                () = &mut shutdown, if !stopping => {
                    stopping = true;
                    let _ = stop_tx.send(true);
                }
            }
        };
        renewer.abort();
        outcome
    }

    async fn generations(
        &self,
        stop: watch::Receiver<bool>,
        holding: Arc<Mutex<Holding>>,
    ) -> Result<Summary, WorkerError> {
        let me = self.options.worker.as_str();
        let mut total = Summary::default();
        // Join first, then look: workers started together see each other
        // and take their fair shares instead of the first taking all.
        self.retry("joining the fleet", || {
            self.leases
                .renew(&self.scope, me, &[], &[], self.options.lease_duration)
        })
        .await?;
        pause(
            &stop,
            self.options.renew_interval.min(Duration::from_secs(1)),
        )
        .await;
        let mut release_next: Option<(Held, Option<String>)> = None;
        while !*stop.borrow() {
            let shards = self
                .retry_source("listing the shards", || self.source.shards())
                .await?;
            self.retry("adding leases for new shards", || {
                self.leases.add_shards(&self.scope, &shards)
            })
            .await?;
            match release_next.take() {
                Some((h, None)) => self.release(&holding, &[h], "to balance the fleet").await,
                Some((h, Some(to))) => self.hand_over(&holding, h, &to).await,
                None => {}
            }
            self.acquire(&holding).await?;
            let held = holding_now(&holding);
            if held.is_empty() {
                // Waiting for a free lease is normal work.
                health().set_phase(Phase::Running);
                pause(&stop, self.options.renew_interval).await;
                continue;
            }
            let fuse = Fuse::new();
            if let Ok(mut h) = holding.lock() {
                h.fuse = fuse.clone();
            }
            let fenced: Arc<dyn IntentStore> = Arc::new(FencedCheckpoints::new(
                self.leases.clone(),
                Fence::new(me, &held),
                fuse.clone(),
            ));
            let mut options = self.archiver.clone();
            options.intents = Some(fenced.clone());
            options.fuse = Some(fuse.clone());
            // One look at the leases after taking them serves the intents (whose
            // fences the takeover broke) and the states below.
            let table = self.table().await?;
            health().set_phase(Phase::Recovering);
            let finished_intents = self.finish_intents(&held, &table, &options).await;
            health().set_phase(Phase::Running);
            let blocked = match finished_intents {
                Ok(blocked) => blocked,
                Err(WorkerError::Recovery(RecoveryError::LeaseLost(why))) => {
                    self.lost(&holding, &why).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let readable: BTreeSet<String> = held
                .iter()
                .filter(|h| !blocked.contains(&h.shard))
                .filter(|h| state_of(&table, &h.shard) == Some(LeaseState::Active))
                .map(|h| h.shard.clone())
                .collect();
            // Ended leases are given back: their children may start.
            let ended: Vec<Held> = held
                .iter()
                .filter(|h| state_of(&table, &h.shard) == Some(LeaseState::Ended))
                .cloned()
                .collect();
            if !ended.is_empty() {
                self.release(&holding, &ended, "the shard ended").await;
                continue;
            }
            if readable.is_empty() {
                pause(&stop, self.options.renew_interval).await;
                continue;
            }
            let finished = FinishedShards::default();
            let source = self
                .retry_source("opening the shards", || {
                    self.source
                        .open(readable.clone(), fenced.clone(), finished.clone())
                })
                .await?;
            if !self.options.exactly_once {
                options.intents = None;
            }
            let mut archiver = Archiver::new(source, self.store.clone(), options)
                .with_stats(self.archiver_stats.clone());
            tracing::info!(worker = me, shards = ?readable, "reading the leased shards");
            let end = self.generation_end(
                stop.clone(),
                &held,
                &blocked,
                finished.clone(),
                archiver.stats(),
                &mut release_next,
            );
            match archiver.run_until(end).await {
                Ok(summary) => {
                    total.archives += summary.archives;
                    total.records += summary.records;
                    total.invalid += summary.invalid;
                    // Shards that ended in the generation's last archive.
                    self.mark_ended(&held, &finished, &archiver.stats(), &mut BTreeSet::new())
                        .await;
                }
                Err(ArchiverError::LeaseLost(why)) => self.lost(&holding, &why).await,
                Err(e) => return Err(e.into()),
            }
        }
        health().set_phase(Phase::Stopping);
        let held = holding_now(&holding);
        self.release(&holding, &held, "stopping").await;
        if let Err(e) = self.leases.leave(&self.scope, me).await {
            tracing::warn!(error = %Report(&e), "could not leave the fleet; the heartbeat runs out instead");
        }
        Ok(total)
    }

    /// Takes what the worker lacks of its fair share of the takeable
    /// leases (and, after a restart under the same id, its own leases
    /// back, with new epochs).
    async fn acquire(&self, holding: &Arc<Mutex<Holding>>) -> Result<(), WorkerError> {
        let me = self.options.worker.as_str();
        let table = self.table().await?;
        let held = holding_now(holding);
        let share = fair_share(&table);
        let active = held
            .iter()
            .filter(|h| state_of(&table, &h.shard) == Some(LeaseState::Active))
            .count();
        // Its own leases of an earlier run under the same id: taken over
        // at once, with a new epoch (their intents are then finished).
        let stale: Vec<String> = table
            .leases
            .iter()
            .filter(|l| l.owner.as_deref() == Some(me) && l.state == LeaseState::Active)
            .filter(|l| {
                !held
                    .iter()
                    .any(|h| h.shard == l.shard && h.epoch == l.epoch)
            })
            .map(|l| l.shard.clone())
            .collect();
        let want = share.saturating_sub(active + stale.len());
        let mut candidates = stale.clone();
        if want > 0 {
            let mut free: Vec<&LeaseInfo> = table
                .leases
                .iter()
                .filter(|l| l.takeable_by(&table.leases, me) && l.owner.as_deref() != Some(me))
                .collect();
            // Workers starting together begin at different places, so
            // that they contend less.
            let offset = spread(me, free.len());
            free.rotate_left(offset);
            candidates.extend(free.into_iter().map(|l| l.shard.clone()));
        }
        if candidates.is_empty() {
            return Ok(());
        }
        let max = stale.len() + want;
        let got = self
            .retry("taking leases", || {
                self.leases.acquire(
                    &self.scope,
                    me,
                    &candidates,
                    max,
                    self.options.lease_duration,
                )
            })
            .await?;
        for h in &got {
            let before = table.leases.iter().find(|l| l.shard == h.shard);
            tracing::info!(
                worker = me,
                shard = h.shard,
                epoch = h.epoch,
                from = before.and_then(|l| l.owner.as_deref()).unwrap_or("nobody"),
                "took the lease"
            );
        }
        self.stats.acquired.add(got.len() as u64);
        if let Ok(mut h) = holding.lock() {
            h.held
                .retain(|old| !got.iter().any(|g| g.shard == old.shard));
            h.held.extend(got);
            h.held.sort();
            self.stats.held.set(h.held.len() as u64);
        }
        Ok(())
    }

    /// The stream's pending upload intents, with the fence of each.
    async fn pending_intents(&self) -> Result<Vec<(UploadIntent, Option<Fence>)>, WorkerError> {
        self.retry("reading the upload intents", || {
            self.leases
                .fenced_intents(&self.scope.client, &self.scope.stream)
        })
        .await
    }

    /// Finishes the interrupted uploads this worker is responsible for
    /// among its shards; returns the held shards that must wait for an
    /// intent another worker finishes.
    async fn finish_intents(
        &self,
        held: &[Held],
        table: &LeaseTable,
        options: &ArchiverOptions,
    ) -> Result<BTreeSet<String>, WorkerError> {
        let intents = self.pending_intents().await?;
        if intents.is_empty() {
            // Spool files of stores that were killed hold records never
            // checkpointed: they are read again, so uploading the files
            // would only duplicate them. (While an intent is pending, its
            // spool file may still serve its recovery.)
            self.clean_stale_spool();
            return Ok(BTreeSet::new());
        }
        let mine: BTreeSet<&str> = held.iter().map(|h| h.shard.as_str()).collect();
        let mut blocked = BTreeSet::new();
        let mut recover = Vec::new();
        for (intent, fence) in intents {
            let shards = intent_shards(&intent, fence.as_ref());
            let ours: Vec<&String> = shards
                .iter()
                .filter(|s| mine.contains(s.as_str()))
                .collect();
            if ours.is_empty() {
                continue;
            }
            let orphaned = fence
                .as_ref()
                .is_none_or(|f| f.broken_by(&table.leases).is_some());
            let responsible = shards
                .iter()
                .next()
                .is_some_and(|first| mine.contains(first.as_str()));
            let fence_now = Fence::new(self.options.worker.as_str(), held);
            let claimed = orphaned
                && responsible
                && self
                    .retry("claiming an interrupted upload", || {
                        self.leases.claim_intent(intent.id(), &fence_now)
                    })
                    .await?;
            if claimed {
                recover.push(intent);
            } else {
                blocked.extend(ours.into_iter().cloned());
            }
        }
        if !recover.is_empty() {
            let keys: Vec<&str> = recover.iter().map(|i| i.key.as_str()).collect();
            tracing::info!(worker = self.options.worker, intents = ?keys, "finishing the uploads the shards' previous owners left");
            let db = options
                .intents
                .clone()
                .unwrap_or_else(|| self.leases.clone());
            let report = recover_intents(
                self.store.clone(),
                db,
                self.source.replay(),
                options,
                recover,
            )
            .await?;
            tracing::info!(
                confirmed = report.confirmed.len(),
                restored = report.restored.len(),
                rebuilt = report.rebuilt.len(),
                lost_ranges = report.lost.len(),
                "finished the uploads of the shards' previous owners"
            );
            let left = self.pending_intents().await?;
            if left.is_empty() {
                self.clean_stale_spool();
            }
        }
        Ok(blocked)
    }

    fn clean_stale_spool(&self) {
        let o = &self.archiver;
        match clean_stale(&o.spool_dir, &o.stream, &o.client) {
            Ok(removed) => {
                for path in removed {
                    tracing::info!(path = %path.display(), "removed the spool file of a store that did not finish");
                }
            }
            Err(e) => {
                tracing::warn!(dir = %o.spool_dir.display(), error = %Report(&e), "could not clean the spool directory")
            }
        }
    }

    /// Resolves when the generation should end gracefully; meanwhile marks
    /// ended the shards whose last record is committed.
    async fn generation_end(
        &self,
        mut stop: watch::Receiver<bool>,
        held: &[Held],
        blocked: &BTreeSet<String>,
        finished: FinishedShards,
        stats: Arc<ArchiverStats>,
        release_next: &mut Option<(Held, Option<String>)>,
    ) {
        let mut marked = BTreeSet::new();
        // Ended shards are looked for every second (in memory; their
        // children wait for it), the share every renewal interval.
        let tick = self.options.renew_interval.min(Duration::from_secs(1));
        let mut next_look = Instant::now() + self.options.renew_interval;
        loop {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                () = tokio::time::sleep(tick) => {}
            }
            if self.mark_ended(held, &finished, &stats, &mut marked).await {
                tracing::info!(
                    worker = self.options.worker,
                    "a shard ended: ending the generation so that its children start"
                );
                return;
            }
            if Instant::now() < next_look {
                continue;
            }
            next_look = Instant::now() + self.options.renew_interval;
            let Ok(table) = self.leases.leases(&self.scope).await else {
                continue;
            };
            if let Some(release) = self.rebalance(&table, held) {
                *release_next = release;
                return;
            }
            if !blocked.is_empty() {
                let still = self
                    .leases
                    .fenced_intents(&self.scope.client, &self.scope.stream)
                    .await
                    .map(|all| {
                        all.iter().any(|(i, f)| {
                            intent_shards(i, f.as_ref())
                                .iter()
                                .any(|s| blocked.contains(s))
                        })
                    })
                    .unwrap_or(true);
                if !still {
                    return;
                }
            }
        }
    }

    /// Whether the fleet's balance asks this worker to end its generation:
    /// `Some` with the lease to hand over, if any. Moving one lease a cycle
    /// converges without a stampede.
    fn rebalance(
        &self,
        table: &LeaseTable,
        held: &[Held],
    ) -> Option<Option<(Held, Option<String>)>> {
        let worker = self.options.worker.as_str();
        let share = fair_share(table);
        let active: Vec<&Held> = held
            .iter()
            .filter(|h| state_of(table, &h.shard) == Some(LeaseState::Active))
            .collect();
        let log = |why: &str| tracing::info!(worker, held = active.len(), share, "{why}");
        if active.len() > share {
            log("holding more than a fair share: handing a lease over");
            // The one most recently taken goes.
            return Some(active.last().map(|h| ((*h).clone(), None)));
        }
        let starved = starved_move(table, worker);
        let why = "a worker holds less than its share and no lease is free: handing one over";
        if let Some(next) = self.handoff(held, starved, why) {
            return Some(Some(next));
        }
        let free = table
            .leases
            .iter()
            .any(|l| l.takeable_by(&table.leases, worker));
        if active.len() < share && free {
            log("a lease is free: taking it");
            return Some(None);
        }
        let hot = throughput_move(table, worker);
        let why = "reading more bytes a second than the fleet's mean: handing a lease over";
        self.handoff(held, hot, why).map(Some)
    }

    /// The held lease a balancing move (shard, target) names, to hand to
    /// its target, logged with `why`.
    fn handoff(
        &self,
        held: &[Held],
        move_to: Option<(String, String)>,
        why: &str,
    ) -> Option<(Held, Option<String>)> {
        let (shard, to) = move_to?;
        let lease = held.iter().find(|h| h.shard == shard)?;
        tracing::info!(worker = self.options.worker, shard, to, "{why}");
        Some((lease.clone(), Some(to)))
    }

    /// Marks ended each held shard the reader finished whose last record is
    /// committed; true if one was marked now.
    async fn mark_ended(
        &self,
        held: &[Held],
        finished: &FinishedShards,
        stats: &ArchiverStats,
        marked: &mut BTreeSet<String>,
    ) -> bool {
        let mut any = false;
        for (shard, last) in finished.snapshot() {
            if marked.contains(&shard) {
                continue;
            }
            let committed = match &last {
                None => true,
                Some(last) => stats.last_committed(&shard).as_ref() == Some(last),
            };
            let Some(lease) = held.iter().find(|h| h.shard == shard) else {
                continue;
            };
            if !committed {
                continue;
            }
            match self
                .leases
                .mark_ended(&self.scope, &self.options.worker, lease)
                .await
            {
                Ok(()) => {
                    tracing::info!(shard, "the shard ended and its last record is committed");
                    marked.insert(shard);
                    any = true;
                }
                Err(e) => {
                    tracing::warn!(shard, error = %Report(&e), "could not mark the shard ended; will try again")
                }
            }
        }
        any
    }

    /// After a lost lease: gives back what is still held (the epochs of
    /// the next generation are new) and starts again.
    async fn lost(&self, holding: &Arc<Mutex<Holding>>, why: &str) {
        tracing::warn!(
            worker = self.options.worker,
            reason = why,
            "a lease was lost: dropped what was not committed, giving back the other leases"
        );
        let held = holding_now(holding);
        self.stats.lost.add(1);
        self.release(holding, &held, "a lease was lost").await;
    }

    /// Hands `lease` over to `to` (after the generation committed all).
    async fn hand_over(&self, holding: &Arc<Mutex<Holding>>, lease: Held, to: &str) {
        if let Ok(mut h) = holding.lock() {
            h.held.retain(|x| *x != lease);
            self.stats.held.set(h.held.len() as u64);
        }
        let me = &self.options.worker;
        match self
            .leases
            .hand_over(&self.scope, me, &lease, to, self.options.lease_duration)
            .await
        {
            Ok(()) => {
                tracing::info!(
                    worker = me,
                    shard = lease.shard,
                    epoch = lease.epoch,
                    to,
                    "handed the lease over"
                );
                self.stats.released.add(1);
            }
            Err(e) => {
                tracing::warn!(error = %Report(&e), "could not hand the lease over; it expires instead")
            }
        }
    }

    async fn release(&self, holding: &Arc<Mutex<Holding>>, leases: &[Held], why: &str) {
        if leases.is_empty() {
            return;
        }
        if let Ok(mut h) = holding.lock() {
            h.held.retain(|x| !leases.contains(x));
            self.stats.held.set(h.held.len() as u64);
        }
        match self
            .leases
            .release(&self.scope, &self.options.worker, leases)
            .await
        {
            Ok(()) => {
                for l in leases {
                    tracing::info!(
                        worker = self.options.worker,
                        shard = l.shard,
                        epoch = l.epoch,
                        reason = why,
                        "released the lease"
                    );
                }
                self.stats.released.add(leases.len() as u64);
            }
            // Not renewed any more, they run out.
            Err(e) => {
                tracing::warn!(error = %Report(&e), "could not release leases; they expire instead")
            }
        }
    }

    async fn table(&self) -> Result<LeaseTable, WorkerError> {
        self.retry("reading the leases", || self.leases.leases(&self.scope))
            .await
    }

    /// Retries `f` while the database is unavailable.
    async fn retry<T, Fut>(&self, what: &str, f: impl FnMut() -> Fut) -> Result<T, WorkerError>
    where
        Fut: Future<Output = Result<T>>,
    {
        watched(
            &policies::FLEET,
            "checkpoint_database",
            what,
            f,
            CheckpointError::is_retryable,
            |e, r| tracing::warn!(error = %Report(&e), retry_in_ms = r.delay.as_millis() as u64, "{what}: waiting for the checkpoint database"),
        )
        .await
        .map_err(WorkerError::from)
    }

    /// Retries `f` while the stream is unavailable.
    async fn retry_source<T, Fut>(
        &self,
        what: &str,
        f: impl FnMut() -> Fut,
    ) -> Result<T, WorkerError>
    where
        Fut: Future<Output = Result<T, SourceError>>,
    {
        watched(
            &policies::FLEET,
            "kinesis",
            what,
            f,
            |e| matches!(e, SourceError::Unavailable { .. }),
            |e, r| tracing::warn!(error = %Report(&e), retry_in_ms = r.delay.as_millis() as u64, "{what}: waiting for the stream"),
        )
        .await
        .map_err(WorkerError::from)
    }
}

/// Renews the held leases every interval; trips the generation's fuse when
/// one is lost or when no renewal succeeded for nearly a lease duration.
async fn renew_loop(
    leases: Arc<dyn LeaseStore>,
    scope: LeaseScope,
    options: WorkerOptions,
    holding: Arc<Mutex<Holding>>,
    stats: Arc<ArchiverStats>,
) {
    // A renewal sent at t keeps the lease until (database) t + duration at
    // the earliest; a margin covers clocks that run at slightly different
    // rates.
    let valid_for = options
        .lease_duration
        .saturating_sub(options.lease_duration / 6);
    let mut valid_until = Instant::now() + valid_for;
    let mut rates = Rates::default();
    let mut turn = 0u64;
    loop {
        let (held, fuse) = match holding.lock() {
            Ok(h) => (h.held.clone(), h.fuse.clone()),
            Err(_) => return,
        };
        turn += 1;
        health().beat();
        // Throughput every fifth renewal: it only steers balancing.
        let throughput = match turn % 5 {
            0 => rates.update(&stats.shard_bytes()),
            _ => Vec::new(),
        };
        let sent = Instant::now();
        let answer = tokio::time::timeout_at(
            valid_until.max(sent + Duration::from_millis(100)),
            leases.renew(
                &scope,
                &options.worker,
                &held,
                &throughput,
                options.lease_duration,
            ),
        )
        .await;
        match answer {
            Ok(Ok(still)) => {
                valid_until = sent + valid_for;
                // Only leases still held count: one released meanwhile is
                // not lost.
                let current = holding_now(&holding);
                let lost = held
                    .iter()
                    .find(|h| !still.contains(h) && current.contains(h));
                if let Some(first) = lost {
                    tracing::warn!(
                        worker = options.worker,
                        shard = first.shard,
                        epoch = first.epoch,
                        "lease lost: another worker took it, or it expired"
                    );
                    fuse.trip(format!(
                            "the lease of {} (epoch {}) was not renewed: it expired or another worker took it",
                            first.shard, first.epoch
                        ));
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %Report(&e), "renewing the leases failed; trying again")
            }
            Err(_) => {}
        }
        if Instant::now() >= valid_until && !held.is_empty() {
            fuse.trip(format!(
                "no lease renewal succeeded for {} ms",
                valid_for.as_millis()
            ));
        }
        tokio::time::sleep(options.renew_interval).await;
    }
}

/// Bytes a second of each shard between two looks.
#[derive(Default)]
struct Rates {
    last: Option<(Instant, std::collections::HashMap<String, u64>)>,
}

impl Rates {
    fn update(&mut self, now_bytes: &std::collections::HashMap<String, u64>) -> Vec<(String, f64)> {
        let now = Instant::now();
        let rates = match &self.last {
            Some((then, before)) => {
                let secs = now.duration_since(*then).as_secs_f64().max(0.001);
                now_bytes
                    .iter()
                    .map(|(shard, bytes)| {
                        let was = before.get(shard).copied().unwrap_or(0);
                        (shard.clone(), bytes.saturating_sub(was) as f64 / secs)
                    })
                    .collect()
            }
            None => Vec::new(),
        };
        self.last = Some((now, now_bytes.clone()));
        rates
    }
}

fn holding_now(holding: &Arc<Mutex<Holding>>) -> Vec<Held> {
    holding.lock().map(|h| h.held.clone()).unwrap_or_default()
}

fn state_of(table: &LeaseTable, shard: &str) -> Option<LeaseState> {
    table
        .leases
        .iter()
        .find(|l| l.shard == shard)
        .map(|l| l.state)
}

/// The most active leases one worker should hold: the leases that can be
/// read now (active, parents ended) over the live workers, rounded up (at
/// least 1).
pub fn fair_share(table: &LeaseTable) -> usize {
    let active = table
        .leases
        .iter()
        .filter(|l| l.state == LeaseState::Active && l.parents_ended(&table.leases))
        .count();
    let workers = table.workers.len().max(1);
    active.div_ceil(workers).max(1)
}

/// Each live worker's active leases, by id.
fn counts(table: &LeaseTable) -> std::collections::BTreeMap<&str, usize> {
    let mut counts: std::collections::BTreeMap<&str, usize> = table
        .workers
        .iter()
        .map(|w| (w.worker.as_str(), 0))
        .collect();
    for l in &table.leases {
        if l.state != LeaseState::Active || l.expired {
            continue;
        }
        if let Some(n) = l.owner.as_deref().and_then(|o| counts.get_mut(o)) {
            *n += 1;
        }
    }
    counts
}

/// When a live worker holds fewer leases than the even floor (active over
/// workers, rounded down) while none is free, the worker holding the most
/// (the first by id among equals, so that only one moves) hands it one:
/// the fair share rounds up, so 2, 2, 0 is within it and would stay.
pub fn starved_move(table: &LeaseTable, me: &str) -> Option<(String, String)> {
    let counts = counts(table);
    let total: usize = counts.values().sum();
    let floor = total / counts.len().max(1);
    let (starved, _) = counts.iter().min_by_key(|(w, n)| (**n, **w))?;
    let (richest, most) = counts
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))?;
    if counts[starved] >= floor || *richest != me || *most <= floor || starved == richest {
        return None;
    }
    let free = table
        .leases
        .iter()
        .any(|l| l.takeable_by(&table.leases, starved));
    if free {
        return None;
    }
    let lease = table
        .leases
        .iter()
        .filter(|l| l.owner.as_deref() == Some(me) && l.state == LeaseState::Active && !l.expired)
        .min_by(|a, b| a.bytes_per_second.total_cmp(&b.bytes_per_second))?;
    Some((lease.shard.clone(), (*starved).to_owned()))
}

/// Below this difference from the fleet's mean (bytes a second), load is
/// even enough: moving a lease costs a seal and an upload.
const RATE_SLACK: f64 = 100_000.0;

/// A lease `me` should hand over to even out throughput, and to whom: only
/// when it reads more than 1.25 times the live workers' mean (and at least
/// [`RATE_SLACK`] more), to the least loaded worker that holds fewer than
/// its fair share (so that counts stay even), and only a lease whose move
/// lowers the higher of the two loads (so that moves converge instead of
/// swinging back), and never one lighter than [`RATE_SLACK`]. The lease
/// chosen is the one closest to half the gap.
pub fn throughput_move(table: &LeaseTable, me: &str) -> Option<(String, String)> {
    let share = fair_share(table);
    let live: Vec<&str> = table.workers.iter().map(|w| w.worker.as_str()).collect();
    if live.len() < 2 || !live.contains(&me) {
        return None;
    }
    let mut load: std::collections::HashMap<&str, (f64, usize)> =
        live.iter().map(|w| (*w, (0.0, 0))).collect();
    let counted = |l: &&LeaseInfo| l.state == LeaseState::Active && !l.expired;
    for l in table.leases.iter().filter(counted) {
        if let Some(entry) = l.owner.as_deref().and_then(|o| load.get_mut(o)) {
            entry.0 += l.bytes_per_second;
            entry.1 += 1;
        }
    }
    let (mine, my_count) = load.get(me).copied()?;
    let mean = load.values().map(|(r, _)| r).sum::<f64>() / live.len() as f64;
    if my_count < 2 || mine < mean * 1.25 || mine - mean < RATE_SLACK {
        return None;
    }
    let (target, (coolest, _)) = load
        .iter()
        .filter(|(w, (_, n))| **w != me && *n < share)
        .min_by(|a, b| a.1 .0.total_cmp(&b.1 .0))?;
    let gap = mine - coolest;
    let lease = table
        .leases
        .iter()
        .filter(counted)
        .filter(|l| l.owner.as_deref() == Some(me))
        // A lease lighter than the slack is not worth a seal and an upload.
        .filter(|l| l.bytes_per_second >= RATE_SLACK && l.bytes_per_second < gap)
        .min_by(|a, b| {
            (a.bytes_per_second - gap / 2.0)
                .abs()
                .total_cmp(&(b.bytes_per_second - gap / 2.0).abs())
        })?;
    Some((lease.shard.clone(), (*target).to_owned()))
}

/// Where in a list of `n` a worker starts looking (stable per worker).
fn spread(worker: &str, n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    let hash = worker.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (hash % n as u64) as usize
}

/// The shards of an intent's archive, in byte order: from its recorded
/// metadata, else from its fence.
fn intent_shards(intent: &UploadIntent, fence: Option<&Fence>) -> BTreeSet<String> {
    match Metadata::parse(intent.document.as_bytes()) {
        Ok(m) if !m.shards.is_empty() => m.shards.keys().cloned().collect(),
        _ => fence
            .map(|f| f.leases.keys().cloned().collect())
            .unwrap_or_default(),
    }
}

/// Sleeps `d`, or less if the worker is asked to stop.
async fn pause(stop: &watch::Receiver<bool>, d: Duration) {
    let mut stop = stop.clone();
    tokio::select! {
        _ = stop.wait_for(|s| *s) => {}
        () = tokio::time::sleep(d) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(w: &str) -> triton_core::lease::WorkerInfo {
        triton_core::lease::WorkerInfo {
            worker: w.into(),
            heartbeat_ms_ago: 0,
        }
    }

    fn lease(shard: &str, owner: Option<&str>, state: LeaseState) -> LeaseInfo {
        LeaseInfo {
            shard: shard.into(),
            owner: owner.map(str::to_owned),
            epoch: 1,
            renewed_ms_ago: None,
            expired: false,
            state,
            parents: Vec::new(),
            bytes_per_second: 0.0,
            handoff_to: None,
        }
    }

    #[test]
    fn the_fair_share_counts_active_leases_over_live_workers() {
        let mut table = LeaseTable {
            leases: (0..8)
                .map(|i| lease(&format!("s{i}"), None, LeaseState::Active))
                .chain([lease("old", None, LeaseState::Ended)])
                .collect(),
            workers: vec![worker("a"), worker("b"), worker("c")],
        };
        assert_eq!(fair_share(&table), 3);
        table.workers.truncate(1);
        assert_eq!(fair_share(&table), 8);
        table.workers.clear();
        assert_eq!(fair_share(&table), 8);
    }

    #[test]
    fn throughput_moves_a_lease_to_a_worker_with_room_and_converges() {
        let hot = |shard: &str, owner: &str, rate: f64| LeaseInfo {
            bytes_per_second: rate,
            ..lease(shard, Some(owner), LeaseState::Active)
        };
        // 4 shards, 3 workers (a share of 2): a holds both hot shards.
        let mut table = LeaseTable {
            leases: vec![
                hot("s0", "a", 2e6),
                hot("s1", "a", 1.5e6),
                hot("s2", "b", 1e4),
                hot("s3", "c", 1e4),
            ],
            workers: vec![worker("a"), worker("b"), worker("c")],
        };
        // a moves the lease closest to half its gap to b or c.
        let (shard, to) = throughput_move(&table, "a").unwrap();
        assert_eq!(shard, "s1");
        assert!(to == "b" || to == "c");
        assert_eq!(throughput_move(&table, "b"), None, "b is cool");
        // After the move nobody moves again: a holds one lease, and no
        // other move would lower the higher load.
        table.leases[1].owner = Some(to.clone());
        for w in ["a", "b", "c"] {
            assert_eq!(throughput_move(&table, w), None, "{w}");
        }
        // Even loads stay put.
        let even = LeaseTable {
            leases: vec![
                hot("s0", "a", 1e6),
                hot("s1", "a", 1e6),
                hot("s2", "b", 1e6),
            ],
            workers: vec![worker("a"), worker("b")],
        };
        assert_eq!(throughput_move(&even, "a"), None);
    }

    #[test]
    fn a_starved_worker_gets_a_lease_from_the_first_of_the_richest() {
        let mut table = LeaseTable {
            leases: vec![
                lease("s0", Some("a"), LeaseState::Active),
                lease("s1", Some("a"), LeaseState::Active),
                lease("s2", Some("b"), LeaseState::Active),
                lease("s3", Some("b"), LeaseState::Active),
            ],
            workers: vec![worker("a"), worker("b"), worker("c")],
        };
        let (shard, to) = starved_move(&table, "a").unwrap();
        assert_eq!(to, "c");
        assert!(shard == "s0" || shard == "s1");
        assert_eq!(starved_move(&table, "b"), None, "only one moves");
        table.leases[0].owner = Some("c".into());
        for w in ["a", "b", "c"] {
            assert_eq!(starved_move(&table, w), None, "{w}: 1, 2, 1 is even");
        }
    }

    #[test]
    fn a_child_is_takeable_only_once_its_parents_ended() {
        let mut parent = lease("p", Some("a"), LeaseState::Active);
        let mut child = lease("c", None, LeaseState::Active);
        child.parents = vec!["p".into(), "gone".into()];
        let all = vec![parent.clone(), child.clone()];
        assert!(!child.takeable_by(&all, "w"));
        parent.state = LeaseState::Ended;
        let all = vec![parent, child.clone()];
        assert!(child.takeable_by(&all, "w"));
    }
}
