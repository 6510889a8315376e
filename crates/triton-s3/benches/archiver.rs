//! The whole `triton store` pipeline in process: records from a generating
//! source spread over 100, then 1,000 shards -> validate -> frame and compress -> spool file ->
//! "upload" to a local directory -> ack and commit, beside framed Snappy
//! compression of the same record bytes from the same source in the same
//! run (the floor), and the source alone; compare with go-triton's encode
//! rate (0.71 M records/s of 190-byte records).
//!
//! Prints the peak RSS of each shard count's run (the peak is reset before
//! each, through /proc/self/clear_refs): the source generates records as
//! they are asked for, so it is the pipeline's memory.
//!
//! A second group measures the cost of exactly-once: the same pipeline
//! with checkpoints in a real database (SQLite file; PostgreSQL at
//! TRITON_TEST_POSTGRES or 127.0.0.1:5432 when it answers), rotating
//! every 1 MiB so that per-archive costs show, at-least-once (one
//! checkpoint transaction per archive) against exactly-once (an intent
//! recorded before each upload, then checkpoints and intent deletion in
//! one transaction). It prints each mode's mean upload time per archive,
//! intent included.
//!
//! Run: `cargo bench -p triton-s3 --bench archiver`

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use triton_checkpoint::SqlCheckpoints;
use triton_core::checkpoint::{Checkpoint, CheckpointStore, IntentStore};
use triton_core::source::{Position, RecordSource, SequenceNumber, SourceError, SourceRecord};
use triton_s3::archiver::{Archiver, ArchiverOptions};
use triton_s3::LocalStore;

const RECORDS: u64 = 1_000_000;
/// Shards of the pipeline runs (the floor and the source alone use the
/// first).
const SHARD_COUNTS: [u64; 2] = [100, 1_000];

/// A typical event of about 190 bytes, different for every `i`.
fn event(i: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(200);
    out.push(0x87);
    let put_str = |out: &mut Vec<u8>, s: &str| {
        match s.len() {
            n @ 0..=31 => out.push(0xa0 | n as u8),
            n => out.extend_from_slice(&[0xd9, n as u8]),
        }
        out.extend_from_slice(s.as_bytes());
    };
    put_str(&mut out, "event");
    put_str(
        &mut out,
        if i.is_multiple_of(3) {
            "page_view"
        } else {
            "click"
        },
    );
    put_str(&mut out, "user_id");
    out.push(0xcf);
    out.extend_from_slice(&(i * 7919 % 1_000_003).to_be_bytes());
    put_str(&mut out, "session");
    put_str(&mut out, &format!("s-{:016x}", i / 50));
    put_str(&mut out, "page");
    put_str(
        &mut out,
        &format!("/products/{}/reviews?page={}", i % 997, i % 7),
    );
    put_str(&mut out, "ts");
    out.push(0xcf);
    out.extend_from_slice(&(1_730_246_400_000 + i).to_be_bytes());
    put_str(&mut out, "ua");
    put_str(
        &mut out,
        "Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/2010",
    );
    put_str(&mut out, "ok");
    out.push(if i.is_multiple_of(11) { 0xc2 } else { 0xc3 });
    out
}

/// Delivers RECORDS records round-robin over `shards` shards, in batches of
/// clones of a pool of 10,000 distinct records (a real source allocates
/// each record it delivers too; formatting new ones would measure the
/// formatting).
struct Generated {
    next: u64,
    pool: Vec<SourceRecord>,
}

const POOL: u64 = 10_000;

impl Generated {
    fn new(shards: u64) -> Generated {
        // One id per shard, shared by its records, as the Kinesis reader
        // does.
        let ids: Vec<Arc<str>> = (0..shards)
            .map(|s| format!("shardId-{s:012}").into())
            .collect();
        let pool = (0..POOL)
            .map(|i| SourceRecord {
                source: ids[(i % shards) as usize].clone(),
                position: Position::Sequence(
                    SequenceNumber::new(format!(
                        "4959033827149025660855969254077942273515083440{i:010}"
                    ))
                    .unwrap(),
                ),
                data: event(i),
                meta: Default::default(),
            })
            .collect();
        Generated { next: 0, pool }
    }
}

