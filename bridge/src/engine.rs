//! One wasmtime `Engine`; the components compiled once and pre-linked; a fresh instance,
//! with a deadline and a memory limit, for every request and every processing attempt.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use hyper_util::server::graceful::GracefulShutdown;
use inbox_core::{Webhook, lifecycle};
use wasmtime::component::{Component, InstancePre, Linker};
use wasmtime::{Cache, CacheConfig, Engine, Store};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::bindings::exports::webhooks::inbox::handler::GuestIndices as ProcessorIndices;
use crate::bindings::{spin, wasi, webhooks};
use crate::host::{self, HostState};
use crate::outgoing::SelfApp;
use crate::store::Store as InboxStore;

/// The epoch advances this often; deadlines are counted in these ticks.
const EPOCH_TICK: Duration = Duration::from_millis(10);

#[derive(Debug, Clone)]
pub struct Limits {
    pub capture_deadline: Duration,
    pub processor_deadline: Duration,
    pub max_memory_bytes: usize,
}

/// Where the component files are.
#[derive(Debug, Clone)]
pub struct ComponentPaths {
    pub capture: PathBuf,
    pub processor: PathBuf,
    /// A store component for capture to store through, as Spin composes one with it
    /// (spin.toml); without one, capture uses the host's store.
    pub store: Option<StoreComponent>,
}

#[derive(Debug, Clone)]
pub struct StoreComponent {
    pub path: PathBuf,
    /// The database it gets as Spin's `default` (`spin:sqlite`).
    pub sqlite: PathBuf,
}

/// The store interface a capture component imports and a store component exports.
const STORE_INTERFACE: &str = "webhooks:inbox/store@0.1.0";
const STORE_FUNCTIONS: [&str; 5] = [
    "capture",
    "get-webhook",
    "get-status",
    "list-webhooks",
    "replay",
];

impl ComponentPaths {
    /// Next to the `inbox` executable (a deployment), or where the workspace's build puts
    /// them (`target/wasm32-wasip2/release`, beside `target/<profile>/inbox`).
    pub fn beside_executable() -> Result<ComponentPaths> {
        let exe = std::env::current_exe().context("cannot locate the inbox executable")?;
        let dir = exe.parent().context("the executable has no directory")?;
        let candidates = [
            dir.to_path_buf(),
            dir.join("components"),
            dir.join("../wasm32-wasip2/release"),
        ];
        for candidate in &candidates {
            let paths = ComponentPaths {
                capture: candidate.join("inbox_capture.wasm"),
                processor: candidate.join("inbox_processor.wasm"),
                store: None,
            };
            if paths.capture.is_file() && paths.processor.is_file() {
                return Ok(paths);
            }
        }
        bail!(
            "no components found beside {}; build them with scripts/run (or scripts/test), or pass --capture and --processor",
            exe.display()
        )
    }
}

pub struct Runtime {
    engine: Engine,
    capture: ProxyPre<HostState>,
    /// Instantiated before each capture instance, in its store, when capture goes through it.
    store_component: Option<(InstancePre<HostState>, Arc<PathBuf>)>,
    processor: (
        wasmtime::component::InstancePre<HostState>,
        ProcessorIndices,
    ),
    config: Arc<BTreeMap<String, String>>,
    store: Arc<dyn InboxStore>,
    limits: Limits,
}

/// Whether a capture instance may send requests to the app itself (`self.alt`): the
/// requests it receives from outside may, the ones it serves for itself may not, so an app
/// calling itself cannot loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SelfRequests {
    Allowed,
    Denied,
}

