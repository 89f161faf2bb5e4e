//! `inbox serve`: the capture endpoint over HTTP, and the worker processing what arrives.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use clap::Args;

use super::args::{ComponentArgs, MetricsArgs, StoreArgs};
use super::environment::Environment;
use super::hosts::Hosts;
use super::signal::{SHUTDOWN_GRACE, stop_on_signal, stopped};
use crate::{serve, worker};

#[derive(Args)]
pub struct Serve {
    #[arg(long, env = "INBOX_LISTEN", default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    #[command(flatten)]
    metrics: MetricsArgs,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    components: ComponentArgs,
}

impl Serve {
    pub async fn run(self, env: &Environment) -> Result<()> {
        let (store, wake) = self.store.open_to_process(env).await?;
        let mut hosts = Hosts::prepare(env, self.components.paths(Some(&self.store))?)?;
        if let Some(warning) = inbox_core::capture::short_admin_token(env.config.as_ref()) {
            tracing::warn!("{warning}");
        }
        let http_limits = serve::HttpLimits::from_config(env.config.as_ref())?;
        inbox_wasm_host::engine_config::fits_the_pool(
            http_limits.max_requests + hosts.settings.concurrency,
        )?;
        let listen = self.listen;
        let listener =
            serve::listen(listen).with_context(|| format!("cannot listen on {listen}"))?;
        let address = listener.local_addr()?;
        // Admin requests are answered for the names this listener is reached by on this
        // machine, unless the operator says which: a page whose name is rebound to
        // 127.0.0.1 still sends its own name (DNS rebinding). Known once bound (the port
        // may have been 0), so capture is loaded after.
        let allowed_hosts = hosts.default_setting(
            inbox_core::capture::ALLOWED_HOSTS,
            inbox_core::capture::default_for_listener(address),
        );
        let capture = hosts.capture(store.clone())?;
        let processor = hosts.processor()?;
        // On SIGTERM or Ctrl-C: stop accepting and claiming, finish what is in flight.
        let stop = stop_on_signal();
        // Both listeners bound before the address is announced: a start that fails fails
        // before a script waiting for it goes on.
        let (recorder, metrics_server) = self.metrics.start(env, store.clone(), stop.clone())?;
        tracing::info!(
            %address,
            store = self.store.describe(),
            %allowed_hosts,
            retries = %hosts.settings.policy,
            "serving"
        );
        // Scripts and tests read the bound address (the port may have been 0).
        println!("listening on http://{address}");
        let worker = tokio::spawn(worker::run(
            processor,
            store,
            wake,
            hosts.settings,
            recorder.clone(),
            stop.clone(),
        ));
        serve::serve(
            capture,
            listener,
            http_limits,
            recorder,
            stopped(stop),
            SHUTDOWN_GRACE,
        )
        .await
        .context("the HTTP server stopped")?;
        worker.await?;
        if let Some(metrics_server) = metrics_server {
            metrics_server.await??;
        }
        tracing::info!("stopped");
        Ok(())
    }
}
