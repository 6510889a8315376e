//! How `triton store` stops: the first SIGINT or SIGTERM asks for a
//! graceful stop; a second signal, or the shutdown timeout after the first,
//! ends the process at once (safe: nothing that was not uploaded has been
//! checkpointed).
//!
//! Only a signal that was received counts. The signal streams end when the
//! runtime shuts down after a clean stop, and an ended stream must never be
//! taken for a second signal.

use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::error::CliError;

/// Why the process must exit at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// A second signal arrived during the graceful stop.
    SecondSignal,
    /// The graceful stop took longer than the timeout.
    Timeout,
}

impl Exit {
    /// The exit code: 130 as shells report an interrupt, 1 for the timeout.
    pub fn code(self) -> i32 {
        match self {
            Exit::SecondSignal => 130,
            Exit::Timeout => 1,
        }
    }

    fn message(self) -> &'static str {
        match self {
            Exit::SecondSignal => "second signal: exiting at once",
            Exit::Timeout => "the graceful stop took longer than --shutdown-timeout: exiting",
        }
    }
}

/// The watcher's states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// No signal yet.
    Running,
    /// One signal: the graceful stop runs, within the timeout.
    Stopping,
}

/// Runs the state machine over `signals` (one message per signal
/// received): sets `stop` at the first, returns the reason to exit at once
/// on a second one or at the timeout, and `None` when the signals end (the
/// process is shutting down by itself).
pub async fn watch(
    mut signals: mpsc::UnboundedReceiver<()>,
    timeout: Duration,
    stop: watch::Sender<bool>,
) -> Option<Exit> {
    let mut state = State::Running;
    loop {
        match state {
            State::Running => {
                signals.recv().await?;
                let _ = stop.send(true);
                state = State::Stopping;
            }
            State::Stopping => {
                return tokio::select! {
                    received = signals.recv() => received.map(|()| Exit::SecondSignal),
                    () = tokio::time::sleep(timeout) => Some(Exit::Timeout),
                };
            }
        }
    }
}

/// Watches SIGINT and SIGTERM from now on; the returned flag turns true at
/// the first. A second signal or `timeout` after the first exits the
/// process.
pub fn watch_process(timeout: Duration) -> Result<watch::Receiver<bool>, CliError> {
    let signals = received()?;
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        if let Some(exit) = watch(signals, timeout, tx).await {
            eprintln!("triton: {}", exit.message());
            std::process::exit(exit.code());
        }
    });
    Ok(rx)
}

/// SIGINT and SIGTERM, one message per signal received; the channel closes
/// when both streams end.
fn received() -> Result<mpsc::UnboundedReceiver<()>, CliError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term =
        signal(SignalKind::terminate()).map_err(|e| CliError::io("listening for SIGTERM", e))?;
    let mut int =
        signal(SignalKind::interrupt()).map_err(|e| CliError::io("listening for SIGINT", e))?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            // `None` means the stream ended (the runtime is going away):
            // no signal, so nothing is sent.
            tokio::select! {
                Some(()) = term.recv() => {}
                Some(()) = int.recv() => {}
                else => return,
            }
            if tx.send(()).is_err() {
                return;
            }
        }
    });
    Ok(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime")
    }

    /// One signal, then the signal source goes away as at shutdown: a
    /// graceful stop, never an exit at once (a closed channel once looked
    /// like a second signal, in about one clean stop in 45).
    #[test]
    fn one_signal_then_shutdown_is_a_graceful_stop() {
        let rt = runtime();
        for _ in 0..2_000 {
            rt.block_on(async {
                let (signal, signals) = mpsc::unbounded_channel();
                let (stop_tx, mut stop) = watch::channel(false);
                let watcher = tokio::spawn(watch(signals, Duration::from_secs(60), stop_tx));
                signal.send(()).expect("send");
                stop.changed().await.expect("stop flag");
                assert!(*stop.borrow());
                drop(signal);
                assert_eq!(watcher.await.expect("watcher"), None);
            });
        }
    }

    #[test]
    fn no_signal_then_shutdown_does_nothing() {
        runtime().block_on(async {
            let (signal, signals) = mpsc::unbounded_channel::<()>();
            let (stop_tx, stop) = watch::channel(false);
            drop(signal);
            assert_eq!(watch(signals, Duration::from_secs(1), stop_tx).await, None);
            assert!(!*stop.borrow());
        });
    }

    #[test]
    fn a_second_signal_exits_130() {
        runtime().block_on(async {
            let (signal, signals) = mpsc::unbounded_channel();
            let (stop_tx, _stop) = watch::channel(false);
            signal.send(()).expect("send");
            signal.send(()).expect("send");
            let exit = watch(signals, Duration::from_secs(60), stop_tx).await;
            assert_eq!(exit, Some(Exit::SecondSignal));
            assert_eq!(exit.map(Exit::code), Some(130));
        });
    }

    #[test]
    fn the_timeout_after_one_signal_exits_1() {
        runtime().block_on(async {
            let (signal, signals) = mpsc::unbounded_channel();
            let (stop_tx, _stop) = watch::channel(false);
            signal.send(()).expect("send");
            // The sender stays: no second signal, no shutdown.
            let exit = watch(signals, Duration::from_millis(50), stop_tx).await;
            assert_eq!(exit, Some(Exit::Timeout));
            assert_eq!(exit.map(Exit::code), Some(1));
            drop(signal);
        });
    }
}
