//! Storage behind one trait, so the rules (in `inbox_core`) never know which store runs.

pub mod dynamodb;
pub mod sqlite;

use async_trait::async_trait;
use inbox_core::lifecycle::{DeadLetter, Transition};
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
    let status = store
        .status(id)
        .await?
        .ok_or_else(|| StoreError::NotFound(id.to_owned()))?;
    let replayed = status
        .replay(now)
        .map_err(|e| StoreError::Conflict(e.to_string()))?;
    let transition = Transition {
        status: replayed.clone(),
        dead_letter: None,
    };
    if store.swap_status(id, status.version, &transition).await? {
        Ok(replayed)
    } else {
        Err(StoreError::Conflict(format!(
            "{id} changed while it was being replayed; try again"
        )))
    }
}
