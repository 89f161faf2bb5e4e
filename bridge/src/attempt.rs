//! One processing attempt, written once for the local worker and for Lambda: read the
//! status, take the webhook (compare-and-swap into `processing` with a lease), run the
//! processor, let what follows the transition happen, record it (compare-and-swap again)
//! and log it. The hosts differ only in [`FollowUp`]: nothing locally, the failed or dead
//! queue's message on Lambda.

use std::borrow::Cow;
use std::time::Instant;

use async_trait::async_trait;
use inbox_core::clock::now_ms;
use inbox_core::lifecycle::{Outcome, Transition};
use inbox_core::{State, Status, Webhook};
use inbox_stores::{StoreError, WebhookStore};

use crate::settings::Settings;

/// Runs the user's processing (the processor component, in every host).
#[async_trait]
pub trait Processor: Send + Sync {
    /// Processes `webhook` on attempt `attempt` (from 1). Whatever happens inside, the
    /// answer is an outcome: a failure to run is a retry like any other.
    async fn process(&self, webhook: &Webhook, attempt: u32) -> Outcome;
}

/// What follows a transition, before it is recorded, so that a recorded state always has
/// its follow-up (on Lambda: a recorded `failed` its retry message, a recorded
/// `operator_required` its dead-queue notice). If it fails, nothing is recorded: the lease
/// expires and the webhook is taken again.
#[async_trait]
pub trait FollowUp: Send + Sync {
    async fn before_recording(
        &self,
        webhook: &Webhook,
        transition: &Transition,
    ) -> anyhow::Result<()>;
}

/// Locally nothing follows: the worker finds what is due in the store.
pub struct NoFollowUp;

#[async_trait]
impl FollowUp for NoFollowUp {
    async fn before_recording(&self, _: &Webhook, _: &Transition) -> anyhow::Result<()> {
        Ok(())
    }
}

/// How an attempt went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempted {
    /// The processor ran and its outcome was recorded: the webhook is now in this state.
    Recorded(State),
    /// Not taken: finished, not due yet, or another attempt holds the lease; the status read.
    NotTaken(Status),
    /// Another attempt took it between the read and the claim.
    TakenByAnother,
    /// The lease expired before the outcome was recorded; the outcome is discarded.
    Discarded,
    /// No status is stored under the id.
    Missing,
}

#[derive(Debug, thiserror::Error)]
pub enum AttemptError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0:#}")]
    FollowUp(anyhow::Error),
}

/// What an attempt needs.
pub struct Attempts<'a> {
    pub store: &'a dyn WebhookStore,
    pub processor: &'a dyn Processor,
    pub follow_up: &'a dyn FollowUp,
    pub settings: &'a Settings,
}

impl Attempts<'_> {
    /// Takes `id` if it is due, processes it and records the outcome. `webhook` is the
    /// webhook when the caller has it already (a stream image, a queue message); without
    /// it, it is read once taken.
    pub async fn run(
        &self,
        id: &str,
        webhook: Option<&Webhook>,
    ) -> Result<Attempted, AttemptError> {
        let Some(status) = self.store.status(id).await? else {
            return Ok(Attempted::Missing);
        };
        let lease_ms = self.settings.lease.as_millis() as u64;
        let Ok(claimed) = status.claim(now_ms(), lease_ms) else {
            tracing::debug!(id, state = %status.state, "not taken");
            return Ok(Attempted::NotTaken(status));
        };
        let claim = Transition {
            status: claimed.clone(),
            dead_letter: None,
        };
        if !self.store.swap_status(id, status.version, &claim).await? {
            tracing::debug!(id, "another attempt took it first");
            return Ok(Attempted::TakenByAnother);
        }
        let webhook = match webhook {
            Some(webhook) => Cow::Borrowed(webhook),
            None => Cow::Owned(self.store.webhook(id).await?.ok_or_else(|| {
                StoreError::Corrupt(format!("webhook {id} has a status but no item"))
            })?),
        };

        let started = Instant::now();
        let outcome = self.processor.process(&webhook, claimed.retries).await;
        let transition = claimed
            .finish(&outcome, &self.settings.policy, now_ms())
            .expect("a claimed status is processing");
        self.follow_up
            .before_recording(&webhook, &transition)
            .await
            .map_err(AttemptError::FollowUp)?;
        if !self
            .store
            .swap_status(id, claimed.version, &transition)
            .await?
        {
            tracing::warn!(
                id,
                "the lease expired before the outcome was recorded; the attempt is discarded"
            );
            return Ok(Attempted::Discarded);
        }
        log_attempt(&webhook, &claimed, &outcome, &transition, started);
        Ok(Attempted::Recorded(transition.status.state))
    }
}

