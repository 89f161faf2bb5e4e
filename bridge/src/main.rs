//! `inbox`: the native host of the webhook inbox.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, CommandFactory, Parser, Subcommand};
use inbox_bridge::lambda::sqs::Queues;
use inbox_bridge::lambda::{self, Handler};
use inbox_bridge::operator::{self, DeadQueue};
use inbox_bridge::settings::Settings;
use inbox_bridge::{conformance, metrics, serve, tail, terminal, worker};
use inbox_core::State;
use inbox_core::config::{CaptureLimits, parsed};
use inbox_core::listing::{Filter, Query};
use inbox_host::{CaptureHost, ComponentPaths, Limits, ProcessorHost, StoreComponent};
use inbox_stores::WebhookStore;
use inbox_stores::dynamodb::{self, DynamoStore};
use inbox_stores::sqlite::{DEFAULT_MAX_QUEUED_WRITES, SqliteStore};
use tokio::sync::{Notify, watch};

/// A webhook inbox: verify, store durably, process with retries and a dead-letter queue.
///
/// Configuration comes from `INBOX_*` environment variables (see the README); the
/// components read them as lower-case keys without the prefix.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// With none, `inbox` serves Lambda events when AWS_LAMBDA_RUNTIME_API is set.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the capture endpoint over HTTP and process what arrives.
    Serve {
        #[arg(long, env = "INBOX_LISTEN", default_value = "127.0.0.1:3000")]
        listen: SocketAddr,
        #[command(flatten)]
        metrics: MetricsAddress,
        #[command(flatten)]
        db: Db,
        #[command(flatten)]
        components: Components,
    },
    /// Process what another host (e.g. Spin) captured into the database, without HTTP.
    Worker {
        #[command(flatten)]
        metrics: MetricsAddress,
        #[command(flatten)]
        db: Db,
        #[command(flatten)]
        components: Components,
    },
    /// Serve AWS Lambda events: API Gateway HTTP API (v2) requests through the capture
    /// component, DynamoDB Stream and SQS records through the processor. One binary is
    /// the bootstrap of every function; it tells the events apart by their shape.
    Lambda {
        #[command(flatten)]
        components: Components,
        #[command(flatten)]
        queues: QueueUrls,
    },
    /// Check a processor component: run a fixed set of webhooks through it (every
    /// provider's shape, the largest payload, non-ASCII text, a destination answering 2xx,
    /// 429 with Retry-After, 410, 500, or not listening) and report each outcome, its time
    /// and memory. A component that does not fit the `processor` world is refused, with why.
    /// Its settings are the INBOX_PROCESSOR_* ones; forward_url is the kit's destination.
    CheckProcessor {
        /// The processor component (.wasm).
        path: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// The processor does not forward to forward_url: only check that it returns an
        /// outcome within its deadline and memory, not what each destination answer means.
        #[arg(long)]
        without_destination: bool,
    },
    /// Precompile components into DIR/<name>.cwasm (wasmtime's form): a host given
    /// <name>.wasm loads <name>.cwasm beside it instead of compiling, when it is compatible.
    Compile {
        /// The components (.wasm).
        #[arg(required = true)]
        components: Vec<PathBuf>,
        #[arg(long)]
        out_dir: PathBuf,
        /// The machine of the host that will load them, as a target triple (e.g.
        /// aarch64-unknown-linux-gnu for Lambda's arm64); default: this one.
        #[arg(long)]
        target: Option<String>,
    },
    /// Show a webhook's status and its dead-letter records.
    Status {
        id: String,
        #[command(flatten)]
        db: Db,
    },
    /// List webhooks, newest first: a table on a terminal, JSON lines otherwise.
    List {
        /// received, processing, completed, failed or operator_required.
        #[arg(long)]
        status: Option<State>,
        /// Only webhooks from this origin (e.g. stripe).
        #[arg(long)]
        origin: Option<String>,
        /// Only webhooks of this event type.
        #[arg(long = "type")]
        event_type: Option<String>,
        /// A webhook id or a provider's idempotency key.
        #[arg(long)]
        search: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// JSON lines even on a terminal.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: Db,
    },
    /// Follow what arrives and what becomes of it until interrupted: lines on a terminal,
    /// JSON lines (`"event": "arrived"` or `"changed"`) otherwise.
    Tail {
        /// How often to look at the store, in milliseconds.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
        every_ms: u64,
        /// JSON lines even on a terminal.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: Db,
    },
    /// Send a dead webhook (operator_required) round again with a fresh retry budget.
    Replay {
        /// The webhook to replay.
        #[arg(required_unless_present = "all_dead", conflicts_with = "all_dead")]
        id: Option<String>,
        /// Replay every webhook in `operator_required`; on AWS, then resolve every message
        /// of the dead queue (replay or requeue what it is about) and delete it once resolved.
        #[arg(long)]
        all_dead: bool,
        #[command(flatten)]
        db: Db,
        /// The Dead Webhooks Queue, to work through with --all-dead.
        #[arg(long, env = "INBOX_DEAD_QUEUE_URL")]
        dead_queue_url: Option<String>,
    },
    /// Give the webhooks in flight of a DynamoDB table written before the `due` index
    /// existed their index keys, so the sweep, the worker and the list find them. Run once
    /// after deploying a template with the index over an older table.
    Reindex {
        /// The DynamoDB table (the AWS SDK's AWS_REGION, credentials and AWS_ENDPOINT_URL apply).
        #[arg(long, env = "INBOX_TABLE")]
        table: String,
    },
    /// Send stuck webhooks round again now, keeping the attempts they used: `received`,
    /// `failed`, or `processing` whose lease has expired (on AWS: what the stream mapping
    /// gave up on, or a retry redriven to the dead queue). A live attempt is left alone.
    Requeue {
        #[arg(required = true)]
        ids: Vec<String>,
        #[command(flatten)]
        db: Db,
    },
}

