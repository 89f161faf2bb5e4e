//! One wasmtime `Engine` for every component, compiling, the linker every component is
//! linked with, and the limits of an instance (a deadline and a memory limit).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Cache, CacheConfig, Engine, Store};

use crate::bindings::{spin, wasi, webhooks};
use crate::state::HostState;

/// The epoch advances this often; deadlines are counted in these ticks.
const EPOCH_TICK: Duration = Duration::from_millis(10);

#[derive(Debug, Clone)]
pub struct Limits {
    pub capture_deadline: Duration,
    pub processor_deadline: Duration,
    pub max_memory_bytes: usize,
}

/// The engine: deadlines by epoch interruption (a ticker thread advances the epoch while
/// the engine lives), compiled code cached on disk, keyed by the component's bytes.
pub fn new() -> Result<Engine> {
    let mut config = wasmtime::Config::new();
    config.epoch_interruption(true);
    match Cache::new(CacheConfig::new()) {
        Ok(cache) => {
            config.cache(Some(cache));
        }
        Err(error) => tracing::warn!(%error, "compiling without a cache"),
    }
    let engine = Engine::new(&config)?;
    start_epoch_ticker(&engine);
    Ok(engine)
}

pub fn compile(engine: &Engine, path: &Path) -> Result<Component> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot load the component {}", path.display()))?;
    compile_bytes(engine, &bytes, path)
}

/// Compiles `bytes`, read from (or made of) the component at `path`.
pub fn compile_bytes(engine: &Engine, bytes: &[u8], path: &Path) -> Result<Component> {
    let started = std::time::Instant::now();
    let component = Component::new(engine, bytes)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("cannot load the component {}", path.display()))?;
    tracing::info!(path = %path.display(), elapsed_ms = started.elapsed().as_millis() as u64, "component ready");
    Ok(component)
}

type Own = HasSelf<HostState>;

/// What every component is linked with: WASI, outgoing HTTP, configuration and the inbox's
/// store. What an instance may actually reach is in its [`HostState`].
pub fn linker(engine: &Engine) -> Result<Linker<HostState>> {
    let mut linker = Linker::<HostState>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    wasi::config::store::add_to_linker::<_, Own>(&mut linker, |state| state)?;
    webhooks::inbox::store::add_to_linker::<_, Own>(&mut linker, |state| state)?;
    Ok(linker)
}

/// Adds Spin's SQLite, for a capture component composed with the SQLite store component
/// (and only then, as Spin gives a database only to what inherits it).
pub fn add_spin_sqlite(linker: &mut Linker<HostState>) -> Result<()> {
    spin::sqlite::sqlite::add_to_linker::<_, Own>(linker, |state| state)?;
    Ok(())
}

/// A store for one instance: its memory limit, and a deadline after which it traps.
pub fn store(engine: &Engine, state: HostState, deadline: Duration) -> Store<HostState> {
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.limits);
    store.set_epoch_deadline(ticks(deadline));
    store.epoch_deadline_trap();
    store
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

/// Why a component's call failed, in an operator's words.
pub fn describe_trap(error: &anyhow::Error) -> String {
    match error.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => "it ran past its deadline and was interrupted".into(),
        Some(trap) => format!("it trapped: {trap}"),
        None => format!("{error:#}"),
    }
}
