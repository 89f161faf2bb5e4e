//! `inbox`, the native host: the capture component behind an HTTP server, processing by the
//! local worker or by Lambda's event sources, and the operator's commands. The wasm host is
//! `inbox-wasm-host`, the stores `inbox-stores`; here is what runs them.
//!
//! - [`settings`]: how processing is paced;
//! - [`attempt`]: one processing attempt, for every host; [`worker`]: the local worker;
//!   [`sweep`]: the local store's retention;
//! - [`serve`]: the HTTP server; [`budget`]: the body bytes it and the worker hold at once;
//!   [`lambda`]: the Lambda handlers; [`aws`]: the failed and dead queues and the table's
//!   stream, for Lambda and the operator alike, and the secrets read from SSM Parameter
//!   Store at start;
//! - [`metrics`]: what operators graph, for Prometheus and CloudWatch ([`metrics_page`]
//!   serves it);
//! - [`operator`]: what the operator's commands do ([`tail`] follows the store, [`pager`] reads
//!   lists longer than a page), [`terminal`]
//!   what they print;
//!   [`conformance`]: `inbox check-processor`;
//! - [`cli`]: the command line, one file per command.

pub mod attempt;
pub mod aws;
pub mod breaker;
pub mod budget;
pub mod cli;
pub mod conformance;
pub mod lambda;
pub mod metrics;
pub mod metrics_page;
pub mod operator;
pub mod pager;
pub mod serve;
pub mod settings;
pub mod sweep;
pub mod tail;
pub mod terminal;
pub mod worker;

use async_trait::async_trait;
use inbox_core::Webhook;
use inbox_wasm_host::{Named, Processed, ProcessorHost};

/// The processor component is what processes, wherever an attempt runs.
#[async_trait]
impl attempt::Processor for ProcessorHost {
    async fn destination(&self, webhook: &Webhook) -> Named {
        ProcessorHost::destination(self, webhook).await
    }

    async fn process(&self, webhook: &Webhook, attempt: u32, named: Option<Named>) -> Processed {
        ProcessorHost::process(self, webhook, attempt, named).await
    }
}
