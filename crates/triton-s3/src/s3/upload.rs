//! Uploads: one PutObject for files up to one part, multipart beyond,
//! streamed from the file with bounded parallelism. A multipart upload that
//! fails is aborted, so no invisible parts are left to pay for.

use std::path::Path;
use triton_core::error::Report;

use aws_sdk_s3::operation::create_multipart_upload::builders::CreateMultipartUploadFluentBuilder;
use aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder;
use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, ServerSideEncryption};
use tokio::task::JoinSet;

use super::{S3Store, Sse};
use crate::error::{ErrorKind, StoreError};
use crate::store::{PutOptions, PutReceipt};

pub(super) async fn put_bytes(
    store: &S3Store,
    key: &str,
    data: Vec<u8>,
    options: &PutOptions,
) -> Result<PutReceipt, StoreError> {
    let size = data.len() as u64;
    let target = store.target(key);
    let (data, t) = (&data, &target);
    let out = store
        .retry(&target, |progress| async move {
            put_object(store, key, options)
                .body(progress.track(ByteStream::from(data.to_vec())))
                .send()
                .await
                .map_err(|e| StoreError::from_sdk("PutObject", t, e))
        })
        .await?;
    Ok(PutReceipt {
        size,
        etag: out.e_tag().unwrap_or_default().to_string(),
        parts: 1,
    })
}

/// Writes a small probe object as archives are written (storage class, tags,
/// encryption); returns its version id, if the bucket is versioned.
pub(super) async fn put_probe(store: &S3Store, key: &str) -> Result<Option<String>, StoreError> {
    let target = store.target(key);
    let options = PutOptions {
        create_only: false,
        content_type: "text/plain".to_string(),
    };
    let (options, t) = (&options, &target);
    let out = store
        .retry(&target, |progress| async move {
            put_object(store, key, options)
                .body(progress.track(ByteStream::from_static(
                    b"triton write probe: safe to delete\n",
                )))
                .send()
                .await
                .map_err(|e| StoreError::from_sdk("PutObject", t, e))
        })
        .await?;
    Ok(out.version_id().map(str::to_string))
}

pub(super) async fn put_file(
    store: &S3Store,
    key: &str,
    path: &Path,
    options: &PutOptions,
) -> Result<PutReceipt, StoreError> {
    let target = store.target(key);
    let size = tokio::fs::metadata(path)
        .await
        .map_err(|e| StoreError::io("PutObject", path.display().to_string(), e))?
        .len();
    if size <= store.options.part_size {
        // One request: nothing to gain from parts.
        let t = &target;
        let out = store
            .retry(&target, |progress| async move {
                let body = progress.track(file_part(path, 0, size).await?);
                put_object(store, key, options)
                    .body(body)
                    .content_length(size as i64)
                    .send()
                    .await
                    .map_err(|e| StoreError::from_sdk("PutObject", t, e))
            })
            .await?;
        return Ok(PutReceipt {
            size,
            etag: out.e_tag().unwrap_or_default().to_string(),
            parts: 1,
        });
    }

    let created = store
        .retry(&target, |_| async {
            create_multipart(store, key, options)
                .send()
                .await
                .map_err(|e| StoreError::from_sdk("CreateMultipartUpload", &target, e))
        })
        .await?;
    let Some(upload_id) = created.upload_id().map(str::to_string) else {
        return Err(StoreError::new(
            "CreateMultipartUpload",
            target,
            ErrorKind::Fatal,
            "the answer has no upload id",
        ));
    };
    // Dropped before the end (the caller gave up on this future): abort in
    // the background rather than leave parts behind.
    let mut guard = AbortOnDrop {
        store: store.clone(),
        key: key.to_string(),
        upload_id: upload_id.clone(),
        armed: true,
    };
    let result = multipart(store, key, path, size, &upload_id, options).await;
    if result.is_err() {
        abort(store, key, &upload_id).await;
    }
    guard.armed = false;
    result
}

struct AbortOnDrop {
    store: S3Store,
    key: String,
    upload_id: String,
    armed: bool,
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (store, key, id) = (
                self.store.clone(),
                std::mem::take(&mut self.key),
                std::mem::take(&mut self.upload_id),
            );
            runtime.spawn(async move { abort(&store, &key, &id).await });
        }
    }
}