/// Where the metrics are served, if anywhere.
#[derive(Args)]
struct MetricsAddress {
    /// Serve Prometheus metrics at http://ADDRESS/metrics, on a listener of their own
    /// (e.g. 127.0.0.1:9464); none by default.
    #[arg(long = "metrics-listen", env = "INBOX_METRICS_LISTEN")]
    address: Option<SocketAddr>,
}

type MetricsServer = tokio::task::JoinHandle<Result<()>>;

impl MetricsAddress {
    /// The metrics to record into, and the server that shows them (until `stop`), if an
    /// address is given; an address that cannot be listened on stops the start.
    async fn start(
        &self,
        store: Arc<dyn WebhookStore>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(Arc<dyn metrics::Metrics>, Option<MetricsServer>)> {
        let Some(address) = self.address else {
            return Ok((Arc::new(metrics::NoMetrics), None));
        };
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen on {address} for metrics"))?;
        let prometheus = Arc::new(metrics::Prometheus::default());
        let server = tokio::spawn(metrics::serve(
            listener,
            prometheus.clone(),
            store,
            async move {
                let _ = stop.wait_for(|stop| *stop).await;
            },
        ));
        Ok((prometheus, Some(server)))
    }
}

/// Where webhooks are stored: a SQLite file, or a DynamoDB table when one is named.
#[derive(Args)]
struct Db {
    /// The SQLite database file.
    #[arg(long, env = "INBOX_DB", default_value = ".inbox/inbox.db")]
    db: PathBuf,
    /// The DynamoDB table (the AWS SDK's AWS_REGION, credentials and AWS_ENDPOINT_URL apply).
    #[arg(long, env = "INBOX_TABLE", conflicts_with = "db")]
    table: Option<String>,
}

#[derive(Args)]
struct QueueUrls {
    /// The Failed Webhooks Queue: attempts to make again, after their backoff.
    #[arg(long, env = "INBOX_FAILED_QUEUE_URL")]
    failed_queue_url: String,
    /// The Dead Webhooks Queue: webhooks an operator has to look at.
    #[arg(long, env = "INBOX_DEAD_QUEUE_URL")]
    dead_queue_url: String,
}

impl Db {
    fn describe(&self) -> String {
        match &self.table {
            Some(table) => format!("dynamodb:{table}"),
            None => self.db.display().to_string(),
        }
    }

