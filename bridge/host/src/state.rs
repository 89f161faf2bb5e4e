//! The state of one component instance: everything it may touch, a fresh one per request
//! or attempt. Each interface it imports is implemented on it, in a module of its own.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use inbox_stores::WebhookStore;
use wasmtime::component::ResourceTable;
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::guest_log::GuestStderr;
use crate::outgoing::{OutgoingHooks, SelfApp};

/// A `spin:sqlite` connection, owned by the instance that opened it (`spin_sqlite`).
pub struct SqliteConnection(pub(crate) rusqlite::Connection);

pub struct HostState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    pub(crate) limits: StoreLimits,
    /// The component's own settings (`inbox_core::scope`).
    pub(crate) config: Arc<BTreeMap<String, String>>,
    /// A composed store component's own settings.
    pub(crate) store_config: Arc<BTreeMap<String, String>>,
    /// The inbox's store (`webhooks:inbox/store`), for a capture component.
    pub(crate) store: Option<Arc<dyn WebhookStore>>,
    /// Spin's default database (`spin:sqlite`), for a store component.
    sqlite: Option<Arc<PathBuf>>,
    outgoing: OutgoingHooks,
}

impl HostState {
    pub fn new(
        component: &'static str,
        config: Arc<BTreeMap<String, String>>,
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
            store_config: Arc::default(),
            store: None,
            sqlite: None,
            outgoing: OutgoingHooks { self_app: None },
        }
    }

    pub fn with_store(mut self, store: Arc<dyn WebhookStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Gives the instances `spin:sqlite` on the database at `path`.
    pub fn with_sqlite(mut self, path: Option<Arc<PathBuf>>) -> Self {
        self.sqlite = path;
        self
    }

    /// The settings a composed store component reads.
    pub fn with_store_config(mut self, config: Arc<BTreeMap<String, String>>) -> Self {
        self.store_config = config;
        self
    }

    /// What serves requests to the app itself (`http://self.alt/...`); without it they
    /// are denied.
    pub fn with_self_app(mut self, app: Option<SelfApp>) -> Self {
        self.outgoing.self_app = app;
        self
    }

    pub(crate) fn sqlite_database(&self) -> Option<&Path> {
        self.sqlite.as_deref().map(PathBuf::as_path)
    }

    pub(crate) fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
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