#[async_trait]
impl RecordSource for Generated {
    async fn next_batch(&mut self, max: usize) -> Result<Option<Vec<SourceRecord>>, SourceError> {
        if self.next == RECORDS {
            return Ok(None);
        }
        let end = (self.next + max as u64).min(RECORDS);
        let batch = (self.next..end)
            .map(|i| self.pool[(i % POOL) as usize].clone())
            .collect();
        self.next = end;
        Ok(Some(batch))
    }

    async fn ack(&mut self, _: &str, _: &Position) -> Result<(), SourceError> {
        Ok(())
    }

    async fn commit(&mut self) -> Result<(), SourceError> {
        Ok(())
    }
}

/// The Kinesis reader's checkpointing, over the generated source: acks
/// are remembered, `commit` saves them in one transaction.
struct Checkpointed {
    inner: Generated,
    db: Arc<dyn CheckpointStore>,
    acked: HashMap<String, SequenceNumber>,
}

#[async_trait]
impl RecordSource for Checkpointed {
    async fn next_batch(&mut self, max: usize) -> Result<Option<Vec<SourceRecord>>, SourceError> {
        self.inner.next_batch(max).await
    }

    async fn ack(&mut self, shard: &str, position: &Position) -> Result<(), SourceError> {
        if let Position::Sequence(seq) = position {
            self.acked.insert(shard.to_owned(), seq.clone());
        }
        Ok(())
    }

    async fn commit(&mut self) -> Result<(), SourceError> {
        let checkpoints: Vec<Checkpoint> = self
            .acked
            .iter()
            .map(|(shard, seq)| Checkpoint {
                client: "store".into(),
                stream: "bench".into(),
                shard: shard.clone(),
                sequence: seq.clone(),
            })
            .collect();
        self.db
            .save_many(&checkpoints)
            .await
            .map_err(|e| SourceError::unavailable("checkpoints", e))
    }
}

/// A clock one second further at each reading, so that size rotation (at
/// most once a second) seals every 1 MiB.
fn stepping_clock() -> triton_s3::archiver::Clock {
    let step = Arc::new(std::sync::atomic::AtomicU64::new(0));
    Arc::new(move || {
        std::time::UNIX_EPOCH
            + Duration::from_secs(
                1_730_246_400 + step.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            )
    })
}

/// Starts a new peak-RSS measurement (Linux: "5" resets VmHWM to the
/// current RSS).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kib| kib.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

