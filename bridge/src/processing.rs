//! Processing webhooks: take one (compare-and-swap into `processing` with a lease), run
//! the processor component, record the outcome (compare-and-swap again). The worker loop
//! runs this on everything the store says is due.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use inbox_core::config::{Config, ConfigError, parsed};
use inbox_core::lifecycle::{Outcome, RetryPolicy, Transition};
use inbox_core::{State, Status, Webhook};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;

use crate::engine::Runtime;
use crate::store::{Store, StoreError};

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

pub fn now_ms() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970");
    i64::try_from(now.as_millis()).expect("milliseconds fit in i64")
}

/// Takes `id` if it is due, processes it and records the outcome. Returns the state it
/// ended in, or `None` if it was not ours to process (not due, or another worker won).
pub async fn process_one(
    runtime: &Runtime,
    store: &dyn Store,
    id: &str,
    settings: &Settings,
) -> Result<Option<State>, StoreError> {
    let Some(status) = store.status(id).await? else {
        return Ok(None);
    };
    let Ok(claimed) = status.claim(now_ms(), settings.lease.as_millis() as u64) else {
        return Ok(None);
    };
    let claim = Transition {
        status: claimed.clone(),
        dead_letter: None,
    };
    if !store.swap_status(id, status.version, &claim).await? {
        return Ok(None);
    }
    let webhook = store
        .webhook(id)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("webhook {id} has a status but no item")))?;

    let started = std::time::Instant::now();
    let outcome = runtime.process(&webhook, claimed.retries).await;
    let transition = claimed
        .finish(&outcome, &settings.policy, now_ms())
        .expect("a claimed status is processing");
    if !store.swap_status(id, claimed.version, &transition).await? {
        tracing::warn!(
            id,
            "the lease expired before the outcome was recorded; the attempt is discarded"
        );
        return Ok(None);
    }
    log_attempt(&webhook, &claimed, &outcome, &transition, started.elapsed());
    Ok(Some(transition.status.state))
}

/// Logs how an attempt ended: one line per attempt, and an error for a dead letter.
pub fn log_attempt(
    webhook: &Webhook,
    claimed: &Status,
    outcome: &Outcome,
    transition: &Transition,
    elapsed: Duration,
) {
    let (id, origin, attempt) = (&webhook.id, &webhook.origin, claimed.retries);
    let state = transition.status.state;
    let elapsed_ms = elapsed.as_millis() as u64;
    match outcome {
        Outcome::Completed => {
            tracing::info!(id, origin, attempt, elapsed_ms, %state, "processed")
        }
        Outcome::Retry { reason, .. } | Outcome::Reject { reason } => {
            tracing::warn!(id, origin, attempt, elapsed_ms, %state, reason, "attempt failed")
        }
    }
    if state == State::OperatorRequired {
        tracing::error!(
            id,
            reason = transition.status.last_error.as_deref().unwrap_or(""),
            "dead-lettered: an operator is required"
        );
    }
}

/// Processes whatever is due, `settings.concurrency` at a time, until `stop` turns true;
/// then takes nothing new and returns once the attempts in flight have finished (each is
/// bounded by the processor's deadline). `wake` is notified when new work may have arrived;
/// the store is polled as well, for retries coming due and for webhooks captured by another
/// process.
pub async fn run_worker(
    runtime: Arc<Runtime>,
    store: Arc<dyn Store>,
    wake: Arc<Notify>,
    settings: Settings,
    mut stop: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(settings.concurrency));
    let in_flight = Arc::new(Mutex::new(HashSet::<String>::new()));
    let settings = Arc::new(settings);
    let mut attempts = JoinSet::new();
    while !*stop.borrow() {
        let woken = wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        while attempts.try_join_next().is_some() {}

        let free = permits.available_permits();
        if free > 0 {
            match store.due(now_ms(), free).await {
                Ok(ids) => {
                    for id in ids {
                        if !in_flight.lock().expect("in-flight set").insert(id.clone()) {
                            continue;
                        }
                        let permit = permits
                            .clone()
                            .acquire_owned()
                            .await
                            .expect("the semaphore stays open");
                        let (runtime, store, settings, in_flight, wake) = (
                            runtime.clone(),
                            store.clone(),
                            settings.clone(),
                            in_flight.clone(),
                            wake.clone(),
                        );
                        attempts.spawn(async move {
                            if let Err(error) =
                                process_one(&runtime, store.as_ref(), &id, &settings).await
                            {
                                tracing::error!(id, %error, "processing stopped on a store error; the lease will expire and it is retried");
                            }
                            in_flight.lock().expect("in-flight set").remove(&id);
                            drop(permit);
                            wake.notify_waiters();
                        });
                    }
                }
                Err(error) => tracing::error!(%error, "cannot read due webhooks"),
            }
        }
        tokio::select! {
            _ = woken => {}
            _ = tokio::time::sleep(settings.poll_interval) => {}
            _ = stop.changed() => {}
        }
    }
    if !attempts.is_empty() {
        tracing::info!(
            attempts = attempts.len(),
            "letting the attempts in flight finish"
        );
    }
    while attempts.join_next().await.is_some() {}
}
