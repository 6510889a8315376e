//! systemd's readiness protocol (`Type=notify`): `READY=1` once the store
//! is ready, `STOPPING=1` when it stops, sent to `NOTIFY_SOCKET` when set.
//! A datagram of a few bytes: no crate needed for that.

use std::time::Duration;
use triton_core::error::Report;

use triton_core::health::health;

use super::metrics::Bounds;

/// Sends `state` to the service manager, if there is one.
pub fn notify(state: &str) {
    #[cfg(target_os = "linux")]
    {
        use std::os::linux::net::SocketAddrExt;
        use std::os::unix::net::{SocketAddr, UnixDatagram};
        let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
            return;
        };
        let path = path.to_string_lossy().into_owned();
        let addr = match path.strip_prefix('@') {
            // An abstract socket.
            Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
            None => SocketAddr::from_pathname(&path),
        };
        let sent = UnixDatagram::unbound().and_then(|socket| {
            let addr = addr?;
            socket.send_to_addr(state.as_bytes(), &addr)
        });
        if let Err(e) = sent {
            tracing::warn!(error = %Report(&e), socket = path, "could not notify systemd");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = state;
}

/// Sends `READY=1` the first time the store is ready. Until then the
/// start-up timeout is extended every 30 s, with the reason as status:
/// waiting out a database outage or finishing a previous worker's uploads
/// may take longer than systemd's default 90 s, and a restart would only
/// start that work over.
pub async fn notify_when_ready(bounds: Bounds) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    let mut extended: Option<std::time::Instant> = None;
    loop {
        let report = health().report(bounds.unready_after, bounds.stale_after);
        if report.ready {
            notify("READY=1\nSTATUS=reading");
            return;
        }
        if extended.is_none_or(|t| t.elapsed() >= Duration::from_secs(30)) {
            notify(&format!(
                "EXTEND_TIMEOUT_USEC=90000000\nSTATUS={}",
                report.reason
            ));
            extended = Some(std::time::Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
