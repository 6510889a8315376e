//! [`KinesisError`]: a failed Kinesis call, sorted by what to do about it.

use aws_sdk_kinesis::config::http::HttpResponse;
use aws_sdk_kinesis::error::{ProvideErrorMetadata, SdkError};
use triton_aws::{Failure, Transport};

/// What kind of failure a Kinesis call met; decides whether to retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The shard or account is over its limits
    /// (`ProvisionedThroughputExceededException`, `LimitExceededException`,
    /// KMS throttling): retry after a backoff.
    Throttled,
    /// A 5xx answer, a timeout or a dropped connection: retry after a
    /// backoff.
    Transient,
    /// The shard iterator is older than five minutes: get a new one.
    ExpiredIterator,
    /// The request was refused as invalid (`InvalidArgumentException`), e.g.
    /// a starting sequence number that is not in the shard.
    InvalidArgument,
    /// The stream does not exist (or is being deleted).
    NotFound,
    /// Anything else (access denied, a bad request): retrying will not help.
    Fatal,
}

impl ErrorKind {
    /// The `kind` label of the error counters.
    pub fn label(self) -> &'static str {
        match self {
            ErrorKind::Throttled => "throttled",
            ErrorKind::Transient => "transient",
            ErrorKind::ExpiredIterator => "expired_iterator",
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Fatal => "fatal",
        }
    }
}

/// A Kinesis call that failed.
#[derive(Clone, Debug, thiserror::Error)]
#[error("Kinesis {operation} on stream {stream}: {message}")]
pub struct KinesisError {
    /// The API operation, e.g. `GetRecords`.
    pub operation: &'static str,
    /// The stream (real name).
    pub stream: String,
    /// How to react.
    pub kind: ErrorKind,
    /// The service's error code, when it gave one.
    pub code: Option<String>,
    /// A one-line description of the failure.
    pub message: String,
}

impl KinesisError {
    /// True when the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind, ErrorKind::Throttled | ErrorKind::Transient)
    }

    /// A failure of ours or of an answer, not of the call: not retried.
    pub(crate) fn fatal(operation: &'static str, stream: &str, message: String) -> KinesisError {
        KinesisError {
            operation,
            stream: stream.to_string(),
            kind: ErrorKind::Fatal,
            code: None,
            message,
        }
    }

    /// Sorts an SDK error.
    pub(crate) fn from_sdk<E>(
        operation: &'static str,
        stream: &str,
        error: SdkError<E, HttpResponse>,
    ) -> KinesisError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let f = Failure::of(&error);
        let kind = match (f.transport, f.code.as_deref(), f.status) {
            (Transport::Refused, _, _) => ErrorKind::Fatal,
            (
                _,
                Some(
                    "ProvisionedThroughputExceededException"
                    | "LimitExceededException"
                    | "KMSThrottlingException"
                    | "ThrottlingException",
                ),
                _,
            ) => ErrorKind::Throttled,
            (_, Some("ExpiredIteratorException"), _) => ErrorKind::ExpiredIterator,
            (_, Some("InvalidArgumentException"), _) => ErrorKind::InvalidArgument,
            (_, Some("ResourceNotFoundException"), _) => ErrorKind::NotFound,
            (_, Some("InternalFailure" | "ServiceUnavailable"), _) => ErrorKind::Transient,
            (_, _, Some(s)) if s >= 500 => ErrorKind::Transient,
            (Transport::Broken, _, _) => ErrorKind::Transient,
            _ => ErrorKind::Fatal,
        };
        let message = match (&f.message, &f.code) {
            (Some(m), Some(c)) => format!("{c}: {m}"),
            (Some(m), None) => m.clone(),
            (None, _) => f.detail,
        };
        KinesisError {
            operation,
            stream: stream.to_string(),
            kind,
            code: f.code,
            message,
        }
    }
}