    /// The store, and what tells a worker that something was written (SQLite only: on
    /// DynamoDB the worker polls).
    async fn open(&self) -> Result<(Arc<dyn WebhookStore>, Arc<Notify>)> {
        match &self.table {
            Some(table) => {
                let store = dynamo_store(table).await?;
                Ok((Arc::new(store), Arc::new(Notify::new())))
            }
            None => {
                let config = inbox_core::config::from_env(std::env::vars());
                let queued = parsed(&config, "max_queued_writes", DEFAULT_MAX_QUEUED_WRITES)?;
                let sqlite = SqliteStore::open_bounded(&self.db, queued)
                    .with_context(|| format!("cannot open {}", self.db.display()))?;
                let written = sqlite.written();
                Ok((Arc::new(sqlite), written))
            }
        }
    }
}

async fn dynamo_store(table: &str) -> Result<DynamoStore> {
    let config = inbox_core::config::from_env(std::env::vars());
    let retention = dynamodb::retention_from_config(&config)?;
    Ok(DynamoStore::new(
        DynamoStore::client().await,
        table,
        retention,
    ))
}

#[derive(Args)]
struct Components {
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

impl Components {
    fn paths(&self, db: Option<&Db>) -> Result<ComponentPaths> {
        let mut paths = ComponentPaths::beside_executable().or_else(|error| {
            match (&self.capture, &self.processor) {
                (Some(capture), Some(processor)) => Ok(ComponentPaths {
                    capture: capture.clone(),
                    processor: processor.clone(),
                    store: None,
                }),
                _ => Err(error),
            }
        })?;
        if let Some(path) = &self.store_component {
            let sqlite = match db {
                Some(Db { db, table: None }) => db.clone(),
                _ => bail!("a store component stores in the SQLite database (--db), not DynamoDB"),
            };
            paths.store = Some(StoreComponent {
                path: path.clone(),
                sqlite,
            });
        }
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
    let command = match cli.command {
        Some(command) => command,
        None if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() => {
            Cli::parse_from(["inbox", "lambda"])
                .command
                .expect("a command")
        }
        None => {
            Cli::command().print_help()?;
            std::process::exit(2);
        }
    };
    init_tracing(&command);
    // A file grown past the process's size limit (RLIMIT_FSIZE, like a full disk) would
    // kill the host by SIGXFSZ mid-transaction; ignored, the write fails with EFBIG and the
    // store answers 503 until there is room again, as it does for a full disk.
    // SAFETY: SIG_IGN installs no handler code, and nothing in the process relies on
    // SIGXFSZ.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(command))
}

fn init_tracing(command: &Command) {
    // The kit's report is its output; what the processor prints is there with INBOX_LOG=info.
    let default = match command {
        Command::CheckProcessor { .. } | Command::Compile { .. } => "warn,wasmtime_wasi_http=error",
        _ => "info,wasmtime=warn,cranelift=warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("INBOX_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // A log line that cannot be written (the disk under the log is full) is dropped: the
    // subscriber's own report of it would go to the same stderr and panic the thread that
    // logged, a request's task or the SQLite writer.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(terminal::colour(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    // Lambda sends each line to CloudWatch, where JSON lines can be queried by field.
    let on_lambda = std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some();
    if on_lambda || std::env::var("INBOX_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn run(command: Command) -> Result<()> {
    match command {
        Command::Serve {
            listen,
            metrics,
            db,
            components,
        } => {
            let (store, wake) = db.open().await?;
            let host = Loaded::prepare(components.paths(Some(&db))?)?;
            let http_limits = serve::HttpLimits::from_config(host.config.as_ref())?;
            inbox_host::engine::fits_the_pool(
                http_limits.max_requests + host.settings.concurrency,
            )?;
            let capture = host.capture(store.clone())?;
            let processor = host.processor()?;
            let listener =
                serve::listen(listen).with_context(|| format!("cannot listen on {listen}"))?;
            let address = listener.local_addr()?;
            // On SIGTERM or Ctrl-C: stop accepting and claiming, finish what is in flight.
            let (stop, stopped) = watch::channel(false);
            // Both listeners bound before the address is announced: a start that fails
            // fails before a script waiting for it goes on.
            let (recorder, metrics_server) = metrics.start(store.clone(), stopped.clone()).await?;
            tracing::info!(%address, store = db.describe(), "serving");
            // Scripts and tests read the bound address (the port may have been 0).
            println!("listening on http://{address}");
            let worker = tokio::spawn(worker::run(
                processor,
                store,
                wake,
                host.settings,
                recorder.clone(),
                stopped.clone(),
            ));
            let mut http_stopped = stopped;
            let mut server = tokio::spawn(serve::serve(
                capture,
                listener,
                http_limits,
                recorder,
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
            if let Some(metrics_server) = metrics_server {
                metrics_server.await??;
            }
            tracing::info!("stopped");
            Ok(())
        }
        Command::Worker {
            metrics,
            db,
            components,
        } => {
            let (store, wake) = db.open().await?;
            let host = Loaded::prepare(components.paths(Some(&db))?)?;
            let processor = host.processor()?;
            tracing::info!(store = db.describe(), "processing");
            let (stop, stopped) = watch::channel(false);
            let (recorder, metrics_server) = metrics.start(store.clone(), stopped.clone()).await?;
            let worker = tokio::spawn(worker::run(
                processor,
                store,
                wake,
                host.settings,
                recorder,
                stopped,
            ));
            shutdown_signal().await;
            stop.send_replace(true);
            worker.await?;
            if let Some(metrics_server) = metrics_server {
                metrics_server.await??;
            }
            tracing::info!("stopped");
            Ok(())
        }
        Command::Lambda { components, queues } => {
            let host = Loaded::prepare(components.paths(None)?)?;
            let table = host
                .config
                .get("table")
                .cloned()
                .context("INBOX_TABLE names the DynamoDB table; it is not set")?;
            let store: Arc<dyn WebhookStore> = Arc::new(dynamo_store(&table).await?);
            let runs = lambda::Components::from_config(host.config.as_ref())?;
            let capture = match runs.capture {
                true => Some(host.capture(store.clone())?),
                false => None,
            };
            let processor: Option<Arc<dyn inbox_bridge::attempt::Processor>> = match runs.processor
            {
                true => Some(host.processor()?),
                false => None,
            };
            let queues = Queues::new(
                Queues::client().await,
                queues.failed_queue_url,
                queues.dead_queue_url,
            );
            // Lambda tells the function its memory (in MB); an overcommitted function is
            // killed mid-batch when its attempts grow, so say so at once.
            let memory_mb = std::env::var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").ok();
            if let Some(mb) = memory_mb.and_then(|mb| mb.parse::<usize>().ok())
                && let Err(problem) = host.settings.fits_memory(mb << 20)
            {
                tracing::warn!(problem, "the function is too small for its settings");
            }
            tracing::info!(table, "serving Lambda events");
            let handler = Handler::new(
                capture,
                processor,
                store,
                queues,
                host.settings,
                Arc::new(metrics::Emf),
            );
            lambda::run(handler).await.map_err(|e| anyhow!(e))
        }
        Command::CheckProcessor {
            path,
            json,
            without_destination,
        } => {
            let forwarding = if without_destination {
                conformance::Forwarding::Unused
            } else {
                conformance::Forwarding::Required
            };
            let config = inbox_core::config::from_env(std::env::vars());
            let limits = instance_limits(&config, &Settings::from_config(&config)?)?;
            // Compiled afresh, as a new machine would: the report gives the real cost.
            let engine = inbox_host::engine::new(inbox_host::engine::CodeCache::Off)?;
            let report = conformance::check(&engine, &path, config, &limits, forwarding).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.render());
            }
            if !report.passed {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Compile {
            components,
            out_dir,
            target,
        } => {
            let compiler = inbox_host::precompiled::compiler(target.as_deref())?;
            let progress = terminal::progress(components.len(), "compiling");
            for wasm in &components {
                progress.set_message(wasm.display().to_string());
                let written = inbox_host::precompiled::precompile(&compiler, wasm, &out_dir)?;
                progress.suspend(|| {
                    println!(
                        "{} -> {} ({:.1} MB, compiled in {} ms)",
                        wasm.display(),
                        written.path.display(),
                        written.size_bytes as f64 / 1e6,
                        written.compile_time.as_millis()
                    )
                });
                progress.inc(1);
            }
            progress.finish_and_clear();
            Ok(())
        }
        Command::Status { id, db } => {
            let (store, _) = db.open().await?;
            let details = operator::details_of(store.as_ref(), &id).await?;
            println!("{}", serde_json::to_string_pretty(&details)?);
            Ok(())
        }
        Command::List {
            status,
            origin,
            event_type,
            search,
            limit,
            json,
            db,
        } => {
            let (store, _) = db.open().await?;
            let query = Query {
                filter: Filter {
                    origin,
                    event_type,
                    search,
                },
                state: status,
                ..Query::default()
            };
            let views = operator::first(store.as_ref(), query, limit).await?;
            let stdout = std::io::stdout();
            if !json && stdout.is_terminal() {
                print!("{}", terminal::table(&views, terminal::colour(&stdout)));
            } else {
                for view in views {
                    println!("{}", serde_json::to_string(&view)?);
                }
            }
            Ok(())
        }
        Command::Tail { every_ms, json, db } => {
            let (store, _) = db.open().await?;
            let stdout = std::io::stdout();
            let table = !json && stdout.is_terminal();
            let colour = terminal::colour(&stdout);
            tail::follow(store.as_ref(), Duration::from_millis(every_ms), |event| {
                if table {
                    println!("{}", terminal::event_line(event, colour));
                } else if let Ok(line) = serde_json::to_string(event) {
                    println!("{line}");
                }
            })
            .await
        }
        Command::Replay {
            id,
            all_dead: _,
            db,
            dead_queue_url,
        } => {
            let (store, _) = db.open().await?;
            let store = store.as_ref();
            let Some(id) = id else {
                let dead_queue = match dead_queue_url {
                    Some(url) => {
                        let aws = aws_config::load_from_env().await;
                        Some(DeadQueue {
                            queues: Queues::new(aws_sdk_sqs::Client::new(&aws), String::new(), url),
                            streams: aws_sdk_dynamodbstreams::Client::new(&aws),
                            table: db.table.clone(),
                        })
                    }
                    None => None,
                };
                return operator::replay_all_dead(store, dead_queue).await;
            };
            let view = operator::replay(store, &id).await?;
            println!("{}", serde_json::to_string(&view)?);
            Ok(())
        }
        Command::Reindex { table } => {
            let indexed = dynamo_store(&table).await?.backfill_due_index().await?;
            eprintln!("gave {indexed} webhooks in flight their due index keys");
            Ok(())
        }
        Command::Requeue { ids, db } => {
            let (store, _) = db.open().await?;
            let mut failed = 0;
            for id in &ids {
                match operator::requeue(store.as_ref(), id).await {
                    Ok(view) => println!("{}", serde_json::to_string(&view)?),
                    Err(error) => {
                        failed += 1;
                        eprintln!("{id}: {error:#}");
                    }
                }
            }
            if failed > 0 {
                bail!("{failed} of {} webhooks could not be requeued", ids.len());
            }
            Ok(())
        }
    }
}

/// How long open connections get to finish their requests after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The configuration, checked, and the components' engine, ready to load them.
struct Loaded {
    config: Arc<BTreeMap<String, String>>,
    settings: Settings,
    limits: Limits,
    engine: inbox_host::Engine,
    paths: ComponentPaths,
}

impl Loaded {
    /// Refuses to start on settings the components would refuse at every request.
    fn prepare(paths: ComponentPaths) -> Result<Loaded> {
        let config: BTreeMap<String, String> = inbox_core::config::from_env(std::env::vars());
        let settings = Settings::from_config(&config)?;
        CaptureLimits::from_config(&config)?;
        inbox_core::provider::Source::check_all(&config)?;
        inbox_core::forward::Demo::from_config(&config)?;
        if let Some(url) = config.get("forward_url") {
            inbox_core::forward::Target::parse(url)?;
        }
        let limits = instance_limits(&config, &settings)?;
        inbox_host::engine::fits_the_pool(settings.concurrency)?;
        Ok(Loaded {
            config: Arc::new(config),
            settings,
            limits,
            engine: inbox_host::engine::new(inbox_host::engine::CodeCache::OnDisk)?,
            paths,
        })
    }

    fn capture(&self, store: Arc<dyn WebhookStore>) -> Result<Arc<CaptureHost>> {
        CaptureHost::load(
            &self.engine,
            &self.paths.capture,
            self.paths.store.as_ref(),
            self.config.clone(),
            store,
            &self.limits,
        )
    }

    fn processor(&self) -> Result<Arc<ProcessorHost>> {
        let processor = ProcessorHost::load(
            &self.engine,
            &self.paths.processor,
            self.config.clone(),
            &self.limits,
        )?;
        Ok(Arc::new(processor))
    }
}

/// The deadlines and memory limit of the component instances.
fn instance_limits(config: &BTreeMap<String, String>, settings: &Settings) -> Result<Limits> {
    Ok(Limits {
        capture_deadline: Duration::from_millis(parsed(config, "capture_timeout_ms", 10_000)?),
        processor_deadline: settings.processor_timeout,
        max_memory_bytes: settings.component_memory_bytes,
    })
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
