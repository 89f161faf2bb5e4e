//! The processor component: a fresh instance per attempt, its `webhooks:inbox/handler`
//! export called as a typed function. Whatever it does, the attempt ends with an outcome:
//! a trap, an overrun deadline or the memory limit are a failed attempt.
//!
//! Any component of the `processor` world runs here, whatever language built it; one that
//! does not fit (another export, an import a processor is not given) is refused when the
//! host starts, naming what does not fit, rather than failing every attempt. Before each
//! attempt, in the same instance, the processor names the webhook's destination
//! (`webhooks:inbox/destinations`); one built before that interface is one destination,
//! named after its file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use inbox_core::scope::Reader;
use inbox_core::{Webhook, lifecycle, redact};
use wasmtime::component::{Component, ComponentExportIndex, Instance, InstancePre};
use wasmtime::{Engine, Store};

use crate::bindings::exports::webhooks::inbox::destinations;
use crate::bindings::exports::webhooks::inbox::handler::{GuestIndices, Outcome};
use crate::engine::{self, Limits};
use crate::state::HostState;

/// The export a processor implements.
pub const HANDLER: &str = "webhooks:inbox/handler@0.1.0";
/// The export that names a webhook's destination; a processor may lack it.
pub const DESTINATIONS: &str = "webhooks:inbox/destinations@0.1.0";
/// The longest destination name kept; a longer one is cut.
const MAX_DESTINATION_BYTES: usize = inbox_core::destination::MAX_NAME_BYTES;
/// Interfaces a processor imports only for the types they define.
const TYPES: &str = "webhooks:inbox/types@0.1.0";

pub struct ProcessorHost {
    engine: Engine,
    pre: InstancePre<HostState>,
    /// Its `process` export.
    process: ComponentExportIndex,
    /// Its `destination` export; `None` for a processor built before that interface.
    destinations: Option<ComponentExportIndex>,
    /// What such a processor's destination is called: its file's name.
    own_name: String,
    config: Arc<BTreeMap<String, String>>,
    deadline: Duration,
    max_memory_bytes: usize,
    file: ComponentFile,
}

/// The component file a host loaded.
#[derive(Debug, Clone)]
pub struct ComponentFile {
    /// The one given, or the precompiled one beside it.
    pub path: PathBuf,
    pub precompiled: bool,
    pub sha256: String,
    pub size_bytes: usize,
    pub compile_time: Duration,
    /// What it imports, as the component declares it.
    pub imports: Vec<String>,
}

/// Where an attempt would deliver a webhook, and the processor's instance that named it,
/// in which the attempt goes on: each attempt runs in one fresh instance.
pub struct Named {
    pub name: String,
    instance: Option<Asked>,
}

impl Named {
    /// A destination with no instance behind it (a processor that is not a component, or
    /// one that failed to name it).
    pub fn new(name: String) -> Named {
        Named {
            name,
            instance: None,
        }
    }
}

/// An instance that has named its destination, waiting for the attempt.
struct Asked {
    store: Store<HostState>,
    instance: Instance,
}

/// One run of the processor on a webhook (one attempt), as it went.
#[derive(Debug)]
pub struct Run {
    /// The processor's own outcome, or why the host ended the attempt.
    pub result: Result<lifecycle::Outcome, Contained>,
    /// Where the processor said the webhook goes (the processor's own name if it says
    /// nothing, or ended before it said).
    pub destination: String,
    pub instantiate_time: Duration,
    /// From the start of instantiation to the outcome.
    pub elapsed: Duration,
    /// The most linear memory the instance held.
    pub peak_memory_bytes: usize,
}

/// What the host contained: the attempt failed, the inbox did not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contained {
    /// A trap: a panic, an unreachable, the memory limit, a host call it misused.
    Trapped(String),
    /// It ran past its deadline and was interrupted.
    Deadline(Duration),
}

impl std::fmt::Display for Contained {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Contained::Trapped(why) => write!(f, "the processor failed: {why}"),
            Contained::Deadline(deadline) => write!(
                f,
                "the processor exceeded its {} ms deadline",
                deadline.as_millis()
            ),
        }
    }
}

