//! Archiving throughput of a fleet of 1, 2 and 3 workers in one process,
//! over 32 shards of a source paced like Kinesis (2 MB/s per shard; the
//! local Kinesis server is one single-threaded process and would be the
//! bottleneck), with leases and checkpoints in an SQLite file and archives
//! in a local directory. One iteration archives every record of every shard
//! (4 MB each) until each lease is ended; the time is from the start to
//! the last shard's lease ended. Compare the three in the same run: the
//! source's pace alone allows 2 s.
//!
//! Run: `cargo bench -p triton-s3 --bench fleet`

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use triton_checkpoint::SqlCheckpoints;
use triton_core::checkpoint::CheckpointStore;
use triton_core::lease::{
    FinishedShards, LeaseScope, LeaseState, LeaseStore, ShardSource, ShardSpec,
};
use triton_core::source::{
    Position, RecordSource, Replay, SequenceNumber, SequenceRange, SourceError, SourceRecord,
};
use triton_s3::archiver::fleet::{Worker, WorkerOptions};
use triton_s3::archiver::ArchiverOptions;
use triton_s3::LocalStore;

const SHARDS: usize = 32;
const RECORD: usize = 200;
const PER_SHARD: u64 = 20_000; // 4 MB a shard
const RATE: f64 = 2_000_000.0; // bytes a second a shard

fn record(i: u64) -> Vec<u8> {
    // {"n": i, "pad": "xxx…"}: one MessagePack map of RECORD bytes.
    let mut out = vec![0x82, 0xa1, b'n', 0xcf];
    out.extend_from_slice(&i.to_be_bytes());
    out.extend_from_slice(&[0xa3, b'p', b'a', b'd', 0xd9]);
    let pad = RECORD - out.len() - 1;
    out.push(pad as u8);
    out.extend(std::iter::repeat_n(b'x', pad));
    out
}

/// A record's index from its sequence number (`1` and 20 digits).
fn index(seq: &str) -> u64 {
    seq.get(1..).and_then(|d| d.parse().ok()).unwrap_or(0)
}

/// Every shard's records, released at RATE from `start`.
struct Paced {
    start: Instant,
    db: Arc<SqlCheckpoints>,
    replay: NoReplay,
}

struct NoReplay;

#[async_trait]
impl Replay for NoReplay {
    async fn replay(&self, _: Vec<SequenceRange>) -> Result<Box<dyn RecordSource>, SourceError> {
        Err(SourceError::failed("bench", "no replays in the benchmark"))
    }
}

struct Reader {
    start: Instant,
    /// Shard -> (next record, last acked).
    shards: Vec<(Arc<str>, u64, Option<u64>)>,
    finished: FinishedShards,
    turn: usize,
}

#[async_trait]
impl ShardSource for Paced {
    type Source = Reader;

    async fn shards(&self) -> Result<Vec<ShardSpec>, SourceError> {
        Ok((0..SHARDS)
            .map(|s| ShardSpec {
                shard: format!("shardId-{s:012}"),
                parents: Vec::new(),
            })
            .collect())
    }

    async fn open(
        &self,
        shards: BTreeSet<String>,
        _: Arc<dyn CheckpointStore>,
        finished: FinishedShards,
    ) -> Result<Reader, SourceError> {
        let mut state = Vec::new();
        for shard in shards {
            let last = self
                .db
                .last("store", "bench", &shard)
                .await
                .map_err(|e| SourceError::unavailable("checkpoints", e))?;
            let next = last.map_or(0, |s| index(s.as_str()) + 1);
            if next >= PER_SHARD {
                finished.finish(&shard, None);
                continue;
            }
            state.push((Arc::from(shard.as_str()), next, None));
        }
        Ok(Reader {
            start: self.start,
            shards: state,
            finished,
            turn: 0,
        })
    }

    fn replay(&self) -> &dyn Replay {
        &self.replay
    }
}

