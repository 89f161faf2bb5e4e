//! `inbox check-processor`: the conformance report of a processor component.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use super::environment::Environment;
use super::hosts::instance_limits;
use crate::conformance;
use crate::settings::Settings;

#[derive(Args)]
pub struct CheckProcessor {
    /// The processor component (.wasm).
    path: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// The processor does not forward to forward_url: only check that it returns an
    /// outcome within its deadline and memory, not what each destination answer means.
    #[arg(long)]
    without_destination: bool,
}

impl CheckProcessor {
    pub async fn run(self, env: &Environment) -> Result<()> {
        let forwarding = if self.without_destination {
            conformance::Forwarding::Unused
        } else {
            conformance::Forwarding::Required
        };
        let config = env.config.as_ref().clone();
        let limits = instance_limits(&config, &Settings::from_config(&config)?)?;
        // Compiled afresh, as a new machine would: the report gives the real cost.
        let engine = inbox_wasm_host::engine::new(inbox_wasm_host::engine::CodeCache::Off)?;
        let report = conformance::check(&engine, &self.path, config, &limits, forwarding).await?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print!("{}", report.render());
        }
        if !report.passed {
            std::process::exit(1);
        }
        Ok(())
    }
}
