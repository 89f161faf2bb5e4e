//! Precompiled components (`.cwasm`, wasmtime's serialized form), made by `inbox compile`:
//! loading one takes milliseconds where compiling a large component (a Python or JavaScript
//! processor) takes seconds, which a Lambda cold start cannot afford.
//!
//! A host given `x.wasm` loads `x.cwasm` beside it when that is compatible (the same
//! wasmtime, engine settings and CPU) and not older than the `.wasm`; otherwise it compiles
//! the `.wasm`, saying why. Given a `.cwasm` alone, it loads that or fails saying why.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use wasmtime::component::Component;
use wasmtime::{Engine, Precompiled};

pub const EXTENSION: &str = "cwasm";

/// An engine that only compiles, for `target` (a target triple such as
/// `aarch64-unknown-linux-gnu`; this machine when `None`), with every host's settings.
pub fn compiler(target: Option<&str>) -> Result<Engine> {
    let mut config = crate::engine_config::config();
    if let Some(target) = target {
        config
            .target(target)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("cannot compile for {target}"))?;
    }
    Ok(Engine::new(&config)?)
}

/// A component written by [`precompile`].
pub struct CompiledFile {
    pub path: PathBuf,
    pub size_bytes: usize,
    pub compile_time: Duration,
}

/// Compiles the component at `wasm` into `out_dir/<stem>.cwasm`, replacing any there (by a
/// rename, so a host that is reading the old one is not disturbed).
pub fn precompile(compiler: &Engine, wasm: &Path, out_dir: &Path) -> Result<CompiledFile> {
    let bytes = std::fs::read(wasm).with_context(|| format!("cannot read {}", wasm.display()))?;
    if Engine::detect_precompiled(&bytes).is_some() {
        bail!("{} is already precompiled", wasm.display());
    }
    let stem = wasm
        .file_stem()
        .with_context(|| format!("{} has no file name", wasm.display()))?;
    let started = Instant::now();
    let compiled = compiler
        .precompile_component(&bytes)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("cannot compile {}", wasm.display()))?;
    let compile_time = started.elapsed();
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    let path = out_dir.join(stem).with_extension(EXTENSION);
    let partial = path.with_extension("cwasm.partial");
    std::fs::write(&partial, &compiled)
        .and_then(|()| std::fs::rename(&partial, &path))
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(CompiledFile {
        path,
        size_bytes: compiled.len(),
        compile_time,
    })
}

/// Whether the file at `path` is (named as) a precompiled component.
pub fn is_precompiled(path: &Path) -> bool {
    path.extension()
        .is_some_and(|extension| extension == EXTENSION)
}

/// The `.cwasm` beside the `.wasm` at `wasm` that a host should load instead, if there is
/// one and it is not older than the `.wasm` (a rebuilt `.wasm` beside a stale `.cwasm` is
/// compiled, with a warning).
pub fn beside(wasm: &Path) -> Option<PathBuf> {
    let cwasm = wasm.with_extension(EXTENSION);
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let precompiled = modified(&cwasm)?;
    match modified(wasm) {
        Some(source) if precompiled < source => {
            tracing::warn!(
                precompiled = %cwasm.display(),
                "the precompiled component is older than its .wasm; compiling the .wasm (run inbox compile again)"
            );
            None
        }
        _ => Some(cwasm),
    }
}

/// Loads the precompiled component `bytes`, read from `path`.
pub fn load(engine: &Engine, bytes: &[u8], path: &Path) -> Result<Component> {
    if Engine::detect_precompiled(bytes) != Some(Precompiled::Component) {
        bail!(
            "{} is not a precompiled component (make one with inbox compile)",
            path.display()
        );
    }
    // SAFETY: the bytes are a wasmtime artifact (checked above) that the operator put beside
    // the host, trusted as the executable is; wasmtime checks that it was made by this
    // version with these settings for this CPU, and refuses it otherwise. They are a copy
    // in memory, so a file replaced meanwhile cannot change them.
    unsafe { Component::deserialize(engine, bytes) }
        .map_err(anyhow::Error::from)
        .with_context(|| {
            format!(
                "{} was precompiled for another wasmtime, engine or CPU; precompile it again with this inbox (inbox compile)",
                path.display()
            )
        })
}
