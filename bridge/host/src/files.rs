//! Where the component files are: given on the command line or in the environment, next
//! to the `inbox` executable (a deployment), or where the workspace's build puts them.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::precompiled;

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
            if let (Some(capture), Some(processor)) = (
                component_in(candidate, "inbox_capture"),
                component_in(candidate, "inbox_processor"),
            ) {
                return Ok(ComponentPaths {
                    capture,
                    processor,
                    store: None,
                });
            }
        }
        bail!(
            "no components found beside {}; build them with scripts/run (or scripts/test), or pass --capture and --processor",
            exe.display()
        )
    }
}

/// `dir/<stem>.wasm` (whose precompiled form beside it a host prefers), or
/// `dir/<stem>.cwasm` where only that was shipped.
fn component_in(dir: &Path, stem: &str) -> Option<PathBuf> {
    [
        dir.join(stem).with_extension("wasm"),
        dir.join(stem).with_extension(precompiled::EXTENSION),
    ]
    .into_iter()
    .find(|path| path.is_file())
}
