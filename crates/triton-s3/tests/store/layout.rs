//! The layout of a store: a key prefix inside the bucket, the storage class
//! and tags of written objects, and the start-up write probe.

use std::sync::Arc;

use aws_sdk_s3::Client;
use triton_core::time::Date;
use triton_s3::{
    list_archives, list_from, ArchiveQuery, ArchiveStore, ErrorKind, FromQuery, ListError, Listing,
    LocalStore, ObjectInfo, PutOptions, S3Options, S3Store, StorageClass,
};
use triton_tests::TempDir;

use crate::support::*;

/// Every key in the bucket, with a client that knows no prefix.
async fn all_keys(client: &Client, bucket: &str) -> Vec<String> {
    let listed = client
        .list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect()
}

fn s3_parts(f: &Fixture) -> (Client, String) {
    match &f.backend {
        Backend::S3 { client, bucket } => (client.clone(), bucket.clone()),
        Backend::Local(_) => unreachable!("an S3 fixture"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefix_round_trip() {
    let f = Fixture::s3().await;
    let (client, bucket) = s3_parts(&f);
    // Below the prefix, as parsed from what a user writes.
    let store = S3Store::new(client.clone(), bucket.clone(), S3Options::default())
        .with_prefix("some/prefix");
    assert_eq!(store.prefix(), "some/prefix/");
    assert_eq!(store.url(), format!("s3://{bucket}/some/prefix/"));
    // And a neighbour at the top of the bucket, which the prefix hides.
    f.store
        .put_bytes(
            &key("events", "store", 1_730_246_400),
            b"top".to_vec(),
            &PutOptions::default(),
        )
        .await
        .unwrap();

    let k1 = key("events", "store", 1_730_246_401);
    let k2 = key("events", "store", 1_730_246_402);
    store
        .put_bytes(
            &k1,
            archive(&[record_bytes(1, b"a")]),
            &PutOptions::default(),
        )
        .await
        .unwrap();
    // A multipart upload too (two parts of 5 MiB).
    let tmp = TempDir::new("layout-prefix");
    let big = tmp.path().join("big");
    std::fs::write(&big, vec![7u8; 6 << 20]).unwrap();
    let small_parts = S3Store::new(
        client.clone(),
        bucket.clone(),
        S3Options {
            part_size: 5 << 20,
            ..S3Options::default()
        },
    )
    .with_prefix("some/prefix/");
    let receipt = small_parts
        .put_file(&k2, &big, &PutOptions::default())
        .await
        .unwrap();
    assert_eq!(receipt.parts, 2);

    let listed = store.list("20241030/").await.unwrap();
    assert_eq!(
        listed,
        vec![
            ObjectInfo {
                key: k1.clone(),
                size: listed[0].size
            },
            ObjectInfo {
                key: k2.clone(),
                size: 6 << 20
            },
        ]
    );
    assert_eq!(store.head(&k2).await.unwrap().unwrap().key, k2);
    let mut body = store.get(&k1, 0).await.unwrap();
    let mut got = Vec::new();
    while body.reader.read_into(&mut got).await.unwrap() > 0 {}
    assert_eq!(got, archive(&[record_bytes(1, b"a")]));

    // The reader lists below the prefix and finds only its archives.
    let store: Arc<dyn ArchiveStore> = Arc::new(store);
    let day = Date::parse_yyyymmdd("20241030").unwrap();
    let query = ArchiveQuery {
        stream: "events".into(),
        start: day,
        end: day,
        client: None,
    };
    let found = list_archives(store.clone(), &query).await.unwrap();
    assert_eq!(
        found.iter().map(|a| a.key.to_string()).collect::<Vec<_>>(),
        vec![k1.clone(), k2.clone()]
    );

    // The objects really live below the prefix.
    let mut expected = vec![
        key("events", "store", 1_730_246_400),
        format!("some/prefix/{k1}"),
        format!("some/prefix/{k2}"),
    ];
    expected.sort();
    assert_eq!(all_keys(&client, &bucket).await, expected);

    // Errors name the full object.
    let e = store.get("20241030/missing.tri", 0).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound);
    assert_eq!(
        e.target,
        format!("s3://{bucket}/some/prefix/20241030/missing.tri")
    );

    store.delete(&k1).await.unwrap();
    store.delete(&k2).await.unwrap();
    assert_eq!(store.list("").await.unwrap(), vec![]);
    assert_eq!(
        all_keys(&client, &bucket).await,
        vec![key("events", "store", 1_730_246_400)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_location_with_a_prefix_opens_a_store_below_it() {
    let f = Fixture::s3().await;
    let (client, bucket) = s3_parts(&f);
    let location = triton_s3::Location::parse(&format!("s3://{bucket}/a/b")).unwrap();
    assert_eq!(location.to_string(), format!("s3://{bucket}/a/b/"));
    // The endpoint and credentials come from the environment, as for users.
    let store = location.open(REGION, S3Options::default()).await;
    assert_eq!(store.url(), format!("s3://{bucket}/a/b/"));
    store
        .put_bytes("20241030/x.tri", b"x".to_vec(), &PutOptions::default())
        .await
        .unwrap();
    assert_eq!(
        all_keys(&client, &bucket).await,
        vec!["a/b/20241030/x.tri".to_string()]
    );
}

/// The tags of an object, sorted.
async fn tags_of(client: &Client, bucket: &str, key: &str) -> Vec<(String, String)> {
    let out = client
        .get_object_tagging()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    let mut tags: Vec<_> = out
        .tag_set()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect();
    tags.sort();
    tags
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_class_and_tags_on_every_upload() {
    let f = Fixture::s3().await;
    let (client, bucket) = s3_parts(&f);
    let tags = vec![
        triton_s3::parse_tag("team=data platform").unwrap(),
        triton_s3::parse_tag("cost=a+b=c/d:@é").unwrap(),
    ];
    triton_s3::check_tags(&tags).unwrap();
    let store = S3Store::new(
        client.clone(),
        bucket.clone(),
        S3Options {
            part_size: 5 << 20,
            storage_class: Some(triton_s3::parse_storage_class("standard_ia").unwrap()),
            tags: tags.clone(),
            ..S3Options::default()
        },
    )
    .with_prefix("p");
    let tmp = TempDir::new("layout-tags");
    let big = tmp.path().join("big");
    std::fs::write(&big, vec![1u8; 6 << 20]).unwrap();
    let small = tmp.path().join("small");
    std::fs::write(&small, b"small").unwrap();
    // One PutObject from bytes (sidecars), one from a file (archives), one
    // multipart upload (large archives).
    store
        .put_bytes(
            "20241030/a.tri.meta",
            b"{}".to_vec(),
            &PutOptions::default(),
        )
        .await
        .unwrap();
    store
        .put_file("20241030/a.tri", &small, &PutOptions::default())
        .await
        .unwrap();
    let receipt = store
        .put_file("_invalid/20241030/b.tri", &big, &PutOptions::default())
        .await
        .unwrap();
    assert_eq!(receipt.parts, 2);

    let mut expected = tags.clone();
    expected.sort();
    for key in [
        "p/20241030/a.tri.meta",
        "p/20241030/a.tri",
        "p/_invalid/20241030/b.tri",
    ] {
        assert_eq!(tags_of(&client, &bucket, key).await, expected, "{key}");
        let head = client
            .head_object()
            .bucket(&bucket)
            .key(key)
            .send()
            .await
            .unwrap();
        assert_eq!(
            head.storage_class(),
            Some(&StorageClass::StandardIa),
            "{key}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_writable_leaves_nothing_behind() {
    let f = Fixture::s3().await;
    let (client, bucket) = s3_parts(&f);
    f.store
        .put_bytes("20241030/x.tri", b"x".to_vec(), &PutOptions::default())
        .await
        .unwrap();
    let before = all_keys(&client, &bucket).await;
    f.store.check_writable().await.unwrap();
    let options = S3Options {
        storage_class: Some(StorageClass::GlacierIr),
        tags: vec![("team".into(), "data".into())],
        ..S3Options::default()
    };
    let below = S3Store::new(client.clone(), bucket.clone(), options).with_prefix("p/q/");
    below.check_writable().await.unwrap();
    assert_eq!(all_keys(&client, &bucket).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_writable_on_a_missing_bucket() {
    let client = s3_client(Vec::new()).await;
    let store =
        S3Store::new(client, "no-such-bucket-for-triton", S3Options::default()).with_prefix("a/");
    let e = store.check_writable().await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Fatal, "{e}");
    assert_eq!(e.code.as_deref(), Some("NoSuchBucket"), "{e}");
    assert!(e.message.contains("bucket does not exist"), "{e}");
    assert!(!e.is_access_denied());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_writable_on_an_unreachable_endpoint_is_transient() {
    let options = S3Options {
        max_attempts: 2,
        retry_base: std::time::Duration::from_millis(10),
        ..S3Options::default()
    };
    // Nothing listens on port 1 of loopback.
    let client = s3_client_at("http://127.0.0.1:1", Vec::new()).await;
    let store = S3Store::new(client, "b-unreachable", options);
    let e = store.check_writable().await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Transient, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_writable_creates_a_missing_directory() {
    let tmp = TempDir::new("layout-check-local");
    let root = tmp.path().join("new").join("bucket");
    let store = LocalStore::new(&root);
    store.check_writable().await.unwrap();
    assert!(root.is_dir());
    assert_eq!(std::fs::read_dir(&root).unwrap().count(), 0, "nothing left");
    assert_eq!(store.list("").await.unwrap(), vec![]);

    // A root that is a file cannot be written to.
    let file = tmp.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let e = LocalStore::new(&file).check_writable().await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Fatal, "{e}");
}

/// Answers one operation (by name) with a fixed status, headers and body.
#[derive(Debug)]
struct Answer {
    operation: &'static str,
    status: u16,
    headers: Vec<(&'static str, &'static str)>,
    body: &'static str,
}

impl aws_sdk_s3::config::Intercept for Answer {
    fn name(&self) -> &'static str {
        "Answer"
    }

    fn modify_before_deserialization(
        &self,
        ctx: &mut aws_smithy_runtime_api::client::interceptors::context::BeforeDeserializationInterceptorContextMut<'_>,
        _: &aws_sdk_s3::config::RuntimeComponents,
        cfg: &mut aws_sdk_s3::config::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        use aws_smithy_runtime_api::client::orchestrator::Metadata;
        if cfg.load::<Metadata>().map(Metadata::name) != Some(self.operation) {
            return Ok(());
        }
        let mut response = aws_smithy_runtime_api::http::Response::new(
            aws_smithy_runtime_api::http::StatusCode::try_from(self.status)?,
            aws_smithy_types::body::SdkBody::from(self.body),
        );
        for (name, value) in &self.headers {
            response.headers_mut().insert(*name, *value);
        }
        *ctx.response_mut() = response;
        Ok(())
    }
}

async fn check_with(answer: Answer) -> triton_s3::StoreError {
    let f = Fixture::s3().await;
    let (_, bucket) = s3_parts(&f);
    let client = s3_client(vec![aws_sdk_s3::config::SharedInterceptor::new(answer)]).await;
    let store = S3Store::new(client, bucket, S3Options::default());
    store.check_writable().await.unwrap_err()
}

fn error_body(code: &str) -> &'static str {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
         <Error><Code>{code}</Code><Message>{code} (injected by the test)</Message></Error>"
    );
    Box::leak(body.into_boxed_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_writable_tells_access_denied_apart() {
    // HeadBucket answers 403 without a body.
    let e = check_with(Answer {
        operation: "HeadBucket",
        status: 403,
        headers: vec![],
        body: "",
    })
    .await;
    assert_eq!(e.kind, ErrorKind::Fatal, "{e}");
    assert!(e.is_access_denied(), "{e}");
    assert!(e.message.contains("access denied"), "{e}");
    // PutObject is refused with S3's codes, which are kept.
    for code in [
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
    ] {
        let e = check_with(Answer {
            operation: "PutObject",
            status: 403,
            headers: vec![("content-type", "application/xml")],
            body: error_body(code),
        })
        .await;
        assert_eq!(e.kind, ErrorKind::Fatal, "{e}");
        assert_eq!(e.code.as_deref(), Some(code), "{e}");
        assert!(e.is_access_denied(), "{e}");
        assert_eq!(e.operation, "PutObject", "{e}");
        assert!(e.target.contains("/_triton/probe/"), "{e}");
    }
    // A bucket in another region.
    let e = check_with(Answer {
        operation: "HeadBucket",
        status: 301,
        headers: vec![("x-amz-bucket-region", "eu-west-3")],
        body: "",
    })
    .await;
    assert_eq!(e.kind, ErrorKind::Fatal, "{e}");
    assert!(!e.is_access_denied(), "{e}");
    assert!(e.message.contains("eu-west-3"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_writable_without_credentials_is_fatal() {
    // A profile that exists nowhere: loading credentials fails.
    let client = s3_client_without_credentials(Vec::new()).await;
    let store = S3Store::new(client, "b-no-credentials", S3Options::default());
    let e = store.check_writable().await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Fatal, "{e}");
    assert!(e.message.contains("credential"), "{e}");
    assert!(!e.is_access_denied(), "{e}");
}

/// `list_from` starts with the last archive opened at or before the time,
/// across a day boundary, and takes every later one; before any archive it
/// takes them all; clients mix as in a date-range listing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_from_a_time_starts_with_the_archive_open_then() {
    let tmp = TempDir::new("layout-list-from");
    let store: Arc<dyn ArchiveStore> = Arc::new(LocalStore::new(tmp.path().join("bucket")));
    // 2024-10-29 23:00, then 2024-10-30 00:30, 01:30 and 02:30.
    let times = [1_730_242_800, 1_730_248_200, 1_730_251_800, 1_730_255_400];
    for &t in &times {
        let k = key("events", "store", t);
        store
            .put_bytes(
                &k,
                archive(&[record_bytes(1, b"a")]),
                &PutOptions::default(),
            )
            .await
            .unwrap();
        store
            .put_bytes(
                &format!("{k}.metadata"),
                b"{}".to_vec(),
                &PutOptions::default(),
            )
            .await
            .unwrap();
    }
    let end = Date::parse_yyyymmdd("20241031").unwrap();
    let from = |at: u64, client: Option<&str>| FromQuery {
        stream: "events".into(),
        client: client.map(str::to_string),
        at,
        end,
        lookback_days: 1,
    };
    let keys = |l: &Listing| {
        l.archives
            .iter()
            .map(|a| a.key.timestamp())
            .collect::<Vec<_>>()
    };

    // 00:10 on the 30th: the archive opened at 23:00 the day before is the
    // one open then.
    let l = list_from(store.clone(), &from(1_730_247_000, None))
        .await
        .unwrap();
    assert_eq!(keys(&l), times.to_vec());
    assert_eq!(l.sidecars.len(), 4);
    // Exactly at an opening: that archive first.
    let l = list_from(store.clone(), &from(times[2], None))
        .await
        .unwrap();
    assert_eq!(keys(&l), times[2..].to_vec());
    assert_eq!(
        l.sidecars,
        vec![
            key("events", "store", times[2]),
            key("events", "store", times[3])
        ]
    );
    // Before every archive: all of them; after the last: the last.
    let l = list_from(store.clone(), &from(times[0] - 3600, None))
        .await
        .unwrap();
    assert_eq!(keys(&l), times.to_vec());
    let l = list_from(store.clone(), &from(times[3] + 7200, None))
        .await
        .unwrap();
    assert_eq!(keys(&l), vec![times[3]]);

    // A second client's archive in the span: refused without a client,
    // and each client alone lists its own.
    let other = key("events", "other", 1_730_253_600);
    store
        .put_bytes(
            &other,
            archive(&[record_bytes(2, b"b")]),
            &PutOptions::default(),
        )
        .await
        .unwrap();
    let e = list_from(store.clone(), &from(times[1], None))
        .await
        .unwrap_err();
    assert!(matches!(e, ListError::MixedClients { .. }), "{e}");
    let l = list_from(store.clone(), &from(times[1], Some("store")))
        .await
        .unwrap();
    assert_eq!(keys(&l), times[1..].to_vec());
    let l = list_from(store.clone(), &from(times[1], Some("other")))
        .await
        .unwrap();
    assert_eq!(keys(&l), vec![1_730_253_600]);
}
