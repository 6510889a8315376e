//! Suite functions, each run against both backends by `main.rs`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use sha2::Digest;
use triton_core::source::{Position, SourceError, SourceRecord};
use triton_core::time::Date;
use triton_s3::{
    list_archives, ArchiveQuery, ArchiveSource, ArchiveStore, BodyRead, ErrorKind, ListError,
    ObjectBody, ObjectInfo, PutOptions, ReadOptions, StoreError,
};
use triton_tests::Rng;

use crate::support::*;

const STREAM: &str = "events";

fn day(s: &str) -> Date {
    Date::parse_yyyymmdd(s).unwrap()
}

/// Unix seconds of `hh:mm` on `d`.
fn at(d: &str, seconds_into_day: u64) -> u64 {
    day(d).to_unix() as u64 + seconds_into_day
}

fn query(start: &str, end: &str, client: Option<&str>) -> ArchiveQuery {
    ArchiveQuery {
        stream: STREAM.into(),
        start: day(start),
        end: day(end),
        client: client.map(str::to_string),
    }
}

/// An archive whose records name it: `seq` = archive number * 1000 + index.
fn numbered(archive_no: u64, records: u64) -> (Vec<Vec<u8>>, Vec<u8>) {
    let recs: Vec<Vec<u8>> = (0..records)
        .map(|i| {
            record_bytes(
                archive_no * 1000 + i,
                format!("a{archive_no}r{i}").as_bytes(),
            )
        })
        .collect();
    let bytes = archive(&recs);
    (recs, bytes)
}

async fn read(f: &Fixture, q: &ArchiveQuery) -> Vec<Vec<u8>> {
    let archives = list_archives(f.store.clone(), q).await.unwrap();
    let mut source = ArchiveSource::new(f.store.clone(), archives, ReadOptions::default());
    let (records, error) = drain(&mut source).await;
    assert!(error.is_none(), "{error:?}");
    records.into_iter().map(|r| r.data).collect()
}

/// The published conformance suite of `ArchiveStore` (feature test-util).
pub async fn conforms_to_archive_store(f: Fixture) {
    triton_s3::testing::conformance::run(&*f.store).await;
}

pub async fn objects_round_trip(f: Fixture) {
    let s = &f.store;
    assert_eq!(s.head("a/b.tri").await.unwrap(), None);
    s.put_bytes("a/b.tri", b"hello".to_vec(), &PutOptions::default())
        .await
        .unwrap();
    s.put_bytes("a/c.tri", b"world!".to_vec(), &PutOptions::default())
        .await
        .unwrap();
    s.put_bytes("b/d.tri", b"x".to_vec(), &PutOptions::default())
        .await
        .unwrap();
    let info = |k: &str, n: u64| ObjectInfo {
        key: k.into(),
        size: n,
    };
    assert_eq!(s.head("a/b.tri").await.unwrap(), Some(info("a/b.tri", 5)));
    assert_eq!(
        s.list("a/").await.unwrap(),
        vec![info("a/b.tri", 5), info("a/c.tri", 6)]
    );
    assert_eq!(s.list("a/c").await.unwrap(), vec![info("a/c.tri", 6)]);
    assert_eq!(s.list("zz/").await.unwrap(), vec![]);
    let mut body = s.get("a/c.tri", 2).await.unwrap();
    let mut got = Vec::new();
    while body.reader.read_into(&mut got).await.unwrap() > 0 {}
    assert_eq!(got, b"rld!");
    s.delete("a/b.tri").await.unwrap();
    s.delete("a/b.tri").await.unwrap(); // deleting a missing object succeeds
    assert_eq!(s.head("a/b.tri").await.unwrap(), None);
    let e = s.get("a/b.tri", 0).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
}

pub async fn create_only_refuses_an_existing_key(f: Fixture) {
    let create_only = PutOptions {
        create_only: true,
        ..PutOptions::default()
    };
    let k = key(STREAM, "store", at("20241030", 0));
    f.store
        .put_bytes(&k, b"first".to_vec(), &create_only)
        .await
        .unwrap();
    let e = f
        .store
        .put_bytes(&k, b"second".to_vec(), &create_only)
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::AlreadyExists, "{e}");
    assert_eq!(f.store.head(&k).await.unwrap().unwrap().size, 5);
    // Without the option the object is replaced.
    f.store
        .put_bytes(&k, b"second".to_vec(), &PutOptions::default())
        .await
        .unwrap();
    assert_eq!(f.store.head(&k).await.unwrap().unwrap().size, 6);
}

