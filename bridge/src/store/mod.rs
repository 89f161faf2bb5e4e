//! Storage behind one trait, so the rules (in `inbox_core`) never know which store runs.

pub mod dynamodb;
pub mod sqlite;

use async_trait::async_trait;
use inbox_core::lifecycle::{DeadLetter, Transition, TransitionError};
use inbox_core::model::StatusView;
use inbox_core::{State, Status, Webhook};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Captured {
    /// The webhook and its `received` status were committed together.
    Stored(Status),
    /// It was already there; nothing was written.
    Duplicate(Status),
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("too large to store: {0}")]
    TooLarge(String),
    #[error("storage is unavailable: {0}")]
    Unavailable(String),
    #[error("stored data cannot be read: {0}")]
    Corrupt(String),
    #[error("no webhook has the id {0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Writes the webhook and its `received` status atomically, unless the id exists.
    async fn capture(&self, webhook: &Webhook) -> Result<Captured, StoreError>;
    async fn webhook(&self, id: &str) -> Result<Option<Webhook>, StoreError>;
    async fn status(&self, id: &str) -> Result<Option<Status>, StoreError>;
    /// Writes `transition` if the stored status still has `expected_version`; `false` if
    /// another writer got there first.
    async fn swap_status(
        &self,
        id: &str,
        expected_version: u64,
        transition: &Transition,
    ) -> Result<bool, StoreError>;
    /// Ids whose next attempt is due at `now`, or whose lease has expired.
    async fn due(&self, now: i64, limit: usize) -> Result<Vec<String>, StoreError>;
    /// The most recently changed webhooks, optionally only those in `state`.
    async fn list(&self, state: Option<State>, limit: usize)
    -> Result<Vec<StatusView>, StoreError>;
    /// Every time the webhook needed an operator, oldest first.
    async fn dead_letters(&self, id: &str) -> Result<Vec<DeadLetter>, StoreError>;
}

/// Sends a dead webhook round again with a fresh retry budget: the core's
/// rule, written with a compare-and-swap like every status change.
pub async fn replay(store: &dyn Store, id: &str, now: i64) -> Result<Status, StoreError> {
    send_round_again(store, id, "replayed", |status| status.replay(now)).await
}

/// Sends a stuck webhook (received, failed, or processing with an expired lease) round
/// again now, with the attempts it has used. A message still on its way for it finds the
/// new version and the compare-and-swap decides which attempt runs.
pub async fn requeue(store: &dyn Store, id: &str, now: i64) -> Result<Status, StoreError> {
    send_round_again(store, id, "requeued", |status| status.requeue(now)).await
}

async fn send_round_again(
    store: &dyn Store,
    id: &str,
    done: &str,
    transition: impl FnOnce(&Status) -> Result<Status, TransitionError>,
) -> Result<Status, StoreError> {
    let status = store
        .status(id)
        .await?
        .ok_or_else(|| StoreError::NotFound(id.to_owned()))?;
    let next = transition(&status).map_err(|e| StoreError::Conflict(e.to_string()))?;
    let write = Transition {
        status: next.clone(),
        dead_letter: None,
    };
    if store.swap_status(id, status.version, &write).await? {
        Ok(next)
    } else {
        Err(StoreError::Conflict(format!(
            "{id} changed while it was being {done}; try again"
        )))
    }
}
