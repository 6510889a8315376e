//! `triton store`'s HTTP endpoint: `/metrics` (Prometheus, through the
//! `metrics` facade and its Prometheus exporter), `/healthz` and `/readyz`;
//! any other path is 404. Served from the first moment, also while the
//! store waits for its database or recovers.

use std::convert::Infallible;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use triton_core::error::Report;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use triton_core::health::health;
use triton_s3::archiver::ArchiverStats;

use crate::error::{CliError, CliResult};

/// Upload and commit times: from a fast local store to a slow multipart
/// upload of a large archive.
const SECONDS_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// How the endpoint judges health.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    /// Not ready while an upload or commit has retried this long.
    pub unready_after: Duration,
    /// Not alive when no loop turned for this long.
    pub stale_after: Duration,
}

/// The state the endpoint reads; the archiver's statistics appear once the
/// store has opened.
#[derive(Clone)]
pub struct Endpoint {
    handle: PrometheusHandle,
    stats: Arc<OnceLock<Arc<ArchiverStats>>>,
    started: Instant,
    stream: String,
    bounds: Bounds,
}

impl Endpoint {
    /// Installs the Prometheus recorder as the process's metrics recorder.
    /// Call before the archiver is built: its series register at zero then.
    pub fn install(stream: &str, bounds: Bounds) -> Result<Endpoint, CliError> {
        let recorder = PrometheusBuilder::new()
            .set_buckets(SECONDS_BUCKETS)
            .map_err(|e| CliError::new(format!("metrics: {e}")))?
            .build_recorder();
        let handle = recorder.handle();
        metrics::set_global_recorder(recorder)
            .map_err(|e| CliError::new(format!("metrics: {e}")))?;
        triton_s3::archiver::describe_metrics();
        metrics::describe_gauge!(
            "triton_store_seconds_since_checkpoint",
            metrics::Unit::Seconds,
            "Seconds since checkpoints last moved (since the start, before the first)."
        );
        metrics::describe_gauge!("triton_build_info", "The running triton's version.");
        metrics::describe_gauge!("triton_store_ready", "1 while /readyz answers 200.");
        metrics::gauge!("triton_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
        Ok(Endpoint {
            handle,
            stats: Arc::new(OnceLock::new()),
            started: Instant::now(),
            stream: stream.to_owned(),
            bounds,
        })
    }

    /// The archiver's statistics, once there are some.
    pub fn set_stats(&self, stats: Arc<ArchiverStats>) {
        let _ = self.stats.set(stats);
    }

    fn render(&self) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let age = match self.stats.get().and_then(|s| s.last_checkpoint()) {
            Some(last) => now.saturating_sub(last) as f64,
            None => self.started.elapsed().as_secs() as f64,
        };
        metrics::gauge!("triton_store_seconds_since_checkpoint", "stream" => self.stream.clone())
            .set(age);
        let ready = health()
            .report(self.bounds.unready_after, self.bounds.stale_after)
            .ready;
        metrics::gauge!("triton_store_ready", "stream" => self.stream.clone())
            .set(f64::from(u8::from(ready)));
        self.handle.render()
    }

    fn answer(&self, path: &str) -> (StatusCode, &'static str, String) {
        let report = || health().report(self.bounds.unready_after, self.bounds.stale_after);
        let status = |ok: bool| match ok {
            true => StatusCode::OK,
            false => StatusCode::SERVICE_UNAVAILABLE,
        };
        const TEXT: &str = "text/plain; charset=utf-8";
        match path {
            "/metrics" => (StatusCode::OK, "text/plain; version=0.0.4", self.render()),
            "/healthz" | "/livez" => {
                let r = report();
                let body = match r.live {
                    true => "ok\n".to_owned(),
                    false => format!("{}\n", r.reason),
                };
                (status(r.live), TEXT, body)
            }
            "/readyz" => {
                let r = report();
                (status(r.ready), TEXT, format!("{}\n", r.reason))
            }
            _ => (
                StatusCode::NOT_FOUND,
                TEXT,
                "not found: /metrics, /healthz or /readyz\n".to_owned(),
            ),
        }
    }

    /// Binds `addr` and serves in the background.
    pub async fn serve(&self, addr: SocketAddr) -> CliResult {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| CliError::io(format!("--metrics-addr {addr}"), e))?;
        tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
        // Histograms keep their samples until upkeep folds them in: without
        // it, memory would grow between scrapes (or without any).
        let handle = self.handle.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                handle.run_upkeep();
            }
        });
        let endpoint = self.clone();
        tokio::spawn(async move {
            loop {
                let conn = match listener.accept().await {
                    Ok((conn, _)) => conn,
                    Err(e) => {
                        // Out of file descriptors, most likely: do not spin.
                        tracing::warn!(error = %Report(&e), "metrics: accept failed");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                };
                let endpoint = endpoint.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                        let (status, content_type, body) = endpoint.answer(request.uri().path());
                        let response = Response::builder()
                            .status(status)
                            .header("content-type", content_type)
                            .body(Full::new(Bytes::from(body)));
                        async move {
                            Ok::<_, Infallible>(response.unwrap_or_else(|_| {
                                Response::new(Full::new(Bytes::from_static(b"")))
                            }))
                        }
                    });
                    let io = hyper_util::rt::TokioIo::new(conn);
                    let served = hyper::server::conn::http1::Builder::new()
                        .timer(hyper_util::rt::TokioTimer::new())
                        .header_read_timeout(Duration::from_secs(5))
                        .serve_connection(io, service);
                    let _ = tokio::time::timeout(Duration::from_secs(30), served).await;
                });
            }
        });
        Ok(())
    }
}

/// Parses `--metrics-addr`: `HOST:PORT` (`127.0.0.1:9464`,
/// `localhost:9464`, `[::1]:9464`) or `:PORT` for every interface.
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    if let Some(port) = s.strip_prefix(':') {
        let port: u16 = port
            .parse()
            .map_err(|_| format!("{s:?}: the port must be a number"))?;
        return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
    }
    let mut found = s
        .to_socket_addrs()
        .map_err(|e| format!("{s:?}: {e} (use HOST:PORT or :PORT)"))?;
    found
        .next()
        .ok_or_else(|| format!("{s:?}: the host has no address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(parse_addr(":9464"), Ok("0.0.0.0:9464".parse().unwrap()));
        assert_eq!(
            parse_addr("127.0.0.1:9464"),
            Ok("127.0.0.1:9464".parse().unwrap())
        );
        assert!(parse_addr("localhost:9464").unwrap().ip().is_loopback());
        assert_eq!(parse_addr("[::1]:9464"), Ok("[::1]:9464".parse().unwrap()));
        for bad in [":x", "9464", "localhost", ":99999"] {
            assert!(parse_addr(bad).is_err(), "{bad}");
        }
    }
}
