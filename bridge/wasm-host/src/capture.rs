//! The capture component: an instance per HTTP request (from a connection, a Lambda event,
//! or the app calling itself), answering through wasmtime-wasi-http's proxy world. One that
//! answered whole serves a later request ([`crate::reuse`]).

use std::collections::BTreeMap;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Poll, ready};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::BodyExt;
use inbox_core::scope::Reader;
use inbox_stores::WebhookStore;
use wasmtime::{Engine, Store};
pub use wasmtime_wasi_http::Error as BodyError;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::{Proxy, ProxyPre};
pub use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::engine::{self, Limits};
use crate::files::StoreComponent;
use crate::outgoing::SelfApp;
use crate::reuse::{Kept, Used};
use crate::sqlite_connection::SpinDatabase;
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
    sqlite: Option<Arc<SpinDatabase>>,
    deadline: Duration,
    max_memory_bytes: usize,
    /// Instances waiting for their next request.
    kept: Arc<Kept<Instance>>,
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
        let sqlite = match store_component {
            Some(with) => Some(Arc::new(
                SpinDatabase::open(&with.sqlite, spin_sqlite::MAX_IDLE).with_context(|| {
                    format!("cannot open the database {}", with.sqlite.display())
                })?,
            )),
            None => None,
        };
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
            sqlite,
            deadline: limits.capture_deadline,
            max_memory_bytes: limits.max_memory_bytes,
            kept: Kept::new(limits.capture_reuse),
        }))
    }

    /// Serves one HTTP request with an instance of its own. The body is streamed from a
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
        // Only instances that may call the app are kept: the ones serving the app itself
        // may not, and are rare (the demo route).
        let kept = (self_requests == SelfRequests::Allowed).then(|| self.kept.clone());
        let (mut store, proxy, uses) = match kept.as_ref().and_then(|kept| kept.take()) {
            Some(Used { instance, uses }) => (instance.store, Some(instance.proxy), uses),
            None => (self.new_store(self_requests), None, 0),
        };
        engine::set_deadline(&mut store, self.deadline);
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
                let proxy = match proxy {
                    Some(proxy) => proxy,
                    None => {
                        tracing::debug!("a new capture instance");
                        pre.instantiate_async(&mut store).await?
                    }
                };
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, request, out)
                    .await?;
                Ok::<_, wasmtime::Error>(proxy)
            };
            let result = tokio::time::timeout(deadline, run)
                .await
                .unwrap_or_else(|_| Err(wasmtime::Error::new(DeadlineExceeded(deadline))));
            // An instance that trapped or ran out of time stopped anywhere: it is dropped.
            // One that may serve again is kept before its answer may end (the answer waits
            // to be told), so the next request on the connection finds it.
            let (result, dropped) = match (result, kept) {
                (Ok(proxy), Some(kept)) if may_serve_again(&mut store) => {
                    let instance = Instance { store, proxy };
                    let used = Used {
                        instance,
                        uses: uses + 1,
                    };
                    (Ok(()), kept.give_back(used).map(|used| used.instance.store))
                }
                (result, _) => (result.map(drop), Some(store)),
            };
            // Told before `store` is dropped: dropping it ends the body's channel, and the
            // body must know by then whether that end is the guest's.
            let _ = returned.send(result.is_ok());
            drop(dropped);
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

    /// A store for a new instance: the settings and interfaces capture gets, and the app
    /// itself to call when `self_requests` allows.
    fn new_store(self: &Arc<Self>, self_requests: SelfRequests) -> Store<HostState> {
        // Weak: kept instances, which hold this, are held by the host.
        let self_app = (self_requests == SelfRequests::Allowed).then(|| {
            let host = Arc::downgrade(self);
            Arc::new(move |request| capture_for_itself(host.clone(), request)) as SelfApp
        });
        let state = HostState::new("capture", self.config.clone(), self.max_memory_bytes)
            .with_store(self.store.clone())
            .with_store_config(self.store_config.clone())
            .with_sqlite(self.sqlite.clone())
            .with_self_app(self_app);
        engine::store(&self.engine, state, self.deadline)
    }
}

