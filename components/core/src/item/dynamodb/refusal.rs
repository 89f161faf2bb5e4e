//! What DynamoDB's refusals mean to a capture and to a status change.

use std::time::Duration;

use backon::ExponentialBuilder;

use crate::store::StoreError;

/// How many times a transaction (a capture's, a status change's) is sent before a
/// conflict's refusal is the answer.
pub const CONFLICT_ATTEMPTS: usize = 3;

/// The waits before a transaction is sent again after a conflict ([`conflicted`]):
/// 20 ms, then 40 ms, each with jitter so two racers part.
pub fn conflict_backoff() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(20))
        .with_max_times(CONFLICT_ATTEMPTS - 1)
        .with_jitter()
}

/// A request DynamoDB refused: the error's kind (`ConditionalCheckFailedException`, ...),
/// its message, and for a cancelled transaction each item's reason code (`None`,
/// `ConditionalCheckFailed`, `TransactionConflict`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Refusal {
    pub kind: String,
    pub message: String,
    pub reasons: Vec<String>,
    /// What the client knows besides (request id, HTTP status), for the logs; may be empty.
    pub detail: String,
}

impl Refusal {
    pub fn unavailable(&self) -> StoreError {
        let mut described = format!("DynamoDB: {}: {}", self.kind, self.message);
        if !self.detail.is_empty() {
            described.push_str(&format!(" ({})", self.detail));
        }
        StoreError::Unavailable(described)
    }
}

/// What a refused capture means, once it is not sent again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptureRefused {
    /// The id exists: nothing was written; the stored status is the answer.
    Duplicate,
    /// The origin delivered this body before: nothing was written; the first webhook (its
    /// `BODY` item names it) is the answer.
    BodySeen,
    Failed(StoreError),
}

/// Two transactions at once cancelled each other (two captures of one webhook, or two
/// changes on one counter item), neither one's condition failing: send it again
/// ([`conflict_backoff`]); a capture's loser then finds the winner's items.
pub fn conflicted(refusal: &Refusal) -> bool {
    refusal.reasons.iter().any(|r| r == "TransactionConflict")
        && !refusal
            .reasons
            .iter()
            .any(|r| r == "ConditionalCheckFailed")
}

/// Reads the cancellation reasons in the order of [`CapturePlan::items`]: the webhook's, the
/// status's, the body's (the counters' updates, after them, have no condition).
pub fn capture_refused(refusal: &Refusal) -> CaptureRefused {
    let reason = |i: usize| refusal.reasons.get(i).map(String::as_str);
    if reason(0) == Some("ConditionalCheckFailed") || reason(1) == Some("ConditionalCheckFailed") {
        CaptureRefused::Duplicate
    } else if reason(2) == Some("ConditionalCheckFailed") {
        CaptureRefused::BodySeen
    } else if refusal.kind == "ValidationException" && refusal.message.contains("size") {
        CaptureRefused::Failed(StoreError::TooLarge(refusal.message.clone()))
    } else {
        CaptureRefused::Failed(refusal.unavailable())
    }
}

/// What a refused status change means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SwapRefused {
    /// Another writer changed the status first: the compare-and-swap is lost.
    Lost,
    Failed(StoreError),
}

/// Reads every cancellation reason of a status change (the update's own condition, alone
/// or as the first item of the transaction with its records, then the records').
pub fn swap_refused(refusal: &Refusal) -> SwapRefused {
    let reason = |i: usize| refusal.reasons.get(i).map(String::as_str);
    if refusal.kind == "ConditionalCheckFailedException"
        || reason(0) == Some("ConditionalCheckFailed")
    {
        return SwapRefused::Lost;
    }
    if refusal
        .reasons
        .iter()
        .skip(1)
        .any(|r| r == "ConditionalCheckFailed")
    {
        return SwapRefused::Failed(StoreError::Corrupt(format!(
            "an item of the change refused it: an attempt or dead letter already recorded \
             under its key, or (a replay) the webhook's item or its payload's upload already \
             deleted at the end of its retention: {}",
            refusal.message
        )));
    }
    let transient = [
        "TransactionConflict",
        "ThrottlingError",
        "ProvisionedThroughputExceeded",
    ];
    if let Some(code) = refusal
        .reasons
        .iter()
        .find(|r| transient.contains(&r.as_str()))
    {
        return SwapRefused::Failed(StoreError::Unavailable(format!(
            "DynamoDB: the status change met {code}; it can be tried again"
        )));
    }
    SwapRefused::Failed(refusal.unavailable())
}