impl Runtime {
    pub fn load(
        paths: &ComponentPaths,
        config: Arc<BTreeMap<String, String>>,
        store: Arc<dyn InboxStore>,
        limits: Limits,
    ) -> Result<Arc<Runtime>> {
        let mut engine_config = wasmtime::Config::new();
        engine_config.epoch_interruption(true);
        // Compiled code is cached on disk, keyed by the component's bytes and the engine.
        match Cache::new(CacheConfig::new()) {
            Ok(cache) => {
                engine_config.cache(Some(cache));
            }
            Err(error) => tracing::warn!(%error, "compiling without a cache"),
        }
        let engine = Engine::new(&engine_config)?;
        start_epoch_ticker(&engine);

        let mut linker = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        type Own = wasmtime::component::HasSelf<HostState>;
        wasi::config::store::add_to_linker::<_, Own>(&mut linker, |state| state)?;
        let mut capture_linker = linker.clone();
        webhooks::inbox::store::add_to_linker::<_, Own>(&mut linker, |state| state)?;

        let capture_component = compile(&engine, &paths.capture)?;
        let store_component = match &paths.store {
            None => {
                capture_linker = linker.clone();
                None
            }
            Some(component) => {
                // WASI, outgoing HTTP and configuration, as capture has, plus Spin's SQLite.
                let mut store_linker = capture_linker.clone();
                spin::sqlite::sqlite::add_to_linker::<_, Own>(&mut store_linker, |state| state)?;
                let compiled = compile(&engine, &component.path)?;
                forward_store_calls(&mut capture_linker, &compiled).with_context(|| {
                    format!("{} is not a store component", component.path.display())
                })?;
                let pre = store_linker
                    .instantiate_pre(&compiled)
                    .map_err(anyhow::Error::from)
                    .with_context(|| format!("{} cannot be linked", component.path.display()))?;
                Some((pre, Arc::new(component.sqlite.clone())))
            }
        };
        let capture = capture_linker
            .instantiate_pre(&capture_component)
            .and_then(ProxyPre::new)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("{} is not a capture component", paths.capture.display()))?;
        let processor_component = compile(&engine, &paths.processor)?;
        let processor = linker
            .instantiate_pre(&processor_component)
            .and_then(|pre| {
                let indices = ProcessorIndices::new(&pre)?;
                Ok((pre, indices))
            })
            .map_err(anyhow::Error::from)
            .with_context(|| {
                format!("{} is not a processor component", paths.processor.display())
            })?;

        Ok(Arc::new(Runtime {
            engine,
            capture,
            store_component,
            processor,
            config,
            store,
            limits,
        }))
    }

    fn new_store(
        &self,
        component: &'static str,
        store: Option<Arc<dyn InboxStore>>,
        self_app: Option<SelfApp>,
        deadline: Duration,
    ) -> Store<HostState> {
        let sqlite = self.store_component.as_ref().map(|(_, db)| db.clone());
        let state = HostState::new(
            component,
            self.config.clone(),
            store,
            self.limits.max_memory_bytes,
        )
        .with_sqlite(sqlite)
        .with_self_app(self_app);
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limits);
        store.set_epoch_deadline(ticks(deadline));
        store.epoch_deadline_trap();
        store
    }

    /// Serves one HTTP request with a fresh instance of the capture component. The body
    /// is streamed from a connection (`serve_http`) or already whole (a Lambda event).
    pub async fn handle_http<B>(
        self: &Arc<Self>,
        request: hyper::Request<B>,
    ) -> Result<hyper::Response<HyperOutgoingBody>>
    where
        B: hyper::body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        self.capture(request, SelfRequests::Allowed).await
    }

    async fn capture<B>(
        self: &Arc<Self>,
        request: hyper::Request<B>,
        self_requests: SelfRequests,
    ) -> Result<hyper::Response<HyperOutgoingBody>>
    where
        B: hyper::body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        let self_app = (self_requests == SelfRequests::Allowed).then(|| {
            let runtime = self.clone();
            Arc::new(move |request| runtime.clone().capture_for_itself(request)) as SelfApp
        });
        let mut store = self.new_store(
            "capture",
            Some(self.store.clone()),
            self_app,
            self.limits.capture_deadline,
        );
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let request = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, request)?;
        let out = store.data_mut().http().new_response_outparam(sender)?;
        let pre = self.capture.clone();
        let store_component = self.store_component.as_ref().map(|(pre, _)| pre.clone());
        let deadline = self.limits.capture_deadline;
        // The guest may go on writing the body after it has set the response.
        let task = tokio::spawn(async move {
            let run = async {
                if let Some(store_component) = store_component {
                    let instance = store_component.instantiate_async(&mut store).await?;
                    store.data_mut().store_component = Some(instance);
                }
                let proxy = pre.instantiate_async(&mut store).await?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, request, out)
                    .await
            };
            tokio::time::timeout(deadline, run)
                .await
                .unwrap_or_else(|_| {
                    Err(wasmtime::Error::msg(format!(
                        "the capture component exceeded its {deadline:?} deadline"
                    )))
                })
        });
        match receiver.await {
            Ok(Ok(response)) => Ok(response),
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

    /// A request the app sends to itself (`self.alt`), served by a fresh capture instance.
    fn capture_for_itself(
        self: Arc<Self>,
        request: hyper::Request<wasmtime_wasi_http::WasiBody>,
    ) -> Pin<Box<dyn Future<Output = Result<hyper::Response<HyperOutgoingBody>>> + Send>> {
        Box::pin(async move { self.capture(request, SelfRequests::Denied).await })
    }

    /// Runs the processor on one webhook. A trap, an overrun deadline or memory limit are
    /// a failed attempt like any other: the webhook is retried within its budget.
    pub async fn process(&self, webhook: &Webhook, attempt: u32) -> lifecycle::Outcome {
        let deadline = self.limits.processor_deadline;
        let mut store = self.new_store("processor", None, None, deadline);
        let run = async {
            let (pre, indices) = &self.processor;
            let instance = pre.instantiate_async(&mut store).await?;
            indices
                .load(&mut store, &instance)?
                .call_process(&mut store, &host::webhook_to_wit(webhook.clone()), attempt)
                .await
        };
        match tokio::time::timeout(deadline, run).await {
            Ok(Ok(outcome)) => host::outcome_from_wit(outcome),
            Ok(Err(error)) => lifecycle::Outcome::Retry {
                reason: format!("the processor failed: {}", describe_trap(&error.into())),
                delay_ms: None,
            },
            Err(_) => lifecycle::Outcome::Retry {
                reason: format!(
                    "the processor exceeded its {} ms deadline",
                    deadline.as_millis()
                ),
                delay_ms: None,
            },
        }
    }
}

