//! `inbox`: the native host of the webhook inbox.

mod bindings;
mod engine;
mod host;
mod processing;
mod store;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use inbox_core::State;
use inbox_core::config::{CaptureLimits, parsed};
use inbox_core::model::StatusView;
use tokio::sync::watch;

use crate::engine::{ComponentPaths, Limits, Runtime};
use crate::processing::{Settings, now_ms};
use crate::store::Store;
use crate::store::sqlite::SqliteStore;

/// A webhook inbox: verify, store durably, process with retries and a dead-letter queue.
///
/// Configuration comes from `INBOX_*` environment variables (see the README); the
/// components read them as lower-case keys without the prefix.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the capture endpoint over HTTP and process what arrives.
    Serve {
        #[arg(long, env = "INBOX_LISTEN", default_value = "127.0.0.1:3000")]
        listen: SocketAddr,
        #[command(flatten)]
        db: Db,
        #[command(flatten)]
        components: Components,
    },
    /// Process what another host (e.g. Spin) captured into the database, without HTTP.
    Worker {
        #[command(flatten)]
        db: Db,
        #[command(flatten)]
        components: Components,
    },
    /// Show a webhook's status and its dead-letter records.
    Status {
        id: String,
        #[command(flatten)]
        db: Db,
    },
    /// List webhooks, most recently changed first, as JSON lines.
    List {
        /// received, processing, completed, failed or operator_required.
        #[arg(long)]
        status: Option<State>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[command(flatten)]
        db: Db,
    },
    /// Send a dead webhook (operator_required) round again with a fresh retry budget.
    Replay {
        /// The webhook to replay.
        #[arg(required_unless_present = "all_dead", conflicts_with = "all_dead")]
        id: Option<String>,
        /// Replay every webhook in `operator_required`.
        #[arg(long)]
        all_dead: bool,
        #[command(flatten)]
        db: Db,
    },
}

#[derive(Args)]
struct Db {
    /// The SQLite database file.
    #[arg(long, env = "INBOX_DB", default_value = ".inbox/inbox.db")]
    db: PathBuf,
}

#[derive(Args)]
struct Components {
    /// The capture component (default: beside the executable, or the workspace build).
    #[arg(long, env = "INBOX_CAPTURE_WASM")]
    capture: Option<PathBuf>,
    /// The processor component: the default one, or your own.
    #[arg(long, env = "INBOX_PROCESSOR_WASM")]
    processor: Option<PathBuf>,
}