/// A request the app sends to itself (`self.alt`), served by a fresh instance.
fn capture_for_itself(
    host: Weak<CaptureHost>,
    request: http::Request<wasmtime_wasi_http::WasiBody>,
) -> Pin<Box<dyn Future<Output = Result<http::Response<HyperOutgoingBody>>> + Send>> {
    Box::pin(async move {
        let host = host.upgrade().context("the capture host has stopped")?;
        host.capture(request, SelfRequests::Denied).await
    })
}

/// A capture instance, between requests.
struct Instance {
    store: Store<HostState>,
    proxy: Proxy,
}

/// The most linear memory a capture instance may hold and still be kept: one that grew for
/// a large body gives that memory back rather than keep it while it waits.
const KEEP_MEMORY_BYTES: usize = 8 << 20;

/// Whether an instance that returned from a request may serve the next: it holds nothing
/// of this one (no resource left in its table: a request, a body, a stream, a database
/// connection), and is not one that grew for a large body.
fn may_serve_again(store: &mut Store<HostState>) -> bool {
    store.data().peak_memory_bytes() <= KEEP_MEMORY_BYTES && store.data_mut().table().is_empty()
}

/// A guest's response body that ends cleanly only if the guest's answer is whole.
/// wasmtime-wasi-http ends a response body cleanly when the instance writing it goes away
/// (a trap, a deadline) before finishing it, so a cut answer would pass for complete: a
/// `200` with half a list. This one fails instead when fewer bytes came than its
/// `Content-Length` said or when the handler did not return. A server then aborts the
/// connection and the Lambda bridge answers `500`. (A body the guest drops unfinished is
/// aborted by wasmtime-wasi-http itself; one it leaks past a normal return cannot be told
/// apart.) Its last bytes wait for the handler to return, so an instance kept for the next
/// request is kept before the client can read the end of the answer (except for an answer
/// the server sends without polling its body: `HEAD`, `204`, `304`, a length of 0).
struct Whole {
    body: HyperOutgoingBody,
    /// Whether the handler returned, once it has ended.
    handler_returned: tokio::sync::oneshot::Receiver<bool>,
    returned: Option<bool>,
    length: Option<u64>,
    sent: u64,
    /// The frame that completes `length`, waiting for the handler.
    last: Option<http_body::Frame<Bytes>>,
    body_ended: bool,
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
            returned: None,
            length,
            sent: 0,
            last: None,
            body_ended: false,
            ended: false,
        }
        .boxed_unsync()
    }

    /// Whether the handler returned; a handler that died (or a host task that did) never
    /// says it did.
    fn poll_returned(&mut self, cx: &mut std::task::Context<'_>) -> Poll<bool> {
        if self.returned.is_none() {
            let told = ready!(Pin::new(&mut self.handler_returned).poll(cx));
            self.returned = Some(told.unwrap_or(false));
        }
        Poll::Ready(self.returned == Some(true))
    }

    fn fail(&mut self, error: &str) -> Poll<Option<Result<http_body::Frame<Bytes>, BodyError>>> {
        self.ended = true;
        tracing::error!(
            sent = self.sent,
            length = self.length,
            error,
            "the capture component's answer failed"
        );
        Poll::Ready(Some(Err(BodyError::HttpResponseIncomplete)))
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
        if this.last.is_none() && !this.body_ended {
            match ready!(Pin::new(&mut this.body).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    let Some(data) = frame.data_ref() else {
                        return Poll::Ready(Some(Ok(frame)));
                    };
                    this.sent += data.len() as u64;
                    if this.length.is_none_or(|length| this.sent < length) {
                        return Poll::Ready(Some(Ok(frame)));
                    }
                    this.last = Some(frame);
                }
                Some(Err(error)) => return this.fail(&error.to_string()),
                None => this.body_ended = true,
            }
        }
        let returned = ready!(this.poll_returned(cx));
        if let Some(last) = this.last.take() {
            return match (returned, this.length == Some(this.sent)) {
                (true, true) => Poll::Ready(Some(Ok(last))),
                (false, _) => this.fail("its handler did not return"),
                (true, false) => this.fail("it ran past its Content-Length"),
            };
        }
        if returned && this.length.is_none_or(|length| this.sent == length) {
            this.ended = true;
            Poll::Ready(None)
        } else {
            this.fail("it broke off before its end")
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
