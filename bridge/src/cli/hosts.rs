//! The configuration, checked, and the engine that loads the components into their hosts.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, bail};
use inbox_core::config::{CaptureLimits, Config, parsed};
use inbox_stores::WebhookStore;
use inbox_wasm_host::reuse::Reuse;
use inbox_wasm_host::{CaptureHost, ComponentPaths, Limits, ProcessorHost};

use super::environment::Environment;
use crate::settings::Settings;

pub struct Hosts {
    pub settings: Settings,
    limits: Limits,
    engine: inbox_wasm_host::Engine,
    paths: ComponentPaths,
    config: Arc<std::collections::BTreeMap<String, String>>,
}

impl Hosts {
    /// Refuses to start on settings the components would refuse at every request.
    pub fn prepare(env: &Environment, paths: ComponentPaths) -> Result<Hosts> {
        let config = env.config.as_ref();
        let settings = Settings::from_config(config)?;
        CaptureLimits::from_config(config)?;
        inbox_core::provider::Source::check_all(config)?;
        inbox_core::forward::Demo::from_config(config)?;
        inbox_core::capture::AllowedHosts::from_config(config)?;
        if let Some(url) = config.get("forward_url") {
            inbox_core::forward::Target::parse(url)?;
        }
        let mut limits = instance_limits(config, &settings)?;
        limits.capture_reuse = capture_reuse(config, paths.shipped_capture)?;
        inbox_wasm_host::engine_config::fits_the_pool(settings.concurrency)?;
        Ok(Hosts {
            settings,
            limits,
            engine: inbox_wasm_host::engine::new(inbox_wasm_host::engine::CodeCache::OnDisk)?,
            paths,
            config: env.config.clone(),
        })
    }

    /// Gives the components `key` = `default` unless the operator set it (a blank value is
    /// not set); returns the value they see. Only the components loaded after see it.
    pub fn default_setting(&mut self, key: &str, default: String) -> String {
        let value = Arc::make_mut(&mut self.config)
            .entry(key.to_owned())
            .or_default();
        if value.trim().is_empty() {
            *value = default;
        }
        value.clone()
    }

    pub fn capture(&self, store: Arc<dyn WebhookStore>) -> Result<Arc<CaptureHost>> {
        CaptureHost::load(
            &self.engine,
            &self.paths.capture,
            self.paths.store.as_ref(),
            self.config.clone(),
            store,
            &self.limits,
        )
    }

    pub fn processor(&self) -> Result<Arc<ProcessorHost>> {
        let processor = ProcessorHost::load(
            &self.engine,
            &self.paths.processor,
            self.config.clone(),
            &self.limits,
        )?;
        Ok(Arc::new(processor))
    }
}

/// The deadlines and memory limit of the component instances.
pub fn instance_limits(config: &dyn Config, settings: &Settings) -> Result<Limits> {
    Ok(Limits {
        capture_deadline: Duration::from_millis(parsed(config, "capture_timeout_ms", 10_000)?),
        processor_deadline: settings.processor_timeout,
        max_memory_bytes: settings.component_memory_bytes,
        capture_reuse: Reuse::NEVER,
    })
}

/// How capture instances are used again: by default up to 1,000 requests each, waiting at
/// most 10 s for the next. A capture component the operator chose is not known to keep
/// nothing between requests, so it gets a fresh instance for each unless
/// `INBOX_CAPTURE_REUSE_COUNT` is set.
fn capture_reuse(config: &dyn Config, shipped: bool) -> Result<Reuse> {
    let default_uses = if shipped { 1_000 } else { 1 };
    let max_uses: u32 = parsed(config, "capture_reuse_count", default_uses)?;
    if max_uses == 0 {
        bail!("INBOX_CAPTURE_REUSE_COUNT must be at least 1 (1: a fresh instance per request)");
    }
    Ok(Reuse {
        max_uses,
        idle_timeout: Duration::from_millis(parsed(config, "capture_idle_timeout_ms", 10_000)?),
    })
}
