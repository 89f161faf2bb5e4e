//! The processor component: a fresh instance per attempt, called through the typed
//! bindings of `webhooks:inbox/handler`. Whatever it does, the attempt ends with an
//! outcome: a trap, an overrun deadline or the memory limit are a failed attempt.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use inbox_core::scope::Reader;
use inbox_core::{Webhook, lifecycle};
use wasmtime::Engine;
use wasmtime::component::InstancePre;

use crate::bindings::exports::webhooks::inbox::handler::{GuestIndices, Outcome};
use crate::bindings::webhook_to_wit;
use crate::engine::{self, Limits};
use crate::state::HostState;

pub struct ProcessorHost {
    engine: Engine,
    pre: InstancePre<HostState>,
    indices: GuestIndices,
    config: Arc<BTreeMap<String, String>>,
    deadline: Duration,
    max_memory_bytes: usize,
}

impl ProcessorHost {
    /// Compiles and links the processor at `path`; it sees only its part of `config`.
    pub fn load(
        engine: &Engine,
        path: &Path,
        config: Arc<BTreeMap<String, String>>,
        limits: &Limits,
    ) -> Result<ProcessorHost> {
        let component = engine::compile(engine, path)?;
        let (pre, indices) = engine::linker(engine)?
            .instantiate_pre(&component)
            .and_then(|pre| {
                let indices = GuestIndices::new(&pre)?;
                Ok((pre, indices))
            })
            .map_err(anyhow::Error::from)
            .with_context(|| format!("{} is not a processor component", path.display()))?;
        Ok(ProcessorHost {
            engine: engine.clone(),
            pre,
            indices,
            config: Arc::new(Reader::Processor.visible(&config)),
            deadline: limits.processor_deadline,
            max_memory_bytes: limits.max_memory_bytes,
        })
    }

    /// Runs the processor on one webhook; `attempt` starts at 1.
    pub async fn process(&self, webhook: &Webhook, attempt: u32) -> lifecycle::Outcome {
        // A processor is the user's code: no store, and no requests to the app itself.
        let state = HostState::new("processor", self.config.clone(), self.max_memory_bytes);
        let mut store = engine::store(&self.engine, state, self.deadline);
        let run = async {
            let instance = self.pre.instantiate_async(&mut store).await?;
            self.indices
                .load(&mut store, &instance)?
                .call_process(&mut store, &webhook_to_wit(webhook.clone()), attempt)
                .await
        };
        match tokio::time::timeout(self.deadline, run).await {
            Ok(Ok(outcome)) => outcome_from_wit(outcome),
            Ok(Err(error)) => lifecycle::Outcome::Retry {
                reason: format!(
                    "the processor failed: {}",
                    engine::describe_trap(&error.into())
                ),
                delay_ms: None,
            },
            Err(_) => lifecycle::Outcome::Retry {
                reason: format!(
                    "the processor exceeded its {} ms deadline",
                    self.deadline.as_millis()
                ),
                delay_ms: None,
            },
        }
    }
}

/// The processor's answer, as the core's outcome.
fn outcome_from_wit(outcome: Outcome) -> lifecycle::Outcome {
    match outcome {
        Outcome::Completed => lifecycle::Outcome::Completed,
        Outcome::Retry(request) => lifecycle::Outcome::Retry {
            reason: request.reason,
            delay_ms: request.delay_ms,
        },
        Outcome::Reject(reason) => lifecycle::Outcome::Reject { reason },
    }
}
