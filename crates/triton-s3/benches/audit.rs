//! The cost of `triton audit` on 10,000 chained archives (4 shards each):
//! verified (every archive downloaded and hashed) and sizes only
//! (`--no-verify`), in the local S3 server and, as the floor of the same
//! run, in a local directory.
//!
//! Needs the local S3 server: `eval "$(scripts/services start)"`, then
//! `cargo bench -p triton-s3 --bench audit` (ARCHIVES=N to change the count).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use triton_core::archive::ArchiveWriter;
use triton_core::key::ArchiveKey;
use triton_core::time::Date;
use triton_s3::audit::{audit, Checkpointed};
use triton_s3::{ArchiveQuery, ArchiveStore, LocalStore, PutOptions, S3Options, S3Store};

const SHARDS: u64 = 4;
const RECORDS: u64 = 5;
const START: u64 = 1_730_246_400; // 2024-10-30T00:00:00Z

fn seq(shard: u64, archive: u64, record: u64) -> String {
    (1_000_000_000 + ((archive * SHARDS + shard) * RECORDS + record)).to_string()
}

/// Archive `i`: 5 records of each shard, and its sidecar, linked to
/// archive `i - 1`.
fn archive(i: u64) -> (String, Vec<u8>, Vec<u8>) {
    let key = ArchiveKey::new("events", "store", START + i)
        .expect("key")
        .to_string();
    let mut w = ArchiveWriter::new(Vec::new());
    for shard in 0..SHARDS {
        for r in 0..RECORDS {
            w.write_serialize(&serde_json::json!({"shard": shard, "n": seq(shard, i, r)}))
                .expect("record");
        }
    }
    let bytes = w.finish().expect("archive");
    let shards: serde_json::Map<String, serde_json::Value> = (0..SHARDS)
        .map(|shard| {
            let mut range = serde_json::json!({
                "min_sequence_number": seq(shard, i, 0),
                "max_sequence_number": seq(shard, i, RECORDS - 1),
                "record_count": RECORDS,
            });
            if i == 0 {
                range["start"] = "TRIM_HORIZON".into();
            } else {
                range["after"] = seq(shard, i - 1, RECORDS - 1).into();
                range["after_archive"] = ArchiveKey::new("events", "store", START + i - 1)
                    .expect("key")
                    .to_string()
                    .into();
            }
            (format!("shardId-{shard:012}"), range)
        })
        .collect();
    let sha: String = {
        use sha2::{Digest, Sha256};
        Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let sidecar = serde_json::json!({
        "shards": shards,
        "archive": key,
        "record_count": SHARDS * RECORDS,
        "size": bytes.len(),
        "sha256": sha,
        "format_version": 2,
        "writer": "bench",
    });
    (key, bytes, serde_json::to_vec(&sidecar).expect("json"))
}

async fn fill(store: Arc<dyn ArchiveStore>, n: u64) {
    let put = PutOptions::default();
    futures_util::stream::iter(0..n)
        .map(|i| {
            let (store, put) = (store.clone(), put.clone());
            async move {
                let (key, bytes, sidecar) = archive(i);
                store.put_bytes(&key, bytes, &put).await.expect("put");
                store
                    .put_bytes(&format!("{key}.metadata"), sidecar, &put)
                    .await
                    .expect("put sidecar");
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
}

async fn time(store: &Arc<dyn ArchiveStore>, n: u64, verify: bool) -> Duration {
    let query = ArchiveQuery {
        stream: "events".into(),
        start: Date::parse_yyyymmdd("20241030").expect("date"),
        end: Date::parse_yyyymmdd("20241030").expect("date"),
        client: Some("store".into()),
    };
    let mut runs = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let report = audit(store.clone(), &query, &Checkpointed::default(), verify)
            .await
            .expect("audit");
        runs.push(started.elapsed());
        assert_eq!(report.archives as u64, n);
        assert!(report.is_clean(), "{:?}", &report.findings[..1]);
    }
    runs.sort();
    runs[1]
}

fn main() {
    let n: u64 = std::env::var("ARCHIVES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let dir = std::env::temp_dir().join(format!("triton-bench-audit-{}", std::process::id()));
        let local: Arc<dyn ArchiveStore> = Arc::new(LocalStore::new(&dir));
        let bucket = format!("bench-audit-{}", std::process::id());
        let client = triton_s3::client("us-east-1").await;
        client
            .create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .expect("create the bucket (is the local S3 server running?)");
        let s3: Arc<dyn ArchiveStore> =
            Arc::new(S3Store::new(client, &bucket, S3Options::default()));
        let started = Instant::now();
        fill(local.clone(), n).await;
        fill(s3.clone(), n).await;
        println!(
            "{n} archives of {SHARDS} shards written in {:.1?}",
            started.elapsed()
        );
        let floor = time(&local, n, false).await;
        println!("local directory, --no-verify: {floor:.2?} (1.00x, the floor)");
        for (name, store) in [("local directory", &local), ("local S3 server", &s3)] {
            for verify in [false, true] {
                if name == "local directory" && !verify {
                    continue;
                }
                let t = time(store, n, verify).await;
                println!(
                    "{name}, {}: {t:.2?} ({:.2}x the floor, {:.0} archives/s)",
                    if verify { "verified" } else { "--no-verify" },
                    t.as_secs_f64() / floor.as_secs_f64(),
                    n as f64 / t.as_secs_f64()
                );
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    });
}
