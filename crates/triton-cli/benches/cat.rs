//! `triton cat` against the local S3 server (moto) and a local directory,
//! beside `triton decode` of the same files from local disk, in the same
//! run: the JSON view is the same work in all three, so the gaps are the
//! cost of listing and streaming archives from a store.
//!
//! Run: `eval "$(scripts/services start)"; cargo bench -p triton-cli --bench cat`

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde::Serialize;
use triton_core::archive::ArchiveWriter;
use triton_core::key::ArchiveKey;
use triton_s3::{ArchiveStore, PutOptions, S3Options, S3Store};

const ARCHIVES: u64 = 24;
const PER_ARCHIVE: u64 = 10_000;
/// 2024-10-30 00:00 UTC.
const DAY: u64 = 1_730_246_400;

/// A typical event of about 190 bytes.
#[derive(Serialize)]
struct Event {
    event: &'static str,
    user_id: u64,
    session: String,
    page: String,
    ts: u64,
    user_agent: &'static str,
    ok: bool,
}

fn event(n: u64) -> Event {
    Event {
        event: if n.is_multiple_of(3) {
            "page_view"
        } else {
            "click"
        },
        user_id: n * 7919 % 100_003,
        session: format!("s-{:016x}", n / 50),
        page: format!("/products/{}/reviews?page={}", n % 997, n % 7),
        ts: DAY * 1000 + n,
        user_agent: "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/131.0",
        ok: !n.is_multiple_of(11),
    }
}

/// Writes the archives in the bucket layout under `root`; returns their
/// paths in reading order, their total size and the total size of the
/// records in them.
fn write_archives(root: &Path) -> (Vec<PathBuf>, u64, u64) {
    let mut paths = Vec::new();
    let mut total = 0;
    let mut record_bytes = 0;
    for a in 0..ARCHIVES {
        let key = ArchiveKey::new("bench-events", "store", DAY + a * 3600).unwrap();
        let path = root.join(key.to_string());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let mut w = ArchiveWriter::new(file);
        for i in 0..PER_ARCHIVE {
            w.write_serialize(&event(a * PER_ARCHIVE + i)).unwrap();
        }
        let (_, stats) = w.finish_with_stats().unwrap();
        record_bytes += stats.bytes_in;
        total += std::fs::metadata(&path).unwrap().len();
        paths.push(path);
    }
    (paths, total, record_bytes)
}

fn upload(root: &Path, paths: &[PathBuf], bucket: &str) {
    let url = std::env::var("AWS_ENDPOINT_URL_S3")
        .expect("AWS_ENDPOINT_URL_S3: start the local server with scripts/services start");
    assert!(url.starts_with("http://127.0.0.1:"), "{url} is not local");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = triton_s3::client("us-east-1").await;
        client.create_bucket().bucket(bucket).send().await.unwrap();
        let store = S3Store::new(client, bucket, S3Options::default());
        for p in paths {
            let key = p.strip_prefix(root).unwrap().to_str().unwrap();
            store
                .put_file(key, p, &PutOptions::default())
                .await
                .unwrap();
        }
    });
}

fn run(args: &[&str], config: &Path) {
    let status = Command::new(env!("CARGO_BIN_EXE_triton"))
        .env("TRITON_CONFIG", config)
        .env_remove("TRITON_CLIENT")
        .args(args)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "triton {args:?}");
}

fn bench(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("triton-bench-cat-{}", std::process::id()));
    let root = dir.join("archive");
    let (paths, bytes, record_bytes) = write_archives(&root);
    let bucket = format!("triton-bench-cat-{}", std::process::id());
    upload(&root, &paths, &bucket);
    let config = dir.join("triton.yaml");
    std::fs::write(
        &config,
        "events:\n  name: bench-events\n  partition_key: user_id\n  region: us-east-1\n",
    )
    .unwrap();
    let records = ARCHIVES * PER_ARCHIVE;
    println!(
        "{ARCHIVES} archives, {records} records: {:.1} MB of records, {:.1} MB of archives",
        record_bytes as f64 / 1e6,
        bytes as f64 / 1e6
    );

    let mut decode_args = vec!["decode".to_string()];
    decode_args.extend(paths.iter().map(|p| p.display().to_string()));
    let decode_args: Vec<&str> = decode_args.iter().map(String::as_str).collect();
    let cat = |bucket: &str| {
        vec![
            "cat".to_string(),
            "--stream".into(),
            "events".into(),
            "--bucket".into(),
            bucket.to_string(),
            "--start-date".into(),
            "20241030".into(),
            "--no-progress".into(),
        ]
    };
    let cat_local = cat(&root.display().to_string());
    let cat_s3 = cat(&format!("s3://{bucket}"));

    let mut g = c.benchmark_group("cat_240k_records");
    g.throughput(Throughput::Elements(records));
    g.sample_size(10);
    g.bench_function("decode_files_baseline", |b| {
        b.iter(|| run(&decode_args, &config))
    });
    let local: Vec<&str> = cat_local.iter().map(String::as_str).collect();
    g.bench_function("cat_local_directory", |b| b.iter(|| run(&local, &config)));
    let s3: Vec<&str> = cat_s3.iter().map(String::as_str).collect();
    g.bench_function("cat_local_s3_server", |b| b.iter(|| run(&s3, &config)));
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench);
criterion_main!(benches);
