//! The metrics of the Lambda functions: each event written as one line of CloudWatch's
//! embedded metric format (EMF), which CloudWatch turns into metrics from the logs.

use serde_json::{Value, json};

use super::event::{Event, Metrics};

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
    let (dimensions, mut values, metrics): (Vec<Vec<&str>>, Value, Vec<Metric>) = match event {
        Event::Received { origin } => (
            vec![vec!["Origin"]],
            json!({ "Origin": origin }),
            vec![("WebhooksReceived", "Count", json!(1))],
        ),
        Event::Duplicate { origin } => (
            vec![vec!["Origin"]],
            json!({ "Origin": origin }),
            vec![("WebhooksDuplicate", "Count", json!(1))],
        ),
        Event::Refused { reason } => (
            vec![vec!["Reason"]],
            json!({ "Reason": reason.name() }),
            vec![("WebhooksRefused", "Count", json!(1))],
        ),
        Event::Attempt {
            origin,
            destination,
            state,
            took,
        } => (
            vec![vec!["Origin", "Outcome"], vec!["Destination", "Outcome"]],
            json!({ "Origin": origin, "Destination": destination, "Outcome": state.as_str() }),
            vec![
                ("Attempts", "Count", json!(1)),
                (
                    "AttemptDuration",
                    "Milliseconds",
                    json!(took.as_millis() as u64),
                ),
            ],
        ),
        Event::Delivered {
            origin,
            destination,
            waited,
        } => (
            vec![vec!["Origin"], vec!["Destination"]],
            json!({ "Origin": origin, "Destination": destination }),
            vec![(
                "DeliveryLatency",
                "Milliseconds",
                json!(waited.as_millis() as u64),
            )],
        ),
        Event::DeadLettered { origin, .. } => (
            vec![vec!["Origin"]],
            json!({ "Origin": origin }),
            vec![("DeadLetters", "Count", json!(1))],
        ),
        Event::Held { destination } => (
            vec![vec!["Destination"]],
            json!({ "Destination": destination }),
            vec![("WebhooksHeld", "Count", json!(1))],
        ),
        // 1 when it opens, 0 when it closes: the maximum over a period says whether it was open.
        Event::Circuit {
            destination, open, ..
        } => (
            vec![vec!["Destination"]],
            json!({ "Destination": destination }),
            vec![("DestinationOpen", "None", json!(u8::from(*open)))],
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
            "Dimensions": dimensions,
            "Metrics": definitions,
        }],
    });
    values
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use inbox_core::State;

    use super::*;

    #[test]
    fn emf_lines_carry_their_metadata_and_values() {
        let line = emf(
            &Event::Attempt {
                origin: "github",
                destination: "https://api.example.com:443",
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
        assert_eq!(
            meta["Dimensions"],
            json!([["Origin", "Outcome"], ["Destination", "Outcome"]])
        );
        assert_eq!(line["Destination"], "https://api.example.com:443");
        let opened = emf(
            &Event::Circuit {
                destination: "https://api.example.com:443",
                open: true,
                failures: 5,
                last_error: Some("503 Service Unavailable"),
            },
            1,
        );
        assert_eq!(opened["DestinationOpen"], 1);
        assert_eq!(
            meta["Metrics"][1],
            json!({ "Name": "AttemptDuration", "Unit": "Milliseconds" })
        );
        assert_eq!(line["_aws"]["Timestamp"], 1_700_000_000_000_i64);
    }
}
