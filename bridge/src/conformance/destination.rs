//! The destination a processor under check forwards to: a real HTTP server on 127.0.0.1
//! that answers what the case asks for and keeps every request it receives.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The path of the destination's URL, which a forwarding processor posts to.
pub const PATH: &str = "/hooks";

/// What the destination answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<&'static str>,
}

/// A request the destination received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

#[derive(Default)]
struct Shared {
    answer: Option<Answer>,
    received: Vec<Received>,
}

pub struct Destination {
    address: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    server: JoinHandle<()>,
}

impl Destination {
    /// Listens on a free port of 127.0.0.1.
    pub async fn start() -> Result<Destination> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let shared = Arc::new(Mutex::new(Shared::default()));
        let server = tokio::spawn(accept(listener, shared.clone()));
        Ok(Destination {
            address,
            shared,
            server,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}{PATH}", self.address)
    }

    /// What it answers from now on.
    pub fn answer(&self, answer: Answer) {
        self.lock().answer = Some(answer);
    }

    /// The requests received since the last call.
    pub fn take_received(&self) -> Vec<Received> {
        std::mem::take(&mut self.lock().received)
    }

    /// Stops listening: once this returns, the port refuses connections.
    pub async fn stop(&mut self) {
        self.server.abort();
        // The listener (and every connection) is closed when the aborted task is dropped.
        let _ = (&mut self.server).await;
    }

    /// Listens again on the same port, after [`Destination::stop`].
    pub async fn restart(&mut self) -> Result<()> {
        self.server.abort();
        let listener = TcpListener::bind(self.address).await?;
        self.server = tokio::spawn(accept(listener, self.shared.clone()));
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for Destination {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn accept(listener: TcpListener, shared: Arc<Mutex<Shared>>) {
    // Each connection's task is aborted with this one, so a stopped destination holds no
    // connection open either.
    let mut connections = tokio::task::JoinSet::new();
    while let Ok((stream, _)) = listener.accept().await {
        let shared = shared.clone();
        connections.spawn(async move {
            let service = service_fn(move |request| respond(request, shared.clone()));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn respond(
    request: hyper::Request<hyper::body::Incoming>,
    shared: Arc<Mutex<Shared>>,
) -> Result<hyper::Response<Full<Bytes>>> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await?.to_bytes().to_vec();
    let headers = parts
        .headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let mut shared = shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    shared.received.push(Received {
        path: parts.uri.path().to_owned(),
        headers,
        body,
    });
    let answer = shared.answer.unwrap_or(Answer {
        status: 200,
        retry_after: None,
    });
    let mut response = hyper::Response::builder().status(answer.status);
    if let Some(seconds) = answer.retry_after {
        response = response.header("retry-after", seconds);
    }
    Ok(response.body(Full::new(Bytes::from_static(b"{\"ok\":true}")))?)
}
