//! What operators graph and alert on, named once for every host: webhooks received,
//! duplicates, refusals by reason, attempts by outcome, how long attempts take and how
//! long a webhook waits to be delivered, dead letters, and the backlog by state.
//!
//! `inbox serve` keeps them for Prometheus ([`Prometheus`], on its own listen address);
//! the Lambda functions write each as a line in CloudWatch's embedded metric format
//! ([`Emf`]), which CloudWatch turns into metrics from the logs, with no call to make.

use std::time::Duration;

use anyhow::Result;
use inbox_core::State;
use inbox_core::capture::WEBHOOKS_PATH;
use inbox_core::listing::Filter;
use inbox_stores::WebhookStore;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use serde_json::{Value, json};

/// Something to count.
#[derive(Debug, Clone, PartialEq)]
pub enum Event<'a> {
    /// A delivery stored (`202`).
    Received { origin: &'a str },
    /// A redelivery of a webhook already stored (`200`).
    Duplicate { origin: &'a str },
    /// A delivery refused, and why (by its status).
    Refused { reason: Reason },
    /// An attempt ended, leaving the webhook in `state`, after `took`.
    Attempt {
        origin: &'a str,
        state: State,
        took: Duration,
    },
    /// A webhook completed, `waited` after it was received.
    Delivered { origin: &'a str, waited: Duration },
    /// A webhook needs an operator.
    DeadLettered { origin: &'a str },
}

/// Why a delivery was refused, from its status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Reason {
    malformed,
    unauthenticated,
    unknown_origin,
    method_not_allowed,
    timeout,
    too_large,
    not_json,
    headers_too_large,
    unavailable,
    other,
}

impl Reason {
    fn of(status: u16) -> Reason {
        match status {
            400 => Reason::malformed,
            401 | 403 => Reason::unauthenticated,
            404 => Reason::unknown_origin,
            405 => Reason::method_not_allowed,
            408 => Reason::timeout,
            413 => Reason::too_large,
            415 => Reason::not_json,
            431 => Reason::headers_too_large,
            503 => Reason::unavailable,
            _ => Reason::other,
        }
    }

    fn name(self) -> String {
        format!("{self:?}")
    }
}

/// What a delivery's answer counts as: `POST /api/webhooks/{origin}` only (the admin API
/// and the console are not deliveries).
pub fn of_delivery<'a>(method: &str, path: &'a str, status: u16) -> Option<Event<'a>> {
    let origin = path.strip_prefix(WEBHOOKS_PATH)?.strip_prefix('/')?;
    if method != "POST" || origin.is_empty() || origin.contains('/') {
        return None;
    }
    Some(match status {
        202 => Event::Received { origin },
        200 => Event::Duplicate { origin },
        _ => Event::Refused {
            reason: Reason::of(status),
        },
    })
}