impl Components {
    fn paths(&self) -> Result<ComponentPaths> {
        let mut paths = ComponentPaths::beside_executable().or_else(|error| {
            match (&self.capture, &self.processor) {
                (Some(capture), Some(processor)) => Ok(ComponentPaths {
                    capture: capture.clone(),
                    processor: processor.clone(),
                }),
                _ => Err(error),
            }
        })?;
        if let Some(capture) = &self.capture {
            paths.capture = capture.clone();
        }
        if let Some(processor) = &self.processor {
            paths.processor = processor.clone();
        }
        Ok(paths)
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    init_tracing();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(cli.command))
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("INBOX_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,wasmtime=warn,cranelift=warn")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("INBOX_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn run(command: Command) -> Result<()> {
    match command {
        Command::Serve {
            listen,
            db,
            components,
        } => {
            let (runtime, store, settings, wake) = start(&db, &components)?;
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("cannot listen on {listen}"))?;
            let address = listener.local_addr()?;
            tracing::info!(%address, db = %db.db.display(), "serving");
            // Scripts and tests read the bound address (the port may have been 0).
            println!("listening on http://{address}");
            // On SIGTERM or Ctrl-C: stop accepting and claiming, finish what is in flight.
            let (stop, stopped) = watch::channel(false);
            let worker = tokio::spawn(processing::run_worker(
                runtime.clone(),
                store,
                wake,
                settings,
                stopped.clone(),
            ));
            let mut http_stopped = stopped;
            let mut server = tokio::spawn(engine::serve_http(
                runtime,
                listener,
                async move {
                    let _ = http_stopped.wait_for(|stop| *stop).await;
                },
                SHUTDOWN_GRACE,
            ));
            tokio::select! {
                result = &mut server => return result?.context("the HTTP server stopped"),
                () = shutdown_signal() => {}
            }
            stop.send_replace(true);
            server.await??;
            worker.await?;
            tracing::info!("stopped");
            Ok(())
        }
        Command::Worker { db, components } => {
            let (runtime, store, settings, wake) = start(&db, &components)?;
            tracing::info!(db = %db.db.display(), "processing");
            let (stop, stopped) = watch::channel(false);
            let worker = tokio::spawn(processing::run_worker(
                runtime, store, wake, settings, stopped,
            ));
            shutdown_signal().await;
            stop.send_replace(true);
            worker.await?;
            tracing::info!("stopped");
            Ok(())
        }
        Command::Status { id, db } => {
            let store = SqliteStore::open(&db.db)?;
            let view = view_of(&store, &id).await?;
            let letters = store.dead_letters(&id).await?;
            let letters: Vec<_> = letters
                .iter()
                .map(|l| serde_json::json!({ "at": l.at, "attempts": l.attempts, "reason": l.reason }))
                .collect();
            let mut json = serde_json::to_value(view)?;
            json["dead_letters"] = serde_json::Value::Array(letters);
            println!("{}", serde_json::to_string_pretty(&json)?);
            Ok(())
        }
        Command::List { status, limit, db } => {
            let store = SqliteStore::open(&db.db)?;
            for view in store.list(status, limit).await? {
                println!("{}", serde_json::to_string(&view)?);
            }
            Ok(())
        }
        Command::Replay { id, all_dead, db } => {
            let store = SqliteStore::open(&db.db)?;
            let ids = match id {
                Some(id) => vec![id],
                None => store
                    .list(Some(State::OperatorRequired), usize::MAX >> 1)
                    .await?
                    .into_iter()
                    .map(|view| view.id)
                    .collect(),
            };
            let mut failed = 0;
            for id in &ids {
                match replay(&store, id).await {
                    Ok(view) => println!("{}", serde_json::to_string(&view)?),
                    Err(error) if all_dead => {
                        failed += 1;
                        eprintln!("{id}: {error:#}");
                    }
                    Err(error) => return Err(error),
                }
            }
            if all_dead {
                eprintln!(
                    "replayed {} of {} dead webhooks",
                    ids.len() - failed,
                    ids.len()
                );
            }
            if failed > 0 {
                bail!("{failed} webhooks could not be replayed");
            }
            Ok(())
        }
    }
}

/// How long open connections get to finish their requests after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

type Started = (
    Arc<Runtime>,
    Arc<dyn Store>,
    Settings,
    Arc<tokio::sync::Notify>,
);

fn start(db: &Db, components: &Components) -> Result<Started> {
    let config: BTreeMap<String, String> = inbox_core::config::from_env(std::env::vars());
    let settings = Settings::from_config(&config)?;
    // Refuse to start on settings the components would refuse at every request.
    CaptureLimits::from_config(&config)?;
    inbox_core::provider::Source::named(&config)?;
    inbox_core::forward::Demo::from_config(&config)?;
    if let Some(url) = config.get("forward_url") {
        inbox_core::forward::Target::parse(url)?;
    }
    let limits = Limits {
        capture_deadline: Duration::from_millis(parsed(&config, "capture_timeout_ms", 10_000)?),
        processor_deadline: settings.processor_timeout,
        max_memory_bytes: parsed(&config, "max_component_memory_bytes", 64 << 20)?,
    };
    let sqlite =
        SqliteStore::open(&db.db).with_context(|| format!("cannot open {}", db.db.display()))?;
    let wake = sqlite.written();
    let store: Arc<dyn Store> = Arc::new(sqlite);
    let runtime = Runtime::load(
        &components.paths()?,
        Arc::new(config),
        store.clone(),
        limits,
    )?;
    Ok((runtime, store, settings, wake))
}

async fn view_of(store: &dyn Store, id: &str) -> Result<StatusView> {
    let webhook = store.webhook(id).await?;
    let status = store.status(id).await?;
    match (webhook, status) {
        (Some(webhook), Some(status)) => Ok(StatusView::new(&webhook, &status)),
        _ => bail!("no webhook has the id {id}"),
    }
}

async fn replay(store: &dyn Store, id: &str) -> Result<StatusView> {
    store::replay(store, id, now_ms()).await?;
    view_of(store, id).await
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}
