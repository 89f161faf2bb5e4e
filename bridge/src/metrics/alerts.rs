//! Notices to `INBOX_ALERT_URL` ([`inbox_core::alert`]) for the events that need a person:
//! a destination opening or closing, a webhook exhausting its retries. Sent beside the
//! metrics, each on a task of its own, so an alert endpoint that is slow or down never
//! holds an attempt back; one that cannot be delivered after three tries is logged. A few
//! go at once, and past a bound of notices waiting more are dropped (and logged), so a
//! flood of exhausted webhooks does not become a flood of connections.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use inbox_core::alert::{AlertTarget, Notice};
use inbox_core::clock::now_ms;
use inbox_core::config::{Config, ConfigError};
use inbox_core::redact;

use super::event::{Event, Metrics};

/// How long one try may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Notices sent at once.
const AT_ONCE: usize = 4;
/// Notices sending or waiting to, past which a new one is dropped.
const MOST_PENDING: usize = 256;

/// `metrics`, with notices sent to the alert URL when one is configured.
pub fn with_alerts(
    metrics: Arc<dyn Metrics>,
    config: &dyn Config,
) -> Result<Arc<dyn Metrics>, ConfigError> {
    Ok(match AlertTarget::from_config(config)? {
        Some(target) => Arc::new(Alerting {
            inner: metrics,
            target: Arc::new(target),
            sending: Arc::new(Semaphore::new(AT_ONCE)),
            pending: Mutex::default(),
        }),
        None => metrics,
    })
}

struct Alerting {
    inner: Arc<dyn Metrics>,
    target: Arc<AlertTarget>,
    sending: Arc<Semaphore>,
    pending: Mutex<Vec<JoinHandle<()>>>,
}

impl Metrics for Alerting {
    fn record(&self, event: &Event<'_>) {
        self.inner.record(event);
        let Some(notice) = notice_of(event) else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.retain(|task| !task.is_finished());
        if pending.len() >= MOST_PENDING {
            tracing::error!(
                kind = notice.kind,
                pending = pending.len(),
                "too many alerts waiting to be sent; this one is dropped"
            );
            return;
        }
        let (target, sending) = (self.target.clone(), self.sending.clone());
        pending.push(runtime.spawn(async move {
            let Ok(_turn) = sending.acquire_owned().await else {
                return;
            };
            send(target, notice).await;
        }));
    }

    fn flush(&self, within: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        let pending = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        Box::pin(async move {
            // Those not done in time go on sending on their own.
            let _ = tokio::time::timeout(within, async {
                for task in pending {
                    let _ = task.await;
                }
            })
            .await;
        })
    }
}

fn notice_of(event: &Event<'_>) -> Option<Notice> {
    match event {
        Event::Circuit {
            destination,
            open: true,
            failures,
            last_error,
        } => Some(Notice::destination_opened(
            destination,
            *failures,
            *last_error,
        )),
        Event::Circuit {
            destination,
            open: false,
            ..
        } => Some(Notice::destination_closed(destination)),
        Event::DeadLettered {
            origin,
            id,
            attempts,
            reason,
        } if reason.starts_with("retries exhausted") => {
            Some(Notice::webhook_exhausted(id, origin, *attempts, reason))
        }
        _ => None,
    }
}

async fn send(target: Arc<AlertTarget>, notice: Notice) {
    let (headers, body) = target.signed(&notice, now_ms());
    let mut last = String::new();
    for wait in [0, 1_000, 5_000] {
        tokio::time::sleep(Duration::from_millis(wait)).await;
        match inbox_wasm_host::outgoing::post(&target.url, &headers, body.clone(), TIMEOUT).await {
            Ok(status) if (200..300).contains(&status) => return,
            Ok(status) => last = format!("answered {status}"),
            Err(error) => last = redact::urls_in(&format!("{error:#}")),
        }
    }
    tracing::error!(
        kind = notice.kind,
        url = redact::urls_in(&target.url),
        error = last,
        "an alert could not be delivered"
    );
}