/// Serves HTTP/1.1 connections on `listener` with the capture component until `stop`
/// completes; then stops accepting and lets the open connections finish their requests
/// (for at most `grace`).
pub async fn serve_http(
    runtime: Arc<Runtime>,
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
        let runtime = runtime.clone();
        let service = hyper::service::service_fn(move |request| {
            let runtime = runtime.clone();
            async move {
                let method = request.method().clone();
                let path = request.uri().path().to_owned();
                let started = std::time::Instant::now();
                let response = match runtime.handle_http(request).await {
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

pub fn internal_error() -> hyper::Response<HyperOutgoingBody> {
    use http_body_util::BodyExt;
    let problem = inbox_core::Problem::new(
        500,
        "Internal Server Error",
        "the request could not be handled",
    );
    let body = http_body_util::Full::new(bytes::Bytes::from(problem.to_json()))
        .map_err(|never| match never {})
        .boxed_unsync();
    hyper::Response::builder()
        .status(500)
        .header("content-type", inbox_core::Problem::CONTENT_TYPE)
        .body(body)
        .expect("a static response is valid")
}

/// Defines the capture component's store imports as calls into the store component's
/// exports, in the same wasmtime store: the composition Spin makes of the two.
fn forward_store_calls(linker: &mut Linker<HostState>, store_component: &Component) -> Result<()> {
    let (_, interface) = store_component
        .get_export(None, STORE_INTERFACE)
        .with_context(|| format!("it does not export {STORE_INTERFACE}"))?;
    let mut imports = linker.instance(STORE_INTERFACE)?;
    for name in STORE_FUNCTIONS {
        let (_, export) = store_component
            .get_export(Some(&interface), name)
            .with_context(|| format!("it does not export {STORE_INTERFACE}#{name}"))?;
        imports.func_new_async(name, move |mut store, _, params, results| {
            Box::new(async move {
                let instance = store.data().store_component.ok_or_else(|| {
                    wasmtime::Error::msg("the store component is instantiated before capture")
                })?;
                let func = instance
                    .get_func(&mut store, export)
                    .ok_or_else(|| wasmtime::Error::msg("the store component lost an export"))?;
                func.call_async(&mut store, params, results).await
            })
        })?;
    }
    Ok(())
}

fn compile(engine: &Engine, path: &Path) -> Result<Component> {
    let started = std::time::Instant::now();
    let component = Component::from_file(engine, path)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("cannot load the component {}", path.display()))?;
    tracing::info!(path = %path.display(), elapsed_ms = started.elapsed().as_millis() as u64, "component ready");
    Ok(component)
}

fn ticks(deadline: Duration) -> u64 {
    (deadline.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64 + 1
}

fn start_epoch_ticker(engine: &Engine) {
    let engine = engine.weak();
    std::thread::Builder::new()
        .name("epoch-ticker".into())
        .spawn(move || {
            while let Some(engine) = engine.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("the epoch thread starts");
}

fn describe_trap(error: &anyhow::Error) -> String {
    match error.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => "it ran past its deadline and was interrupted".into(),
        Some(trap) => format!("it trapped: {trap}"),
        None => format!("{error:#}"),
    }
}
