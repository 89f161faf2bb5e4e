//! The metrics of `inbox serve` for Prometheus: a prometheus-client registry of counters,
//! histograms and the backlog gauge, the events recorded into it, and the text a scrape
//! reads.

use anyhow::Result;
use inbox_core::listing::Filter;
use inbox_core::store::destination_views;
use inbox_stores::WebhookStore;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use super::event::{Event, Metrics, Reason};

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

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ByDestination {
    destination: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ByDestinationOutcome {
    destination: String,
    outcome: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ByDestinationState {
    destination: String,
    state: String,
}

/// A destination's states, each a series of `inbox_destination_state` (1 for the one it is in).
const DESTINATION_STATES: [&str; 3] = ["closed", "open", "paused"];

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
    destination_attempts: Family<ByDestinationOutcome, Counter>,
    destination_latency: Family<ByDestination, Histogram>,
    held: Family<ByDestination, Counter>,
    circuit_changes: Family<ByDestinationState, Counter>,
    destination_state: Family<ByDestinationState, Gauge>,
    destination_held: Family<ByDestination, Gauge>,
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
        let delivery_seconds = delivery_buckets();
        let dead_letters = Family::<ByOrigin, Counter>::default();
        let webhooks = Family::<ByState, Gauge>::default();
        let destination_attempts = Family::<ByDestinationOutcome, Counter>::default();
        let destination_latency =
            Family::<ByDestination, Histogram>::new_with_constructor(delivery_buckets);
        let held = Family::<ByDestination, Counter>::default();
        let circuit_changes = Family::<ByDestinationState, Counter>::default();
        let destination_state = Family::<ByDestinationState, Gauge>::default();
        let destination_held = Family::<ByDestination, Gauge>::default();
        registry.register(
            "destination_attempts",
            "Processing attempts, by destination and the state each left its webhook in",
            destination_attempts.clone(),
        );
        registry.register_with_unit(
            "destination_delivery_latency",
            "From a webhook's capture to its completion, by destination",
            Unit::Seconds,
            destination_latency.clone(),
        );
        registry.register(
            "webhooks_held",
            "Webhooks held for their destination (open or paused) instead of attempted",
            held.clone(),
        );
        registry.register(
            "destination_circuit_changes",
            "Circuit breakers opening (state=open) and closing (state=closed)",
            circuit_changes.clone(),
        );
        registry.register(
            "destination_state",
            "Each destination's state: 1 for the one it is in (read from the store at each scrape)",
            destination_state.clone(),
        );
        registry.register(
            "destination_held",
            "Webhooks each destination holds (read from the store at each scrape)",
            destination_held.clone(),
        );
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
            destination_attempts,
            destination_latency,
            held,
            circuit_changes,
            destination_state,
            destination_held,
        }
    }
}

/// 10 ms to about 45 h: a webhook may wait out its retries for hours.
fn delivery_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 25))
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
                destination,
                state,
                took,
            } => {
                let labels = ByOutcome {
                    origin: (*origin).to_owned(),
                    outcome: state.as_str().to_owned(),
                };
                self.attempts.get_or_create(&labels).inc();
                let labels = ByDestinationOutcome {
                    destination: (*destination).to_owned(),
                    outcome: state.as_str().to_owned(),
                };
                self.destination_attempts.get_or_create(&labels).inc();
                self.attempt_seconds.observe(took.as_secs_f64());
            }
            Event::Delivered {
                destination,
                waited,
                ..
            } => {
                self.delivery_seconds.observe(waited.as_secs_f64());
                let labels = ByDestination {
                    destination: (*destination).to_owned(),
                };
                self.destination_latency
                    .get_or_create(&labels)
                    .observe(waited.as_secs_f64());
            }
            Event::Held { destination } => {
                let labels = ByDestination {
                    destination: (*destination).to_owned(),
                };
                self.held.get_or_create(&labels).inc();
            }
            Event::Circuit {
                destination, open, ..
            } => {
                let labels = ByDestinationState {
                    destination: (*destination).to_owned(),
                    state: if *open { "open" } else { "closed" }.to_owned(),
                };
                self.circuit_changes.get_or_create(&labels).inc();
            }
            Event::DeadLettered { origin: o, .. } => {
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
        for view in destination_views(store).await? {
            for state in DESTINATION_STATES {
                let labels = ByDestinationState {
                    destination: view.name.clone(),
                    state: state.to_owned(),
                };
                let current = i64::from(view.state == state);
                self.destination_state.get_or_create(&labels).set(current);
            }
            let labels = ByDestination {
                destination: view.name.clone(),
            };
            let held = i64::try_from(view.held).unwrap_or(i64::MAX);
            self.destination_held.get_or_create(&labels).set(held);
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// The media type of [`Prometheus::scrape`]'s text.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use inbox_core::State;

    use super::*;

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
            destination: "https://api.example.com:443",
            state: State::Failed,
            took: Duration::from_millis(30),
        });
        metrics.record(&Event::Held {
            destination: "https://api.example.com:443",
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
        assert!(text.contains(
            "inbox_destination_attempts_total{destination=\"https://api.example.com:443\",outcome=\"failed\"} 1"
        ));
        assert!(
            text.contains(
                "inbox_webhooks_held_total{destination=\"https://api.example.com:443\"} 1"
            )
        );
        assert!(text.ends_with("# EOF\n"));
    }
}
