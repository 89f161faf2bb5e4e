//! The local worker: runs an attempt on everything the store says is due, a few at a time,
//! until it is told to stop.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use inbox_core::clock::now_ms;
use inbox_core::store::release_held;
use inbox_stores::WebhookStore;
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;

use crate::attempt::{Attempter, NoFollowUp, Processor};
use crate::metrics::Metrics;
use crate::settings::Settings;

/// Processes whatever is due, `settings.concurrency` at a time, until `stop` turns true;
/// then takes nothing new and returns once the attempts in flight have finished (each is
/// bounded by the processor's deadline). `wake` is notified when new work may have arrived;
/// the store is polled as well, for retries coming due and for webhooks captured by another
/// process.
pub async fn run(
    processor: Arc<dyn Processor>,
    store: Arc<dyn WebhookStore>,
    wake: Arc<Notify>,
    settings: Settings,
    metrics: Arc<dyn Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(settings.concurrency));
    let in_flight = Arc::new(Mutex::new(HashSet::<String>::new()));
    let settings = Arc::new(settings);
    let mut attempts = JoinSet::new();
    let mut last_release = None;
    while !*stop.borrow() {
        let woken = wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        while attempts.try_join_next().is_some() {}
        if last_release.is_none_or(|at: Instant| at.elapsed() >= settings.poll_interval) {
            last_release = Some(Instant::now());
            release(store.as_ref(), &settings).await;
        }

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
                        let (processor, store, settings, in_flight, wake, metrics) = (
                            processor.clone(),
                            store.clone(),
                            settings.clone(),
                            in_flight.clone(),
                            wake.clone(),
                            metrics.clone(),
                        );
                        attempts.spawn(async move {
                            let attempts = Attempter {
                                store: store.as_ref(),
                                processor: processor.as_ref(),
                                follow_up: &NoFollowUp,
                                settings: &settings,
                                metrics: metrics.as_ref(),
                            };
                            if let Err(error) = attempts.run(&id, None).await {
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

/// Releases what the destinations let go ([`release_held`]): it is due now, and this
/// worker's next look at the store takes it.
async fn release(store: &dyn WebhookStore, settings: &Settings) {
    match release_held(store, now_ms(), settings.release_batch).await {
        Ok(released) if !released.is_empty() => {
            tracing::info!(released = released.len(), "held webhooks released")
        }
        Ok(_) => {}
        Err(error) => tracing::error!(%error, "cannot release held webhooks"),
    }
}
