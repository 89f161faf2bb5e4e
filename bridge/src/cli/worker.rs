//! `inbox worker`: process what another host (e.g. Spin) captured, without HTTP.

use anyhow::Result;
use clap::Args;

use super::args::{ComponentArgs, MetricsArgs, StoreArgs};
use super::environment::Environment;
use super::hosts::Hosts;
use super::signal::stop_on_signal;
use crate::worker;

#[derive(Args)]
pub struct Worker {
    #[command(flatten)]
    metrics: MetricsArgs,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    components: ComponentArgs,
}

impl Worker {
    pub async fn run(self, env: &Environment) -> Result<()> {
        let (store, wake) = self.store.open_to_process(env).await?;
        let hosts = Hosts::prepare(env, self.components.paths(Some(&self.store))?)?;
        let processor = hosts.processor()?;
        tracing::info!(
            store = self.store.describe(),
            retries = %hosts.settings.policy,
            "processing"
        );
        let stop = stop_on_signal();
        let (recorder, metrics_server) = self.metrics.start(env, store.clone(), stop.clone())?;
        worker::run(processor, store, wake, hosts.settings, recorder, stop).await;
        if let Some(metrics_server) = metrics_server {
            metrics_server.await??;
        }
        tracing::info!("stopped");
        Ok(())
    }
}
