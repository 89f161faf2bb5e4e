//! The groups of arguments several commands share: where webhooks are stored, which
//! components run, where metrics are served, which queues Lambda uses.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Args;
use inbox_core::config::parsed;
use inbox_core::item::Retention;
use inbox_stores::WebhookStore;
use inbox_stores::dynamodb::{self, DynamoStore};
use inbox_stores::sqlite::{DEFAULT_MAX_QUEUED_WRITES, SqliteStore};
use inbox_wasm_host::{ComponentPaths, StoreComponent};
use tokio::sync::{Notify, watch};

use super::environment::Environment;
use super::signal::{SHUTDOWN_GRACE, stopped};
use crate::metrics;
use crate::metrics_page::MetricsPage;
use crate::{serve, sweep};

/// Where webhooks are stored: a SQLite file, or a DynamoDB table when one is named.
#[derive(Args)]
pub struct StoreArgs {
    /// The SQLite database file.
    #[arg(long, env = "INBOX_DB", default_value = ".inbox/inbox.db")]
    pub db: PathBuf,
    /// The DynamoDB table (the AWS SDK's AWS_REGION, credentials and AWS_ENDPOINT_URL apply).
    #[arg(long, env = "INBOX_TABLE", conflicts_with = "db")]
    pub table: Option<String>,
}

impl StoreArgs {
    pub fn describe(&self) -> String {
        match &self.table {
            Some(table) => format!("dynamodb:{table}"),
            None => self.db.display().to_string(),
        }
    }

    /// The store, and what tells a worker that something was written (SQLite only: on
    /// DynamoDB the worker polls).
    pub async fn open(&self, env: &Environment) -> Result<(Arc<dyn WebhookStore>, Arc<Notify>)> {
        match &self.table {
            Some(table) => {
                let store = dynamo_store(env, table).await?;
                Ok((Arc::new(store), Arc::new(Notify::new())))
            }
            None => {
                let sqlite = self.sqlite(env)?;
                let written = sqlite.written();
                Ok((Arc::new(sqlite), written))
            }
        }
    }

    /// The store as [`open`](Self::open) gives it, for a command that processes: on SQLite
    /// it also keeps the retention ([`sweep`]); DynamoDB's TTL does that on a table.
    pub async fn open_to_process(
        &self,
        env: &Environment,
    ) -> Result<(Arc<dyn WebhookStore>, Arc<Notify>)> {
        if self.table.is_some() {
            return self.open(env).await;
        }
        let retention = Retention::from_config(env.config.as_ref())?;
        let sqlite = Arc::new(self.sqlite(env)?);
        let written = sqlite.written();
        tokio::spawn(sweep::forever(sqlite.clone(), retention));
        Ok((sqlite, written))
    }

    fn sqlite(&self, env: &Environment) -> Result<SqliteStore> {
        let queued = parsed(
            env.config.as_ref(),
            "max_queued_writes",
            DEFAULT_MAX_QUEUED_WRITES,
        )?;
        SqliteStore::open_bounded(&self.db, queued)
            .with_context(|| format!("cannot open {}", self.db.display()))
    }
}

/// The DynamoDB store on `table`, keeping items as long as the configuration says.
pub async fn dynamo_store(env: &Environment, table: &str) -> Result<DynamoStore> {
    let retention = Retention::from_config(env.config.as_ref())?;
    Ok(dynamodb::open(env.config.as_ref(), table, retention).await)
}

#[derive(Args)]
pub struct ComponentArgs {
    /// The capture component (default: beside the executable, or the workspace build).
    #[arg(long, env = "INBOX_CAPTURE_WASM")]
    capture: Option<PathBuf>,
    /// The processor component: the default one, or your own.
    #[arg(long, env = "INBOX_PROCESSOR_WASM")]
    processor: Option<PathBuf>,
    /// Capture stores through this store component (e.g. inbox_store_sqlite.wasm, as Spin
    /// composes it with capture), which gets the SQLite database as Spin's `default`.
    #[arg(long, env = "INBOX_STORE_WASM")]
    store_component: Option<PathBuf>,
}

impl ComponentArgs {
    /// Where the components are; `store` is where a store component would store.
    pub fn paths(&self, store: Option<&StoreArgs>) -> Result<ComponentPaths> {
        let mut paths = ComponentPaths::beside_executable().or_else(|error| {
            match (&self.capture, &self.processor) {
                (Some(capture), Some(processor)) => Ok(ComponentPaths {
                    capture: capture.clone(),
                    processor: processor.clone(),
                    shipped_capture: false,
                    store: None,
                }),
                _ => Err(error),
            }
        })?;
        if let Some(path) = &self.store_component {
            let sqlite = match store {
                Some(StoreArgs { db, table: None }) => db.clone(),
                _ => bail!("a store component stores in the SQLite database (--db), not DynamoDB"),
            };
            // Composed into capture, a store component from elsewhere than the inbox's own
            // makes the whole capture component one the inbox does not know.
            paths.shipped_capture &= in_same_directory(path, &paths.capture);
            paths.store = Some(StoreComponent {
                path: path.clone(),
                sqlite,
            });
        }
        if let Some(capture) = &self.capture {
            paths.capture = capture.clone();
            paths.shipped_capture = false;
        }
        if let Some(processor) = &self.processor {
            paths.processor = processor.clone();
        }
        Ok(paths)
    }
}

/// Whether two files are in the same directory (links resolved).
fn in_same_directory(a: &Path, b: &Path) -> bool {
    let directory = |path: &Path| {
        path.canonicalize()
            .ok()
            .and_then(|path| path.parent().map(Path::to_owned))
    };
    directory(a).is_some_and(|dir| Some(dir) == directory(b))
}

/// Where the metrics are served, if anywhere.
#[derive(Args)]
pub struct MetricsArgs {
    /// Serve Prometheus metrics at http://ADDRESS/metrics, on a listener of their own
    /// (e.g. 127.0.0.1:9464); none by default.
    #[arg(long = "metrics-listen", env = "INBOX_METRICS_LISTEN")]
    address: Option<SocketAddr>,
}

pub type MetricsServer = tokio::task::JoinHandle<Result<()>>;

impl MetricsArgs {
    /// The metrics to record into, and the server that shows them (until `stop`), if an
    /// address is given; an address that cannot be listened on stops the start. The page
    /// is served with capture's limits on what a client may hold.
    pub fn start(
        &self,
        env: &Environment,
        store: Arc<dyn WebhookStore>,
        stop: watch::Receiver<bool>,
    ) -> Result<(Arc<dyn metrics::Metrics>, Option<MetricsServer>)> {
        let Some(address) = self.address else {
            let alerts = metrics::with_alerts(Arc::new(metrics::NoMetrics), env.config.as_ref())?;
            return Ok((alerts, None));
        };
        let limits = serve::HttpLimits::from_config(env.config.as_ref())?;
        let listener = serve::listen(address)
            .with_context(|| format!("cannot listen on {address} for metrics"))?;
        // Scripts and tests read the bound address (the port may have been 0).
        tracing::info!(address = %listener.local_addr()?, "serving metrics at /metrics");
        let prometheus = Arc::new(metrics::Prometheus::default());
        let page = Arc::new(MetricsPage {
            prometheus: prometheus.clone(),
            store,
        });
        let server = tokio::spawn(serve::serve(
            page,
            listener,
            limits,
            Arc::new(metrics::NoMetrics),
            stopped(stop),
            SHUTDOWN_GRACE,
        ));
        let recorder = metrics::with_alerts(prometheus, env.config.as_ref())?;
        Ok((recorder, Some(server)))
    }
}
