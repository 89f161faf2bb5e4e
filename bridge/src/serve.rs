//! The HTTP server of `inbox serve`: HTTP/1.1 connections on a listener, each request
//! served by a [`Handler`] (the capture component, or the metrics page on its own
//! listener), and a graceful stop. What a slow or flooding client
//! can hold is bounded: the headers and the body each have a deadline, an idle connection
//! is closed, the connections and the capture instances at once are limited, and a store
//! that cannot keep up makes capture answer `503` rather than queue without end.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use anyhow::Result;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use inbox_core::Problem;
use inbox_core::config::{CaptureLimits, Config, ConfigError, parsed};
use inbox_wasm_host::CaptureHost;
use inbox_wasm_host::capture::{
    BodyError, HyperOutgoingBody, internal_error, problem_response, ran_out_of_time,
};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};

use crate::budget::{BodyBudget, Share, budget_bytes};
use crate::metrics::{self, Metrics};

/// What one client may hold of the server.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// For a request's headers, from its first byte (or the connection's start).
    pub header_timeout: Duration,
    /// For a request's body, from its headers.
    pub body_timeout: Duration,
    /// A connection with nothing read or written for this long is closed.
    pub idle_timeout: Duration,
    /// Connections at once; more are answered `503` and closed.
    pub max_connections: usize,
    /// Requests handled at once (capture instances, for capture); a request waits its body
    /// deadline for a turn, then `503`.
    pub max_requests: usize,
    /// Bytes of request bodies held at once, across requests: a body that would pass it is
    /// answered `503` at once (by its `Content-Length`, or as it arrives), so many large
    /// deliveries together cost a bounded memory, not whatever they add up to.
    pub max_inflight_body_bytes: usize,
    /// The largest body capture takes (`INBOX_MAX_BODY_BYTES`): one declared longer is
    /// refused (`413`) before it is read, so it takes nothing of the budget.
    pub max_body_bytes: usize,
}

impl HttpLimits {
    pub fn from_config(config: &dyn Config) -> Result<HttpLimits, ConfigError> {
        let ms = |key, default| parsed(config, key, default).map(Duration::from_millis);
        let limits = HttpLimits {
            header_timeout: ms("header_timeout_ms", 10_000)?,
            body_timeout: ms("body_timeout_ms", 10_000)?,
            idle_timeout: ms("idle_timeout_ms", 60_000)?,
            max_connections: parsed(config, "max_connections", 1_024)?,
            max_requests: parsed(config, "max_concurrent_requests", 64)?,
            max_inflight_body_bytes: budget_bytes(config)?,
            max_body_bytes: CaptureLimits::from_config(config)?.max_body_bytes,
        };
        if limits.max_inflight_body_bytes < limits.max_body_bytes {
            return Err(ConfigError(format!(
                "INBOX_MAX_INFLIGHT_BODY_BYTES ({}) must be at least INBOX_MAX_BODY_BYTES ({})",
                limits.max_inflight_body_bytes, limits.max_body_bytes
            )));
        }
        if limits.header_timeout > Duration::from_secs(30) || limits.header_timeout.is_zero() {
            return Err(ConfigError(
                "INBOX_HEADER_TIMEOUT_MS must be between 1 and 30000".into(),
            ));
        }
        // A stalled body is the body deadline's to answer (408), not the idle one's.
        if limits.idle_timeout <= limits.body_timeout {
            return Err(ConfigError(
                "INBOX_IDLE_TIMEOUT_MS must be longer than INBOX_BODY_TIMEOUT_MS".into(),
            ));
        }
        if limits.max_connections == 0 || limits.max_requests == 0 {
            return Err(ConfigError(
                "INBOX_MAX_CONNECTIONS and INBOX_MAX_CONCURRENT_REQUESTS must be positive".into(),
            ));
        }
        Ok(limits)
    }
}

/// Connections the kernel holds for us before we accept them. With tokio's 1024, a burst
/// of 2,000 clients sending large bodies overflowed it while the host was busy, and one
/// in ten was reset unanswered (`scripts/flood`); with room for the burst each gets its
/// `202` or `503`. (Linux caps it at `net.core.somaxconn`, 4096 by default.)
const ACCEPT_BACKLOG: u32 = 4096;

/// A listener on `address` with room for a burst of connections.
pub fn listen(address: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = match address {
        std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(ACCEPT_BACKLOG)
}

/// What a connection over the limit is told before it is closed: the inbox's `503`, written
/// by hand since hyper never sees the connection.
fn too_many_connections() -> Vec<u8> {
    let problem = Problem::unavailable("too many connections at once; retry later");
    let body = problem.to_json();
    let mut head = String::from("HTTP/1.1 503 Service Unavailable\r\n");
    for (name, value) in problem.headers() {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    ));
    [head.into_bytes(), body].concat()
}

