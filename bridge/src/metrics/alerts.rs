//! Notices to `INBOX_ALERT_URL` ([`inbox_core::alert`]) for the events that need a person:
//! a destination opening or closing, a webhook exhausting its retries. Sent beside the
//! metrics, each on a task of its own, so an alert endpoint that is slow or down never
//! holds an attempt back; one that cannot be delivered after three tries is logged.

use std::sync::Arc;
use std::time::Duration;

use inbox_core::alert::{AlertTarget, Notice};
use inbox_core::clock::now_ms;
use inbox_core::config::{Config, ConfigError};
use inbox_core::redact;

use super::event::{Event, Metrics};

/// How long one try may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// `metrics`, with notices sent to the alert URL when one is configured.
pub fn with_alerts(
    metrics: Arc<dyn Metrics>,
    config: &dyn Config,
) -> Result<Arc<dyn Metrics>, ConfigError> {
    Ok(match AlertTarget::from_config(config)? {
        Some(target) => Arc::new(Alerting {
            inner: metrics,
            target: Arc::new(target),
        }),
        None => metrics,
    })
}

struct Alerting {
    inner: Arc<dyn Metrics>,
    target: Arc<AlertTarget>,
}

impl Metrics for Alerting {
    fn record(&self, event: &Event<'_>) {
        self.inner.record(event);
        if let Some(notice) = notice_of(event)
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(send(self.target.clone(), notice));
        }
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
