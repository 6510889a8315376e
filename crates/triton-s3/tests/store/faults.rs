//! Failures: a 50 MB upload whose first attempt is interrupted (each
//! backend), and S3 answers that must not be trusted or retried.

use std::path::Path;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents, SharedInterceptor};
use aws_sdk_s3::operation::upload_part::UploadPartInput;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeDeserializationInterceptorContextMut, BeforeSerializationInterceptorContextRef,
    BeforeTransmitInterceptorContextMut,
};
use aws_smithy_runtime_api::http::{Response, StatusCode};
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::{Storable, StoreReplace};
use triton_core::source::SourceError;
use triton_s3::{ArchiveStore, ErrorKind, PutOptions, S3Options, S3Store, StoreError};
use triton_tests::{Rng, TempDir};

use crate::suite::{BreakingStore, Cut};
use crate::support::*;

const SIZE: usize = 50_000_000;

/// Answers UploadPart requests for chosen part numbers with 503 SlowDown:
/// always for `fail_always`, once for `fail_once`. Clones share state.
#[derive(Clone, Debug, Default)]
struct PartFaults(Arc<PartFaultState>);

#[derive(Debug, Default)]
struct PartFaultState {
    fail_always: AtomicI32,
    fail_once: AtomicI32,
    injected: AtomicUsize,
}

/// The part number of the UploadPart call in flight, kept in its config bag.
#[derive(Clone, Debug)]
struct PartNumber(i32);

impl Storable for PartNumber {
    type Storer = StoreReplace<Self>;
}

