//! `webhooks:inbox/store`: what the capture component imports, over the native store
//! (when it is not composed with a store component, as on Spin).

use inbox_core::capture::MAX_LIST;
use inbox_core::clock::now_ms;
use inbox_core::store::{Captured, StoreError};
use inbox_stores::WebhookStore;

use crate::bindings::webhooks::inbox::{store as wit_store, types as wit};
use crate::bindings::{
    state_from_wit, status_to_wit, store_error_to_wit, view_to_summary, webhook_from_wit,
    webhook_to_wit,
};
use crate::state::HostState;

impl HostState {
    fn webhook_store(&self) -> Result<&dyn WebhookStore, wit_store::StoreError> {
        self.store.as_deref().ok_or_else(|| {
            wit_store::StoreError::Unavailable("this host gives no store to this component".into())
        })
    }
}

/// The store's error as the contract's, logged when the store itself failed.
fn failed(error: StoreError) -> wit_store::StoreError {
    if matches!(error, StoreError::Unavailable(_) | StoreError::Corrupt(_)) {
        tracing::error!(%error, "store call failed");
    }
    store_error_to_wit(error)
}

impl wit::Host for HostState {}

impl wit_store::Host for HostState {
    async fn capture(
        &mut self,
        webhook: wit::Webhook,
        refuse_replayed_body: bool,
    ) -> Result<wit_store::CaptureOutcome, wit_store::StoreError> {
        let captured = self
            .webhook_store()?
            .capture(&webhook_from_wit(webhook), refuse_replayed_body)
            .await;
        match captured.map_err(failed)? {
            Captured::Stored(status) => {
                Ok(wit_store::CaptureOutcome::Stored(status_to_wit(&status)))
            }
            Captured::Duplicate { id, status } => {
                let status = status_to_wit(&status);
                Ok(wit_store::CaptureOutcome::Duplicate(wit_store::Existing {
                    id,
                    status,
                }))
            }
        }
    }

    async fn get_webhook(
        &mut self,
        id: String,
    ) -> Result<Option<wit::Webhook>, wit_store::StoreError> {
        let webhook = self.webhook_store()?.webhook(&id).await.map_err(failed)?;
        Ok(webhook.map(webhook_to_wit))
    }

    async fn get_status(
        &mut self,
        id: String,
    ) -> Result<Option<wit::Status>, wit_store::StoreError> {
        let status = self.webhook_store()?.status(&id).await.map_err(failed)?;
        Ok(status.as_ref().map(status_to_wit))
    }

    async fn list_webhooks(
        &mut self,
        state: Option<wit::State>,
        limit: u32,
    ) -> Result<Vec<wit::Summary>, wit_store::StoreError> {
        let views = self
            .webhook_store()?
            .list(state.map(state_from_wit), limit.min(MAX_LIST) as usize)
            .await
            .map_err(failed)?;
        Ok(views.into_iter().map(view_to_summary).collect())
    }

    async fn replay(&mut self, id: String) -> Result<wit::Status, wit_store::StoreError> {
        let status = inbox_stores::replay(self.webhook_store()?, &id, now_ms())
            .await
            .map_err(failed)?;
        tracing::info!(id, "replayed by an operator");
        Ok(status_to_wit(&status))
    }
}
