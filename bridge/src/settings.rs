//! How processing is paced: the retry policy, an attempt's deadline and lease, how many at
//! once, how often the local worker looks, what the sweep on AWS picks up. Read once from
//! the configuration.

use std::time::Duration;

use inbox_core::config::{CaptureLimits, Config, ConfigError, parsed};
use inbox_core::destination::Breaker;
use inbox_core::lifecycle::RetryPolicy;
use inbox_core::pacing::Pacing;

use crate::budget::{BodyBudget, budget_bytes};

#[derive(Debug, Clone)]
pub struct Settings {
    pub policy: RetryPolicy,
    pub processor_timeout: Duration,
    /// Longer than the processor's deadline, so a live attempt is never retaken.
    pub lease: Duration,
    pub concurrency: usize,
    /// The memory a component instance may grow to, all its linear memories together.
    pub component_memory_bytes: usize,
    pub poll_interval: Duration,
    /// How long past due a webhook waits before the scheduled sweep on AWS requeues it: what
    /// the stream and the failed queue deliver in time is left to them.
    pub sweep_grace: Duration,
    /// The most webhooks one sweep requeues (and one run of the schedule wakes).
    pub sweep_limit: usize,
    /// How far ahead the scheduled function on AWS looks for webhooks whose wait is too long
    /// for the failed queue to carry: longer than the schedule's period (5 minutes in the
    /// template), so that none falls between two runs; at most the 15 minutes SQS can delay
    /// (`inbox lambda` refuses more).
    pub wake_ahead: Duration,
    /// When a destination opens and how it is probed.
    pub breaker: Breaker,
    /// How fast each destination is delivered to.
    pub pacing: Pacing,
    /// The most held webhooks of one destination released at a time (each look of the
    /// worker, each run of the schedule on AWS).
    pub release_batch: usize,
    /// Room for the payloads of the attempts under way (`INBOX_MAX_INFLIGHT_BODY_BYTES`,
    /// apart from capture's): shared by every clone of these settings.
    pub payloads: BodyBudget,
}

impl Settings {
    pub fn from_config(config: &dyn Config) -> Result<Settings, ConfigError> {
        let timeout_ms: u64 = parsed(config, "processor_timeout_ms", 30_000)?;
        let concurrency: usize = parsed(config, "worker_concurrency", 8)?;
        let sweep_limit: usize = parsed(config, "sweep_limit", 1_000)?;
        let wake_ahead = Duration::from_millis(parsed(config, "wake_ahead_ms", 360_000)?);
        if timeout_ms == 0 || concurrency == 0 || sweep_limit == 0 {
            return Err(ConfigError(
                "INBOX_PROCESSOR_TIMEOUT_MS, INBOX_WORKER_CONCURRENCY and INBOX_SWEEP_LIMIT must be positive"
                    .into(),
            ));
        }
        Ok(Settings {
            policy: RetryPolicy::from_config(config)?,
            processor_timeout: Duration::from_millis(timeout_ms),
            lease: Duration::from_millis(timeout_ms + (timeout_ms / 5).max(1_000)),
            concurrency,
            component_memory_bytes: parsed(
                config,
                "max_component_memory_bytes",
                component_memory_for(CaptureLimits::from_config(config)?.max_body_bytes),
            )?,
            poll_interval: Duration::from_millis(parsed(config, "worker_poll_ms", 200)?),
            sweep_grace: Duration::from_millis(parsed(config, "sweep_grace_ms", 900_000)?),
            sweep_limit,
            wake_ahead,
            breaker: Breaker::from_config(config)?,
            pacing: Pacing::from_config(config)?,
            release_batch: parsed(config, "release_batch", 500)?.max(1),
            payloads: BodyBudget::new(budget_bytes(config)?),
        })
    }
}

/// An instance's memory limit by default: room for the largest body several times over,
/// as a processor makes copies of it (its own bytes, a string of it, a request body).
/// Measured with `inbox check-processor`'s 24 MB case: the Rust processor peaks at 24 MiB,
/// the Python kit at 58 MiB, the JavaScript kit at 98 MiB.
pub fn component_memory_for(max_body_bytes: usize) -> usize {
    (64 << 20).max((32 << 20) + 4 * max_body_bytes)
}

/// What the host itself needs beside its component instances: the binary, wasmtime's
/// compiled components, the SDK clients, request and response buffers.
pub const HOST_MEMORY_BYTES: usize = 128 << 20;

impl Settings {
    /// Whether `concurrency` instances at their memory limit, and the host, fit in a
    /// function of `function_bytes`.
    pub fn fits_memory(&self, function_bytes: usize) -> Result<(), String> {
        let needed = self
            .concurrency
            .saturating_mul(self.component_memory_bytes)
            .saturating_add(HOST_MEMORY_BYTES);
        if needed <= function_bytes {
            return Ok(());
        }
        Err(format!(
            "{} attempts at once of up to {} MiB each, and {} MiB for the host, need {} MiB; the function has {} MiB (lower INBOX_WORKER_CONCURRENCY or INBOX_MAX_COMPONENT_MEMORY_BYTES, or give it more memory)",
            self.concurrency,
            self.component_memory_bytes >> 20,
            HOST_MEMORY_BYTES >> 20,
            needed >> 20,
            function_bytes >> 20
        ))
    }

    /// Whether a batch of `batch_size` records, `concurrency` at a time, each attempt held
    /// at most its lease, ends within a function `timeout`: otherwise Lambda stops the
    /// function mid-batch and the attempts left run again from their expired leases.
    pub fn fits_time(&self, batch_size: usize, timeout: Duration) -> Result<(), String> {
        let waves = batch_size.div_ceil(self.concurrency) as u32;
        let needed = self.lease.saturating_mul(waves);
        if needed <= timeout {
            return Ok(());
        }
        Err(format!(
            "a batch of {batch_size} is {waves} waves of {} attempts, each held up to {:?}: {:?}, more than the function's timeout of {:?} (lower INBOX_PROCESSOR_TIMEOUT_MS or the batch size, or raise INBOX_WORKER_CONCURRENCY or the timeout)",
            self.concurrency, self.lease, needed, timeout
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        let config: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_config(&config).unwrap()
    }

    #[test]
    fn an_instance_has_room_for_the_largest_body_by_default() {
        assert_eq!(settings(&[]).component_memory_bytes, 132 << 20);
        let lambda = settings(&[("max_body_bytes", "6291456")]);
        assert_eq!(lambda.component_memory_bytes, 64 << 20);
        let set = settings(&[("max_component_memory_bytes", "33554432")]);
        assert_eq!(set.component_memory_bytes, 32 << 20);
    }

    #[test]
    fn instances_and_the_host_must_fit_in_the_function() {
        // As the template sets them: 6 MiB bodies, 64 MiB instances.
        let lambda = ("max_body_bytes", "6291456");
        let five = settings(&[("worker_concurrency", "5"), lambda]);
        assert_eq!(five.fits_memory(512 << 20), Ok(()));
        let eight = settings(&[("worker_concurrency", "8"), lambda]);
        let problem = eight.fits_memory(512 << 20).unwrap_err();
        assert!(problem.contains("need 640 MiB"), "{problem}");
    }

    #[test]
    fn a_batch_must_end_within_the_timeout() {
        let s = settings(&[
            ("worker_concurrency", "5"),
            ("processor_timeout_ms", "20000"),
        ]);
        assert_eq!(s.lease, Duration::from_secs(24));
        assert_eq!(s.fits_time(10, Duration::from_secs(60)), Ok(()));
        assert!(
            s.fits_time(11, Duration::from_secs(60)).is_err(),
            "three waves"
        );
    }
}