impl Intercept for PartFaults {
    fn name(&self) -> &'static str {
        "PartFaults"
    }

    fn read_before_execution(
        &self,
        ctx: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(input) = ctx.input().downcast_ref::<UploadPartInput>() {
            let n = input.part_number().unwrap_or(0);
            cfg.interceptor_state().store_put(PartNumber(n));
        }
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        ctx: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(PartNumber(n)) = cfg.load::<PartNumber>().cloned() else {
            return Ok(());
        };
        let once = self
            .0
            .fail_once
            .compare_exchange(n, 0, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok();
        if !once && self.0.fail_always.load(Ordering::SeqCst) != n {
            return Ok(());
        }
        let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
            <Error><Code>SlowDown</Code><Message>injected by the test</Message></Error>";
        let mut response = Response::new(StatusCode::try_from(503)?, SdkBody::from(body));
        response
            .headers_mut()
            .insert("content-type", "application/xml");
        *ctx.response_mut() = response;
        self.0.injected.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// A 50 MB file of pseudo-random bytes.
fn big_file(dir: &Path) -> (std::path::PathBuf, Vec<u8>) {
    let mut rng = Rng::new(50);
    let mut data = Vec::with_capacity(SIZE + 8);
    while data.len() < SIZE {
        data.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    data.truncate(SIZE);
    let path = dir.join("big.tri");
    std::fs::write(&path, &data).unwrap();
    (path, data)
}

async fn get_all(store: &dyn ArchiveStore, key: &str) -> Vec<u8> {
    let mut body = store.get(key, 0).await.unwrap();
    let mut out = Vec::new();
    while body.reader.read_into(&mut out).await.unwrap() > 0 {}
    out
}

async fn pending_uploads(f: &Fixture) -> usize {
    let Backend::S3 { client, bucket } = &f.backend else {
        unreachable!()
    };
    let out = client
        .list_multipart_uploads()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    out.uploads().len()
}

fn create_only() -> PutOptions {
    PutOptions {
        create_only: true,
        ..PutOptions::default()
    }
}

/// A create-only upload of `path` as `k`, which must fail.
async fn put_refused(store: &dyn ArchiveStore, k: &str, path: &Path) -> StoreError {
    store.put_file(k, path, &create_only()).await.unwrap_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_multipart_50mb_with_an_interrupted_first_attempt() {
    let faults = PartFaults::default();
    let options = S3Options {
        part_size: 5 << 20,
        upload_concurrency: 4,
        max_attempts: 3,
        retry_base: Duration::from_millis(10),
        ..S3Options::default()
    };
    let f = Fixture::s3_with(vec![SharedInterceptor::new(faults.clone())], options).await;
    let tmp = TempDir::new("multipart");
    let (path, data) = big_file(tmp.path());
    let k = key("events", "store", 1_730_246_400);

    // First attempt: part 3 keeps failing, so the upload fails and is
    // aborted: no object, no parts left behind.
    faults.0.fail_always.store(3, Ordering::SeqCst);
    let e = put_refused(&*f.store, &k, &path).await;
    assert_eq!(e.kind, ErrorKind::Transient, "{e}");
    assert!(e.target.ends_with("part 3"), "{e}");
    assert_eq!(
        faults.0.injected.load(Ordering::SeqCst),
        3,
        "3 attempts of part 3"
    );
    assert_eq!(f.store.head(&k).await.unwrap(), None);
    assert_eq!(
        pending_uploads(&f).await,
        0,
        "the failed upload was not aborted"
    );

    // Second attempt: one transient failure of part 7, retried.
    faults.0.fail_always.store(0, Ordering::SeqCst);
    faults.0.fail_once.store(7, Ordering::SeqCst);
    let receipt = f.store.put_file(&k, &path, &create_only()).await.unwrap();
    assert_eq!(faults.0.injected.load(Ordering::SeqCst), 4);
    assert_eq!(receipt.size, SIZE as u64);
    assert_eq!(receipt.parts, 10);
    assert!(
        get_all(&*f.store, &k).await == data,
        "uploaded bytes differ"
    );

    // Create-only again: refused at completion, and that upload aborted too.
    let e = put_refused(&*f.store, &k, &path).await;
    assert_eq!(e.kind, ErrorKind::AlreadyExists, "{e}");
    assert_eq!(pending_uploads(&f).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_50mb_put_after_an_interrupted_write() {
    let f = Fixture::local();
    let Backend::Local(dir) = &f.backend else {
        unreachable!()
    };
    let tmp = TempDir::new("local-put");
    let (path, data) = big_file(tmp.path());
    let k = key("events", "store", 1_730_246_400);

    // What a writer killed half-way leaves: a partial temporary file.
    let day_dir = dir.path().join("bucket").join("20241030");
    std::fs::create_dir_all(&day_dir).unwrap();
    let leftover = day_dir.join(format!(".{}.part-99999-0", k.rsplit('/').next().unwrap()));
    std::fs::write(&leftover, &data[..SIZE / 3]).unwrap();
    assert_eq!(f.store.head(&k).await.unwrap(), None);
    assert_eq!(f.store.list("20241030/").await.unwrap(), vec![]);

    let receipt = f.store.put_file(&k, &path, &create_only()).await.unwrap();
    assert_eq!(receipt.size, SIZE as u64);
    assert!(get_all(&*f.store, &k).await == data, "written bytes differ");
    let listed = f.store.list("20241030/").await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].size, SIZE as u64);

    let e = put_refused(&*f.store, &k, &path).await;
    assert_eq!(e.kind, ErrorKind::AlreadyExists, "{e}");
    // No temporary files of ours are left (the killed writer's one stays).
    let names: Vec<String> = std::fs::read_dir(&day_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

/// Removes the Range header from GetObject requests, as a proxy or a
/// server that does not support ranges would ignore it.
#[derive(Debug)]
struct DropRange;

impl Intercept for DropRange {
    fn name(&self) -> &'static str {
        "DropRange"
    }

    fn modify_before_transmit(
        &self,
        ctx: &mut BeforeTransmitInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        ctx.request_mut().headers_mut().remove("range");
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_ignores_range_is_not_trusted() {
    let f = Fixture::s3_with(
        vec![SharedInterceptor::new(DropRange)],
        S3Options::default(),
    )
    .await;
    let (recs, _) = crate::suite::incompressible_archive(&f).await;
    let store = Arc::new(BreakingStore::new(f.store.clone(), 150_000, Cut::Error));
    let (got, error) = crate::suite::read_through(store).await;
    let Some(SourceError::Unavailable { source, .. }) = &error else {
        panic!("expected the resume to be refused, got {error:?}");
    };
    let detail = triton_core::error::Report(&**source).to_string();
    assert!(
        detail.contains("asked for the bytes from 150000 on"),
        "{detail}"
    );
    // The whole object, read as a continuation, would have repeated the
    // first records; only those before the break were delivered.
    let got: Vec<&Vec<u8>> = got.iter().map(|r| &r.data).collect();
    assert!(!got.is_empty() && got.len() < recs.len());
    assert_eq!(got, recs[..got.len()].iter().collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_on_a_missing_bucket_is_an_error() {
    let client = s3_client(Vec::new()).await;
    let store = S3Store::new(client, "no-such-bucket-for-triton", S3Options::default());
    let e = store.head("20241030/a-store-1.tri").await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Fatal, "{e}");
    assert!(e.message.contains("bucket does not exist"), "{e}");
}

/// Counts the operations the client starts (each of our attempts is one:
/// the SDK's own retries are off).
#[derive(Clone, Debug, Default)]
struct CountCalls(Arc<AtomicUsize>);

impl Intercept for CountCalls {
    fn name(&self) -> &'static str {
        "CountCalls"
    }

    fn read_before_execution(
        &self,
        _: &BeforeSerializationInterceptorContextRef<'_>,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_failures_are_retried_but_missing_credentials_are_not() {
    let options = S3Options {
        max_attempts: 3,
        retry_base: Duration::from_millis(10),
        ..S3Options::default()
    };
    let calls = CountCalls::default();
    // Nothing listens on port 1 of loopback.
    let client = s3_client_at(
        "http://127.0.0.1:1",
        vec![SharedInterceptor::new(calls.clone())],
    )
    .await;
    let store = S3Store::new(client, "b-unreachable", options.clone());
    let e = store.list("20241030/").await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Transient, "{e}");
    assert_eq!(calls.0.load(Ordering::SeqCst), 3, "3 attempts");

    // A profile that exists nowhere: loading credentials fails, once.
    let calls = CountCalls::default();
    let client = s3_client_without_credentials(vec![SharedInterceptor::new(calls.clone())]).await;
    let store = S3Store::new(client, "b-no-credentials", options);
    let e = store.list("20241030/").await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Fatal, "{e}");
    assert!(e.message.contains("credential"), "{e}");
    assert_eq!(calls.0.load(Ordering::SeqCst), 1, "not retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_store_with_a_relative_root_that_does_not_exist_yet() {
    // Tests run in the crate's directory; the root's first component is new.
    let top = format!("relative-root-{}", std::process::id());
    let store = triton_s3::LocalStore::new(format!("{top}/bucket"));
    let result = store
        .put_bytes("20241030/a-store-1.tri", b"x".to_vec(), &create_only())
        .await;
    let listed = store.list("20241030/").await;
    std::fs::remove_dir_all(&top).unwrap();
    assert_eq!(result.unwrap().size, 1);
    assert_eq!(listed.unwrap().len(), 1);
}

/// A server that takes connections and reads whatever is sent, but never
/// answers (a frozen S3). Returns its port.
fn frozen_server() -> u16 {
    use std::io::Read;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                let mut sink = [0u8; 8192];
                while matches!(conn.read(&mut sink), Ok(n) if n > 0) {}
            });
        }
    });
    port
}

/// Requests to a frozen S3 are given up after the stall bound and retried,
/// each failure naming the key, instead of waiting out the SDK's 300 s
/// attempt timeout in silence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_that_make_no_progress_are_given_up_and_retried() {
    let port = frozen_server();
    let client = s3_client_at(&format!("http://127.0.0.1:{port}"), Vec::new()).await;
    let store = S3Store::new(
        client,
        "b-frozen",
        S3Options {
            max_attempts: 2,
            retry_base: Duration::from_millis(10),
            stall_timeout: Duration::from_secs(1),
            ..S3Options::default()
        },
    );
    let tmp = TempDir::new("frozen");
    let (path, _) = big_file(tmp.path());
    let started = std::time::Instant::now();
    for result in [
        store
            .put_bytes("20241030/a.tri", vec![1; 100_000], &create_only())
            .await
            .map(|_| ()),
        store
            .put_file("20241030/b.tri", &path, &create_only())
            .await
            .map(|_| ()),
        store.head("20241030/c.tri").await.map(|_| ()),
    ] {
        let e = result.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Transient, "{e}");
        let text = e.to_string();
        // 1 s, or more once a body was sent (its bytes may still drain).
        assert!(text.contains("no progress for "), "{text}");
        assert!(text.contains("s3://b-frozen/20241030/"), "{text}");
    }
    // Two attempts of about a second each, three times (the multipart
    // upload stops at its first request).
    let took = started.elapsed();
    assert!(took < Duration::from_secs(20), "{took:?}");
}

