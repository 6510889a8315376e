//! The store pipeline in process: a scripted source (shards of numbered
//! records, logging every ack and commit) into a local directory, through a
//! store wrapper that logs every upload and can fail or hold uploads (the
//! harness: support/archiver.rs).

#[path = "support/archiver.rs"]
mod harness;
#[path = "support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use triton_core::archive::ArchiveReader;
use triton_core::checkpoint::{CheckpointStore, IntentStore, UploadIntent};
use triton_core::source::{Position, SequenceNumber, SourceRecord};
use triton_s3::archiver::{recover, Archiver, Metadata, Recovery, DEAD_LETTER_PREFIX};
use triton_s3::{ArchiveStore, LocalStore, PutOptions};
use triton_tests::TempDir;

use harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotates_by_size_uploads_and_checkpoints_only_what_is_uploaded() {
    let (tmp, log, store) = setup("archiver-size");
    store.fail_first.store(3, Ordering::SeqCst); // an outage at the start
    let source = Script::new(4, 5_000, 500, None, log.clone());
    let mut o = options(tmp.path());
    o.max_file_size = 16 << 10;
    o.clock = stepping_clock();
    let summary = run_to_end(source, store.clone(), o).await;
    assert_eq!(summary.records, 20_000);
    assert!(summary.archives > 3, "{summary:?}");
    let log = log.lock().unwrap().clone();
    assert_commits_follow_uploads(&log);
    // The last commit covers everything.
    let Some(Event::Committed(last)) = log.last() else {
        panic!("the run did not end with a commit: {log:?}")
    };
    assert!(last.values().all(|&i| i == 4_999), "{last:?}");
    // Every record once, in order per shard.
    let mut seen: HashMap<String, Vec<u64>> = HashMap::new();
    for key in archive_keys(&tmp.path().join("bucket")) {
        let path = tmp.path().join("bucket").join(&key);
        let mut reader = ArchiveReader::new(std::fs::File::open(path).unwrap());
        while let Some(r) = reader.next_record().unwrap() {
            let shard = r.get("shard").and_then(|v| v.as_str()).unwrap().to_string();
            seen.entry(shard)
                .or_default()
                .push(r.get("i").and_then(|v| v.as_i64()).unwrap() as u64);
        }
    }
    assert_eq!(seen.len(), 4);
    for (shard, is) in seen {
        let expected: Vec<u64> = (0..5_000).collect();
        let first_wrong = is.iter().zip(&expected).position(|(a, b)| a != b);
        assert!(
            is.len() == expected.len() && first_wrong.is_none(),
            "{shard}: {} records, first out of place at {first_wrong:?}",
            is.len()
        );
    }
    // The spool is empty.
    assert_eq!(
        std::fs::read_dir(tmp.path().join("spool")).unwrap().count(),
        0
    );
    // Each archive has a sidecar that describes it exactly.
    for key in archive_keys(&tmp.path().join("bucket")) {
        check_sidecar(&tmp.path().join("bucket"), &key);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_records_go_to_the_dead_letter_archive() {
    let (tmp, log, store) = setup("archiver-invalid");
    let source = Script::new(2, 100, 50, Some(10), log.clone());
    let mut o = options(tmp.path());
    o.clock = fixed_clock(1_730_246_400); // one archive, whatever the hour
    let summary = run_to_end(source, store, o).await;
    assert_eq!(summary.invalid, 20);
    assert_eq!(summary.records, 180);
    let bucket = tmp.path().join("bucket");
    let keys = archive_keys(&bucket);
    assert_eq!(keys.len(), 1);
    let dead = bucket.join(format!("{DEAD_LETTER_PREFIX}{}", keys[0]));
    let mut reader = ArchiveReader::new(std::fs::File::open(&dead).unwrap());
    let mut n = 0;
    while let Some(r) = reader.next_record().unwrap() {
        let i = 10 * (n / 2) + 9;
        assert_eq!(
            r.get("shard").and_then(|v| v.as_str()),
            Some(format!("shard-{}", n % 2).as_str())
        );
        assert_eq!(
            r.get("sequence_number").and_then(|v| v.as_str()),
            Some((1_000_000 + i).to_string().as_str())
        );
        let reason = r.get("reason").and_then(|v| v.as_str()).unwrap();
        assert!(!reason.is_empty());
        assert!(matches!(
            r.get("arrival"),
            Some(triton_core::value::Value::Timestamp(_))
        ));
        assert_eq!(
            r.get("data"),
            Some(&triton_core::value::Value::Bin(vec![0xc1, i as u8]))
        );
        n += 1;
    }
    assert_eq!(n, 20);
    // Invalid records are checkpointed like the rest, after their upload.
    let log = log.lock().unwrap().clone();
    assert_commits_follow_uploads(&log);
    let Some(Event::Committed(last)) = log.last() else {
        panic!("{log:?}")
    };
    assert!(last.values().all(|&i| i == 99), "{last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_stream_still_seals_and_uploads_its_archive() {
    let (tmp, log, store) = setup("archiver-idle");
    let mut source = Script::new(1, 5, 5, None, log.clone());
    source.live = true;
    let mut o = options(tmp.path());
    o.max_file_age = Duration::from_secs(1);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(Archiver::new(source, store, o).run(async {
        let _ = stop_rx.await;
    }));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // Uploaded and checkpointed while the store still runs, nothing else.
    assert_eq!(archive_keys(&tmp.path().join("bucket")).len(), 1);
    assert!(matches!(
        log.lock().unwrap().last(),
        Some(Event::Committed(_))
    ));
    stop_tx.send(()).unwrap();
    let summary = run.await.unwrap().unwrap();
    assert_eq!((summary.archives, summary.records), (1, 5));
    assert_eq!(archive_keys(&tmp.path().join("bucket")).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_day_starts_a_new_archive_in_its_day_folder() {
    let (tmp, log, store) = setup("archiver-day");
    // Two batches 1.2 s apart; the clock starts at 2024-10-30 23:59:59.5 UTC.
    let mut source = Script::new(1, 10, 5, None, log.clone());
    source.gap = Duration::from_millis(1200);
    let real_start = std::time::Instant::now();
    let fake_start = UNIX_EPOCH + Duration::from_millis(1_730_332_799_500);
    let mut o = options(tmp.path());
    o.clock = Arc::new(move || fake_start + real_start.elapsed());
    let summary = run_to_end(source, store, o).await;
    assert_eq!(summary.records, 10);
    let keys = archive_keys(&tmp.path().join("bucket"));
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(
        keys[0].starts_with("20241030/events-store-17303327"),
        "{keys:?}"
    );
    assert!(
        keys[1].starts_with("20241031/events-store-17303328"),
        "{keys:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_pauses_while_uploads_are_behind() {
    let (tmp, log, store) = setup("archiver-backpressure");
    store.hold.store(true, Ordering::SeqCst);
    let source = Script::new(1, 10_000, 100, None, log.clone());
    let delivered = source.delivered.clone();
    let mut o = options(tmp.path());
    o.max_file_size = 1; // every batch is an archive
    o.clock = stepping_clock();
    o.max_pending_uploads = 2;
    let run = tokio::spawn(Archiver::new(source, store.clone(), o).run(std::future::pending()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stalled = delivered.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(delivered.load(Ordering::SeqCst), stalled, "reading went on");
    // One uploading, two waiting, one more sealed while the send waits;
    // each holds two batches (the one that opened it, within its second,
    // and the one that reached the size a second later).
    assert!(stalled <= 4 * 200, "{stalled} records read ahead");
    let spooled = std::fs::read_dir(tmp.path().join("spool")).unwrap().count();
    assert!(spooled <= 4, "{spooled} spool files");
    store.hold.store(false, Ordering::SeqCst);
    let summary = run.await.unwrap().unwrap();
    assert_eq!(summary.records, 10_000);
    assert_commits_follow_uploads(&log.lock().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_key_is_never_overwritten() {
    let (tmp, log, store) = setup("archiver-clash");
    // Another store process wrote an archive in the same second.
    let t = 1_730_246_400u64;
    let taken = format!("20241030/events-store-{t}.tri");
    put_someone_elses(&store, &taken).await;
    let source = Script::new(1, 5, 5, None, log.clone());
    let mut o = options(tmp.path());
    o.clock = fixed_clock(t);
    let summary = run_to_end(source, store, o).await;
    assert_eq!(summary.records, 5);
    let bucket = tmp.path().join("bucket");
    assert_eq!(std::fs::read(bucket.join(&taken)).unwrap(), SOMEONE_ELSES);
    assert_eq!(
        archive_keys(&bucket),
        vec![taken, format!("20241030/events-store-{}.tri", t + 1)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_of_only_invalid_records_uploads_only_its_dead_letters() {
    let (tmp, log, store) = setup("archiver-all-invalid");
    let source = Script::new(1, 10, 10, Some(1), log.clone());
    let summary = run_to_end(source, store, options(tmp.path())).await;
    assert_eq!((summary.records, summary.invalid), (0, 10));
    let bucket = tmp.path().join("bucket");
    assert_eq!(
        archive_keys(&bucket),
        Vec::<String>::new(),
        "an empty archive was uploaded"
    );
    let uploaded: Vec<String> = log
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Event::Uploaded(key, _) => Some(key.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(uploaded.len(), 1);
    assert!(uploaded[0].starts_with(DEAD_LETTER_PREFIX), "{uploaded:?}");
    assert_commits_follow_uploads(&log.lock().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_whose_answer_was_lost_is_not_repeated() {
    let (tmp, log, store) = setup("archiver-lost-answer");
    store.lose_answer.store(true, Ordering::SeqCst);
    let source = Script::new(2, 50, 100, None, log.clone());
    let summary = run_to_end(source, store, options(tmp.path())).await;
    assert_eq!((summary.archives, summary.records), (1, 100));
    // The retry found its own archive under the key: one object, no copy.
    assert_eq!(archive_keys(&tmp.path().join("bucket")).len(), 1);
    assert_commits_follow_uploads(&log.lock().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_dead_letter_key_moves_only_the_dead_letters() {
    let (tmp, log, store) = setup("archiver-dead-clash");
    let t = 1_730_246_400u64;
    let taken = format!("{DEAD_LETTER_PREFIX}20241030/events-store-{t}.tri");
    put_someone_elses(&store, &taken).await;
    let source = Script::new(1, 20, 20, Some(10), log.clone());
    let mut o = options(tmp.path());
    o.clock = fixed_clock(t);
    let summary = run_to_end(source, store, o).await;
    assert_eq!((summary.records, summary.invalid), (18, 2));
    let bucket = tmp.path().join("bucket");
    // One archive, under its own second; the dead letters moved on.
    assert_eq!(
        archive_keys(&bucket),
        vec![format!("20241030/events-store-{t}.tri")]
    );
    assert_eq!(std::fs::read(bucket.join(&taken)).unwrap(), SOMEONE_ELSES);
    let moved = bucket.join(format!(
        "{DEAD_LETTER_PREFIX}20241030/events-store-{}.tri",
        t + 1
    ));
    assert!(
        moved.exists(),
        "the dead letters are not under the next second"
    );
    // The sidecar names where they went.
    let sidecar = bucket.join(format!("20241030/events-store-{t}.tri.metadata"));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(sidecar).unwrap()).unwrap();
    assert_eq!(
        json["invalid_archive"],
        format!("{DEAD_LETTER_PREFIX}20241030/events-store-{}.tri", t + 1).as_str()
    );
    assert_eq!(json["invalid_record_count"], 2);
    assert_commits_follow_uploads(&log.lock().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_of_the_same_size_but_other_bytes_is_not_taken_for_ours() {
    let (tmp, log, store) = setup("archiver-same-size");
    let t = 1_730_246_400u64;
    // What the archive will be, with one byte changed, already at its key.
    let probe = TempDir::new("archiver-same-size-probe");
    let mut o = options(probe.path());
    o.clock = fixed_clock(t);
    let probe_store = Arc::new(LocalStore::new(probe.path().join("bucket")));
    run_to_end(
        Script::new(1, 50, 50, None, Arc::default()),
        probe_store,
        o.clone(),
    )
    .await;
    let key = format!("20241030/events-store-{t}.tri");
    let mut other = std::fs::read(probe.path().join("bucket").join(&key)).unwrap();
    let last = other.len() - 1;
    other[last] ^= 1;
    store
        .put_bytes(&key, other.clone(), &PutOptions::default())
        .await
        .unwrap();

    o.spool_dir = tmp.path().join("spool");
    let summary = run_to_end(Script::new(1, 50, 50, None, log.clone()), store, o).await;
    assert_eq!(summary.records, 50);
    let bucket = tmp.path().join("bucket");
    assert_eq!(
        std::fs::read(bucket.join(&key)).unwrap(),
        other,
        "overwritten"
    );
    assert_eq!(
        archive_keys(&bucket),
        vec![key, format!("20241030/events-store-{}.tri", t + 1)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_source_still_has_what_it_delivered_uploaded_and_checkpointed() {
    let (tmp, log, store) = setup("archiver-source-error");
    let mut source = Script::new(2, 100, 50, None, log.clone());
    source.fail_at_end = true;
    let e = Archiver::new(source, store, options(tmp.path()))
        .run(std::future::pending())
        .await
        .unwrap_err();
    let e = triton_core::error::Report(&e).to_string();
    assert!(e.contains("gone (injected)"), "{e}");
    let log = log.lock().unwrap().clone();
    assert_commits_follow_uploads(&log);
    let Some(Event::Committed(last)) = log.last() else {
        panic!("{log:?}")
    };
    assert!(
        last.len() == 2 && last.values().all(|&i| i == 99),
        "{last:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_finds_overlaps_missing_and_mismatched_sidecars_and_gaps() {
    use triton_s3::audit::{audit, Checkpointed, Finding};
    let (tmp, log, store) = setup("archiver-audit");
    let mut o = options(tmp.path());
    o.max_file_size = 16 << 10;
    o.clock = stepping_clock();
    let summary = run_to_end(Script::new(2, 2_000, 500, None, log), store.clone(), o).await;
    let bucket = tmp.path().join("bucket");
    let keys = archive_keys(&bucket);
    assert!(keys.len() >= 3, "{keys:?}");
    let query = audited_day();
    let checkpoint = |shard: &str, i: u64| triton_core::checkpoint::Checkpoint {
        client: "store".into(),
        stream: "events".into(),
        shard: shard.into(),
        sequence: SequenceNumber::new((1_000_000 + i).to_string()).unwrap(),
    };
    let at_end = [checkpoint("shard-0", 1_999), checkpoint("shard-1", 1_999)];
    let dyn_store: Arc<dyn ArchiveStore> = store.clone();

    // A pending upload is listed, not a problem; another stream's is not
    // listed.
    let intent = |stream: &str, key: &str| UploadIntent {
        client: "store".into(),
        stream: stream.into(),
        key: key.into(),
        document: "{}".into(),
    };
    let intents = [
        intent("events", "20241030/events-store-1730260000.tri"),
        intent("other", "20241030/other-store-1730260000.tri"),
    ];
    let db = |checkpoints, intents| Checkpointed {
        checkpoints,
        archives: &[],
        intents,
    };
    let clean = audit(dyn_store.clone(), &query, &db(&at_end, &intents), true)
        .await
        .unwrap();
    assert!(clean.is_clean(), "{:?}", clean.findings);
    assert_eq!(clean.pending, ["20241030/events-store-1730260000.tri"]);
    assert_eq!(
        (clean.archives, clean.records),
        (keys.len(), summary.records)
    );
    assert_eq!(clean.shards.len(), 2);

    // A copy of the second archive under another key: its records twice.
    let copy = "20241030/events-store-1730249999.tri";
    std::fs::copy(bucket.join(&keys[1]), bucket.join(copy)).unwrap();
    std::fs::copy(
        bucket.join(format!("{}.metadata", keys[1])),
        bucket.join(format!("{copy}.metadata")),
    )
    .unwrap();
    // The first archive loses its sidecar; the third is damaged.
    std::fs::remove_file(bucket.join(format!("{}.metadata", keys[0]))).unwrap();
    let mut damaged = std::fs::read(bucket.join(&keys[2])).unwrap();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 1;
    std::fs::write(bucket.join(&keys[2]), damaged).unwrap();
    // And a checkpoint is past the last archived record.
    let beyond = [checkpoint("shard-0", 2_500)];

    let report = audit(dyn_store.clone(), &query, &db(&beyond, &[]), true)
        .await
        .unwrap();
    let f = &report.findings;
    assert!(
        f.iter()
            .any(|f| matches!(f, Finding::Overlap { second, .. } if second.archive == copy)),
        "{f:?}"
    );
    assert!(
        f.iter().any(|f| matches!(f, Finding::MissingSidecar { archive, links }
            if archive == &keys[0] && !links.is_empty() && links.iter().all(|l| l.after.is_none()))),
        "{f:?}"
    );
    assert!(f.iter().any(|f| matches!(f, Finding::Mismatch { archive, detail } if archive == &keys[2] && detail.contains("SHA-256"))), "{f:?}");
    assert!(f.iter().any(|f| matches!(f, Finding::CheckpointAhead { shard, last_archived, .. } if shard == "shard-0" && last_archived.as_deref() == Some("1001999"))), "{f:?}");

    // An archive whose upload is pending has no sidecar yet: not a problem.
    let uploading = [intent("events", &keys[0])];
    let report = audit(dyn_store, &query, &db(&[], &uploading), false)
        .await
        .unwrap();
    assert!(
        !report
            .findings
            .iter()
            .any(|f| matches!(f, Finding::MissingSidecar { .. })),
        "{:?}",
        report.findings
    );
}

/// `triton audit --repair` in process: a missing archive (from its
/// sidecar, and from its neighbours' links when the sidecar is gone too)
/// and a lost sidecar are put back under their keys with the same records,
/// and the audit is clean again; records the stream no longer holds are
/// reported lost and nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_puts_back_missing_archives_and_sidecars_from_the_stream() {
    use triton_s3::audit::{audit, Checkpointed, Finding};
    use triton_s3::repair::repair;
    let (tmp, log, store) = setup("archiver-repair");
    let mut o = options(tmp.path());
    o.max_file_size = 8 << 10;
    o.clock = stepping_clock();
    let source = Script::new(2, 2_000, 100, None, log);
    let all: Vec<SourceRecord> = source.batches.iter().flatten().cloned().collect();
    run_to_end(source, store.clone(), o.clone()).await;
    let bucket = tmp.path().join("bucket");
    let keys = archive_keys(&bucket);
    assert!(keys.len() >= 7, "{keys:?}");
    let query = audited_day();
    let dyn_store: Arc<dyn ArchiveStore> = store.clone();
    let db = Checkpointed::default();
    let records = |key: &str| {
        let mut r = ArchiveReader::new(std::fs::File::open(bucket.join(key)).unwrap());
        let mut out = Vec::new();
        while let Some(raw) = r.next_raw().unwrap() {
            out.push(raw.to_vec());
        }
        out.sort();
        out
    };
    let (middle, bare, lone) = (&keys[1], &keys[3], &keys[5]);
    // The newest archive, with no checkpoint to compare: only its
    // remaining sidecar tells it is missing.
    let newest = keys.last().unwrap();
    let want: Vec<Vec<Vec<u8>>> = [middle, bare, newest].iter().map(|k| records(k)).collect();
    std::fs::remove_file(bucket.join(newest)).unwrap();
    let lone_sidecar = std::fs::read(bucket.join(format!("{lone}.metadata"))).unwrap();
    std::fs::remove_file(bucket.join(middle)).unwrap();
    std::fs::remove_file(bucket.join(bare)).unwrap();
    std::fs::remove_file(bucket.join(format!("{bare}.metadata"))).unwrap();
    std::fs::remove_file(bucket.join(format!("{lone}.metadata"))).unwrap();
    let found = audit(dyn_store.clone(), &query, &db, true).await.unwrap();
    let f = &found.findings;
    for key in [middle, bare] {
        assert!(
            f.iter()
                .any(|f| matches!(f, Finding::Gap { missing_archive: Some(k), .. } if k == key)),
            "{key}: {f:?}"
        );
    }
    assert!(
        f.iter()
            .any(|f| matches!(f, Finding::MissingSidecar { archive, .. } if archive == lone)),
        "{f:?}"
    );
    assert!(
        f.iter()
            .any(|f| matches!(f, Finding::MissingArchive { archive, .. } if archive == newest)),
        "{f:?}"
    );
    assert_eq!(
        f.len(),
        2 * 2 + 1 + 1,
        "two gaps of two shards, a sidecar, an archive: {f:?}"
    );

    // Past the stream's retention: lost, and nothing is written.
    let gone = ScriptReplay {
        all: all.clone(),
        expired: 10_000,
    };
    let done = repair(dyn_store.clone(), &gone, &found, &o).await.unwrap();
    assert!(done.repaired.is_empty(), "{:?}", done.repaired);
    assert!(
        done.lost.iter().any(|l| &l.archive == middle),
        "{:?}",
        done.lost
    );
    assert!(!bucket.join(middle).exists());
    assert!(!audit(dyn_store.clone(), &query, &db, true)
        .await
        .unwrap()
        .is_clean());

    let replay = ScriptReplay { all, expired: 0 };
    let done = repair(dyn_store.clone(), &replay, &found, &o)
        .await
        .unwrap();
    assert!(done.lost.is_empty() && done.left.is_empty(), "{done:?}");
    let again = audit(dyn_store.clone(), &query, &db, true).await.unwrap();
    assert!(again.is_clean(), "{:?}", again.findings);
    assert_eq!(records(middle), want[0]);
    assert_eq!(records(bare), want[1]);
    assert_eq!(records(newest), want[2]);
    let rebuilt: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bucket.join(format!("{lone}.metadata"))).unwrap())
            .unwrap();
    let old: serde_json::Value = serde_json::from_slice(&lone_sidecar).unwrap();
    assert!(rebuilt["rebuilt"].is_string(), "{rebuilt}");
    for field in ["shards", "size", "sha256", "record_count"] {
        assert_eq!(rebuilt[field], old[field], "{field}");
    }
    // Nothing left to put back: a second repair writes nothing.
    let done = repair(dyn_store.clone(), &replay, &again, &o)
        .await
        .unwrap();
    assert!(done.repaired.is_empty(), "{done:?}");

    // Two missing in a row, the first with its sidecar: the second's links
    // reach back past the first, whose records they must not take again.
    // It waits for the next round.
    let (first, second) = (&keys[1], &keys[2]);
    let want: Vec<Vec<Vec<u8>>> = [first, second].iter().map(|k| records(k)).collect();
    std::fs::remove_file(bucket.join(first)).unwrap();
    std::fs::remove_file(bucket.join(second)).unwrap();
    std::fs::remove_file(bucket.join(format!("{second}.metadata"))).unwrap();
    let found = audit(dyn_store.clone(), &query, &db, true).await.unwrap();
    let done = repair(dyn_store.clone(), &replay, &found, &o)
        .await
        .unwrap();
    assert!(
        bucket.join(first).exists() && !bucket.join(second).exists(),
        "{done:?}"
    );
    assert!(done.left.iter().any(|l| &l.archive == second), "{done:?}");
    let found = audit(dyn_store.clone(), &query, &db, true).await.unwrap();
    let done = repair(dyn_store.clone(), &replay, &found, &o)
        .await
        .unwrap();
    assert!(done.left.is_empty() && done.lost.is_empty(), "{done:?}");
    let again = audit(dyn_store, &query, &db, true).await.unwrap();
    assert!(again.is_clean(), "{:?}", again.findings);
    assert_eq!(records(first), want[0]);
    assert_eq!(records(second), want[1]);
}

/// An archive whose every record was invalid uploads only dead letters,
/// with a sidecar all the same (`archive` null): the chain goes through
/// its key, audit checks its dead letters by it, and repair puts them back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_of_dead_letters_only_is_chained_audited_and_repaired() {
    use triton_s3::audit::{audit, Checkpointed, Finding};
    use triton_s3::repair::repair;
    let (tmp, log, store) = setup("archiver-dead-only");
    let mut o = options(tmp.path());
    // An archive per two batches (a batch each second of the clock).
    o.max_file_size = 1;
    o.clock = stepping_clock();
    let mut source = Script::new(2, 300, 100, None, log);
    for r in source.batches.iter_mut().skip(2).take(2).flatten() {
        r.data = vec![0xc1];
    }
    let all: Vec<SourceRecord> = source.batches.iter().flatten().cloned().collect();
    run_to_end(source, store.clone(), o.clone()).await;
    let bucket = tmp.path().join("bucket");
    let sidecars: Vec<serde_json::Value> = archive_keys(&bucket)
        .iter()
        .map(|k| {
            serde_json::from_slice(&std::fs::read(bucket.join(format!("{k}.metadata"))).unwrap())
                .unwrap()
        })
        .collect();
    let query = audited_day();
    let dyn_store: Arc<dyn ArchiveStore> = store.clone();
    let db = Checkpointed::default();
    let clean = audit(dyn_store.clone(), &query, &db, true).await.unwrap();
    assert!(clean.is_clean(), "{:?}", clean.findings);
    let dead = std::fs::read_dir(bucket.join("_invalid/20241030"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect::<Vec<_>>();
    assert_eq!(dead.len(), 1, "{dead:?} ({sidecars:?})");
    let key = format!(
        "20241030/{}",
        dead[0].file_name().unwrap().to_string_lossy()
    );
    let sidecar: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bucket.join(format!("{key}.metadata"))).unwrap())
            .unwrap();
    assert!(sidecar["archive"].is_null(), "{sidecar}");
    assert!(!bucket.join(&key).exists());

    std::fs::remove_file(&dead[0]).unwrap();
    let found = audit(dyn_store.clone(), &query, &db, true).await.unwrap();
    assert!(
        matches!(&found.findings[..], [Finding::DeadLetters { archive, .. }] if *archive == key),
        "{:?}",
        found.findings
    );
    let replay = ScriptReplay { all, expired: 0 };
    let done = repair(dyn_store.clone(), &replay, &found, &o)
        .await
        .unwrap();
    assert!(
        done.lost.is_empty() && done.left.is_empty() && done.failed.is_empty(),
        "{done:?}"
    );
    let again = audit(dyn_store, &query, &db, true).await.unwrap();
    assert!(again.is_clean(), "{:?}", again.findings);
    assert!(dead[0].exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_commits_uploaded_archives_and_rebuilds_a_deleted_one_under_its_key() {
    let (tmp, _log, store) = setup("archiver-recovery");
    let (db, all) = crash_before_commit(tmp.path(), store.clone(), Some(50)).await;
    let intents = db.intents("store", "events").await.unwrap();
    assert!(!intents.is_empty(), "no intent was left pending");
    assert!(
        db.list("store").await.unwrap().is_empty(),
        "nothing may be checkpointed yet"
    );
    let bucket = tmp.path().join("bucket");
    let uploaded: Vec<String> = intents
        .iter()
        .map(|i| i.key.clone())
        .filter(|k| bucket.join(k).exists())
        .collect();
    assert!(
        !uploaded.is_empty(),
        "no archive of a pending intent was uploaded"
    );
    // Delete the first uploaded archive, and its dead letters.
    let deleted = uploaded[0].clone();
    let before = contents(&bucket.join(&deleted));
    let dead = bucket.join(format!("{DEAD_LETTER_PREFIX}{deleted}"));
    let dead_before = contents(&dead);
    std::fs::remove_file(bucket.join(&deleted)).unwrap();
    std::fs::remove_file(&dead).unwrap();
    // The machine crashed too: no spool copy survived.
    std::fs::remove_dir_all(tmp.path().join("spool")).unwrap();

    let replay = ScriptReplay { all, expired: 0 };
    let report = recover_pending(tmp.path(), store.clone(), &db, &replay).await;
    assert_eq!(report.rebuilt, std::slice::from_ref(&deleted), "{report:?}");
    assert_eq!(report.confirmed.len() + 1, intents.len(), "{report:?}");
    assert!(report.lost.is_empty(), "{report:?}");
    // Same key, same records (their order across shards may differ).
    let sorted = |mut v: Vec<(String, u64)>| {
        v.sort();
        v
    };
    assert_eq!(sorted(contents(&bucket.join(&deleted))), sorted(before));
    assert_eq!(sorted(contents(&dead)), sorted(dead_before));
    check_sidecar(&bucket, &deleted);
    // Intents are gone; each shard's checkpoint is its last recorded record.
    assert!(db.intents("store", "events").await.unwrap().is_empty());
    let mut want: HashMap<String, u64> = HashMap::new();
    for intent in &intents {
        let m = Metadata::parse(intent.document.as_bytes()).unwrap();
        for (shard, r) in m.shards {
            let last = r.max_sequence_number.parse::<u64>().unwrap() - 1_000_000;
            let e = want.entry(shard).or_default();
            *e = (*e).max(last);
        }
    }
    let saved: HashMap<String, u64> = db
        .list("store")
        .await
        .unwrap()
        .into_iter()
        .map(|s| {
            (
                s.checkpoint.shard,
                index_of(&Position::Sequence(s.checkpoint.sequence)),
            )
        })
        .collect();
    assert_eq!(saved, want);
    // A second recovery has nothing to do.
    let again = recover_pending(tmp.path(), store, &db, &replay).await;
    assert_eq!(again, Recovery::default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_reports_records_past_retention_and_archives_the_rest() {
    let (tmp, _log, store) = setup("archiver-recovery-lost");
    let (db, all) = crash_before_commit(tmp.path(), store.clone(), None).await;
    let intents = db.intents("store", "events").await.unwrap();
    let first = intents[0].key.clone();
    let bucket = tmp.path().join("bucket");
    let before = contents(&bucket.join(&first));
    std::fs::remove_file(bucket.join(&first)).unwrap();
    std::fs::remove_dir_all(tmp.path().join("spool")).unwrap();

    let replay = ScriptReplay { all, expired: 3 };
    let report = recover_pending(tmp.path(), store, &db, &replay).await;
    assert_eq!(report.rebuilt, std::slice::from_ref(&first));
    // Both shards lost their first 3 records, which were in the first archive.
    assert_eq!(report.lost.len(), 2, "{report:?}");
    assert!(report.lost.iter().all(|l| l.archive == first), "{report:?}");
    let after = contents(&bucket.join(&first));
    assert_eq!(after.len(), before.len() - 6);
    assert!(after.iter().all(|(_, i)| *i >= 3), "{after:?}");
    assert!(db.intents("store", "events").await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_moved_onto_the_next_ones_second_never_shares_its_intent_key() {
    let (tmp, log, store) = setup("archiver-intent-keys");
    // Another process's object takes the first archive's key, so the first
    // archive moves to t+1, the second the next archive was opened in.
    let t = 1_730_246_400u64;
    let taken = format!("20241030/events-store-{t}.tri");
    put_someone_elses(&store, &taken).await;
    let mut source = Script::new(1, 10, 5, None, log.clone());
    source.gap = Duration::from_millis(1500);
    let db = Arc::new(IntentLog::default());
    let mut o = options(tmp.path());
    o.clock = fixed_clock(t);
    o.max_file_age = Duration::from_secs(1);
    o.intents = Some(db.clone());
    let summary = run_to_end(source, store, o).await;
    assert_eq!((summary.records, summary.archives), (10, 2));
    assert_eq!(
        archive_keys(&tmp.path().join("bucket")),
        [t, t + 1, t + 2].map(|s| format!("20241030/events-store-{s}.tri"))
    );
    // Each key was only ever the intent of one archive.
    let recorded = db.recorded.lock().unwrap().clone();
    let mut owner: HashMap<&str, &str> = HashMap::new();
    for (key, shards) in &recorded {
        let first = owner.entry(key).or_insert(shards);
        assert_eq!(
            first, shards,
            "two archives recorded under {key}: {recorded:#?}"
        );
    }
    assert!(db
        .inner
        .intents("store", "events")
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_uploads_the_crashed_stores_spool_copy_when_the_stream_no_longer_has_it() {
    let (tmp, _log, store) = setup("archiver-recovery-spool");
    let (db, _all) = crash_before_commit(tmp.path(), store.clone(), Some(50)).await;
    let intents = db.intents("store", "events").await.unwrap();
    let first = intents[0].key.clone();
    let bucket = tmp.path().join("bucket");
    let original = std::fs::read(bucket.join(&first)).unwrap();
    let dead = bucket.join(format!("{DEAD_LETTER_PREFIX}{first}"));
    let dead_original = std::fs::read(&dead).unwrap();
    std::fs::remove_file(bucket.join(&first)).unwrap();
    std::fs::remove_file(&dead).unwrap();

    // The stream has nothing left: only the spool copy can restore it.
    let replay = ScriptReplay {
        all: Vec::new(),
        expired: 0,
    };
    let report = recover_pending(tmp.path(), store, &db, &replay).await;
    assert_eq!(report.restored, std::slice::from_ref(&first), "{report:?}");
    assert!(
        report.rebuilt.is_empty() && report.lost.is_empty(),
        "{report:?}"
    );
    // The very bytes that were uploaded first.
    assert_eq!(std::fs::read(bucket.join(&first)).unwrap(), original);
    assert_eq!(std::fs::read(&dead).unwrap(), dead_original);
    check_sidecar(&bucket, &first);
    assert!(db.intents("store", "events").await.unwrap().is_empty());
}

/// An interrupted upload whose key now holds other bytes of the same size
/// (someone else's object): recovery moves the archive and its intent to
/// the next key in one go, reports the object once as foreign, and a
/// second recovery has nothing to do; audit lists the object as foreign,
/// not as a damaged archive. Recovery runs as `triton store` runs it, with
/// no intents in the options (once the intent stayed under the old key and
/// every start rebuilt the range again).
async fn foreign_object_at_an_interrupted_key(keep_spool: bool) {
    use triton_s3::audit::{audit, Checkpointed};
    let (tmp, _log, store) = setup("archiver-foreign");
    let (db, all) = crash_before_commit(tmp.path(), store.clone(), Some(50)).await;
    let bucket = tmp.path().join("bucket");
    let intents = db.intents("store", "events").await.unwrap();
    let taken = intents
        .iter()
        .map(|i| i.key.clone())
        .find(|k| bucket.join(k).exists())
        .expect("an uploaded archive with a pending intent");
    let ours = contents(&bucket.join(&taken));
    let size = std::fs::metadata(bucket.join(&taken)).unwrap().len() as usize;
    let foreign = vec![0x5a; size];
    std::fs::write(bucket.join(&taken), &foreign).unwrap();
    if !keep_spool {
        std::fs::remove_dir_all(tmp.path().join("spool")).unwrap();
    }

    let replay = ScriptReplay { all, expired: 0 };
    let report = recover(store.clone(), db.clone(), &replay, &options(tmp.path()))
        .await
        .unwrap();
    assert_eq!(report.foreign, std::slice::from_ref(&taken), "{report:?}");
    let moved_to = if keep_spool {
        &report.restored
    } else {
        &report.rebuilt
    };
    assert_eq!(moved_to.len(), 1, "{report:?}");
    let moved_to = moved_to[0].clone();
    assert_ne!(moved_to, taken);
    assert!(
        db.intents("store", "events").await.unwrap().is_empty(),
        "an intent outlived its recovery"
    );
    // The foreign object is left alone; the archive holds our records.
    assert_eq!(std::fs::read(bucket.join(&taken)).unwrap(), foreign);
    let sorted = |mut v: Vec<(String, u64)>| {
        v.sort();
        v
    };
    assert_eq!(sorted(contents(&bucket.join(&moved_to))), sorted(ours));
    check_sidecar(&bucket, &moved_to);
    let sidecar =
        Metadata::parse(&std::fs::read(bucket.join(format!("{moved_to}.metadata"))).unwrap())
            .unwrap();
    assert_eq!(sidecar.moved_from.len(), 1, "{sidecar:?}");
    assert_eq!(sidecar.moved_from[0].key, taken);
    assert!(
        sidecar.moved_from[0].reason.contains("another object"),
        "{sidecar:?}"
    );
    // Once: the next start has nothing to finish.
    let again = recover(store.clone(), db.clone(), &replay, &options(tmp.path()))
        .await
        .unwrap();
    assert_eq!(again, Recovery::default());

    let query = audited_day();
    // Verified or not: the stale sidecar left at the taken key is the
    // moved archive's, so the object is foreign even by sizes alone.
    for verify in [true, false] {
        let report = audit(store.clone(), &query, &Checkpointed::default(), verify)
            .await
            .unwrap();
        assert!(report.is_clean(), "verify {verify}: {:?}", report.findings);
        assert_eq!(report.foreign.len(), 1, "{report:?}");
        assert_eq!(report.foreign[0].key, taken);
        assert_eq!(report.foreign[0].moved_to, moved_to);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_object_at_an_interrupted_key_ends_in_one_recovery_from_the_stream() {
    foreign_object_at_an_interrupted_key(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_object_at_an_interrupted_key_ends_in_one_recovery_from_the_spool() {
    foreign_object_at_an_interrupted_key(true).await;
}
