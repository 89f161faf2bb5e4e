//! Stopping on a signal: SIGTERM (Lambda, systemd, a container's stop) or Ctrl-C.

use std::time::Duration;

use tokio::sync::watch;

/// How long open connections get to finish their requests after a shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Becomes `true` at the first SIGTERM or Ctrl-C: servers stop accepting, workers stop
/// claiming, and what is in flight finishes.
pub fn stop_on_signal() -> watch::Receiver<bool> {
    let (stop, stopped) = watch::channel(false);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutting down");
        stop.send_replace(true);
    });
    stopped
}

/// Waits until `stop` says so.
pub async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}