/// Where events go.
pub trait Metrics: Send + Sync {
    fn record(&self, event: &Event<'_>);
}

/// Where events go when nobody reads them (tests, `inbox worker` without an address).
pub struct NoMetrics;

impl Metrics for NoMetrics {
    fn record(&self, _: &Event<'_>) {}
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ByOrigin {
    origin: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ByReason {
    reason: Reason,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ByOutcome {
    origin: String,
    outcome: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ByState {
    state: String,
}

/// The metrics of `inbox serve`, in Prometheus's (OpenMetrics) text format.
pub struct Prometheus {
    registry: Registry,
    received: Family<ByOrigin, Counter>,
    duplicates: Family<ByOrigin, Counter>,
    refused: Family<ByReason, Counter>,
    attempts: Family<ByOutcome, Counter>,
    attempt_seconds: Histogram,
    delivery_seconds: Histogram,
    dead_letters: Family<ByOrigin, Counter>,
    webhooks: Family<ByState, Gauge>,
}

impl Default for Prometheus {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("inbox");
        let received = Family::<ByOrigin, Counter>::default();
        let duplicates = Family::<ByOrigin, Counter>::default();
        let refused = Family::<ByReason, Counter>::default();
        let attempts = Family::<ByOutcome, Counter>::default();
        // 1 ms to about 65 s: a processor's deadline is at most a minute or so.
        let attempt_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 17));
        // 10 ms to about 45 h: a webhook may wait out its retries for hours.
        let delivery_seconds = Histogram::new(exponential_buckets(0.01, 2.0, 25));
        let dead_letters = Family::<ByOrigin, Counter>::default();
        let webhooks = Family::<ByState, Gauge>::default();
        registry.register(
            "webhooks_received",
            "Deliveries stored (202)",
            received.clone(),
        );
        registry.register(
            "webhooks_duplicate",
            "Redeliveries of a webhook already stored (200)",
            duplicates.clone(),
        );
        registry.register(
            "webhooks_refused",
            "Deliveries refused, by reason; nothing was stored",
            refused.clone(),
        );
        registry.register(
            "attempts",
            "Processing attempts, by the state each left its webhook in",
            attempts.clone(),
        );
        registry.register_with_unit(
            "attempt_duration",
            "How long attempts took",
            Unit::Seconds,
            attempt_seconds.clone(),
        );
        registry.register_with_unit(
            "delivery_latency",
            "From a webhook's capture to its completion",
            Unit::Seconds,
            delivery_seconds.clone(),
        );
        registry.register(
            "dead_letters",
            "Webhooks that came to need an operator",
            dead_letters.clone(),
        );
        registry.register(
            "webhooks",
            "Webhooks stored, by state (read from the store at each scrape)",
            webhooks.clone(),
        );
        Prometheus {
            registry,
            received,
            duplicates,
            refused,
            attempts,
            attempt_seconds,
            delivery_seconds,
            dead_letters,
            webhooks,
        }
    }
}

impl Metrics for Prometheus {
    fn record(&self, event: &Event<'_>) {
        let origin = |origin: &str| ByOrigin {
            origin: origin.to_owned(),
        };
        match event {
            Event::Received { origin: o } => {
                self.received.get_or_create(&origin(o)).inc();
            }
            Event::Duplicate { origin: o } => {
                self.duplicates.get_or_create(&origin(o)).inc();
            }
            Event::Refused { reason } => {
                let labels = ByReason { reason: *reason };
                self.refused.get_or_create(&labels).inc();
            }
            Event::Attempt {
                origin,
                state,
                took,
            } => {
                let labels = ByOutcome {
                    origin: (*origin).to_owned(),
                    outcome: state.as_str().to_owned(),
                };
                self.attempts.get_or_create(&labels).inc();
                self.attempt_seconds.observe(took.as_secs_f64());
            }
            Event::Delivered { waited, .. } => self.delivery_seconds.observe(waited.as_secs_f64()),
            Event::DeadLettered { origin: o } => {
                self.dead_letters.get_or_create(&origin(o)).inc();
            }
        }
    }
}

impl Prometheus {
    /// The text a scrape reads, with the backlog as the store has it now.
    pub async fn scrape(&self, store: &dyn WebhookStore) -> Result<String> {
        let counts = store.counts(&Filter::default()).await?;
        for (state, n) in counts.0 {
            let labels = ByState {
                state: state.as_str().to_owned(),
            };
            self.webhooks
                .get_or_create(&labels)
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// The media type of [`Prometheus::scrape`]'s text.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The metrics of the Lambda functions: each event one line of CloudWatch's embedded
/// metric format on stdout, which Lambda sends to CloudWatch Logs and CloudWatch reads
/// as metrics of the namespace `WebhookInbox`.
pub struct Emf;

pub const EMF_NAMESPACE: &str = "WebhookInbox";

impl Metrics for Emf {
    fn record(&self, event: &Event<'_>) {
        println!("{}", emf(event, inbox_core::clock::now_ms()));
    }
}

/// A metric's name, unit and value.
type Metric = (&'static str, &'static str, Value);

/// One event in the embedded metric format: the `_aws` metadata naming the metric, its
/// unit and dimensions, and the values beside it.
pub fn emf(event: &Event<'_>, timestamp_ms: i64) -> Value {
    let (dimensions, mut values, metrics): (Vec<&str>, Value, Vec<Metric>) = match event {
        Event::Received { origin } => (
            vec!["Origin"],
            json!({ "Origin": origin }),
            vec![("WebhooksReceived", "Count", json!(1))],
        ),
        Event::Duplicate { origin } => (
            vec!["Origin"],
            json!({ "Origin": origin }),
            vec![("WebhooksDuplicate", "Count", json!(1))],
        ),
        Event::Refused { reason } => (
            vec!["Reason"],
            json!({ "Reason": reason.name() }),
            vec![("WebhooksRefused", "Count", json!(1))],
        ),
        Event::Attempt {
            origin,
            state,
            took,
        } => (
            vec!["Origin", "Outcome"],
            json!({ "Origin": origin, "Outcome": state.as_str() }),
            vec![
                ("Attempts", "Count", json!(1)),
                (
                    "AttemptDuration",
                    "Milliseconds",
                    json!(took.as_millis() as u64),
                ),
            ],
        ),
        Event::Delivered { origin, waited } => (
            vec!["Origin"],
            json!({ "Origin": origin }),
            vec![(
                "DeliveryLatency",
                "Milliseconds",
                json!(waited.as_millis() as u64),
            )],
        ),
        Event::DeadLettered { origin } => (
            vec!["Origin"],
            json!({ "Origin": origin }),
            vec![("DeadLetters", "Count", json!(1))],
        ),
    };
    let definitions: Vec<Value> = metrics
        .iter()
        .map(|(name, unit, _)| json!({ "Name": name, "Unit": unit }))
        .collect();
    for (name, _, value) in metrics {
        values[name] = value;
    }
    values["_aws"] = json!({
        "Timestamp": timestamp_ms,
        "CloudWatchMetrics": [{
            "Namespace": EMF_NAMESPACE,
            "Dimensions": [dimensions],
            "Metrics": definitions,
        }],
    });
    values
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliveries_count_by_their_answer_and_nothing_else_does() {
        assert_eq!(
            of_delivery("POST", "/api/webhooks/stripe", 202),
            Some(Event::Received { origin: "stripe" })
        );
        assert_eq!(
            of_delivery("POST", "/api/webhooks/stripe", 200),
            Some(Event::Duplicate { origin: "stripe" })
        );
        assert_eq!(
            of_delivery("POST", "/api/webhooks/nope", 404),
            Some(Event::Refused {
                reason: Reason::unknown_origin
            })
        );
        assert_eq!(
            of_delivery("POST", "/api/webhooks/stripe", 401),
            Some(Event::Refused {
                reason: Reason::unauthenticated
            })
        );
        for (method, path) in [
            ("GET", "/api/webhooks/stripe"),
            ("POST", "/api/webhooks/0b1e/replay"),
            ("GET", "/api/webhooks"),
            ("GET", "/console"),
            ("POST", "/demo/send-webhook"),
        ] {
            assert_eq!(of_delivery(method, path, 200), None, "{method} {path}");
        }
    }

    #[test]
    fn prometheus_text_names_each_metric_with_its_labels() {
        let metrics = Prometheus::default();
        metrics.record(&Event::Received { origin: "stripe" });
        metrics.record(&Event::Received { origin: "stripe" });
        metrics.record(&Event::Refused {
            reason: Reason::unauthenticated,
        });
        metrics.record(&Event::Attempt {
            origin: "stripe",
            state: State::Failed,
            took: Duration::from_millis(30),
        });
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &metrics.registry).unwrap();
        assert!(
            text.contains("inbox_webhooks_received_total{origin=\"stripe\"} 2"),
            "{text}"
        );
        assert!(text.contains("inbox_webhooks_refused_total{reason=\"unauthenticated\"} 1"));
        assert!(text.contains("inbox_attempts_total{origin=\"stripe\",outcome=\"failed\"} 1"));
        assert!(text.contains("inbox_attempt_duration_seconds_count 1"));
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn emf_lines_carry_their_metadata_and_values() {
        let line = emf(
            &Event::Attempt {
                origin: "github",
                state: State::OperatorRequired,
                took: Duration::from_millis(1500),
            },
            1_700_000_000_000,
        );
        assert_eq!(line["Origin"], "github");
        assert_eq!(line["Outcome"], "operator_required");
        assert_eq!(line["Attempts"], 1);
        assert_eq!(line["AttemptDuration"], 1500);
        let meta = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(meta["Namespace"], EMF_NAMESPACE);
        assert_eq!(meta["Dimensions"], json!([["Origin", "Outcome"]]));
        assert_eq!(
            meta["Metrics"][1],
            json!({ "Name": "AttemptDuration", "Unit": "Milliseconds" })
        );
        assert_eq!(line["_aws"]["Timestamp"], 1_700_000_000_000_i64);
    }
}