/// The least time CompleteMultipartUpload is given before it counts as
/// stalled: S3 documents that it can take several minutes.
const COMPLETE_STALL: std::time::Duration = std::time::Duration::from_secs(600);

/// S3 allows at most this many parts per upload.
const MAX_PARTS: u64 = 10_000;

/// The configured part size, or larger for files that would need more than
/// [`MAX_PARTS`] parts (rounded up to whole MiB).
fn part_size_for(size: u64, configured: u64) -> u64 {
    let needed = size.div_ceil(MAX_PARTS).div_ceil(1 << 20) << 20;
    configured.max(needed)
}

/// Uploads the parts and completes the upload; the caller aborts on error.
async fn multipart(
    store: &S3Store,
    key: &str,
    path: &Path,
    size: u64,
    upload_id: &str,
    options: &PutOptions,
) -> Result<PutReceipt, StoreError> {
    let target = store.target(key);
    let mut tasks = JoinSet::new();
    let uploaded = upload_parts(&mut tasks, store, key, path, size, upload_id).await;
    if uploaded.is_err() {
        // Parts still in flight must end before the upload is aborted, or
        // they may be stored after the abort (and billed).
        tasks.shutdown().await;
    }
    let mut completed = uploaded?;
    completed.sort_by_key(|p| p.part_number());
    let parts = completed.len();
    let upload = CompletedMultipartUpload::builder()
        .set_parts(Some(completed))
        .build();
    // S3 may take minutes to assemble the parts.
    let stall = store.options.stall_timeout.max(COMPLETE_STALL);
    let out = store
        .retry_within(&target, stall, |_| async {
            let mut request = store
                .client
                .complete_multipart_upload()
                .bucket(&store.bucket)
                .key(store.object_key(key))
                .upload_id(upload_id)
                .multipart_upload(upload.clone());
            if options.create_only {
                request = request.if_none_match("*");
            }
            request
                .send()
                .await
                .map_err(|e| StoreError::from_sdk("CompleteMultipartUpload", &target, e))
        })
        .await?;
    tracing::debug!(key, size, parts, "multipart upload complete");
    Ok(PutReceipt {
        size,
        etag: out.e_tag().unwrap_or_default().to_string(),
        parts,
    })
}

/// Uploads every part, `upload_concurrency` at a time, streaming each from
/// the file.
async fn upload_parts(
    tasks: &mut JoinSet<Result<CompletedPart, StoreError>>,
    store: &S3Store,
    key: &str,
    path: &Path,
    size: u64,
    upload_id: &str,
) -> Result<Vec<CompletedPart>, StoreError> {
    let part_size = part_size_for(size, store.options.part_size);
    let count = size.div_ceil(part_size);
    let mut completed = Vec::with_capacity(count as usize);
    let mut next = 0u64;
    while next < count || !tasks.is_empty() {
        while next < count && tasks.len() < store.options.upload_concurrency {
            let offset = next * part_size;
            let len = part_size.min(size - offset);
            let number = (next + 1) as i32;
            let (store, key, path, upload_id) = (
                store.clone(),
                key.to_string(),
                path.to_path_buf(),
                upload_id.to_string(),
            );
            tasks.spawn(async move {
                upload_part(&store, &key, &path, &upload_id, number, offset, len).await
            });
            next += 1;
        }
        let Some(joined) = tasks.join_next().await else {
            break;
        };
        let part = joined
            .map_err(|e| StoreError::new("UploadPart", store.target(key), ErrorKind::Fatal, e))??;
        completed.push(part);
    }
    Ok(completed)
}

async fn upload_part(
    store: &S3Store,
    key: &str,
    path: &Path,
    upload_id: &str,
    number: i32,
    offset: u64,
    len: u64,
) -> Result<CompletedPart, StoreError> {
    let target = format!("{} part {number}", store.target(key));
    let t = &target;
    let out = store
        .retry(&target, |progress| async move {
            // A fresh body per attempt: a body is consumed by sending it.
            let body = progress.track(file_part(path, offset, len).await?);
            store
                .client
                .upload_part()
                .bucket(&store.bucket)
                .key(store.object_key(key))
                .upload_id(upload_id)
                .part_number(number)
                .content_length(len as i64)
                .body(body)
                .send()
                .await
                .map_err(|e| StoreError::from_sdk("UploadPart", t, e))
        })
        .await?;
    Ok(CompletedPart::builder()
        .part_number(number)
        .set_e_tag(out.e_tag().map(str::to_string))
        .build())
}

