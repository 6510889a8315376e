//! The whole `triton store` pipeline in process: records from a generating
//! source over 100 shards -> validate -> frame and compress -> spool file ->
//! "upload" to a local directory -> ack and commit, beside framed Snappy
//! compression of the same record bytes from the same source in the same
//! run (the floor), and the source alone; compare with go-triton's encode
//! rate (0.71 M records/s of 190-byte records).
//!
//! Prints the process's peak RSS at the end: the source generates records
//! as they are asked for, so it is the pipeline's memory.
//!
//! Run: `cargo bench -p triton-s3 --bench archiver`

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use triton_core::source::{Position, RecordSource, SequenceNumber, SourceError, SourceRecord};
use triton_s3::archiver::{Archiver, ArchiverOptions};
use triton_s3::LocalStore;

const RECORDS: u64 = 1_000_000;
const SHARDS: u64 = 100;

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

/// Delivers RECORDS records round-robin over SHARDS shards, in batches of
/// clones of a pool of 10,000 distinct records (a real source allocates
/// each record it delivers too; formatting new ones would measure the
/// formatting).
struct Generated {
    next: u64,
    pool: Vec<SourceRecord>,
}

const POOL: u64 = 10_000;

impl Generated {
    fn new() -> Generated {
        // One id per shard, shared by its records, as the Kinesis reader
        // does.
        let shards: Vec<Arc<str>> = (0..SHARDS)
            .map(|s| format!("shardId-{s:012}").into())
            .collect();
        let pool = (0..POOL)
            .map(|i| SourceRecord {
                source: shards[(i % SHARDS) as usize].clone(),
                position: Position::Sequence(
                    SequenceNumber::new(format!(
                        "4959033827149025660855969254077942273515083440{i:010}"
                    ))
                    .unwrap(),
                ),
                data: event(i),
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
        "{RECORDS} records over {SHARDS} shards, {:.1} MB ({:.0} bytes each)",
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
                let mut source = Generated::new();
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
                let mut source = Generated::new();
                let mut n = 0;
                while let Some(batch) = source.next_batch(10_000).await.unwrap() {
                    n += batch.len();
                }
                assert_eq!(n as u64, RECORDS);
            })
        })
    });
    g.bench_function("pipeline_to_local_directory", |b| {
        b.iter(|| {
            let _ = std::fs::remove_dir_all(&dir);
            let mut options = ArchiverOptions::new("bench", "store");
            options.spool_dir = dir.join("spool");
            options.max_file_size = 64 << 20;
            let store = Arc::new(LocalStore::new(dir.join("bucket")));
            let archiver = Archiver::new(Generated::new(), store, options);
            let summary = rt.block_on(archiver.run(std::future::pending())).unwrap();
            assert_eq!((summary.records, summary.invalid), (RECORDS, 0));
        })
    });
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "peak RSS of the benchmark process: {:.1} MiB",
        peak_rss_mib()
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
