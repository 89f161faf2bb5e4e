//! The state of one component instance, and the host side of the interfaces the
//! components import: configuration (`wasi:config/store`) and storage (`webhooks:inbox/store`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use inbox_core::capture::MAX_LIST;
use inbox_core::lifecycle;
use wasmtime::component::{Instance, ResourceTable};
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::bindings::wasi::config::store as config;
use crate::bindings::webhooks::inbox::{store as wit_store, types as wit};
use crate::guest_log::GuestStderr;
use crate::outgoing::{OutgoingHooks, SelfApp};
use crate::store::{Captured, Store, StoreError};

/// Everything one instance may touch; a fresh one per request or webhook.
pub struct HostState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    pub(crate) limits: StoreLimits,
    config: Arc<BTreeMap<String, String>>,
    store: Option<Arc<dyn Store>>,
    /// Spin's default database (`spin:sqlite`), for a store component.
    sqlite: Option<Arc<PathBuf>>,
    /// The store component's instance, when capture stores through one (as on Spin).
    pub(crate) store_component: Option<Instance>,
    outgoing: OutgoingHooks,
}

impl HostState {
    pub fn new(
        component: &'static str,
        config: Arc<BTreeMap<String, String>>,
        store: Option<Arc<dyn Store>>,
        max_memory_bytes: usize,
    ) -> Self {
        HostState {
            // Components get no environment, arguments or files: configuration arrives
            // through wasi:config only. What they write to stderr is logged as theirs.
            wasi: WasiCtx::builder().stderr(GuestStderr { component }).build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(max_memory_bytes)
                .trap_on_grow_failure(true)
                .build(),
            config,
            store,
            sqlite: None,
            store_component: None,
            outgoing: OutgoingHooks { self_app: None },
        }
    }

    /// What serves requests to the app itself (`http://self.alt/...`); without it they
    /// are denied.
    pub fn with_self_app(mut self, app: Option<SelfApp>) -> Self {
        self.outgoing.self_app = app;
        self
    }

    /// Gives the instances `spin:sqlite` on the database at `path`.
    pub fn with_sqlite(mut self, path: Option<Arc<PathBuf>>) -> Self {
        self.sqlite = path;
        self
    }

    pub(crate) fn sqlite_database(&self) -> Option<&Path> {
        self.sqlite.as_deref().map(PathBuf::as_path)
    }

    pub(crate) fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }

    fn store(&self) -> Result<&Arc<dyn Store>, wit_store::StoreError> {
        self.store.as_ref().ok_or_else(|| {
            wit_store::StoreError::Unavailable("this host gives no store to this component".into())
        })
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outgoing,
        }
    }
}

impl config::Host for HostState {
    async fn get(&mut self, key: String) -> Result<Option<String>, config::Error> {
        Ok(self.config.get(&key).cloned())
    }

    async fn get_all(&mut self) -> Result<Vec<(String, String)>, config::Error> {
        Ok(self
            .config
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

impl wit::Host for HostState {}

impl wit_store::Host for HostState {
    async fn capture(
        &mut self,
        webhook: wit::Webhook,
    ) -> Result<wit_store::CaptureOutcome, wit_store::StoreError> {
        let webhook = webhook_from_wit(webhook);
        match self.store()?.capture(&webhook).await {
            Ok(Captured::Stored(status)) => {
                Ok(wit_store::CaptureOutcome::Stored(status_to_wit(&status)))
            }
            Ok(Captured::Duplicate(status)) => {
                Ok(wit_store::CaptureOutcome::Duplicate(status_to_wit(&status)))
            }
            Err(error) => Err(store_error_to_wit(error)),
        }
    }

    async fn get_webhook(
        &mut self,
        id: String,
    ) -> Result<Option<wit::Webhook>, wit_store::StoreError> {
        match self.store()?.webhook(&id).await {
            Ok(webhook) => Ok(webhook.map(webhook_to_wit)),
            Err(error) => Err(store_error_to_wit(error)),
        }
    }

    async fn get_status(
        &mut self,
        id: String,
    ) -> Result<Option<wit::Status>, wit_store::StoreError> {
        match self.store()?.status(&id).await {
            Ok(status) => Ok(status.as_ref().map(status_to_wit)),
            Err(error) => Err(store_error_to_wit(error)),
        }
    }

    async fn list_webhooks(
        &mut self,
        state: Option<wit::State>,
        limit: u32,
    ) -> Result<Vec<wit::Summary>, wit_store::StoreError> {
        let views = self
            .store()?
            .list(state.map(state_from_wit), limit.min(MAX_LIST) as usize)
            .await
            .map_err(store_error_to_wit)?;
        Ok(views.into_iter().map(view_to_summary).collect())
    }

    async fn replay(&mut self, id: String) -> Result<wit::Status, wit_store::StoreError> {
        let store = self.store()?;
        match crate::store::replay(store.as_ref(), &id, crate::processing::now_ms()).await {
            Ok(status) => {
                tracing::info!(id, "replayed by an operator");
                Ok(status_to_wit(&status))
            }
            Err(error) => Err(store_error_to_wit(error)),
        }
    }
}

fn store_error_to_wit(error: StoreError) -> wit_store::StoreError {
    match error {
        StoreError::TooLarge(detail) => wit_store::StoreError::TooLarge(detail),
        StoreError::NotFound(_) => wit_store::StoreError::NotFound,
        StoreError::Conflict(detail) => wit_store::StoreError::Conflict(detail),
        other => {
            tracing::error!(error = %other, "store call failed");
            wit_store::StoreError::Unavailable(other.to_string())
        }
    }
}

inbox_core::wit_conversions!(crate::bindings::webhooks::inbox::types);

/// The processor's answer, as the core's outcome.
pub fn outcome_from_wit(
    outcome: crate::bindings::exports::webhooks::inbox::handler::Outcome,
) -> lifecycle::Outcome {
    use crate::bindings::exports::webhooks::inbox::handler::Outcome;
    match outcome {
        Outcome::Completed => lifecycle::Outcome::Completed,
        Outcome::Retry(request) => lifecycle::Outcome::Retry {
            reason: request.reason,
            delay_ms: request.delay_ms,
        },
        Outcome::Reject(reason) => lifecycle::Outcome::Reject { reason },
    }
}