#[async_trait]
impl RecordSource for Reader {
    async fn next_batch(&mut self, max: usize) -> Result<Option<Vec<SourceRecord>>, SourceError> {
        loop {
            if self
                .shards
                .iter()
                .all(|(_, next, acked)| *next >= PER_SHARD && *acked == Some(PER_SHARD - 1))
            {
                return Ok(None);
            }
            let allowed = (self.start.elapsed().as_secs_f64() * RATE / RECORD as f64) as u64;
            let n = self.shards.len();
            for k in 0..n {
                let i = (self.turn + k) % n;
                let (shard, next, _) = &mut self.shards[i];
                let until = allowed.min(PER_SHARD).min(*next + max as u64);
                if until > *next {
                    let batch = (*next..until)
                        .map(|j| SourceRecord {
                            source: shard.clone(),
                            position: Position::Sequence(
                                SequenceNumber::new(format!("1{j:020}")).unwrap_or_else(|_| {
                                    unreachable!("digits are a sequence number")
                                }),
                            ),
                            data: record(j),
                            meta: Default::default(),
                        })
                        .collect();
                    *next = until;
                    self.turn = i + 1;
                    return Ok(Some(batch));
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn ack(&mut self, source: &str, position: &Position) -> Result<(), SourceError> {
        if let (Some(s), Position::Sequence(seq)) = (
            self.shards.iter_mut().find(|(id, _, _)| &**id == source),
            position,
        ) {
            let n = index(seq.as_str());
            s.2 = Some(n);
            if n == PER_SHARD - 1 {
                self.finished.finish(source, Some(seq.as_str().to_owned()));
            }
        }
        Ok(())
    }

    async fn commit(&mut self) -> Result<(), SourceError> {
        Ok(())
    }

    fn ended(&self, source: &str) -> bool {
        self.shards
            .iter()
            .any(|(id, next, _)| &**id == source && *next >= PER_SHARD)
    }
}

/// Archives every shard with `workers` workers; the time until every lease
/// is ended.
async fn fleet(workers: usize, dir: &std::path::Path) -> Duration {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.join("archive")).unwrap_or_default();
    let db = Arc::new(
        SqlCheckpoints::open(&format!("sqlite://{}", dir.join("db.sqlite").display()))
            .await
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let store = Arc::new(LocalStore::new(dir.join("archive")));
    let start = Instant::now();
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for w in 0..workers {
        let mut options = ArchiverOptions::new("bench", "store");
        options.spool_dir = dir.join(format!("spool{w}"));
        options.max_file_age = Duration::from_secs(1);
        let mut lease = WorkerOptions::new(format!("w{w}"), Duration::from_secs(3));
        lease.renew_interval = Duration::from_millis(500);
        let worker = Worker::new(
            Paced {
                start,
                db: db.clone(),
                replay: NoReplay,
            },
            store.clone(),
            db.clone(),
            options,
            lease,
        );
        let mut stop = stop.clone();
        tasks.push(tokio::spawn(worker.run(async move {
            let _ = stop.wait_for(|s| *s).await;
        })));
    }
    let scope = LeaseScope {
        client: "store".into(),
        stream: "bench".into(),
    };
    let elapsed = loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if let Ok(t) = db.leases(&scope).await {
            if t.leases.len() == SHARDS && t.leases.iter().all(|l| l.state == LeaseState::Ended) {
                break start.elapsed();
            }
        }
    };
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    elapsed
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let dir = std::env::temp_dir().join(format!("triton-bench-fleet-{}", std::process::id()));
    let mut group = c.benchmark_group("fleet_32_shards_paced_2MBps");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Bytes(SHARDS as u64 * PER_SHARD * RECORD as u64));
    for workers in [1, 2, 3] {
        group.bench_function(format!("{workers}_workers"), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| rt.block_on(fleet(workers, &dir))).sum())
        });
    }
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
