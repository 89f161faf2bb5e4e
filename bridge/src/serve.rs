//! The HTTP server of `inbox serve`: HTTP/1.1 connections on a listener, each request
//! served by the capture component, and a graceful stop.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use inbox_host::CaptureHost;
use inbox_host::capture::internal_error;

/// Serves connections on `listener` until `stop` completes; then stops accepting and lets
/// the open connections finish their requests (for at most `grace`).
pub async fn serve(
    capture: Arc<CaptureHost>,
    listener: tokio::net::TcpListener,
    stop: impl std::future::Future<Output = ()>,
    grace: Duration,
) -> Result<()> {
    let connections = GracefulShutdown::new();
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => accepted.context("accepting a connection")?,
            () = &mut stop => break,
        };
        let capture = capture.clone();
        let service = hyper::service::service_fn(move |request| {
            let capture = capture.clone();
            async move {
                let method = request.method().clone();
                let path = request.uri().path().to_owned();
                let started = std::time::Instant::now();
                let response = match capture.handle(request).await {
                    Ok(response) => response,
                    Err(error) => {
                        tracing::error!(error = format!("{error:#}"), %method, %path, "request failed");
                        internal_error()
                    }
                };
                tracing::debug!(%method, %path, status = response.status().as_u16(), elapsed_us = started.elapsed().as_micros() as u64, "request");
                Ok::<_, std::convert::Infallible>(response)
            }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .keep_alive(true)
            .serve_connection(TokioIo::new(stream), service);
        let connection = connections.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(grace, connections.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            ?grace,
            "connections were still open when the grace period ended"
        );
    }
    Ok(())
}