pub async fn lists_1200_archives_of_one_day(f: Fixture) {
    // More than one page (S3 returns at most 1,000 keys per page; the
    // original reader stopped there). Uploaded in shuffled order.
    let mut order: Vec<u64> = (0..1200).collect();
    let mut rng = Rng::new(7);
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let objects = order
        .iter()
        .map(|&n| {
            // On 1 January 1970 timestamps have 1 to 5 digits, so that key
            // order (…-10.tri before …-9.tri) is not time order.
            (
                key(STREAM, "store", at("19700101", n * 9 + 9)),
                numbered(n, 1).1,
            )
        })
        .collect();
    f.put_all(objects).await;
    assert_eq!(f.store.list("19700101/").await.unwrap().len(), 1200);
    let got = read(&f, &query("19700101", "19700101", None)).await;
    let expected: Vec<Vec<u8>> = (0..1200).map(|n| numbered(n, 1).0.remove(0)).collect();
    assert_eq!(got.len(), 1200);
    assert!(got == expected, "records out of (day, timestamp) order");
}

pub async fn reads_a_range_across_a_month_boundary(f: Fixture) {
    let days = [
        "20241029", "20241030", "20241031", "20241101", "20241102", "20241103",
    ];
    let mut objects = Vec::new();
    let mut expected = Vec::new();
    for (d, name) in days.iter().enumerate() {
        for h in 0..3u64 {
            let n = d as u64 * 10 + h;
            let (recs, bytes) = numbered(n, 5);
            objects.push((key(STREAM, "store", at(name, h * 3600)), bytes));
            if (1..=4).contains(&d) {
                expected.extend(recs);
            }
        }
    }
    f.put_all(objects).await;
    let got = read(&f, &query("20241030", "20241102", None)).await;
    assert_eq!(got.len(), 4 * 3 * 5);
    assert!(
        got == expected,
        "not the records of 30 Oct to 2 Nov in order"
    );
}

async fn two_clients(f: &Fixture) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let (mut store_recs, mut backfill_recs) = (Vec::new(), Vec::new());
    let mut objects = Vec::new();
    for n in 0..4u64 {
        let (recs, bytes) = numbered(n, 3);
        let client = if n % 2 == 0 { "store" } else { "backfill" };
        objects.push((key(STREAM, client, at("20241030", n * 60)), bytes));
        if n % 2 == 0 {
            store_recs.extend(recs);
        } else {
            backfill_recs.extend(recs);
        }
    }
    f.put_all(objects).await;
    (store_recs, backfill_recs)
}

pub async fn client_filter(f: Fixture) {
    let (store_recs, backfill_recs) = two_clients(&f).await;
    let got = read(&f, &query("20241030", "20241030", Some("backfill"))).await;
    assert!(got == backfill_recs);
    let got = read(&f, &query("20241030", "20241030", Some("store"))).await;
    assert!(got == store_recs);
}

