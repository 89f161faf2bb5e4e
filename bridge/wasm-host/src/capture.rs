//! The capture component: a fresh instance per HTTP request (from a connection, a Lambda
//! event, or the app calling itself), answering through wasmtime-wasi-http's proxy world.

use std::collections::BTreeMap;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Poll, ready};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::BodyExt;
use inbox_core::scope::Reader;
use inbox_stores::WebhookStore;
use inbox_stores::pool::ConnectionPool;
use wasmtime::Engine;
pub use wasmtime_wasi_http::Error as BodyError;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
pub use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::engine::{self, Limits};
use crate::files::StoreComponent;
use crate::outgoing::SelfApp;
use crate::state::HostState;
use crate::{compose, config, spin_sqlite, store};

pub struct CaptureHost {
    engine: Engine,
    pre: ProxyPre<HostState>,
    /// Capture's own settings; a composed store component's.
    config: Arc<BTreeMap<String, String>>,
    store_config: Arc<BTreeMap<String, String>>,
    store: Arc<dyn WebhookStore>,
    /// Spin's default database, when capture stores through a store component.
    sqlite: Option<Arc<ConnectionPool>>,
    deadline: Duration,
    max_memory_bytes: usize,
}

/// Whether a capture instance may send requests to the app itself (`self.alt`): the
/// requests it receives from outside may, the ones it serves for itself may not, so an app
/// calling itself cannot loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SelfRequests {
    Allowed,
    Denied,
}

impl CaptureHost {
    /// Compiles and links the capture component at `path`; with `store_component`, the two
    /// composed into one, as Spin runs them. Each sees only its own part of `config`.
    pub fn load(
        engine: &Engine,
        path: &Path,
        store_component: Option<&StoreComponent>,
        config: Arc<BTreeMap<String, String>>,
        store: Arc<dyn WebhookStore>,
        limits: &Limits,
    ) -> Result<Arc<CaptureHost>> {
        let component = match store_component {
            None => engine::compile(engine, path)?.component,
            Some(with) => {
                let read = |path: &Path| {
                    std::fs::read(path)
                        .with_context(|| format!("cannot load the component {}", path.display()))
                };
                let composed = compose::plug_store(&read(path)?, &read(&with.path)?)
                    .with_context(|| format!("{} is not a store component", with.path.display()))?;
                tracing::info!(
                    capture = %path.display(),
                    store = %with.path.display(),
                    "capture composed with the store component, as Spin composes them"
                );
                engine::compile_bytes(engine, &composed, path)?.component
            }
        };
        let mut linker = engine::linker(engine)?;
        store::add_to_linker(&mut linker)?;
        if store_component.is_some() {
            spin_sqlite::add_to_linker(&mut linker)?;
            config::add_store_config(&mut linker)?;
        }
        let pre = linker
            .instantiate_pre(&component)
            .and_then(ProxyPre::new)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("{} is not a capture component", path.display()))?;
        Ok(Arc::new(CaptureHost {
            engine: engine.clone(),
            pre,
            config: Arc::new(Reader::Capture.visible(&config)),
            store_config: Arc::new(Reader::Store.visible(&config)),
            store,
            sqlite: store_component
                .map(|with| Arc::new(ConnectionPool::new(&with.sqlite, spin_sqlite::MAX_IDLE))),
            deadline: limits.capture_deadline,
            max_memory_bytes: limits.max_memory_bytes,
        }))
    }

    /// Serves one HTTP request with a fresh instance. The body is streamed from a
    /// connection or already whole (a Lambda event).
    pub async fn handle<B>(
        self: &Arc<Self>,
        request: http::Request<B>,
    ) -> Result<http::Response<HyperOutgoingBody>>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        self.capture(request, SelfRequests::Allowed).await
    }

    async fn capture<B>(
        self: &Arc<Self>,
        request: http::Request<B>,
        self_requests: SelfRequests,
    ) -> Result<http::Response<HyperOutgoingBody>>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        if let Some(problem) = host_problem(&request) {
            return Ok(problem_response(&problem));
        }
        let self_app = (self_requests == SelfRequests::Allowed).then(|| {
            let host = self.clone();
            Arc::new(move |request| host.clone().capture_for_itself(request)) as SelfApp
        });
        let state = HostState::new("capture", self.config.clone(), self.max_memory_bytes)
            .with_store(self.store.clone())
            .with_store_config(self.store_config.clone())
            .with_sqlite(self.sqlite.clone())
            .with_self_app(self_app);
        let mut store = engine::store(&self.engine, state, self.deadline);
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let request = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, request)?;
        let out = store.data_mut().http().new_response_outparam(sender)?;
        let pre = self.pre.clone();
        let deadline = self.deadline;
        let (returned, handler_returned) = tokio::sync::oneshot::channel();
        // The guest may go on writing the body after it has set the response.
        let task = tokio::spawn(async move {
            let run = async {
                let proxy = pre.instantiate_async(&mut store).await?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, request, out)
                    .await
            };
            let result = tokio::time::timeout(deadline, run)
                .await
                .unwrap_or_else(|_| Err(wasmtime::Error::new(DeadlineExceeded(deadline))));
            // Told before `store` is dropped: dropping it ends the body's channel, and the
            // body must know by then whether that end is the guest's.
            let _ = returned.send(result.is_ok());
            result
        });
        match receiver.await {
            Ok(Ok(response)) => {
                let length = response
                    .headers()
                    .get(http::header::CONTENT_LENGTH)
                    .and_then(|length| length.to_str().ok()?.parse().ok());
                Ok(response.map(|body| Whole::guard(body, length, handler_returned)))
            }
            Ok(Err(error)) => bail!("the capture component answered with an error: {error:?}"),
            Err(_) => match task.await {
                Ok(Ok(())) => bail!("the capture component never set a response"),
                Ok(Err(error)) => {
                    Err(anyhow::Error::from(error).context("the capture component failed"))
                }
                Err(error) => Err(anyhow::Error::new(error).context("the capture task failed")),
            },
        }
    }

    /// A request the app sends to itself (`self.alt`), served by a fresh instance.
    fn capture_for_itself(
        self: Arc<Self>,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
    ) -> Pin<Box<dyn Future<Output = Result<http::Response<HyperOutgoingBody>>> + Send>> {
        Box::pin(async move { self.capture(request, SelfRequests::Denied).await })
    }
}

