//! The state of one component instance: everything it may touch, one per instance (a
//! capture instance serves several requests in turn, a processor's one attempt). Each
//! interface it imports is implemented on it, in a module of its own.

use std::collections::BTreeMap;
use std::sync::Arc;

use inbox_stores::WebhookStore;
use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::guest_log::GuestOutput;
use crate::outgoing::{OutgoingHooks, SelfApp};
use crate::sqlite_connection::SpinDatabase;

pub struct HostState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    pub(crate) memory: MemoryLimit,
    /// The component's own settings (`inbox_core::scope`).
    pub(crate) config: Arc<BTreeMap<String, String>>,
    /// A composed store component's own settings.
    pub(crate) store_config: Arc<BTreeMap<String, String>>,
    /// The inbox's store (`webhooks:inbox/store`), for a capture component.
    pub(crate) store: Option<Arc<dyn WebhookStore>>,
    /// Spin's default database (`spin:sqlite`), for a store component.
    sqlite: Option<Arc<SpinDatabase>>,
    /// Whether one of its connections holds that database's writer.
    pub(crate) holds_the_writer: bool,
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
            // through wasi:config only. What they print is logged as theirs.
            wasi: WasiCtx::builder()
                .stdout(GuestOutput { component })
                .stderr(GuestOutput { component })
                .build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            memory: MemoryLimit {
                limits: StoreLimitsBuilder::new().trap_on_grow_failure(true).build(),
                max_bytes: max_memory_bytes,
                total: 0,
                peak: 0,
            },
            config,
            store_config: Arc::default(),
            store: None,
            sqlite: None,
            holds_the_writer: false,
            outgoing: OutgoingHooks { self_app: None },
        }
    }

    pub fn with_store(mut self, store: Arc<dyn WebhookStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Gives the instance `spin:sqlite` on `database`.
    pub fn with_sqlite(mut self, database: Option<Arc<SpinDatabase>>) -> Self {
        self.sqlite = database;
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

    /// The most linear memory the instance's memories held at once, in bytes.
    pub fn peak_memory_bytes(&self) -> usize {
        self.memory.peak
    }

    pub(crate) fn sqlite_database(&self) -> Option<&SpinDatabase> {
        self.sqlite.as_deref()
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

/// The instance's memory limit: all its linear memories together (a component built from
/// Python or JavaScript has several), and their peak, which the conformance kit reports.
/// Tables and instances keep wasmtime's default limits ([`StoreLimits`]).
pub(crate) struct MemoryLimit {
    limits: StoreLimits,
    max_bytes: usize,
    total: usize,
    peak: usize,
}

impl ResourceLimiter for MemoryLimit {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.total + (desired - current);
        if total > self.max_bytes {
            // A trap, not a failed `memory.grow`: a guest that ignores allocation failures
            // would otherwise carry on corrupted.
            return Err(wasmtime::Error::msg(format!(
                "it reached its memory limit of {} MiB (INBOX_MAX_COMPONENT_MEMORY_BYTES)",
                self.max_bytes >> 20
            )));
        }
        if maximum.is_some_and(|maximum| desired > maximum) {
            return Ok(false);
        }
        self.total = total;
        self.peak = self.peak.max(total);
        Ok(true)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}
