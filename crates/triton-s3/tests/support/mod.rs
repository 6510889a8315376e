//! Helpers shared by the test binaries: both backends for the same tests
//! (a throwaway bucket on the local S3 server, or a throwaway directory),
//! archive-making helpers, and stores that change some calls of the store
//! they wrap ([`Hooked`]). The store pipeline's harness, for the archiver
//! tests alone, is beside it in `archiver.rs`.
#![allow(dead_code)] // each test binary uses part of it

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_s3::config::SharedInterceptor;
use aws_sdk_s3::Client;
use tokio::task::JoinSet;
use triton_core::archive::ArchiveWriter;
use triton_core::key::ArchiveKey;
use triton_core::source::{RecordSource, SourceError, SourceRecord};
use triton_s3::{
    ArchiveStore, ErrorKind, LocalStore, ObjectBody, ObjectInfo, PutOptions, PutReceipt, S3Options,
    S3Store, StoreError,
};
use triton_tests::TempDir;

pub use triton_aws::testing::REGION;

/// The local S3 endpoint (loopback only).
pub fn endpoint() -> String {
    triton_tests::local_endpoint("AWS_ENDPOINT_URL_S3")
}

/// A client configured as the library configures it, pointed at the local
/// server with dummy credentials, plus interceptors.
pub async fn s3_client(interceptors: Vec<SharedInterceptor>) -> Client {
    s3_client_at(&endpoint(), interceptors).await
}

/// The same client pointed at another loopback server (one that fails).
pub async fn s3_client_at(endpoint: &str, interceptors: Vec<SharedInterceptor>) -> Client {
    let sdk = triton_aws::testing::local_config().await;
    // On the service's config: AWS_ENDPOINT_URL_S3 would override the
    // shared one.
    let mut conf = aws_sdk_s3::config::Builder::from(&sdk)
        .endpoint_url(endpoint)
        .force_path_style(true);
    for i in interceptors {
        conf.push_interceptor(i);
    }
    Client::from_conf(conf.build())
}

/// A client of the local server, as the library configures it, whose
/// credentials come from a profile that exists nowhere (loading them
/// fails), plus interceptors.
pub async fn s3_client_without_credentials(interceptors: Vec<SharedInterceptor>) -> Client {
    let sdk = triton_s3::sdk_config(REGION).await;
    // Providers built outside the loader need its HTTP client (the SDK's
    // default one is not built).
    let providers = aws_config::provider_config::ProviderConfig::default()
        .with_http_client(triton_aws::https_client());
    let no_credentials = aws_config::profile::ProfileFileCredentialsProvider::builder()
        .configure(&providers)
        .profile_name("triton-test-no-such-profile")
        .build();
    let mut conf = aws_sdk_s3::config::Builder::from(&sdk)
        .endpoint_url(endpoint())
        .credentials_provider(no_credentials)
        .force_path_style(true);
    for i in interceptors {
        conf.push_interceptor(i);
    }
    Client::from_conf(conf.build())
}

/// Where a test's archives live.
pub enum Backend {
    S3 { client: Client, bucket: String },
    Local(TempDir),
}

/// A store on a fresh backend.
pub struct Fixture {
    pub store: Arc<dyn ArchiveStore>,
    pub backend: Backend,
}

impl Fixture {
    /// A new empty bucket on the local S3 server.
    pub async fn s3() -> Fixture {
        Fixture::s3_with(Vec::new(), S3Options::default()).await
    }

    /// A new empty bucket, with interceptors and options.
    pub async fn s3_with(interceptors: Vec<SharedInterceptor>, options: S3Options) -> Fixture {
        static N: AtomicU64 = AtomicU64::new(0);
        let client = s3_client(interceptors).await;
        let bucket = format!(
            "triton-test-{}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis()
        );
        client
            .create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .expect("CreateBucket on the local S3 server");
        let store = Arc::new(S3Store::new(client.clone(), bucket.clone(), options));
        Fixture {
            store,
            backend: Backend::S3 { client, bucket },
        }
    }

    /// A new empty directory.
    pub fn local() -> Fixture {
        let dir = TempDir::new("s3-local");
        Fixture {
            store: Arc::new(LocalStore::new(dir.path().join("bucket"))),
            backend: Backend::Local(dir),
        }
    }