/// A guest's response body that ends cleanly only if the guest's answer is whole.
/// wasmtime-wasi-http ends a response body cleanly when the instance writing it goes away
/// (a trap, a deadline) before finishing it, so a cut answer would pass for complete: a
/// `200` with half a list. This one fails instead when fewer bytes came than its
/// `Content-Length` said or, with no stated length, when the handler did not return (so
/// such a body ends only once the handler has). A server then aborts the connection and
/// the Lambda bridge answers `500`. (A body the guest drops unfinished is aborted by
/// wasmtime-wasi-http itself; one it leaks past a normal return cannot be told apart.)
struct Whole {
    body: HyperOutgoingBody,
    /// Whether the handler returned, once it has ended.
    handler_returned: tokio::sync::oneshot::Receiver<bool>,
    length: Option<u64>,
    sent: u64,
    ended: bool,
}

impl Whole {
    fn guard(
        body: HyperOutgoingBody,
        length: Option<u64>,
        handler_returned: tokio::sync::oneshot::Receiver<bool>,
    ) -> HyperOutgoingBody {
        Whole {
            body,
            handler_returned,
            length,
            sent: 0,
            ended: false,
        }
        .boxed_unsync()
    }
}

impl http_body::Body for Whole {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        if this.ended {
            return Poll::Ready(None);
        }
        let outcome = match ready!(Pin::new(&mut this.body).poll_frame(cx)) {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    this.sent += data.len() as u64;
                }
                return Poll::Ready(Some(Ok(frame)));
            }
            Some(Err(error)) => Err(error.to_string()),
            None => {
                let whole = match this.length {
                    Some(length) => this.sent == length,
                    // A handler that died (or a host task that did) never says it returned.
                    None => ready!(Pin::new(&mut this.handler_returned).poll(cx)).unwrap_or(false),
                };
                if whole {
                    Ok(())
                } else {
                    Err("it broke off before its end".to_owned())
                }
            }
        };
        this.ended = true;
        match outcome {
            Ok(()) => Poll::Ready(None),
            Err(error) => {
                tracing::error!(
                    sent = this.sent,
                    length = this.length,
                    error,
                    "the capture component's answer failed"
                );
                Poll::Ready(Some(Err(BodyError::HttpResponseIncomplete)))
            }
        }
    }
}

/// A capture instance that ran past its deadline (waiting on a slow body, or a slow store).
#[derive(Debug, thiserror::Error)]
#[error("the capture component exceeded its {0:?} deadline")]
pub struct DeadlineExceeded(pub Duration);

/// Whether a capture failed by running out of time: past its deadline while waiting, or
/// interrupted by it while running.
pub fn ran_out_of_time(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.is::<DeadlineExceeded>()
            || cause
                .downcast_ref::<wasmtime::Trap>()
                .is_some_and(|trap| *trap == wasmtime::Trap::Interrupt)
    })
}

/// The answer when the capture component could not answer at all (it trapped or never set
/// a response): a 500 problem, so the provider retries.
pub fn internal_error() -> http::Response<HyperOutgoingBody> {
    problem_response(&inbox_core::Problem::new(
        500,
        "Internal Server Error",
        "the request could not be handled",
    ))
}

/// An HTTP/1.1 request needs exactly one Host header with a valid value, or `400` (RFC
/// 9112, 3.2); wasi-http takes it as the request's authority, and refuses it otherwise.
fn host_problem<B>(request: &http::Request<B>) -> Option<inbox_core::Problem> {
    if request.uri().authority().is_some() {
        return None;
    }
    let mut hosts = request.headers().get_all(http::header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(host), None) if host.to_str().is_ok() => None,
        _ => Some(inbox_core::Problem::bad_request(
            "a request needs exactly one Host header, of visible ASCII",
        )),
    }
}

/// A problem answered by the host itself; a 503 says when to come back.
pub fn problem_response(problem: &inbox_core::Problem) -> http::Response<HyperOutgoingBody> {
    let body = http_body_util::Full::new(Bytes::from(problem.to_json()))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut response = http::Response::builder().status(problem.status);
    for (name, value) in problem.headers() {
        response = response.header(name, value);
    }
    response.body(body).expect("a problem is a valid response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_needs_one_valid_host() {
        let request = |hosts: &[&[u8]]| {
            let mut builder = http::Request::builder().uri("/api/webhooks/stripe");
            for host in hosts {
                builder = builder.header(
                    http::header::HOST,
                    http::HeaderValue::from_bytes(host).unwrap(),
                );
            }
            builder.body(()).unwrap()
        };
        assert!(host_problem(&request(&[b"inbox.example"])).is_none());
        for bad in [&[][..], &[b"a".as_slice(), b"b"], &[b"caf\xc3\xa9"]] {
            assert_eq!(host_problem(&request(bad)).map(|p| p.status), Some(400));
        }
        let absolute = http::Request::builder()
            .uri("http://inbox.example/api/webhooks/stripe")
            .body(())
            .unwrap();
        assert!(host_problem(&absolute).is_none());
    }
}