/// Serves connections on `listener` until `stop` completes; then stops accepting and lets
/// the open connections finish their requests (for at most `grace`).
pub async fn serve(
    handler: Arc<dyn Handler>,
    listener: tokio::net::TcpListener,
    limits: HttpLimits,
    metrics: Arc<dyn Metrics>,
    stop: impl std::future::Future<Output = ()>,
    grace: Duration,
) -> Result<()> {
    let connections = GracefulShutdown::new();
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let requests = Arc::new(Semaphore::new(limits.max_requests));
    let bodies = BodyBudget::new(limits.max_inflight_body_bytes);
    let limits = Arc::new(limits);
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = accept(&listener) => accepted,
            () = &mut stop => break,
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            tokio::spawn(refuse(stream));
            continue;
        };
        let turns = Turns {
            requests: requests.clone(),
            bodies: bodies.clone(),
        };
        let (handler, limits_for_requests, metrics) =
            (handler.clone(), limits.clone(), metrics.clone());
        let service = hyper::service::service_fn(move |request: http::Request<_>| {
            let (handler, turns, limits, metrics) = (
                handler.clone(),
                turns.clone(),
                limits_for_requests.clone(),
                metrics.clone(),
            );
            async move {
                Ok::<_, std::convert::Infallible>(
                    answer(&handler, &turns, &limits, metrics.as_ref(), request).await,
                )
            }
        });
        let io = TokioIo::new(Idle::new(stream, limits.idle_timeout));
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .keep_alive(true)
            .serve_connection(io, service);
        let connection = connections.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
            drop(permit);
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

/// The next connection on `listener`. A failed accept (out of file descriptors, say) is
/// the moment's, not the listener's: it is logged and tried again shortly.
pub async fn accept(
    listener: &tokio::net::TcpListener,
) -> (tokio::net::TcpStream, std::net::SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(accepted) => return accepted,
            Err(error) => {
                tracing::warn!(%error, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Answers a connection over the limit `503` and closes it.
async fn refuse(mut stream: tokio::net::TcpStream) {
    let refusal = too_many_connections();
    let answer = stream.write_all(&refusal);
    let _ = tokio::time::timeout(Duration::from_secs(1), answer).await;
}

/// What requests share: turns to be handled, and the budget of body bytes.
#[derive(Clone)]
struct Turns {
    requests: Arc<Semaphore>,
    bodies: BodyBudget,
}

/// One request through the handler, within the limits, counted and logged.
async fn answer(
    handler: &Arc<dyn Handler>,
    turns: &Turns,
    limits: &HttpLimits,
    metrics: &dyn Metrics,
    request: http::Request<hyper::body::Incoming>,
) -> http::Response<HyperOutgoingBody> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = std::time::Instant::now();
    let response = respond(handler, turns, limits, request, &method, &path).await;
    // Counted by its head: an answer that breaks off after it is aborted, and logged, by
    // the capture host.
    let status = response.status().as_u16();
    if let Some(event) = metrics::of_delivery(method.as_str(), &path, status) {
        metrics.record(&event);
    }
    tracing::debug!(%method, %path, status, elapsed_us = started.elapsed().as_micros() as u64, "request");
    response
}

async fn respond(
    handler: &Arc<dyn Handler>,
    turns: &Turns,
    limits: &HttpLimits,
    request: http::Request<hyper::body::Incoming>,
    method: &http::Method,
    path: &str,
) -> http::Response<HyperOutgoingBody> {
    let permit =
        tokio::time::timeout(limits.body_timeout, turns.requests.clone().acquire_owned()).await;
    let Ok(Ok(_permit)) = permit else {
        tracing::warn!(%method, %path, "no turn to handle the request in time");
        return problem_response(&Problem::unavailable("the inbox is busy; retry later"));
    };
    // With its turn, a declared body takes its place in the budget before a byte of it is
    // read; one that does not fit is answered at once, for its sender to retry. The share
    // is held until the answer (the body is parsed and stored after it has arrived).
    let declared = request.body().size_hint().exact().unwrap_or(0);
    let declared = usize::try_from(declared)
        .ok()
        .filter(|bytes| *bytes <= limits.max_body_bytes)
        .unwrap_or(0);
    let Some(share) = turns.bodies.try_take(declared) else {
        return over_budget(method, path);
    };
    let share = Arc::new(std::sync::Mutex::new(share));
    // A request without a body (a GET) has all of it already: a deadline it runs past is
    // the inbox's slowness (503), not a body that did not come (408).
    let complete = Arc::new(AtomicBool::new(request.body().is_end_stream()));
    let timed_out = Arc::new(AtomicBool::new(false));
    let overflowed = Arc::new(AtomicBool::new(false));
    let request = request.map(|body| TimedBody {
        body,
        deadline: Box::pin(tokio::time::sleep(limits.body_timeout)),
        complete: complete.clone(),
        timed_out: timed_out.clone(),
        budget: Budget {
            bodies: turns.bodies.clone(),
            share: share.clone(),
            read: 0,
            counted_up_to: limits.max_body_bytes.saturating_add(1),
            overflowed: overflowed.clone(),
        },
    });
    match handler.clone().handle(request).await {
        _ if overflowed.load(Ordering::Relaxed) => over_budget(method, path),
        _ if timed_out.load(Ordering::Relaxed) => body_too_slow(limits.body_timeout),
        Ok(response) => response,
        Err(error) if ran_out_of_time(&error) && !complete.load(Ordering::Relaxed) => {
            body_too_slow(limits.body_timeout)
        }
        Err(error) if ran_out_of_time(&error) => {
            tracing::error!(error = format!("{error:#}"), %method, %path, "request ran out of time");
            problem_response(&Problem::unavailable(
                "the inbox could not answer in time; retry later",
            ))
        }
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), %method, %path, "request failed");
            internal_error()
        }
    }
}

