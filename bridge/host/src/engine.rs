//! One wasmtime `Engine` for every component, compiling, the linker every component is
//! linked with, and the limits of an instance (a deadline and a memory limit).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Cache, CacheConfig, Engine, Store};

use crate::bindings::{spin, wasi, webhooks};
use crate::precompiled;
use crate::state::HostState;

/// The epoch advances this often; deadlines are counted in these ticks.
const EPOCH_TICK: Duration = Duration::from_millis(10);

#[derive(Debug, Clone)]
pub struct Limits {
    pub capture_deadline: Duration,
    pub processor_deadline: Duration,
    pub max_memory_bytes: usize,
}

/// Whether compiled code is kept on disk between runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeCache {
    /// Keyed by the component's bytes (wasmtime's cache): a host starting again with the
    /// same components does not compile them again.
    OnDisk,
    /// Every start compiles: what a fresh machine, such as a Lambda container, pays.
    Off,
}

/// What every engine is made with: deadlines by epoch interruption. A precompiled
/// component must have been compiled with the same settings (wasmtime refuses it
/// otherwise), so `inbox compile` starts from these too.
pub(crate) fn config() -> wasmtime::Config {
    let mut config = wasmtime::Config::new();
    config.epoch_interruption(true);
    // Instances (their memories, tables and async stacks) come from slots reserved once and
    // reused, instead of being mapped and unmapped for every request: the unmapping's TLB
    // shootdowns across cores were the largest cost of a capture. The pool is sized far
    // above what the hosts run at once (capture requests and attempts are bounded by
    // INBOX_MAX_CONCURRENT_REQUESTS and INBOX_WORKER_CONCURRENCY); its reservations are
    // address space, touched only as instances use them.
    let mut pool = wasmtime::PoolingAllocationConfig::new();
    pool.total_component_instances(POOLED_INSTANCES)
        .total_core_instances(POOLED_INSTANCES * 16)
        .total_memories(POOLED_INSTANCES * 4)
        .total_tables(POOLED_INSTANCES * 4)
        .total_stacks(POOLED_INSTANCES)
        .max_memories_per_module(2)
        .max_tables_per_module(4)
        .table_elements(100_000)
        // A slot given back is reset by zeroing what an instance typically touches rather
        // than by returning it to the kernel, and what is returned goes back in batches:
        // each `madvise` costs a TLB flush on every core.
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(KEEP_RESIDENT / 16)
        .async_stack_keep_resident(KEEP_RESIDENT / 4)
        .decommit_batch_size(64);
    config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
    config
}

/// Component instances the pool holds at once: the hosts refuse to start with settings
/// that could run more ([`fits_the_pool`]).
pub const POOLED_INSTANCES: u32 = 512;

/// Whether `instances` at once (capture requests and processing attempts together) fit the
/// instance pool: past it, instantiation fails, which a processor would be blamed for.
pub fn fits_the_pool(instances: usize) -> Result<()> {
    // Half the pool: a capture that calls the app itself (the demo route) holds two.
    if instances > POOLED_INSTANCES as usize / 2 {
        anyhow::bail!(
            "{instances} component instances at once (INBOX_MAX_CONCURRENT_REQUESTS plus INBOX_WORKER_CONCURRENCY) is more than this host runs: at most {}",
            POOLED_INSTANCES / 2
        );
    }
    Ok(())
}
/// Bytes of each memory slot kept resident between instances.
const KEEP_RESIDENT: usize = 256 << 10;

/// The engine, with a ticker thread that advances the epoch while it lives.
pub fn new(cache: CodeCache) -> Result<Engine> {
    let mut config = config();
    if cache == CodeCache::OnDisk {
        match Cache::new(CacheConfig::new()) {
            Ok(cache) => {
                config.cache(Some(cache));
            }
            Err(error) => tracing::warn!(%error, "compiling without a cache"),
        }
    }
    let engine = Engine::new(&config)?;
    start_epoch_ticker(&engine);
    Ok(engine)
}

/// A component ready to instantiate, and the file it came from.
pub struct Compiled {
    pub component: Component,
    /// The file loaded: the one given, or the precompiled one beside it.
    pub path: PathBuf,
    /// The SHA-256 of that file, hex: which build this host runs.
    pub sha256: String,
    pub size_bytes: usize,
    /// Compiling it, or loading it when it was precompiled.
    pub compile_time: Duration,
    pub precompiled: bool,
}

/// The component at `path`: a `.cwasm` loaded as it is; a `.wasm` compiled, unless a
/// compatible `.cwasm` beside it can be loaded instead (see [`precompiled`]).
pub fn compile(engine: &Engine, path: &Path) -> Result<Compiled> {
    if precompiled::is_precompiled(path) {
        return load_precompiled(engine, path);
    }
    if let Some(cwasm) = precompiled::beside(path) {
        match load_precompiled(engine, &cwasm) {
            Ok(compiled) => return Ok(compiled),
            Err(error) => tracing::warn!(
                error = format!("{error:#}"),
                "compiling {} instead",
                path.display()
            ),
        }
    }
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot load the component {}", path.display()))?;
    compile_bytes(engine, &bytes, path)
}

fn load_precompiled(engine: &Engine, path: &Path) -> Result<Compiled> {
    let started = Instant::now();
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot load the component {}", path.display()))?;
    let component = precompiled::load(engine, &bytes, path)?;
    Ok(ready(component, path, &bytes, started.elapsed(), true))
}

