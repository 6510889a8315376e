//! A Prometheus endpoint for `triton store`: the text exposition format over
//! a minimal HTTP/1.0 responder (one small response per scrape; no HTTP
//! server dependency needed for that).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use triton_s3::archiver::fleet::LeaseStats;
use triton_s3::archiver::ArchiverStats;

use crate::error::{CliError, CliResult};

/// Binds `addr` and serves the metrics of `stats` in the background.
pub async fn serve(
    addr: SocketAddr,
    stats: Arc<ArchiverStats>,
    leases: Option<Arc<LeaseStats>>,
    stream: &str,
) -> CliResult {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| CliError::io(format!("--metrics-addr {addr}"), e))?;
    tracing::info!(%addr, "serving metrics at /metrics");
    let stream = stream.to_string();
    tokio::spawn(async move {
        loop {
            let mut conn = match listener.accept().await {
                Ok((conn, _)) => conn,
                Err(e) => {
                    // Out of file descriptors, most likely: do not spin.
                    tracing::warn!(error = %e, "metrics: accept failed");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            };
            let mut body = render(&stats, &stream);
            if let Some(leases) = &leases {
                body.push_str(&render_leases(leases, &stream));
            }
            tokio::spawn(async move {
                // The request itself does not matter: every path answers
                // the metrics. Read it so that the client sees a response,
                // not a reset; a client that stalls is dropped.
                let answer = async {
                    let mut request = [0u8; 4096];
                    let _ = conn.read(&mut request).await;
                    let response = format!(
                        "HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = conn.write_all(response.as_bytes()).await;
                    let _ = conn.shutdown().await;
                };
                let _ = tokio::time::timeout(Duration::from_secs(5), answer).await;
            });
        }
    });
    Ok(())
}

/// The exposition text of a fleet worker's leases.
pub fn render_leases(stats: &LeaseStats, stream: &str) -> String {
    let label = stream_label(stream);
    let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let mut out = String::new();
    for (name, kind, help, value) in [
        (
            "triton_store_leases_held",
            "gauge",
            "Shard leases this worker holds.",
            get(&stats.held),
        ),
        (
            "triton_store_leases_acquired_total",
            "counter",
            "Shard leases taken (each with a new epoch).",
            get(&stats.acquired),
        ),
        (
            "triton_store_leases_lost_total",
            "counter",
            "Times a lease was lost (taken by another worker or not renewed in time).",
            get(&stats.lost),
        ),
        (
            "triton_store_leases_released_total",
            "counter",
            "Shard leases handed over gracefully (balance, ended shards, stops).",
            get(&stats.released),
        ),
    ] {
        metric(&mut out, &label, name, kind, help, value);
    }
    out
}

/// `{stream="…"}`, the stream's name made safe for a label value.
fn stream_label(stream: &str) -> String {
    let stream = stream.replace(['\\', '"', '\n'], "_");
    format!("{{stream=\"{stream}\"}}")
}

/// One metric with its HELP and TYPE lines.
fn metric(
    out: &mut String,
    label: &str,
    name: &str,
    kind: &str,
    help: &str,
    value: impl std::fmt::Display,
) {
    let _ = write!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{label} {value}\n"
    );
}

/// The exposition text.
pub fn render(stats: &ArchiverStats, stream: &str) -> String {
    let label = stream_label(stream);
    let mut out = String::new();
    let metric = |out: &mut String, name: &str, kind: &str, help: &str, value: String| {
        metric(out, &label, name, kind, help, value)
    };
    let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    metric(
        &mut out,
        "triton_store_records_total",
        "counter",
        "Records read from the stream.",
        get(&stats.records_in).to_string(),
    );
    metric(
        &mut out,
        "triton_store_record_bytes_total",
        "counter",
        "Bytes of the records read.",
        get(&stats.bytes_in).to_string(),
    );
    metric(
        &mut out,
        "triton_store_invalid_records_total",
        "counter",
        "Records that were not one MessagePack map (kept in dead-letter archives).",
        get(&stats.invalid_records).to_string(),
    );
    metric(
        &mut out,
        "triton_store_archives_uploaded_total",
        "counter",
        "Archives uploaded (dead-letter archives included).",
        get(&stats.archives_uploaded).to_string(),
    );
    metric(
        &mut out,
        "triton_store_uploaded_bytes_total",
        "counter",
        "Bytes uploaded.",
        get(&stats.bytes_uploaded).to_string(),
    );
    metric(
        &mut out,
        "triton_store_spool_bytes",
        "gauge",
        "Bytes of sealed archives waiting for upload.",
        get(&stats.spool_bytes).to_string(),
    );
    let upload_seconds = get(&stats.upload_micros) as f64 / 1e6;
    let _ = write!(
        out,
        "# HELP triton_store_upload_seconds Time to upload each archive, retries included.\n\
         # TYPE triton_store_upload_seconds summary\n\
         triton_store_upload_seconds_sum{label} {upload_seconds:.6}\n\
         triton_store_upload_seconds_count{label} {}\n",
        get(&stats.uploads)
    );
    let last = get(&stats.last_checkpoint);
    if last > 0 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        metric(
            &mut out,
            "triton_store_seconds_since_checkpoint",
            "gauge",
            "Seconds since checkpoints last moved.",
            now.saturating_sub(last).to_string(),
        );
    }
    let behind = stats.behind();
    if !behind.is_empty() {
        out.push_str("# HELP triton_store_millis_behind_latest How far each shard's last read was behind the tip of the stream.\n# TYPE triton_store_millis_behind_latest gauge\n");
    }
    for (shard, millis) in behind {
        let _ = writeln!(
            out,
            "triton_store_millis_behind_latest{{stream=\"{stream}\",shard=\"{shard}\"}} {millis}"
        );
    }
    out
}
