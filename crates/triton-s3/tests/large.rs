//! A 200 MB archive read back from each backend with bounded memory. Alone
//! in its test binary (one test, backends one after the other) so that the
//! process's peak RSS is this test's.

#[path = "support/mod.rs"]
mod support;

use std::io::{BufWriter, Write};
use std::path::Path;

use triton_core::archive::ArchiveWriter;
use triton_core::source::RecordSource;
use triton_core::time::Date;
use triton_s3::{list_archives, ArchiveQuery, ArchiveSource, PutOptions, ReadOptions};
use triton_tests::{Rng, TempDir};

use support::*;

const RECORDS: u64 = 100_000;
const PAYLOAD: usize = 2_000;
const POOL: usize = 1 << 20;

/// Record `i`'s payload: a slice of a pool of random bytes at a random
/// offset, so the archive does not compress (snappy finds no repeats within
/// a 64 KiB block) yet costs no time to generate.
struct Payloads {
    pool: Vec<u8>,
    rng: Rng,
}

impl Payloads {
    fn new() -> Payloads {
        let mut rng = Rng::new(200);
        let pool = (0..POOL / 8)
            .flat_map(|_| rng.next_u64().to_le_bytes())
            .collect();
        Payloads { pool, rng }
    }

    fn next(&mut self) -> &[u8] {
        let at = self.rng.below((POOL - PAYLOAD) as u64) as usize;
        &self.pool[at..at + PAYLOAD]
    }
}

fn write_archive(path: &Path) -> u64 {
    let mut w = ArchiveWriter::new(BufWriter::new(std::fs::File::create(path).unwrap()));
    let mut payloads = Payloads::new();
    for i in 0..RECORDS {
        w.write_raw(&record_bytes(i, payloads.next())).unwrap();
    }
    w.finish().unwrap().flush().unwrap();
    std::fs::metadata(path).unwrap().len()
}

/// Peak resident memory of this process, in KiB (`VmHWM`).
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Resets the peak to the current resident size (Linux `clear_refs` 5).
fn reset_peak_rss() {
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
}

async fn read_back(f: &Fixture, name: &str, path: &Path, size: u64) {
    let key = key("large", "store", 1_730_246_400);
    f.store
        .put_file(&key, path, &PutOptions::default())
        .await
        .unwrap();
    let query = ArchiveQuery {
        stream: "large".into(),
        start: Date::parse_yyyymmdd("20241030").unwrap(),
        end: Date::parse_yyyymmdd("20241030").unwrap(),
        client: None,
    };
    let archives = list_archives(f.store.clone(), &query).await.unwrap();
    assert_eq!(archives.len(), 1);
    assert_eq!(archives[0].size, size);

    reset_peak_rss();
    let before = peak_rss_kib();
    let mut source = ArchiveSource::new(f.store.clone(), archives, ReadOptions::default());
    let mut payloads = Payloads::new();
    let mut n = 0u64;
    while let Some(batch) = source.next_batch(1000).await.unwrap() {
        for r in &batch {
            assert!(
                r.data == record_bytes(n, payloads.next()),
                "record {n} differs"
            );
            n += 1;
        }
        let last = batch.last().unwrap();
        source.ack(&last.source, &last.position).await.unwrap();
    }
    let grew = peak_rss_kib().saturating_sub(before);
    assert_eq!(n, RECORDS);
    println!(
        "{name}: read {size} bytes, {n} records; peak RSS grew by {:.1} MiB (from {:.1} MiB)",
        grew as f64 / 1024.0,
        before as f64 / 1024.0
    );
    assert!(
        grew < 64 * 1024,
        "{name}: peak RSS grew by {grew} KiB reading a {size}-byte archive"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200mb_archive_is_read_with_bounded_memory() {
    let tmp = TempDir::new("large");
    let path = tmp.path().join("large.tri");
    let size = write_archive(&path);
    assert!(size > 200_000_000, "{size}");
    read_back(&Fixture::local(), "local directory", &path, size).await;
    read_back(&Fixture::s3().await, "S3 (local server)", &path, size).await;
}