pub async fn two_clients_without_a_filter_is_an_error(f: Fixture) {
    two_clients(&f).await;
    let e = list_archives(f.store.clone(), &query("20241030", "20241030", None))
        .await
        .unwrap_err();
    assert!(matches!(e, ListError::MixedClients { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("backfill (2 archives)") && msg.contains("store (2 archives)"),
        "{msg}"
    );
}

pub async fn skips_keys_that_are_not_archives(f: Fixture) {
    let (recs, bytes) = numbered(1, 4);
    let good = key(STREAM, "store", at("20241030", 100));
    let junk = b"not an archive".to_vec();
    f.put_all(vec![
        (good.clone(), bytes.clone()),
        (format!("{good}.metadata"), b"{}".to_vec()),
        ("20241030/events-store-abc.tri".into(), junk.clone()),
        ("20241030/events-store-0100.tri".into(), junk.clone()),
        ("20241030/events-.tri".into(), junk.clone()),
        ("20241030/events-notes.txt".into(), junk.clone()),
        // Another stream whose name starts with "events-".
        (key("events-b", "store", at("20241030", 50)), bytes.clone()),
        ("_invalid/20241030/events-store-1.tri".into(), junk),
    ])
    .await;
    let got = read(&f, &query("20241030", "20241030", None)).await;
    assert!(got == recs);
}

/// A copy of `bytes` with one byte changed inside chunk number `chunk`
/// (0 is the stream identifier), and that chunk's file offset.
fn damage_chunk(bytes: &[u8], chunk: usize) -> (Vec<u8>, u64) {
    let mut offset = 0usize;
    for _ in 0..chunk {
        let len = u32::from_le_bytes([bytes[offset + 1], bytes[offset + 2], bytes[offset + 3], 0]);
        offset += 4 + len as usize;
    }
    let mut damaged = bytes.to_vec();
    damaged[offset + 10] ^= 0x55;
    (damaged, offset as u64)
}

pub async fn corrupt_archive_is_reported_and_skipped(f: Fixture) {
    // Records of 20 kB, so that each 64 KiB chunk holds a few of them.
    let recs: Vec<Vec<u8>> = (0..40u64)
        .map(|i| record_bytes(i, &vec![b'a' + (i % 26) as u8; 20_000]))
        .collect();
    let (first, third) = (numbered(1, 3), numbered(3, 3));
    let (damaged, offset) = damage_chunk(&archive(&recs), 3);
    let bad_key = key(STREAM, "store", at("20241030", 20));
    f.put_all(vec![
        (key(STREAM, "store", at("20241030", 10)), first.1),
        (bad_key.clone(), damaged),
        (key(STREAM, "store", at("20241030", 30)), third.1),
    ])
    .await;
    let archives = list_archives(f.store.clone(), &query("20241030", "20241030", None))
        .await
        .unwrap();
    let mut source = ArchiveSource::new(f.store.clone(), archives, ReadOptions::default());
    let (before, error) = drain(&mut source).await;
    let Some(SourceError::Corrupt {
        source_id,
        position: Position::Index(index),
        detail,
    }) = error
    else {
        panic!("expected a corruption error, got {error:?}");
    };
    assert_eq!(source_id, bad_key);
    assert!(detail.contains(&format!("byte {offset}")), "{detail}");
    // Everything before the damaged chunk was delivered, in order.
    assert_eq!(before.len(), 3 + index as usize);
    assert!(index > 0, "chunks 1 and 2 hold records");
    let delivered: Vec<&Vec<u8>> = before.iter().map(|r| &r.data).collect();
    let expected: Vec<&Vec<u8>> = first.0.iter().chain(&recs[..index as usize]).collect();
    assert_eq!(delivered, expected);
    // Going on reads the next archive.
    let (after, error) = drain(&mut source).await;
    assert!(error.is_none(), "{error:?}");
    let after: Vec<Vec<u8>> = after.into_iter().map(|r| r.data).collect();
    assert!(after == third.0);
}

/// How [`BreakingStore`] cuts the first body it serves.
#[derive(Clone, Copy, Debug)]
pub enum Cut {
    /// A transient error, as a reset connection gives.
    Error,
    /// A clean end of the body, before its announced length.
    EarlyEnd,
}

/// Cuts the first body it serves after `at` bytes; before serving the next
/// one (the resume) it can replace the object, as a concurrent writer would.
#[derive(Debug)]
pub struct BreakingStore {
    pub inner: Arc<dyn ArchiveStore>,
    pub at: u64,
    pub cut: Cut,
    pub replace_with: Option<Vec<u8>>,
    pub broken: AtomicBool,
    pub resumed_at: AtomicU64,
}

impl BreakingStore {
    pub fn new(inner: Arc<dyn ArchiveStore>, at: u64, cut: Cut) -> Hooked<BreakingStore> {
        Hooked(BreakingStore {
            inner,
            at,
            cut,
            replace_with: None,
            broken: AtomicBool::new(false),
            resumed_at: AtomicU64::new(0),
        })
    }
}

struct BreakingBody {
    inner: Box<dyn BodyRead>,
    left: Option<u64>,
    cut: Cut,
}

#[async_trait]
impl BodyRead for BreakingBody {
    async fn read_into(&mut self, buf: &mut Vec<u8>) -> Result<usize, StoreError> {
        match (self.left, self.cut) {
            (Some(0), Cut::Error) => {
                return Err(transient(
                    "GetObject",
                    "test",
                    "connection reset (injected)",
                ))
            }
            (Some(0), Cut::EarlyEnd) => return Ok(0),
            _ => {}
        }
        let before = buf.len();
        let n = self.inner.read_into(buf).await?;
        if let Some(left) = &mut self.left {
            // Deliver at most `left` bytes of this chunk.
            let keep = (n as u64).min(*left) as usize;
            buf.truncate(before + keep);
            *left -= keep as u64;
            return Ok(keep);
        }
        Ok(n)
    }
}

#[async_trait]
impl Hooks for BreakingStore {
    fn inner(&self) -> &dyn ArchiveStore {
        &*self.inner
    }

    async fn get(&self, key: &str, offset: u64) -> Result<ObjectBody, StoreError> {
        let first = !self.broken.swap(true, Ordering::SeqCst);
        if !first {
            self.resumed_at.store(offset, Ordering::SeqCst);
            if let Some(data) = &self.replace_with {
                self.inner
                    .put_bytes(key, data.clone(), &PutOptions::default())
                    .await?;
            }
        }
        let body = self.inner.get(key, offset).await?;
        Ok(ObjectBody {
            reader: Box::new(BreakingBody {
                inner: body.reader,
                left: first.then_some(self.at),
                cut: self.cut,
            }),
            ..body
        })
    }
}

/// 300 records of random bytes from `seed`, and their archive (about
/// 300 kB that do not compress).
fn incompressible(seed: u64) -> (Vec<Vec<u8>>, Vec<u8>) {
    let mut rng = Rng::new(seed);
    let recs: Vec<Vec<u8>> = (0..300u64)
        .map(|i| {
            let payload: Vec<u8> = (0..i * 7).map(|_| rng.next_u64() as u8).collect();
            record_bytes(i, &payload)
        })
        .collect();
    let bytes = archive(&recs);
    assert!(bytes.len() > 200_000, "{}", bytes.len());
    (recs, bytes)
}

/// Stores [`incompressible`] archive 3 for the day; returns its records
/// and key.
pub async fn incompressible_archive(f: &Fixture) -> (Vec<Vec<u8>>, String) {
    let (recs, bytes) = incompressible(3);
    let k = key(STREAM, "store", at("20241030", 0));
    f.put_all(vec![(k.clone(), bytes)]).await;
    (recs, k)
}

/// Reads the day's archives through `store`.
pub async fn read_through(
    store: Arc<Hooked<BreakingStore>>,
) -> (Vec<SourceRecord>, Option<SourceError>) {
    let store: Arc<dyn ArchiveStore> = store;
    let archives = list_archives(store.clone(), &query("20241030", "20241030", None))
        .await
        .unwrap();
    let mut source = ArchiveSource::new(store, archives, ReadOptions::default());
    drain(&mut source).await
}

/// Reads the day's archives through `store`, hashing them; returns the
/// SHA-256 of the one archive `key`.
async fn hash_through(store: Arc<Hooked<BreakingStore>>, key: &str) -> Option<String> {
    let store: Arc<dyn ArchiveStore> = store;
    let archives = list_archives(store.clone(), &query("20241030", "20241030", None))
        .await
        .unwrap();
    let options = ReadOptions {
        sha256: true,
        ..ReadOptions::default()
    };
    let mut source = ArchiveSource::new(store, archives, options);
    let (_, error) = drain(&mut source).await;
    assert!(error.is_none(), "{error:?}");
    let sha = source.take_sha256(key);
    assert_eq!(source.take_sha256(key), None, "taken once");
    sha
}

pub async fn resumes_a_body_that_breaks_off(f: Fixture) {
    let (recs, k) = incompressible_archive(&f).await;
    let want: String = sha2::Sha256::digest(incompressible(3).1)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    for cut in [Cut::Error, Cut::EarlyEnd] {
        // The hash of the bytes read across a resume is the object's.
        let store = Arc::new(BreakingStore::new(f.store.clone(), 100_003, cut));
        let sha = hash_through(store, &k).await;
        assert_eq!(sha.as_deref(), Some(want.as_str()), "{cut:?}");
        let store = Arc::new(BreakingStore::new(f.store.clone(), 100_003, cut));
        let (got, error) = read_through(store.clone()).await;
        assert!(error.is_none(), "{cut:?}: {error:?}");
        assert_eq!(store.resumed_at.load(Ordering::SeqCst), 100_003, "{cut:?}");
        let got: Vec<Vec<u8>> = got.into_iter().map(|r| r.data).collect();
        assert_eq!(got.len(), recs.len(), "{cut:?}");
        assert!(
            got == recs,
            "{cut:?}: records lost or repeated across the resume"
        );
    }
    // A connection that breaks after the last byte needs no resume.
    let size = f
        .store
        .head(&key(STREAM, "store", at("20241030", 0)))
        .await
        .unwrap()
        .unwrap()
        .size;
    let store = Arc::new(BreakingStore::new(f.store.clone(), size, Cut::Error));
    let (got, error) = read_through(store.clone()).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(got.len(), recs.len());
    assert_eq!(
        store.resumed_at.load(Ordering::SeqCst),
        0,
        "resumed needlessly"
    );
}

pub async fn a_changed_object_is_not_resumed(f: Fixture) {
    let (recs, _) = incompressible_archive(&f).await;
    // Replaced by an object of another version that is longer than the
    // break (found by its version tag), or shorter (S3 then refuses the
    // range).
    for replacement in [incompressible(4).1, numbered(9, 3).1] {
        let mut store = BreakingStore::new(f.store.clone(), 150_000, Cut::Error);
        store.replace_with = Some(replacement);
        let (got, error) = read_through(Arc::new(store)).await;
        let Some(SourceError::Unavailable { source, .. }) = &error else {
            panic!("expected the read to fail, got {error:?}");
        };
        let detail = triton_core::error::Report(&**source).to_string();
        assert!(
            detail.contains("the object changed while it was being read"),
            "{detail}"
        );
        // What was read before the break is delivered, and nothing else.
        assert!(!got.is_empty());
        let got: Vec<&Vec<u8>> = got.iter().map(|r| &r.data).collect();
        let expected: Vec<&Vec<u8>> = recs[..got.len()].iter().collect();
        assert_eq!(got, expected);
        // Put the original back for the next round.
        incompressible_archive(&f).await;
    }
}

pub async fn listing_stays_inside_the_store(f: Fixture) {
    let (_, k) = incompressible_archive(&f).await;
    assert_eq!(f.store.list("20241030/").await.unwrap().len(), 1);
    for prefix in ["20241030/../", "../", "20241030/./"] {
        match f.store.list(prefix).await {
            // S3 keys are plain strings: these prefixes just match nothing.
            Ok(listed) => assert!(listed.is_empty(), "{prefix}: {listed:?}"),
            Err(e) => assert_eq!(e.kind, ErrorKind::Fatal, "{prefix}: {e}"),
        }
    }
    // Names that would change the prefix are refused before listing.
    let mut q = query("20241030", "20241030", None);
    q.stream = "../events".into();
    let e = list_archives(f.store.clone(), &q).await.unwrap_err();
    assert!(matches!(e, ListError::InvalidName(_)), "{e}");
    assert!(f.store.head(&k).await.unwrap().is_some());
}

pub async fn conforms_to_record_source(f: Fixture) {
    // Archives of 0 (an empty file), 1, 3000 and 5 records over two days.
    let mut objects = Vec::new();
    let mut expected = Vec::new();
    for (n, (d, records)) in [
        ("20241030", 0u64),
        ("20241030", 1),
        ("20241031", 3000),
        ("20241031", 5),
    ]
    .into_iter()
    .enumerate()
    {
        let k = key(STREAM, "store", at(d, n as u64 * 60));
        let (recs, bytes) = numbered(n as u64, records);
        let id: Arc<str> = k.as_str().into();
        expected.extend(recs.into_iter().enumerate().map(|(i, data)| SourceRecord {
            source: id.clone(),
            position: Position::Index(i as u64),
            data,
            meta: Default::default(),
        }));
        objects.push((k, if records == 0 { Vec::new() } else { bytes }));
    }
    f.put_all(objects).await;
    let archives = list_archives(f.store.clone(), &query("20241030", "20241031", None))
        .await
        .unwrap();
    assert_eq!(archives.len(), 4);
    let mut source = ArchiveSource::new(f.store.clone(), archives, ReadOptions::default());
    triton_core::source::conformance::check_finite(&mut source, &expected).await;
}

pub async fn an_end_before_the_start_is_an_error(f: Fixture) {
    let e = list_archives(f.store.clone(), &query("20241102", "20241030", None))
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "the end date 20241030 is before the start date 20241102"
    );
}