/// One line per attempt, and an error for a dead letter.
fn log_attempt(
    webhook: &Webhook,
    claimed: &Status,
    outcome: &Outcome,
    transition: &Transition,
    started: Instant,
) {
    let (id, origin, attempt) = (&webhook.id, &webhook.origin, claimed.retries);
    let state = transition.status.state;
    let elapsed_ms = started.elapsed().as_millis() as u64;
    match outcome {
        Outcome::Completed => {
            tracing::info!(id, origin, attempt, elapsed_ms, %state, "processed")
        }
        Outcome::Retry { reason, .. } | Outcome::Reject { reason } => {
            tracing::warn!(id, origin, attempt, elapsed_ms, %state, reason, "attempt failed")
        }
    }
    if state == State::OperatorRequired {
        tracing::error!(
            id,
            reason = transition.status.last_error.as_deref().unwrap_or(""),
            "dead-lettered: an operator is required"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use inbox_core::lifecycle::RetryPolicy;
    use inbox_stores::sqlite::SqliteStore;

    use super::*;

    fn settings() -> Settings {
        Settings {
            policy: RetryPolicy {
                max_retries: 1,
                base_delay_ms: 60_000,
                max_delay_ms: 60_000,
            },
            processor_timeout: Duration::from_secs(1),
            lease: Duration::from_secs(2),
            concurrency: 1,
            poll_interval: Duration::from_millis(10),
        }
    }

    fn webhook(key: &str) -> Webhook {
        Webhook {
            id: inbox_core::id::webhook_id("stripe", key),
            origin: "stripe".into(),
            event_type: "charge.succeeded".into(),
            provider_timestamp: None,
            received_at: now_ms(),
            idempotency_key: key.into(),
            headers: Vec::new(),
            payload: b"{}".to_vec(),
        }
    }

    /// Answers each attempt with the next scripted outcome; `meanwhile` runs inside the
    /// attempt, as another worker would.
    struct Scripted {
        outcomes: Mutex<Vec<Outcome>>,
        seen: Mutex<Vec<u32>>,
        meanwhile: Option<Arc<SqliteStore>>,
    }

    impl Scripted {
        fn new(outcomes: Vec<Outcome>) -> Scripted {
            Scripted {
                outcomes: Mutex::new(outcomes),
                seen: Mutex::new(Vec::new()),
                meanwhile: None,
            }
        }
    }

    #[async_trait]
    impl Processor for Scripted {
        async fn process(&self, webhook: &Webhook, attempt: u32) -> Outcome {
            self.seen.lock().unwrap().push(attempt);
            if let Some(store) = &self.meanwhile {
                // The lease is taken over (it expired, and another worker retook it).
                let status = store.status(&webhook.id).await.unwrap().unwrap();
                let mut taken = status.clone();
                taken.version += 1;
                let transition = Transition {
                    status: taken,
                    dead_letter: None,
                };
                assert!(
                    store
                        .swap_status(&webhook.id, status.version, &transition)
                        .await
                        .unwrap()
                );
            }
            self.outcomes.lock().unwrap().remove(0)
        }
    }

    /// Notes every transition it is shown, and can refuse them.
    #[derive(Default)]
    struct Recorder {
        seen: Mutex<Vec<State>>,
        refuse: bool,
    }

    #[async_trait]
    impl FollowUp for Recorder {
        async fn before_recording(
            &self,
            _: &Webhook,
            transition: &Transition,
        ) -> anyhow::Result<()> {
            self.seen.lock().unwrap().push(transition.status.state);
            if self.refuse {
                anyhow::bail!("the queue is down");
            }
            Ok(())
        }
    }

    fn store() -> (tempfile::TempDir, Arc<SqliteStore>) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("inbox.db")).unwrap();
        (dir, Arc::new(store))
    }

    fn retry() -> Outcome {
        Outcome::Retry {
            reason: "503".into(),
            delay_ms: None,
        }
    }

    #[tokio::test]
    async fn an_attempt_takes_runs_follows_up_and_records_within_the_budget() {
        let (_dir, store) = store();
        let hook = webhook("a");
        store.capture(&hook).await.unwrap();
        let processor = Scripted::new(vec![retry(), retry()]);
        let follow_up = Recorder::default();
        let settings = settings();
        let attempts = Attempts {
            store: store.as_ref(),
            processor: &processor,
            follow_up: &follow_up,
            settings: &settings,
        };
        assert_eq!(
            attempts.run(&hook.id, None).await.unwrap(),
            Attempted::Recorded(State::Failed)
        );
        // Its retry is not due for a minute: not taken, nothing run.
        let not_taken = attempts.run(&hook.id, Some(&hook)).await.unwrap();
        assert!(matches!(not_taken, Attempted::NotTaken(ref s) if s.state == State::Failed));
        assert_eq!(*processor.seen.lock().unwrap(), [1]);

        // Once due, the last attempt of the budget dead-letters it.
        let failed = store.status(&hook.id).await.unwrap().unwrap();
        let mut due = failed.clone();
        due.next_attempt_at = Some(0);
        due.version += 1;
        let make_due = Transition {
            status: due,
            dead_letter: None,
        };
        assert!(
            store
                .swap_status(&hook.id, failed.version, &make_due)
                .await
                .unwrap()
        );
        assert_eq!(
            attempts.run(&hook.id, Some(&hook)).await.unwrap(),
            Attempted::Recorded(State::OperatorRequired)
        );
        assert_eq!(*processor.seen.lock().unwrap(), [1, 2]);
        assert_eq!(
            *follow_up.seen.lock().unwrap(),
            [State::Failed, State::OperatorRequired]
        );
        assert_eq!(store.dead_letters(&hook.id).await.unwrap().len(), 1);
        assert_eq!(
            attempts.run("no-such-id", None).await.unwrap(),
            Attempted::Missing
        );
    }

    #[tokio::test]
    async fn nothing_is_recorded_when_the_follow_up_fails_or_the_lease_was_lost() {
        let (_dir, store) = store();
        let hook = webhook("b");
        store.capture(&hook).await.unwrap();
        let processor = Scripted::new(vec![Outcome::Completed]);
        let refusing = Recorder {
            refuse: true,
            ..Recorder::default()
        };
        let settings = settings();
        let attempts = Attempts {
            store: store.as_ref(),
            processor: &processor,
            follow_up: &refusing,
            settings: &settings,
        };
        let error = attempts.run(&hook.id, Some(&hook)).await.unwrap_err();
        assert!(matches!(error, AttemptError::FollowUp(_)), "{error}");
        let held = store.status(&hook.id).await.unwrap().unwrap();
        assert_eq!(
            (held.state, held.retries),
            (State::Processing, 1),
            "left to its lease"
        );

        let other = webhook("c");
        store.capture(&other).await.unwrap();
        let mut overtaken = Scripted::new(vec![Outcome::Completed]);
        overtaken.meanwhile = Some(store.clone());
        let attempts = Attempts {
            store: store.as_ref(),
            processor: &overtaken,
            follow_up: &NoFollowUp,
            settings: &settings,
        };
        assert_eq!(
            attempts.run(&other.id, None).await.unwrap(),
            Attempted::Discarded
        );
        assert_eq!(
            store.status(&other.id).await.unwrap().unwrap().state,
            State::Processing
        );
    }
}
