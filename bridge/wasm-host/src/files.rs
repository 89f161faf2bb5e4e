//! Where the component files are: given on the command line or in the environment, next
//! to the `inbox` executable (a deployment), where the workspace's build puts them, or
//! where `scripts/install` puts them for an `inbox` installed with `cargo install`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::precompiled;

/// Where the component files are.
#[derive(Debug, Clone)]
pub struct ComponentPaths {
    pub capture: PathBuf,
    pub processor: PathBuf,
    /// Whether `capture` is the inbox's own component, found where the inbox keeps its
    /// components, rather than one the operator named (and the store component composed
    /// with it, if any, comes from the same place).
    pub shipped_capture: bool,
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
    /// Next to the `inbox` executable (a deployment), where the workspace's build puts
    /// them (`target/wasm32-wasip2/release`, beside `target/<profile>/inbox`), or in the
    /// user's data directory ([`installed_dir`]).
    pub fn beside_executable() -> Result<ComponentPaths> {
        let exe = std::env::current_exe().context("cannot locate the inbox executable")?;
        let dir = exe.parent().context("the executable has no directory")?;
        let candidates = [
            dir.to_path_buf(),
            dir.join("components"),
            dir.join("../wasm32-wasip2/release"),
        ]
        .into_iter()
        .chain(installed_dir(
            std::env::var_os("XDG_DATA_HOME"),
            std::env::var_os("HOME"),
        ));
        for candidate in candidates {
            if let (Some(capture), Some(processor)) = (
                component_in(&candidate, "inbox_capture"),
                component_in(&candidate, "inbox_processor"),
            ) {
                return Ok(ComponentPaths {
                    capture,
                    processor,
                    shipped_capture: true,
                    store: None,
                });
            }
        }
        bail!(
            "no components found beside {} nor in the data directory; build them with scripts/run (or scripts/test), install them with scripts/install, or pass --capture and --processor",
            exe.display()
        )
    }
}

/// Where `scripts/install` puts the components for an `inbox` on the `PATH`:
/// `$XDG_DATA_HOME/webhook-inbox/components`, by default
/// `~/.local/share/webhook-inbox/components`.
pub fn installed_dir(
    xdg_data_home: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> Option<PathBuf> {
    let data = match xdg_data_home.filter(|dir| !dir.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(home.filter(|dir| !dir.is_empty())?).join(".local/share"),
    };
    Some(data.join("webhook-inbox/components"))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installed_components_live_in_the_data_directory() {
        assert_eq!(
            installed_dir(None, Some("/home/ops".into())),
            Some(PathBuf::from(
                "/home/ops/.local/share/webhook-inbox/components"
            ))
        );
        assert_eq!(
            installed_dir(Some("/data".into()), Some("/home/ops".into())),
            Some(PathBuf::from("/data/webhook-inbox/components"))
        );
        // An empty XDG_DATA_HOME counts as unset, as the XDG specification says.
        assert_eq!(
            installed_dir(Some("".into()), Some("/h".into())),
            Some(PathBuf::from("/h/.local/share/webhook-inbox/components"))
        );
        assert_eq!(installed_dir(None, None), None);
    }
}
