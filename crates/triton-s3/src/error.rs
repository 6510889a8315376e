//! Errors of archive stores, classified so that callers know whether to
//! retry.

use std::fmt;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use triton_aws::{Failure, Transport};

/// The result of an archive store operation.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// An archive store operation that failed.
#[derive(Debug, thiserror::Error)]
#[error("{operation} {target}: {message}")]
pub struct StoreError {
    /// The operation, e.g. `GetObject` or `write`.
    pub operation: &'static str,
    /// What it was applied to: `s3://bucket/key` or a path.
    pub target: String,
    /// Whether retrying can help.
    pub kind: ErrorKind,
    /// The service's error code, when it gave one.
    pub code: Option<String>,
    /// What went wrong.
    pub message: String,
}

/// Classes of store errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The object (or bucket, or directory) does not exist.
    NotFound,
    /// A create-only write found the object already there.
    AlreadyExists,
    /// Throttling, a 5xx answer, a timeout or a dropped connection: retrying
    /// may succeed.
    Transient,
    /// Anything else (access denied, bad request, bad input): retrying the
    /// same call gives the same answer.
    Fatal,
}

impl StoreError {
    pub(crate) fn new(
        operation: &'static str,
        target: impl Into<String>,
        kind: ErrorKind,
        message: impl fmt::Display,
    ) -> StoreError {
        StoreError {
            operation,
            target: target.into(),
            kind,
            code: None,
            message: message.to_string(),
        }
    }

    /// From a local I/O error.
    pub(crate) fn io(
        operation: &'static str,
        target: impl Into<String>,
        e: std::io::Error,
    ) -> StoreError {
        use std::io::ErrorKind as Io;
        let kind = match e.kind() {
            Io::NotFound => ErrorKind::NotFound,
            Io::AlreadyExists => ErrorKind::AlreadyExists,
            Io::Interrupted | Io::TimedOut | Io::WouldBlock => ErrorKind::Transient,
            _ => ErrorKind::Fatal,
        };
        StoreError::new(operation, target, kind, e)
    }

    /// From an SDK error: the service's code and message when it answered,
    /// otherwise the transport failure.
    pub(crate) fn from_sdk<E>(
        operation: &'static str,
        target: impl Into<String>,
        e: SdkError<E, HttpResponse>,
    ) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let f = Failure::of(&e);
        let target = target.into();
        match (f.transport, f.status) {
            (Transport::Answered, Some(status)) => {
                // HEAD answers have no body: a 403 without a code is access
                // denied all the same.
                let code = f
                    .code
                    .or_else(|| (status == 403).then(|| "Forbidden".to_string()));
                let mut message = f
                    .message
                    .or_else(|| code.clone())
                    .unwrap_or_else(|| format!("HTTP {status}"));
                // A bucket in another region than the client's.
                if let Some(region) = f.bucket_region {
                    if status == 301 || code.as_deref() == Some("PermanentRedirect") {
                        message.push_str(&format!(" (the bucket is in region {region})"));
                    }
                }
                StoreError {
                    operation,
                    target,
                    kind: classify(status, code.as_deref()),
                    code,
                    message,
                }
            }
            (Transport::Broken, _) => {
                StoreError::new(operation, target, ErrorKind::Transient, f.detail)
            }
            _ => StoreError::new(operation, target, ErrorKind::Fatal, f.detail),
        }
    }

    /// True when retrying may succeed.
    pub fn is_transient(&self) -> bool {
        self.kind == ErrorKind::Transient
    }

    /// True when the object does not exist.
    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }

    /// True when S3 refused the credentials or the request's permissions
    /// (HTTP 403, `AccessDenied`, `InvalidAccessKeyId`,
    /// `SignatureDoesNotMatch`, an expired or invalid token); the code is
    /// in [`code`](StoreError::code). A local directory's permission errors
    /// are not included.
    pub fn is_access_denied(&self) -> bool {
        self.kind == ErrorKind::Fatal && self.code.as_deref().is_some_and(is_access_code)
    }

    /// The bucket does not exist: fatal, with the code `NoSuchBucket`.
    pub(crate) fn bucket_missing(operation: &'static str, target: impl Into<String>) -> StoreError {
        StoreError {
            code: Some("NoSuchBucket".to_string()),
            ..StoreError::new(
                operation,
                target,
                ErrorKind::Fatal,
                "the bucket does not exist",
            )
        }
    }
}

fn is_access_code(code: &str) -> bool {
    matches!(
        code,
        "AccessDenied"
            | "Forbidden"
            | "InvalidAccessKeyId"
            | "SignatureDoesNotMatch"
            | "InvalidToken"
            | "ExpiredToken"
            | "TokenRefreshRequired"
            | "AllAccessDisabled"
            | "AccountProblem"
            | "InvalidSecurity"
    )
}

fn classify(status: u16, code: Option<&str>) -> ErrorKind {
    match (status, code) {
        // The bucket is missing: fatal, not "no such object".
        (_, Some("NoSuchBucket")) => ErrorKind::Fatal,
        (404, _) | (_, Some("NoSuchKey" | "NotFound" | "NoSuchUpload")) => ErrorKind::NotFound,
        (412, _) | (_, Some("PreconditionFailed")) => ErrorKind::AlreadyExists,
        (501, _) => ErrorKind::Fatal,
        // 409 ConditionalRequestConflict: a concurrent conditional write.
        (408 | 409 | 429, _) | (500..=599, _) => ErrorKind::Transient,
        (
            _,
            Some(
                "SlowDown"
                | "Throttling"
                | "ThrottlingException"
                | "RequestTimeout"
                | "IncompleteBody",
            ),
        ) => ErrorKind::Transient,
        _ => ErrorKind::Fatal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_statuses_and_codes() {
        assert_eq!(classify(404, Some("NoSuchKey")), ErrorKind::NotFound);
        assert_eq!(classify(404, Some("NoSuchBucket")), ErrorKind::Fatal);
        assert_eq!(classify(404, None), ErrorKind::NotFound);
        assert_eq!(
            classify(412, Some("PreconditionFailed")),
            ErrorKind::AlreadyExists
        );
        assert_eq!(classify(503, Some("SlowDown")), ErrorKind::Transient);
        assert_eq!(classify(500, None), ErrorKind::Transient);
        assert_eq!(classify(400, Some("RequestTimeout")), ErrorKind::Transient);
        assert_eq!(classify(400, Some("IncompleteBody")), ErrorKind::Transient);
        assert_eq!(classify(501, Some("NotImplemented")), ErrorKind::Fatal);
        assert_eq!(classify(403, Some("AccessDenied")), ErrorKind::Fatal);
        assert_eq!(classify(400, Some("InvalidArgument")), ErrorKind::Fatal);
        for (status, code) in [
            (403, "AccessDenied"),
            (403, "InvalidAccessKeyId"),
            (403, "SignatureDoesNotMatch"),
            (403, "Forbidden"),
            (400, "ExpiredToken"),
        ] {
            let e = StoreError {
                code: Some(code.to_string()),
                ..StoreError::new("PutObject", "s3://b/k", classify(status, Some(code)), "x")
            };
            assert!(e.is_access_denied(), "{code}");
        }
        let missing = StoreError::bucket_missing("HeadBucket", "s3://b");
        assert!(!missing.is_access_denied() && !missing.is_not_found());
        assert!(missing.to_string().contains("bucket does not exist"));
    }
}
