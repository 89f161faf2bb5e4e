//! `inbox lambda`: the bootstrap of every function of the AWS deployment.

use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use inbox_stores::WebhookStore;

use super::args::{ComponentArgs, dynamo_store};
use super::environment::Environment;
use super::hosts::Hosts;
use crate::attempt::Processor;
use crate::aws::sqs::{self, Queues};
use crate::lambda::{self, Handler};
use crate::metrics;

#[derive(Args)]
pub struct Lambda {
    #[command(flatten)]
    components: ComponentArgs,
    /// The Failed Webhooks Queue: attempts to make again, after their backoff.
    #[arg(long, env = "INBOX_FAILED_QUEUE_URL")]
    failed_queue_url: String,
    /// The Dead Webhooks Queue: webhooks an operator has to look at.
    #[arg(long, env = "INBOX_DEAD_QUEUE_URL")]
    dead_queue_url: String,
}

impl Lambda {
    pub async fn run(self, env: &Environment) -> Result<()> {
        let hosts = Hosts::prepare(env, self.components.paths(None)?)?;
        let table = env
            .config
            .get("table")
            .context("INBOX_TABLE names the DynamoDB table; it is not set")?;
        let dynamo = dynamo_store(env, table).await?;
        let payloads = dynamo.payloads().cloned();
        let store: Arc<dyn WebhookStore> = Arc::new(dynamo);
        let runs = lambda::FunctionComponents::from_config(env.config.as_ref())?;
        let capture = match runs.capture {
            true => Some(hosts.capture(store.clone())?),
            false => None,
        };
        // The function that runs capture serves the admin API.
        if runs.capture
            && let Some(warning) = inbox_core::capture::short_admin_token(env.config.as_ref())
        {
            tracing::warn!("{warning}");
        }
        let processor: Option<Arc<dyn Processor>> = match runs.processor {
            true => Some(hosts.processor()?),
            false => None,
        };
        // The schedule's messages are delayed at most as long as SQS allows.
        let ahead = hosts.settings.wake_ahead;
        if ahead > sqs::MAX_DELAY {
            bail!(
                "INBOX_WAKE_AHEAD_MS = {}: SQS delays a message by at most {} ms",
                ahead.as_millis(),
                sqs::MAX_DELAY.as_millis()
            );
        }
        let queues = Queues::new(
            Queues::client().await,
            self.failed_queue_url,
            self.dead_queue_url,
        );
        // Lambda tells the function its memory (in MB); an overcommitted function is
        // killed mid-batch when its attempts grow, so say so at once.
        let memory_mb = std::env::var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").ok();
        if let Some(mb) = memory_mb.and_then(|mb| mb.parse::<usize>().ok())
            && let Err(problem) = hosts.settings.fits_memory(mb << 20)
        {
            tracing::warn!(problem, "the function is too small for its settings");
        }
        tracing::info!(table, retries = %hosts.settings.policy, "serving Lambda events");
        let handler = Handler::new(
            capture,
            processor,
            store,
            queues,
            hosts.settings,
            metrics::with_alerts(Arc::new(metrics::Emf), env.config.as_ref())?,
        )
        .with_payloads(payloads);
        lambda::run(handler).await.map_err(|e| anyhow!(e))
    }
}
