//! How processing is paced: the retry policy, an attempt's deadline and lease, how many at
//! once, how often the local worker looks. Read once from the configuration.

use std::time::Duration;

use inbox_core::config::{Config, ConfigError, parsed};
use inbox_core::lifecycle::RetryPolicy;

#[derive(Debug, Clone)]
pub struct Settings {
    pub policy: RetryPolicy,
    pub processor_timeout: Duration,
    /// Longer than the processor's deadline, so a live attempt is never retaken.
    pub lease: Duration,
    pub concurrency: usize,
    pub poll_interval: Duration,
}

impl Settings {
    pub fn from_config(config: &dyn Config) -> Result<Settings, ConfigError> {
        let timeout_ms: u64 = parsed(config, "processor_timeout_ms", 30_000)?;
        let concurrency: usize = parsed(config, "worker_concurrency", 8)?;
        if timeout_ms == 0 || concurrency == 0 {
            return Err(ConfigError(
                "INBOX_PROCESSOR_TIMEOUT_MS and INBOX_WORKER_CONCURRENCY must be positive".into(),
            ));
        }
        Ok(Settings {
            policy: RetryPolicy::from_config(config)?,
            processor_timeout: Duration::from_millis(timeout_ms),
            lease: Duration::from_millis(timeout_ms + (timeout_ms / 5).max(1_000)),
            concurrency,
            poll_interval: Duration::from_millis(parsed(config, "worker_poll_ms", 200)?),
        })
    }
}