fn bench(c: &mut Criterion) {
    let bytes: u64 = (0..RECORDS).map(|i| event(i % POOL).len() as u64).sum();
    println!(
        "{RECORDS} records, {:.1} MB ({:.0} bytes each)",
        bytes as f64 / 1e6,
        bytes as f64 / RECORDS as f64
    );
    let dir = std::env::temp_dir().join(format!("triton-bench-archiver-{}", std::process::id()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    let mut g = c.benchmark_group("store_1m_records");
    g.throughput(Throughput::Bytes(bytes));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    // The floor: framed Snappy of the same records' bytes, taken from the
    // same source (so generating them costs the same on both sides).
    g.bench_function("framed_snappy_baseline", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut source = Generated::new(SHARD_COUNTS[0]);
                let mut w = snap::write::FrameEncoder::new(std::io::sink());
                while let Some(batch) = source.next_batch(10_000).await.unwrap() {
                    for r in &batch {
                        w.write_all(&r.data).unwrap();
                    }
                }
                w.flush().unwrap();
            })
        })
    });
    // What generating the records alone costs, to tell it apart.
    g.bench_function("source_only", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut source = Generated::new(SHARD_COUNTS[0]);
                let mut n = 0;
                while let Some(batch) = source.next_batch(10_000).await.unwrap() {
                    n += batch.len();
                }
                assert_eq!(n as u64, RECORDS);
            })
        })
    });
    let mut peaks = Vec::new();
    for shards in SHARD_COUNTS {
        reset_peak_rss();
        g.bench_function(
            format!("pipeline_to_local_directory/{shards}_shards"),
            |b| {
                b.iter(|| {
                    let _ = std::fs::remove_dir_all(&dir);
                    let mut options = ArchiverOptions::new("bench", "store");
                    options.spool_dir = dir.join("spool");
                    options.max_file_size = 64 << 20;
                    let store = Arc::new(LocalStore::new(dir.join("bucket")));
                    let archiver = Archiver::new(Generated::new(shards), store, options);
                    let summary = rt.block_on(archiver.run(std::future::pending())).unwrap();
                    assert_eq!((summary.records, summary.invalid), (RECORDS, 0));
                })
            },
        );
        peaks.push((shards, peak_rss_mib()));
    }
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
    for (shards, peak) in peaks {
        println!("peak RSS of the pipeline over {shards} shards: {peak:.1} MiB");
    }
}

fn exactly_once(c: &mut Criterion) {
    let bytes: u64 = (0..RECORDS).map(|i| event(i % POOL).len() as u64).sum();
    let dir = std::env::temp_dir().join(format!("triton-bench-once-{}", std::process::id()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut databases: Vec<(&str, Arc<dyn IntentStore>)> = Vec::new();
    let sqlite = format!("sqlite://{}", dir.join("checkpoints.db").display());
    databases.push((
        "sqlite",
        Arc::new(rt.block_on(SqlCheckpoints::open(&sqlite)).unwrap()),
    ));
    let pg = std::env::var("TRITON_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    match rt.block_on(SqlCheckpoints::open(&pg)) {
        Ok(db) => databases.push(("postgres", Arc::new(db))),
        Err(e) => println!("PostgreSQL not measured: {e}"),
    }

    let mut g = c.benchmark_group("store_1m_records_1mib_archives");
    g.throughput(Throughput::Bytes(bytes));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(15));
    let mut latencies = Vec::new();
    for (name, db) in &databases {
        for once in [false, true] {
            let mode = if once {
                "exactly_once"
            } else {
                "at_least_once"
            };
            let (mut uploads, mut micros) = (0u64, 0u64);
            g.bench_function(format!("{name}_{mode}"), |b| {
                b.iter(|| {
                    let _ = std::fs::remove_dir_all(dir.join("bucket"));
                    let mut options = ArchiverOptions::new("bench", "store");
                    options.spool_dir = dir.join("spool");
                    options.max_file_size = 1 << 20;
                    options.clock = stepping_clock();
                    options.intents = once.then(|| db.clone());
                    let store = Arc::new(LocalStore::new(dir.join("bucket")));
                    let source = Checkpointed {
                        inner: Generated::new(SHARD_COUNTS[0]),
                        db: db.clone(),
                        acked: HashMap::new(),
                    };
                    let archiver = Archiver::new(source, store, options);
                    let stats = archiver.stats();
                    let summary = rt.block_on(archiver.run(std::future::pending())).unwrap();
                    assert_eq!(summary.records, RECORDS);
                    let (n, took) = stats.upload_time();
                    uploads += n;
                    micros += took.as_micros() as u64;
                })
            });
            latencies.push((
                format!("{name}_{mode}"),
                micros as f64 / uploads.max(1) as f64 / 1000.0,
                uploads,
            ));
        }
    }
    g.finish();
    for (mode, ms, uploads) in latencies {
        println!("{mode}: mean upload time {ms:.2} ms per archive ({uploads} uploads timed)");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench, exactly_once);
criterion_main!(benches);
