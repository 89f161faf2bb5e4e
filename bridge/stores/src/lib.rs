//! The native stores behind one trait, so the rules (in `inbox_core`) never know which
//! store runs: embedded SQLite ([`sqlite`]) and DynamoDB ([`dynamodb`]). Both carry out the
//! core's plans (`inbox_core::item::sqlite`, `inbox_core::item::dynamodb`), as Spin's store
//! components do.

pub mod dynamodb;
pub mod pool;
pub mod sqlite;

use async_trait::async_trait;
use inbox_core::lifecycle::Transition;
use inbox_core::listing::{Counts, Filter, Page, Query};
use inbox_core::model::Details;
use inbox_core::store::Resend;
pub use inbox_core::store::{Captured, StoreError};
use inbox_core::{Status, Webhook};

/// Where webhooks and their statuses are kept (named so beside wasmtime's `Store`).
#[async_trait]
pub trait WebhookStore: Send + Sync + 'static {
    /// Writes the webhook and its `received` status atomically, unless the id exists (or,
    /// with `refuse_replayed_body`, the origin delivered the same body before). The store
    /// takes the webhook, so its payload is not copied on the way to the disk.
    async fn capture(
        &self,
        webhook: Webhook,
        refuse_replayed_body: bool,
    ) -> Result<Captured, StoreError>;
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
    /// A page of the webhooks `query` asks for, newest received first.
    async fn list(&self, query: &Query) -> Result<Page, StoreError>;
    /// How many webhooks passing `filter` are in each state.
    async fn counts(&self, filter: &Filter) -> Result<Counts, StoreError>;
    /// Everything about a webhook but its payload: its status, attempts and dead letters.
    async fn details(&self, id: &str) -> Result<Option<Details>, StoreError>;
}

/// Sends a dead webhook round again with a fresh retry budget ([`Resend::replay`]).
pub async fn replay(store: &dyn WebhookStore, id: &str, now: i64) -> Result<Status, StoreError> {
    let resend = Resend::replay(id, store.status(id).await?, now)?;
    resend_with(store, id, resend).await
}

/// Sends a stuck webhook round again now, with the attempts it used ([`Resend::requeue`]).
pub async fn requeue(store: &dyn WebhookStore, id: &str, now: i64) -> Result<Status, StoreError> {
    let resend = Resend::requeue(id, store.status(id).await?, now)?;
    resend_with(store, id, resend).await
}

async fn resend_with(
    store: &dyn WebhookStore,
    id: &str,
    resend: Resend,
) -> Result<Status, StoreError> {
    let swapped = store
        .swap_status(id, resend.expected_version, &resend.transition)
        .await?;
    resend.outcome(id, swapped)
}