/// An attempt as the inbox records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Processed {
    pub outcome: lifecycle::Outcome,
    pub destination: String,
}

impl Run {
    /// The outcome the attempt records: a contained failure is one to retry.
    pub fn processed(self) -> Processed {
        Processed {
            outcome: self
                .result
                .unwrap_or_else(|contained| lifecycle::Outcome::Retry {
                    reason: contained.to_string(),
                    delay_ms: None,
                }),
            destination: self.destination,
        }
    }
}

impl ProcessorHost {
    /// Compiles and links the processor at `path`; it sees only its part of `config`.
    pub fn load(
        engine: &Engine,
        path: &Path,
        config: Arc<BTreeMap<String, String>>,
        limits: &Limits,
    ) -> Result<ProcessorHost> {
        let compiled = engine::compile(engine, path)?;
        let imports = check_world(engine, &compiled.component)
            .with_context(|| format!("{} cannot run as the processor", path.display()))?;
        let names_destinations = exports(engine, &compiled.component)
            .iter()
            .any(|name| name == DESTINATIONS);
        let pre = engine::linker(engine)?
            .instantiate_pre(&compiled.component)
            .and_then(|pre| {
                // The generated bindings check the exports' signatures against the WIT here,
                // at start; each call checks `WebhookParam`'s against them again.
                GuestIndices::new(&pre)?;
                if names_destinations {
                    destinations::GuestIndices::new(&pre)?;
                }
                Ok(pre)
            })
            .map_err(anyhow::Error::from)
            .with_context(|| format!("{} cannot run as the processor", path.display()))?;
        let export = |interface: &str, name: &str| {
            let interface = compiled.component.get_export_index(None, interface)?;
            compiled.component.get_export_index(Some(&interface), name)
        };
        let process = export(HANDLER, "process").context("no `process` export")?;
        let destinations = names_destinations
            .then(|| export(DESTINATIONS, "destination"))
            .flatten();
        let own_name = path.file_stem().map_or_else(
            || "processor".to_owned(),
            |stem| stem.to_string_lossy().into_owned(),
        );
        Ok(ProcessorHost {
            engine: engine.clone(),
            pre,
            process,
            destinations,
            own_name,
            config: Arc::new(Reader::Processor.visible(&config)),
            deadline: limits.processor_deadline,
            max_memory_bytes: limits.max_memory_bytes,
            file: ComponentFile {
                path: compiled.path,
                precompiled: compiled.precompiled,
                sha256: compiled.sha256,
                size_bytes: compiled.size_bytes,
                compile_time: compiled.compile_time,
                imports,
            },
        })
    }

    pub fn file(&self) -> &ComponentFile {
        &self.file
    }

    /// Whether it names each webhook's destination (`webhooks:inbox/destinations`).
    pub fn names_destinations(&self) -> bool {
        self.destinations.is_some()
    }

    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    pub fn max_memory_bytes(&self) -> usize {
        self.max_memory_bytes
    }

