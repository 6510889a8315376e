//! Requests that make no progress are given up and retried.
//!
//! A frozen S3 (connections accepted, nothing answered) would otherwise
//! hold an upload for as long as the SDK's attempt timeout, which has to
//! be generous because one attempt may carry a whole part. Progress is what
//! tells a slow upload from a dead one: a request is given up when nothing
//! moved for the stall bound, neither a byte of its body sent nor its
//! answer received.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;
use tokio::time::Instant;

use crate::error::{ErrorKind, StoreError};

/// When a request last moved, and how many body bytes it sent.
#[derive(Debug)]
pub(super) struct Progress {
    start: Instant,
    /// Milliseconds after `start` of the last progress.
    last_ms: AtomicU64,
    sent: AtomicU64,
    /// The whole body was taken: what is left is the socket draining and
    /// the answer.
    body_done: std::sync::atomic::AtomicBool,
}

impl Progress {
    pub(super) fn new() -> Arc<Progress> {
        Arc::new(Progress {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            body_done: std::sync::atomic::AtomicBool::new(false),
        })
    }

    fn moved(&self, bytes: usize) {
        self.sent.fetch_add(bytes as u64, Ordering::Relaxed);
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }

    /// `body`, noting each chunk the SDK takes from it as progress. The
    /// body's in-memory bytes stay visible to the SDK (it signs small
    /// bodies by their hash instead of streaming them unsigned).
    pub(super) fn track(self: &Arc<Progress>, body: ByteStream) -> ByteStream {
        let progress = self.clone();
        ByteStream::new(body.into_inner().map_preserve_contents(move |inner| {
            SdkBody::from_body_1_x(Counted {
                inner,
                progress: progress.clone(),
            })
        }))
    }

    /// How long the request may go without moving: `bound`, and once the
    /// whole body was taken, also the time the bytes still in socket
    /// buffers need at a slow link's rate.
    fn allowed(&self, bound: Duration) -> Duration {
        if !self.body_done.load(Ordering::Relaxed) {
            return bound;
        }
        let sent = self.sent.load(Ordering::Relaxed);
        bound.max(Duration::from_secs(sent / SLOW_LINK_BYTES_PER_SEC))
    }
}

/// The rate at which an upload's last bytes may drain from socket buffers
/// before its answer is overdue (several parts share a slow link).
const SLOW_LINK_BYTES_PER_SEC: u64 = 32 << 10;

struct Counted {
    inner: SdkBody,
    progress: Arc<Progress>,
}

impl http_body::Body for Counted {
    type Data = Bytes;
    type Error = aws_smithy_types::body::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.progress.moved(data.len());
                }
            }
            Poll::Ready(None) => {
                self.progress.moved(0);
                self.progress.body_done.store(true, Ordering::Relaxed);
            }
            _ => {}
        }
        if http_body::Body::is_end_stream(&self.inner) {
            self.progress.body_done.store(true, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        http_body::Body::is_end_stream(&self.inner)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::Body::size_hint(&self.inner)
    }
}

/// Runs `request`, giving it up with a transient error once nothing has
/// moved for `bound` (the answer counts as the last progress).
pub(super) async fn unless_stalled<T>(
    progress: &Progress,
    bound: Duration,
    target: &str,
    request: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::pin!(request);
    loop {
        let deadline = progress.last() + progress.allowed(bound);
        tokio::select! {
            done = &mut request => return done,
            () = tokio::time::sleep_until(deadline) => {
                let allowed = progress.allowed(bound);
                if progress.last() + allowed > Instant::now() {
                    continue; // it moved meanwhile
                }
                let sent = progress.sent.load(Ordering::Relaxed);
                return Err(StoreError::new(
                    "S3 request",
                    target,
                    ErrorKind::Transient,
                    format!(
                        "no progress for {} s ({sent} body bytes sent, no answer); giving it up",
                        allowed.as_secs_f64()
                    ),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_request_that_keeps_moving_is_not_given_up() {
        let progress = Progress::new();
        let moving = {
            let progress = progress.clone();
            async move {
                for _ in 0..10 {
                    tokio::time::sleep(Duration::from_secs(20)).await;
                    progress.moved(1);
                }
                Ok::<_, StoreError>(10)
            }
        };
        let got = unless_stalled(&progress, Duration::from_secs(30), "t", moving).await;
        assert_eq!(got.ok(), Some(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_sent_body_may_drain_at_a_slow_links_rate_before_the_answer() {
        let progress = Progress::new();
        progress.moved(8 << 20);
        progress.body_done.store(true, Ordering::Relaxed);
        let started = Instant::now();
        let answer = async {
            // 8 MiB at 32 KiB/s: 256 s to drain, then the answer.
            tokio::time::sleep(Duration::from_secs(250)).await;
            Ok::<_, StoreError>(())
        };
        assert!(
            unless_stalled(&progress, Duration::from_secs(30), "t", answer)
                .await
                .is_ok()
        );
        let never = std::future::pending::<Result<(), StoreError>>();
        let progress = Progress::new();
        progress.moved(8 << 20);
        progress.body_done.store(true, Ordering::Relaxed);
        let started_never = Instant::now();
        assert!(
            unless_stalled(&progress, Duration::from_secs(30), "t", never)
                .await
                .is_err()
        );
        assert_eq!(started_never.elapsed(), Duration::from_secs(256));
        assert!(started.elapsed() >= Duration::from_secs(250));
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_that_stops_moving_is_given_up_after_the_bound() {
        let progress = Progress::new();
        let started = Instant::now();
        let stuck = {
            let progress = progress.clone();
            async move {
                tokio::time::sleep(Duration::from_secs(10)).await;
                progress.moved(100);
                std::future::pending::<Result<(), StoreError>>().await
            }
        };
        let e = unless_stalled(&progress, Duration::from_secs(30), "s3://b/k", stuck)
            .await
            .unwrap_err();
        assert_eq!(started.elapsed(), Duration::from_secs(40));
        assert!(e.is_transient(), "{e}");
        let text = e.to_string();
        assert!(
            text.contains("s3://b/k") && text.contains("no progress for 30 s"),
            "{text}"
        );
        assert!(text.contains("100 body bytes sent"), "{text}");
    }
}