fn over_budget(method: &http::Method, path: &str) -> http::Response<HyperOutgoingBody> {
    tracing::warn!(%method, %path, "too many request bodies at once (INBOX_MAX_INFLIGHT_BODY_BYTES)");
    problem_response(&Problem::unavailable(
        "too many large deliveries at once; retry later",
    ))
}

fn body_too_slow(deadline: Duration) -> http::Response<HyperOutgoingBody> {
    problem_response(&Problem::new(
        408,
        "Request Timeout",
        format!(
            "the body did not arrive within {} ms (INBOX_BODY_TIMEOUT_MS)",
            deadline.as_millis()
        ),
    ))
}

/// A request's body as the server hands it on: it must arrive whole before its deadline.
pub type RequestBody = TimedBody<hyper::body::Incoming>;

/// What answers each request: the capture component (or, as the benchmarks' baseline, the
/// same capture logic compiled natively: `bridge/examples/native_inbox.rs`), or the
/// metrics page (`crate::metrics_page`).
pub trait Handler: Send + Sync + 'static {
    fn handle(
        self: Arc<Self>,
        request: http::Request<RequestBody>,
    ) -> Pin<Box<dyn Future<Output = Result<http::Response<HyperOutgoingBody>>> + Send>>;
}

impl Handler for CaptureHost {
    fn handle(
        self: Arc<Self>,
        request: http::Request<RequestBody>,
    ) -> Pin<Box<dyn Future<Output = Result<http::Response<HyperOutgoingBody>>> + Send>> {
        Box::pin(async move { CaptureHost::handle(&self, request).await })
    }
}

/// A request body that must arrive whole before its deadline, and within the budget of
/// body bytes; it notes whether it did.
pub struct TimedBody<B> {
    body: B,
    deadline: Pin<Box<Sleep>>,
    complete: Arc<AtomicBool>,
    timed_out: Arc<AtomicBool>,
    budget: Budget,
}

/// A body's share of the budget: what it holds (its declared length, at first), grown
/// as more arrives; given back when the request is answered.
struct Budget {
    bodies: BodyBudget,
    share: Arc<std::sync::Mutex<Share>>,
    read: usize,
    /// Past the body limit capture refuses it (`413`): the budget counts no further.
    counted_up_to: usize,
    overflowed: Arc<AtomicBool>,
}

impl Budget {
    /// Counts `bytes` more read; false if they do not fit.
    fn take(&mut self, bytes: usize) -> bool {
        self.read = self.read.saturating_add(bytes);
        let mut share = self.share.lock().unwrap_or_else(|e| e.into_inner());
        let fits = self
            .bodies
            .grow(&mut share, self.read.min(self.counted_up_to));
        if !fits {
            self.overflowed.store(true, Ordering::Relaxed);
        }
        fits
    }
}

impl<B> Body for TimedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BodyError>,
{
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(None) => {
                this.complete.store(true, Ordering::Relaxed);
                Poll::Ready(None)
            }
            Poll::Ready(Some(Ok(frame))) => {
                let bytes = frame.data_ref().map_or(0, Bytes::len);
                if this.budget.take(bytes) {
                    Poll::Ready(Some(Ok(frame)))
                } else {
                    Poll::Ready(Some(Err(BodyError::HttpRequestBodySize(None))))
                }
            }
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(error.into()))),
            Poll::Pending => {
                ready!(this.deadline.as_mut().poll(cx));
                this.timed_out.store(true, Ordering::Relaxed);
                Poll::Ready(Some(Err(BodyError::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A connection closed once nothing has been read or written on it for `timeout`: an idle
/// keep-alive connection, or a client that stopped reading its answer.
struct Idle<S> {
    inner: S,
    timeout: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl<S> Idle<S> {
    fn new(inner: S, timeout: Duration) -> Self {
        Idle {
            inner,
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
        }
    }

    fn active(&mut self) {
        self.deadline.as_mut().reset(Instant::now() + self.timeout);
    }

    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.deadline.as_mut().poll(cx).is_ready()
    }
}

fn idle_error() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "the connection was idle too long",
    )
}

impl<S: AsyncRead + Unpin> AsyncRead for Idle<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    self.active();
                }
                Poll::Ready(result)
            }
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(idle_error())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Idle<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, bytes) {
            Poll::Ready(result) => {
                self.active();
                Poll::Ready(result)
            }
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(idle_error())),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
