//! One reading of a failed SDK call, shared by the adapters' error types.

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// How far a failed call got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Transport {
    /// The service answered (with the [`Failure::status`] and code).
    Answered,
    /// A timeout, a network failure, or an answer that could not be read
    /// (a broken connection more often than a broken service): worth
    /// retrying.
    Broken,
    /// The call was never sent for a reason retrying cannot fix (missing
    /// credentials, a request the client refuses to build).
    Refused,
}

/// A failed SDK call, read once for every adapter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// How far the call got.
    pub transport: Transport,
    /// The HTTP status of the answer, when there was one.
    pub status: Option<u16>,
    /// The service's error code, when it gave one.
    pub code: Option<String>,
    /// The service's error message, when it gave one, on one line.
    pub message: Option<String>,
    /// The whole error with its causes, on one line (the SDK's top-level
    /// messages, e.g. "dispatch failure", say little on their own).
    pub detail: String,
    /// S3's `x-amz-bucket-region` header: the region of a bucket asked for
    /// in another.
    pub bucket_region: Option<String>,
}

impl Failure {
    /// Reads `error`.
    pub fn of<E>(error: &SdkError<E, HttpResponse>) -> Failure
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let (transport, raw) = match error {
            SdkError::ServiceError(ctx) => (Transport::Answered, Some(ctx.raw())),
            SdkError::ResponseError(ctx) => (Transport::Broken, Some(ctx.raw())),
            SdkError::TimeoutError(_) => (Transport::Broken, None),
            // Network failures (and those the connector classified) are
            // worth retrying; missing credentials are not, and retrying them
            // forever would hide them behind warnings.
            SdkError::DispatchFailure(d)
                if d.is_io() || d.is_timeout() || d.as_other().is_some() =>
            {
                (Transport::Broken, None)
            }
            _ => (Transport::Refused, None),
        };
        Failure {
            transport,
            status: raw.map(|r| r.status().as_u16()),
            code: error.code().map(str::to_string),
            message: error.message().map(one_line),
            detail: one_line(&chain(error)),
            bucket_region: raw
                .and_then(|r| r.headers().get("x-amz-bucket-region"))
                .map(str::to_string),
        }
    }
}

/// The error and its sources, joined by ": ".
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}

/// Folds a multi-line message into one line, for log lines and the CLI.
pub(crate) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_folds_whitespace() {
        assert_eq!(one_line("a\n  b\tc "), "a b c");
    }
}