/// The published fault wrapper fails the chosen operations, as many times
/// as asked or for the keys picked, before they reach the store.
#[tokio::test]
async fn a_faulty_store_fails_what_it_is_told_to() {
    use triton_s3::testing::{FaultyStore, Op};
    let f = Fixture::local();
    let store = FaultyStore::new(f.store.clone());
    store.fail(Op::PutBytes, 2, ErrorKind::Transient);
    store.fail_when(Op::Get, ErrorKind::Fatal, |key| key.ends_with(".bad"));
    for _ in 0..2 {
        let e = store
            .put_bytes("20150710/a.tri", b"a".to_vec(), &PutOptions::default())
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Transient, "{e}");
        assert_eq!(e.operation, "PutObject");
    }
    assert_eq!(
        f.store.head("20150710/a.tri").await.unwrap(),
        None,
        "nothing written"
    );
    store
        .put_bytes("20150710/a.tri", b"a".to_vec(), &PutOptions::default())
        .await
        .expect("the third put succeeds");
    store
        .put_bytes("20150710/b.bad", b"b".to_vec(), &PutOptions::default())
        .await
        .unwrap();
    assert!(store.get("20150710/a.tri", 0).await.is_ok());
    for _ in 0..2 {
        let e = store.get("20150710/b.bad", 0).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Fatal, "{e}");
    }
    assert_eq!(store.injected().len(), 4, "{:?}", store.injected());
    store.heal();
    assert!(store.get("20150710/b.bad", 0).await.is_ok(), "healed");
}

/// The published throttle wrapper waits before the operations it is set
/// for, on tokio's clock.
#[tokio::test(start_paused = true)]
async fn a_throttled_store_waits_before_each_operation() {
    use triton_s3::testing::{ThrottleConfig, ThrottledStore};
    let f = Fixture::local();
    let store = ThrottledStore::new(
        f.store.clone(),
        ThrottleConfig {
            wait_put: Duration::from_secs(5),
            ..ThrottleConfig::default()
        },
    );
    let start = tokio::time::Instant::now();
    store
        .put_bytes("20150710/a.tri", b"a".to_vec(), &PutOptions::default())
        .await
        .unwrap();
    assert!(
        start.elapsed() >= Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    let start = tokio::time::Instant::now();
    store.head("20150710/a.tri").await.unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "no wait set for head"
    );
    store.config_mut(|c| c.wait_head = Duration::from_secs(2));
    let start = tokio::time::Instant::now();
    store.head("20150710/a.tri").await.unwrap();
    assert!(start.elapsed() >= Duration::from_secs(2));
}
