//! One wasmtime `Engine` for every component, compiling, the linker every component is
//! linked with, and the limits of an instance (a deadline and a memory limit).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{Cache, CacheConfig, Engine, Store};

use crate::engine_config;
use crate::precompiled;
use crate::state::HostState;

/// The epoch advances this often; deadlines are counted in these ticks.
const EPOCH_TICK: Duration = Duration::from_millis(10);

#[derive(Debug, Clone)]
pub struct Limits {
    pub capture_deadline: Duration,
    /// How capture instances are used again ([`crate::reuse`]).
    pub capture_reuse: crate::reuse::Reuse,
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

/// The engine, with a ticker thread that advances the epoch while it lives.
pub fn new(cache: CodeCache) -> Result<Engine> {
    let mut config = engine_config::config();
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

/// What every component is linked with: WASI 0.2, outgoing HTTP and configuration (the
/// interfaces [`PROVIDED`] names). What an instance may actually reach is in its
/// [`HostState`].
pub fn linker(engine: &Engine) -> Result<Linker<HostState>> {
    let mut linker = Linker::<HostState>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    crate::config::add_to_linker(&mut linker)?;
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

/// A store for one instance: its memory limit, and a deadline after which it traps.
pub fn store(engine: &Engine, state: HostState, deadline: Duration) -> Store<HostState> {
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.memory);
    set_deadline(&mut store, deadline);
    store.epoch_deadline_trap();
    store
}

/// Gives the instance in `store` `deadline` from now, for its next call.
pub fn set_deadline(store: &mut Store<HostState>, deadline: Duration) {
    store.set_epoch_deadline(ticks(deadline));
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
