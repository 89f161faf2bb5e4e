//! The webhook and its status, as stored and as shown to operators.

use serde::{Deserialize, Serialize};

/// A captured delivery. Immutable once stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhook {
    pub id: String,
    pub origin: String,
    pub event_type: String,
    /// When the provider says the event happened (unix seconds).
    pub provider_timestamp: Option<i64>,
    /// When the inbox accepted it (unix milliseconds).
    pub received_at: i64,
    pub idempotency_key: String,
    pub headers: Vec<(String, String)>,
    pub payload: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Received,
    Processing,
    Completed,
    Failed,
    OperatorRequired,
}

impl State {
    pub const ALL: [State; 5] = [
        State::Received,
        State::Processing,
        State::Completed,
        State::Failed,
        State::OperatorRequired,
    ];

    /// Waiting for an attempt, or held by one: not finished.
    pub fn in_flight(self) -> bool {
        matches!(self, State::Received | State::Processing | State::Failed)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            State::Received => "received",
            State::Processing => "processing",
            State::Completed => "completed",
            State::Failed => "failed",
            State::OperatorRequired => "operator_required",
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for State {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        State::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| {
                let known: Vec<_> = State::ALL.iter().map(|s| s.as_str()).collect();
                format!("unknown state `{s}`; expected one of {}", known.join(", "))
            })
    }
}

/// The mutable side of a webhook. Every change is a compare-and-swap on `version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub state: State,
    /// Attempts started: taking a webhook for processing increments it, so the first run
    /// counts 1 and it is the number of the attempt under way. `retries` on the wire, in
    /// the item layout and in the WIT contract (the seed's name); the retry budget compares
    /// it with `max_retries + 1`.
    #[serde(rename = "retries")]
    pub attempts: u32,
    /// Incremented by every write: the token of the compare-and-swap and of the lease.
    pub version: u64,
    pub updated_at: i64,
    /// While `processing`: until when the current attempt owns the webhook.
    pub lease_until: Option<i64>,
    /// While `received` or `failed`: when the next attempt is due.
    pub next_attempt_at: Option<i64>,
    pub last_error: Option<String>,
}

/// What operators and the status endpoint see of a webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusView {
    pub id: String,
    pub origin: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub status: State,
    /// Attempts started ([`Status::attempts`]), `retries` in the API.
    #[serde(rename = "retries")]
    pub attempts: u32,
    pub last_error: Option<String>,
    pub received_at: i64,
    pub updated_at: i64,
    pub next_attempt_at: Option<i64>,
}

impl StatusView {
    pub fn new(webhook: &Webhook, status: &Status) -> Self {
        StatusView {
            id: webhook.id.clone(),
            origin: webhook.origin.clone(),
            event_type: webhook.event_type.clone(),
            status: status.state,
            attempts: status.attempts,
            last_error: status.last_error.clone(),
            received_at: webhook.received_at,
            updated_at: status.updated_at,
            next_attempt_at: status.next_attempt_at,
        }
    }
}

/// How one processing attempt ended: kept with the webhook, so an operator sees every
/// try, not only the last error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// 1 for the first run; a replay starts counting again.
    pub number: u32,
    /// When the attempt took the webhook (unix milliseconds).
    pub started_at: i64,
    /// When its end was recorded (unix milliseconds).
    pub ended_at: i64,
    /// The state it left the webhook in (`processing` when it never finished and another
    /// attempt took the webhook over).
    pub state: State,
    pub error: Option<String>,
}

/// A time the webhook needed an operator, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub at: i64,
    /// The attempts made before it.
    pub attempts: u32,
    pub reason: String,
}

/// Everything about a webhook but its payload: what the status endpoint and the console
/// show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Details {
    #[serde(flatten)]
    pub view: StatusView,
    pub idempotency_key: String,
    /// When the provider says the event happened (unix seconds).
    pub provider_timestamp: Option<i64>,
    pub headers: Vec<(String, String)>,
    /// Oldest first.
    pub attempts: Vec<Attempt>,
    /// Oldest first.
    pub dead_letters: Vec<DeadLetter>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_through_their_names() {
        for state in State::ALL {
            assert_eq!(state.as_str().parse::<State>(), Ok(state));
            assert_eq!(
                serde_json::to_value(state).unwrap(),
                serde_json::json!(state.as_str())
            );
        }
        assert!(
            "done"
                .parse::<State>()
                .unwrap_err()
                .contains("operator_required")
        );
    }
}