/// Compiles `bytes`, read from (or made of) the component at `path`.
pub fn compile_bytes(engine: &Engine, bytes: &[u8], path: &Path) -> Result<Compiled> {
    let started = Instant::now();
    let component = Component::new(engine, bytes)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("cannot load the component {}", path.display()))?;
    Ok(ready(component, path, bytes, started.elapsed(), false))
}

fn ready(
    component: Component,
    path: &Path,
    bytes: &[u8],
    compile_time: Duration,
    precompiled: bool,
) -> Compiled {
    let compiled = Compiled {
        component,
        path: path.to_owned(),
        sha256: hex::encode(Sha256::digest(bytes)),
        size_bytes: bytes.len(),
        compile_time,
        precompiled,
    };
    tracing::info!(
        path = %path.display(),
        sha256 = compiled.sha256,
        size_bytes = compiled.size_bytes,
        precompiled,
        elapsed_ms = compile_time.as_millis() as u64,
        "component ready"
    );
    compiled
}

type Own = HasSelf<HostState>;

/// What every component is linked with: WASI 0.2, outgoing HTTP and configuration (the
/// interfaces [`PROVIDED`] names). What an instance may actually reach is in its
/// [`HostState`].
pub fn linker(engine: &Engine) -> Result<Linker<HostState>> {
    let mut linker = Linker::<HostState>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    wasi::config::store::add_to_linker::<_, Own>(&mut linker, |state| state)?;
    Ok(linker)
}

/// The interfaces [`linker`] provides, by package, and the version they are linked at.
pub const PROVIDED: &[(&str, &[&str], &str)] = &[
    (
        "wasi:cli",
        &[
            "environment",
            "exit",
            "stdin",
            "stdout",
            "stderr",
            "terminal-input",
            "terminal-output",
            "terminal-stdin",
            "terminal-stdout",
            "terminal-stderr",
        ],
        "0.2",
    ),
    ("wasi:clocks", &["monotonic-clock", "wall-clock"], "0.2"),
    ("wasi:filesystem", &["types", "preopens"], "0.2"),
    ("wasi:io", &["error", "poll", "streams"], "0.2"),
    (
        "wasi:random",
        &["random", "insecure", "insecure-seed"],
        "0.2",
    ),
    (
        "wasi:sockets",
        &[
            "network",
            "instance-network",
            "udp",
            "udp-create-socket",
            "tcp",
            "tcp-create-socket",
            "ip-name-lookup",
        ],
        "0.2",
    ),
    ("wasi:http", &["types", "outgoing-handler"], "0.2"),
    ("wasi:config", &["store"], "0.2.0-draft-2024-09-27"),
];

/// Whether an import named `namespace:package/interface@version` is in [`PROVIDED`]: the
/// same interface, at a semver-compatible version (wasmtime links any 0.2.x to 0.2.0).
pub fn is_provided(import: &str) -> bool {
    let Some((path, version)) = import.split_once('@') else {
        return false;
    };
    let Some((package, interface)) = path.split_once('/') else {
        return false;
    };
    PROVIDED.iter().any(|(provided, interfaces, compatible)| {
        *provided == package
            && interfaces.contains(&interface)
            && (version == *compatible
                || version
                    .strip_prefix(compatible)
                    .and_then(|rest| rest.strip_prefix('.'))
                    .is_some_and(|patch| {
                        !patch.is_empty() && patch.bytes().all(|b| b.is_ascii_digit())
                    }))
    })
}

/// Adds the inbox's store (`webhooks:inbox/store`), for a capture component.
pub fn add_inbox_store(linker: &mut Linker<HostState>) -> Result<()> {
    webhooks::inbox::store::add_to_linker::<_, Own>(linker, |state| state)?;
    Ok(())
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
    store.limiter(|state| &mut state.memory);
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

/// Why a component's call failed, in an operator's words (an overrun deadline is the
/// caller's to tell: it knows the deadline). The wasm backtrace wrapped around the cause is
/// left out: it is in the host's log.
pub fn describe_trap(error: &anyhow::Error) -> String {
    match error.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => format!("it trapped: {trap}"),
        None => error.root_cause().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hosts_run_at_most_half_the_pool_at_once() {
        let half = POOLED_INSTANCES as usize / 2;
        assert!(fits_the_pool(half).is_ok());
        let error = fits_the_pool(half + 1).unwrap_err().to_string();
        assert!(error.contains("INBOX_MAX_CONCURRENT_REQUESTS"), "{error}");
    }

    #[test]
    fn semver_compatible_imports_are_provided() {
        for import in [
            "wasi:cli/environment@0.2.0",
            "wasi:io/streams@0.2.9",
            "wasi:http/outgoing-handler@0.2.12",
            "wasi:config/store@0.2.0-draft-2024-09-27",
        ] {
            assert!(is_provided(import), "{import}");
        }
        for import in [
            "wasi:http/types@0.3.0",
            "wasi:http/incoming-handler@0.2.0",
            "wasi:io/streams@0.2.",
            "wasi:io/streams@0.20.1",
            "wasi:io/streams",
            "wasi:config/store@0.2.0-draft",
            "wasi:keyvalue/store@0.2.0-draft",
            "webhooks:inbox/store@0.1.0",
            "spin:sqlite/sqlite@3.0.0",
        ] {
            assert!(!is_provided(import), "{import}");
        }
    }
}