    /// Uploads many small objects, 16 at a time.
    pub async fn put_all(&self, objects: Vec<(String, Vec<u8>)>) {
        let mut tasks = JoinSet::new();
        for (key, data) in objects {
            while tasks.len() >= 16 {
                tasks.join_next().await.unwrap().unwrap();
            }
            let store = self.store.clone();
            tasks.spawn(async move {
                store
                    .put_bytes(&key, data, &PutOptions::default())
                    .await
                    .unwrap_or_else(|e| panic!("{e}"))
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
    }
}

/// Raw MessagePack of `{"seq": seq, "payload": <bin>}`.
pub fn record_bytes(seq: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 32);
    out.push(0x82);
    out.extend_from_slice(b"\xa3seq\xcf");
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(b"\xa7payload\xc6");
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// An archive holding `records`.
pub fn archive(records: &[Vec<u8>]) -> Vec<u8> {
    let mut w = ArchiveWriter::new(Vec::new());
    for r in records {
        w.write_raw(r).unwrap();
    }
    w.finish().unwrap()
}

/// The object key of an archive of `stream` by `client` at `ts`.
pub fn key(stream: &str, client: &str, ts: u64) -> String {
    ArchiveKey::new(stream, client, ts).unwrap().to_string()
}

/// Reads a source to its end, acknowledging every batch; stops at the
/// first error and returns it with the records before it.
pub async fn drain(source: &mut impl RecordSource) -> (Vec<SourceRecord>, Option<SourceError>) {
    let mut all = Vec::new();
    loop {
        match source.next_batch(500).await {
            Ok(Some(batch)) => {
                let last = batch.last().unwrap();
                source.ack(&last.source, &last.position).await.unwrap();
                all.extend(batch);
            }
            Ok(None) => return (all, None),
            Err(e) => return (all, Some(e)),
        }
    }
}

/// A transient failure of `operation` on `target`, as a test injects it.
pub fn transient(operation: &'static str, target: &str, message: &str) -> StoreError {
    StoreError {
        operation,
        target: target.into(),
        kind: ErrorKind::Transient,
        code: None,
        message: message.into(),
    }
}

/// What a test store does differently from the store it wraps: by
/// default, nothing. [`Hooked`] makes it a store.
#[async_trait]
pub trait Hooks: std::fmt::Debug + Send + Sync {
    /// The store every other call goes to.
    fn inner(&self) -> &dyn ArchiveStore;

    async fn get(&self, key: &str, offset: u64) -> Result<ObjectBody, StoreError> {
        self.inner().get(key, offset).await
    }

    /// Before `put_file` of `key`: may wait, or fail it.
    async fn before_put(&self, _key: &str) -> Result<(), StoreError> {
        Ok(())
    }

    /// After `put_file` of `path` as `key` went through: may fail it all
    /// the same.
    fn after_put(&self, _key: &str, _path: &Path, r: PutReceipt) -> Result<PutReceipt, StoreError> {
        Ok(r)
    }
}

/// A store passing each call to its hooks' inner store, `get` to the
/// hooks, and `put_file` through them; derefs to the hooks (their
/// settings and counters).
#[derive(Debug)]
pub struct Hooked<H>(pub H);

impl<H> std::ops::Deref for Hooked<H> {
    type Target = H;

    fn deref(&self) -> &H {
        &self.0
    }
}

impl<H> std::ops::DerefMut for Hooked<H> {
    fn deref_mut(&mut self) -> &mut H {
        &mut self.0
    }
}

#[async_trait]
impl<H: Hooks> ArchiveStore for Hooked<H> {
    fn url(&self) -> String {
        self.0.inner().url()
    }
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        self.0.inner().list(prefix).await
    }
    async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, StoreError> {
        self.0.inner().head(key).await
    }
    async fn get(&self, key: &str, offset: u64) -> Result<ObjectBody, StoreError> {
        self.0.get(key, offset).await
    }
    async fn put_file(
        &self,
        key: &str,
        path: &Path,
        o: &PutOptions,
    ) -> Result<PutReceipt, StoreError> {
        self.0.before_put(key).await?;
        let receipt = self.0.inner().put_file(key, path, o).await?;
        self.0.after_put(key, path, receipt)
    }
    async fn put_bytes(
        &self,
        key: &str,
        data: Vec<u8>,
        o: &PutOptions,
    ) -> Result<PutReceipt, StoreError> {
        self.0.inner().put_bytes(key, data, o).await
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.0.inner().delete(key).await
    }
    async fn check_writable(&self) -> Result<(), StoreError> {
        self.0.inner().check_writable().await
    }
}