    /// Where the processor would deliver `webhook`, asked of the attempt's fresh instance
    /// before the attempt is taken (the inbox may hold the webhook instead); the attempt
    /// goes on in the same instance. One that fails to answer (a trap, its deadline) is its
    /// own name and no instance: the attempt that follows asks a fresh one again, fails the
    /// same way and is recorded.
    pub async fn destination(&self, webhook: &Webhook) -> Named {
        let Some(export) = &self.destinations else {
            return Named::new(self.own_name.clone());
        };
        let state = HostState::new("processor", self.config.clone(), self.max_memory_bytes);
        let mut store = engine::store(&self.engine, state, self.deadline);
        let named = async {
            let instance = self.pre.instantiate_async(&mut store).await?;
            let (named,) = instance
                .get_typed_func::<(&WebhookParam<'_>,), (String,)>(&mut store, export)?
                .call_async(&mut store, (&WebhookParam::of(webhook),))
                .await?;
            Ok::<_, wasmtime::Error>((named, instance))
        };
        match tokio::time::timeout(self.deadline, named).await {
            Ok(Ok((named, instance))) => Named {
                name: self.destination_named(Some(named)),
                instance: Some(Asked { store, instance }),
            },
            Ok(Err(error)) => {
                tracing::warn!(
                    webhook = webhook.id,
                    error = redact::urls_in(&format!("{error:#}")),
                    "the processor failed to name the destination"
                );
                Named::new(self.own_name.clone())
            }
            Err(_) => Named::new(self.own_name.clone()),
        }
    }

    /// Runs the processor on one webhook; `attempt` starts at 1. `named` is its
    /// destination when [`destination`](Self::destination) named it already: the attempt
    /// goes on in the instance that named it, so the payload is copied into one instance.
    pub async fn process(
        &self,
        webhook: &Webhook,
        attempt: u32,
        named: Option<Named>,
    ) -> Processed {
        self.run(webhook, attempt, named).await.processed()
    }

    /// Runs the processor on one webhook, measuring the attempt; the instance names the
    /// destination too.
    pub async fn attempt(&self, webhook: &Webhook, attempt: u32) -> Run {
        self.run(webhook, attempt, None).await
    }

    async fn run(&self, webhook: &Webhook, attempt: u32, named: Option<Named>) -> Run {
        // Its own name, from a processor that names destinations, is what a failure to name
        // one gives (`destination`): it is asked again, so that the attempt fails the same
        // way and is recorded.
        let named =
            named.filter(|named| self.destinations.is_none() || named.name != self.own_name);
        let (mut destination, asked) = match named {
            Some(Named { name, instance }) => (Some(name), instance),
            None => (None, None),
        };
        let asked_already = destination.is_some();
        let started = Instant::now();
        let mut instantiate_time = Duration::ZERO;
        let (mut store, instance) = match asked {
            Some(Asked {
                mut store,
                instance,
            }) => {
                engine::set_deadline(&mut store, self.deadline);
                (store, Some(instance))
            }
            // A processor is the user's code: no store, and no requests to the app itself.
            None => {
                let state = HostState::new("processor", self.config.clone(), self.max_memory_bytes);
                (engine::store(&self.engine, state, self.deadline), None)
            }
        };
        let run = async {
            let instance = match instance {
                Some(instance) => instance,
                None => {
                    let instance = self.pre.instantiate_async(&mut store).await?;
                    instantiate_time = started.elapsed();
                    instance
                }
            };
            let param = WebhookParam::of(webhook);
            if let Some(export) = self.destinations.as_ref().filter(|_| !asked_already) {
                let (named,) = instance
                    .get_typed_func::<(&WebhookParam<'_>,), (String,)>(&mut store, export)?
                    .call_async(&mut store, (&param,))
                    .await?;
                destination = Some(named);
            }
            let (outcome,) = instance
                .get_typed_func::<(&WebhookParam<'_>, u32), (Outcome,)>(&mut store, &self.process)?
                .call_async(&mut store, (&param, attempt))
                .await?;
            Ok::<_, wasmtime::Error>(outcome)
        };
        let result = match tokio::time::timeout(self.deadline, run).await {
            Ok(Ok(outcome)) => Ok(outcome_from_wit(outcome)),
            Ok(Err(error)) => {
                let error = anyhow::Error::from(error);
                Err(match error.downcast_ref::<wasmtime::Trap>() {
                    Some(wasmtime::Trap::Interrupt) => Contained::Deadline(self.deadline),
                    _ => {
                        // With the wasm backtrace, which the recorded reason leaves out.
                        tracing::warn!(
                            webhook = webhook.id,
                            error = redact::urls_in(&format!("{error:#}")),
                            "the processor trapped"
                        );
                        Contained::Trapped(redact::urls_in(&engine::describe_trap(&error)))
                    }
                })
            }
            Err(_) => Err(Contained::Deadline(self.deadline)),
        };
        Run {
            result,
            destination: self.destination_named(destination),
            instantiate_time,
            elapsed: started.elapsed(),
            peak_memory_bytes: store.data().peak_memory_bytes(),
        }
    }
}

impl ProcessorHost {
    /// The name a processor gave, as the inbox keeps it: with any URL in it shown without
    /// its secrets, and not too long; its own name if it gave none.
    fn destination_named(&self, named: Option<String>) -> String {
        let Some(named) = named.map(|name| redact::urls_in(name.trim())) else {
            return self.own_name.clone();
        };
        if named.is_empty() {
            return self.own_name.clone();
        }
        let mut end = named.len().min(MAX_DESTINATION_BYTES);
        while !named.is_char_boundary(end) {
            end -= 1;
        }
        named[..end].to_owned()
    }
}

/// The WIT `webhook` record, lowered from the host's webhook as it is: the payload goes
/// into the instance's memory straight from where the host holds it. (The generated
/// bindings' record owns its fields, so the host's webhook had to be cloned into one.)
#[derive(wasmtime::component::ComponentType, wasmtime::component::Lower)]
#[component(record)]
struct WebhookParam<'a> {
    #[component(name = "id")]
    id: &'a str,
    #[component(name = "origin")]
    origin: &'a str,
    #[component(name = "event-type")]
    event_type: &'a str,
    #[component(name = "provider-timestamp")]
    provider_timestamp: Option<i64>,
    #[component(name = "received-at")]
    received_at: i64,
    #[component(name = "idempotency-key")]
    idempotency_key: &'a str,
    #[component(name = "headers")]
    headers: &'a [(String, String)],
    #[component(name = "payload")]
    payload: &'a [u8],
}

impl<'a> WebhookParam<'a> {
    fn of(webhook: &'a Webhook) -> WebhookParam<'a> {
        WebhookParam {
            id: &webhook.id,
            origin: &webhook.origin,
            event_type: &webhook.event_type,
            provider_timestamp: webhook.provider_timestamp,
            received_at: webhook.received_at,
            idempotency_key: &webhook.idempotency_key,
            headers: &webhook.headers,
            payload: &webhook.payload,
        }
    }
}

fn exports(engine: &Engine, component: &Component) -> Vec<String> {
    component
        .component_type()
        .exports(engine)
        .map(|(name, _)| name.to_owned())
        .collect()
}

/// Checks that `component` is of the `processor` world: it exports [`HANDLER`] and imports
/// nothing a processor is not given. Its imports, when it fits.
fn check_world(engine: &Engine, component: &Component) -> Result<Vec<String>> {
    let ty = component.component_type();
    let exports = exports(engine, component);
    let imports: Vec<String> = ty
        .imports(engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    let mut problems = Vec::new();
    if !exports.iter().any(|name| name == HANDLER) {
        problems.push(format!(
            "it does not export {HANDLER} (it exports: {})",
            listed(&exports)
        ));
    }
    let refused: Vec<String> = imports
        .iter()
        .filter(|name| !engine::is_provided(name) && name.as_str() != TYPES)
        .cloned()
        .collect();
    if !refused.is_empty() {
        problems.push(format!(
            "it imports {}, which a processor is not given (a processor may import WASI 0.2: \
             cli, clocks, filesystem, io, random, sockets and http; and \
             wasi:config/store@0.2.0-draft-2024-09-27)",
            listed(&refused)
        ));
    }
    if !problems.is_empty() {
        bail!(
            "{}; build it for the `processor` world of wit/inbox.wit",
            problems.join("; ")
        );
    }
    Ok(imports)
}

fn listed(names: &[String]) -> String {
    if names.is_empty() {
        "nothing".to_owned()
    } else {
        names.join(", ")
    }
}

/// The processor's answer, as the core's outcome. Its reason is the user's code's own
/// text, stored and shown to operators: any URL in it is shown without its secrets.
fn outcome_from_wit(outcome: Outcome) -> lifecycle::Outcome {
    match outcome {
        Outcome::Completed => lifecycle::Outcome::Completed,
        Outcome::Retry(request) => lifecycle::Outcome::Retry {
            reason: redact::urls_in(&request.reason),
            delay_ms: request.delay_ms,
        },
        Outcome::Reject(reason) => lifecycle::Outcome::Reject {
            reason: redact::urls_in(&reason),
        },
    }
}
