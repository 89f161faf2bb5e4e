//! `inbox compile`: components precompiled into wasmtime's form, for the Lambda layer.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::terminal;

#[derive(Args)]
pub struct Compile {
    /// The components (.wasm).
    #[arg(required = true)]
    components: Vec<PathBuf>,
    #[arg(long)]
    out_dir: PathBuf,
    /// The machine of the host that will load them, as a target triple (e.g.
    /// aarch64-unknown-linux-gnu for Lambda's arm64); default: this one.
    #[arg(long)]
    target: Option<String>,
}

impl Compile {
    pub fn run(self) -> Result<()> {
        let compiler = inbox_wasm_host::precompiled::compiler(self.target.as_deref())?;
        let progress = terminal::progress(self.components.len(), "compiling");
        for wasm in &self.components {
            progress.set_message(wasm.display().to_string());
            let compiled =
                inbox_wasm_host::precompiled::precompile(&compiler, wasm, &self.out_dir)?;
            progress.suspend(|| {
                println!(
                    "{} -> {} ({:.1} MB, compiled in {} ms)",
                    wasm.display(),
                    compiled.path.display(),
                    compiled.size_bytes as f64 / 1e6,
                    compiled.compile_time.as_millis()
                )
            });
            progress.inc(1);
        }
        progress.finish_and_clear();
        Ok(())
    }
}