/// Best effort: an abort that fails is logged (a bucket lifecycle rule for
/// incomplete uploads catches what is left). A part whose request was under
/// way can still be stored after an abort, so the upload is listed and
/// aborted again until S3 no longer knows it, as S3's documentation advises.
async fn abort(store: &S3Store, key: &str, upload_id: &str) {
    let target = store.target(key);
    for _ in 0..3 {
        let aborted = store
            .retry(&target, |_| async {
                store
                    .client
                    .abort_multipart_upload()
                    .bucket(&store.bucket)
                    .key(store.object_key(key))
                    .upload_id(upload_id)
                    .send()
                    .await
                    .map_err(|e| StoreError::from_sdk("AbortMultipartUpload", &target, e))
            })
            .await;
        if let Err(e) = aborted {
            if !e.is_not_found() {
                tracing::warn!(key, upload_id, error = %Report(&e), "could not abort a failed multipart upload; its parts stay until a lifecycle rule removes them");
                return;
            }
        }
        let parts = store
            .client
            .list_parts()
            .bucket(&store.bucket)
            .key(store.object_key(key))
            .upload_id(upload_id)
            .send()
            .await
            .map_err(|e| StoreError::from_sdk("ListParts", &target, e));
        match parts {
            Err(e) if e.is_not_found() => {
                tracing::info!(key, upload_id, "aborted the failed multipart upload");
                return;
            }
            Ok(p) if p.parts().is_empty() => return,
            _ => tokio::time::sleep(std::time::Duration::from_secs(1)).await,
        }
    }
    tracing::warn!(key, upload_id, "parts of an aborted multipart upload may remain; a lifecycle rule for incomplete uploads removes them");
}

/// `len` bytes of the file from `offset`, streamed as the request is sent.
async fn file_part(path: &Path, offset: u64, len: u64) -> Result<ByteStream, StoreError> {
    ByteStream::read_from()
        .path(path)
        .offset(offset)
        .length(Length::Exact(len))
        .build()
        .await
        .map_err(|e| StoreError::new("read", path.display().to_string(), ErrorKind::Fatal, e))
}

fn put_object(store: &S3Store, key: &str, options: &PutOptions) -> PutObjectFluentBuilder {
    let mut request = store
        .client
        .put_object()
        .bucket(&store.bucket)
        .key(store.object_key(key))
        .content_type(&options.content_type);
    if options.create_only {
        request = request.if_none_match("*");
    }
    let (sse, kms_key) = encryption(store.options.sse.as_ref());
    request
        .set_server_side_encryption(sse)
        .set_ssekms_key_id(kms_key)
        .set_storage_class(store.options.storage_class.clone())
        .set_tagging(store.tagging.clone())
}

fn create_multipart(
    store: &S3Store,
    key: &str,
    options: &PutOptions,
) -> CreateMultipartUploadFluentBuilder {
    let (sse, kms_key) = encryption(store.options.sse.as_ref());
    store
        .client
        .create_multipart_upload()
        .bucket(&store.bucket)
        .key(store.object_key(key))
        .content_type(&options.content_type)
        .set_server_side_encryption(sse)
        .set_ssekms_key_id(kms_key)
        .set_storage_class(store.options.storage_class.clone())
        .set_tagging(store.tagging.clone())
}

fn encryption(sse: Option<&Sse>) -> (Option<ServerSideEncryption>, Option<String>) {
    match sse {
        None => (None, None),
        Some(Sse::Aes256) => (Some(ServerSideEncryption::Aes256), None),
        Some(Sse::Kms { key_id }) => (Some(ServerSideEncryption::AwsKms), key_id.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_size_grows_to_stay_within_10000_parts() {
        let mib = 1u64 << 20;
        assert_eq!(part_size_for(50 * mib, 8 * mib), 8 * mib);
        assert_eq!(part_size_for(78_125 * mib, 8 * mib), 8 * mib);
        let big = 200 * 1024 * mib; // 200 GiB
        let part = part_size_for(big, 8 * mib);
        assert!(
            big.div_ceil(part) <= MAX_PARTS && part.is_multiple_of(mib),
            "{part}"
        );
    }
}
