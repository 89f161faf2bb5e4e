//! `webhooks:inbox/store`: what the capture component imports, over the native store
//! (when it is not composed with a store component, as on Spin).

use inbox_core::clock::now_ms;
use inbox_core::store::{Captured, StoreError, destination_views, set_paused};
use inbox_stores::WebhookStore;

use crate::bindings::webhooks::inbox::{store as wit_store, types as wit};
use crate::bindings::{
    counts_to_wit, destination_to_wit, details_to_wit, filter_from_wit, page_to_wit,
    query_from_wit, status_to_wit, store_error_to_wit, webhook_from_wit, webhook_to_wit,
};
use crate::state::HostState;

/// Adds the inbox's store (`webhooks:inbox/store`), for a capture component.
pub fn add_to_linker(linker: &mut wasmtime::component::Linker<HostState>) -> anyhow::Result<()> {
    wit_store::add_to_linker::<_, wasmtime::component::HasSelf<HostState>>(linker, |state| state)?;
    Ok(())
}

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
            .capture(webhook_from_wit(webhook), refuse_replayed_body)
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

    async fn get_details(
        &mut self,
        id: String,
    ) -> Result<Option<wit::Details>, wit_store::StoreError> {
        let details = self.webhook_store()?.details(&id).await.map_err(failed)?;
        Ok(details.map(details_to_wit))
    }

    async fn list_webhooks(
        &mut self,
        query: wit::ListQuery,
    ) -> Result<wit::Page, wit_store::StoreError> {
        let query = query_from_wit(query);
        let page = self.webhook_store()?.list(&query).await.map_err(failed)?;
        Ok(page_to_wit(page))
    }

    async fn count_webhooks(
        &mut self,
        filter: wit::Filter,
    ) -> Result<Vec<wit::Count>, wit_store::StoreError> {
        let filter = filter_from_wit(filter);
        let counts = self
            .webhook_store()?
            .counts(&filter)
            .await
            .map_err(failed)?;
        Ok(counts_to_wit(counts))
    }

    async fn replay(&mut self, id: String) -> Result<wit::Status, wit_store::StoreError> {
        let status = inbox_stores::replay(self.webhook_store()?, &id, now_ms())
            .await
            .map_err(failed)?;
        tracing::info!(id, "replayed by an operator");
        Ok(status_to_wit(&status))
    }

    async fn list_destinations(
        &mut self,
    ) -> Result<Vec<wit_store::Destination>, wit_store::StoreError> {
        let views = destination_views(self.webhook_store()?)
            .await
            .map_err(failed)?;
        Ok(views.into_iter().map(destination_to_wit).collect())
    }

    async fn pause_destination(
        &mut self,
        name: String,
        paused: bool,
    ) -> Result<wit_store::Destination, wit_store::StoreError> {
        let view = set_paused(self.webhook_store()?, &name, paused, now_ms())
            .await
            .map_err(failed)?;
        tracing::info!(
            destination = name,
            paused,
            "paused or resumed by an operator"
        );
        Ok(destination_to_wit(view))
    }
}
