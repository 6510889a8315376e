//! `triton audit` on a local directory of archives written by the store
//! pipeline.

use std::path::Path;
use std::process::Output;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use triton_core::source::{MemorySource, Position, SequenceNumber, SourceRecord};
use triton_s3::archiver::{Archiver, ArchiverOptions};
use triton_s3::LocalStore;

use crate::util::{stdout, triton, Dir};

/// Archives 300 records of two shards into `dir/bucket`, at 2024-10-30.
fn archive(dir: &Path) {
    let records = (0..300u64).map(|i| SourceRecord {
        source: format!("shardId-00000000000{}", i % 2).into(),
        position: Position::Sequence(SequenceNumber::new((1_000_000 + i).to_string()).unwrap()),
        data: [&[0x81, 0xa1, b'n', 0xcd][..], &(i as u16).to_be_bytes()].concat(),
        meta: Default::default(),
    });
    let mut options = ArchiverOptions::new("audited", "store");
    options.spool_dir = dir.join("spool");
    options.clock = Arc::new(|| UNIX_EPOCH + Duration::from_secs(1_730_246_400));
    let store = Arc::new(LocalStore::new(dir.join("bucket")));
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(
            Archiver::new(MemorySource::new(records), store, options).run(std::future::pending()),
        )
        .unwrap();
}

fn audit(dir: &Dir, extra: &[&str]) -> Output {
    let config = dir.write(
        "triton.yaml",
        "events:\n  name: audited\n  partition_key: n\n  region: us-east-1\n",
    );
    triton()
        .env("TRITON_CONFIG", config)
        .args([
            "audit",
            "--stream",
            "events",
            "--start-date",
            "20241030",
            "--bucket",
        ])
        .arg(dir.join("bucket"))
        .args(extra)
        .output()
}

#[test]
fn clean_archives_exit_0_and_problems_exit_1() {
    let dir = Dir::new("audit");
    archive(dir.path());

    let out = audit(&dir, &[]);
    let text = stdout(&out);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("1 archives, 300 records\n"), "{text}");
    assert!(
        text.contains("shardId-000000000000: 1 archives, 1000000 to 1000298"),
        "{text}"
    );
    assert!(text.ends_with("clean\n"), "{text}");

    let out = audit(&dir, &["--format", "json"]);
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["records"], 300);
    assert_eq!(json["findings"], serde_json::json!([]));

    std::fs::remove_file(dir.join("bucket/20241030/audited-store-1730246400.tri.metadata"))
        .unwrap();
    let out = audit(&dir, &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("NO SIDECAR 20241030/audited-store-1730246400.tri"),
        "{text}"
    );
    assert!(text.ends_with("1 problems\n"), "{text}");
}
