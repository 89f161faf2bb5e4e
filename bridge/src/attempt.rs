//! One processing attempt, written once for the local worker and for Lambda: read the
//! status, take the webhook (compare-and-swap into `processing` with a lease), run the
//! processor, let what follows the transition happen, record it (compare-and-swap again)
//! and log it. The hosts differ only in [`FollowUp`]: nothing locally, the failed or dead
//! queue's message on Lambda.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use backon::{ExponentialBuilder, Retryable};
use inbox_core::clock::now_ms;
use inbox_core::destination;
use inbox_core::lifecycle::{Outcome, Transition};
use inbox_core::pacing;
use inbox_core::{State, Status, Webhook};
use inbox_stores::{StoreError, WebhookStore};
pub use inbox_wasm_host::{Named, Processed};

use crate::breaker::{self, Admission};
use crate::metrics::{Event, Metrics};
use crate::settings::Settings;

/// Runs the user's processing (the processor component, in every host).
#[async_trait]
pub trait Processor: Send + Sync {
    /// Where processing `webhook` would deliver it, asked before it is taken (of the
    /// attempt's instance, which the attempt then goes on in).
    async fn destination(&self, webhook: &Webhook) -> Named;

    /// Processes `webhook` on attempt `attempt` (from 1). Whatever happens inside, the
    /// answer is an outcome (a failure to run is a retry like any other), with the
    /// destination it was for: `named`, when [`Processor::destination`] gave it already.
    async fn process(&self, webhook: &Webhook, attempt: u32, named: Option<Named>) -> Processed;
}

/// What follows a transition: nothing locally; on Lambda, before it is recorded, a failed
/// attempt's retry message (so a recorded `failed` always has one: if the record is lost,
/// the message finds nothing to do), and once it is recorded, the dead queue's notice (so
/// only a webhook that is dead gets one).
#[async_trait]
pub trait FollowUp: Send + Sync {
    /// If it fails, nothing is recorded: the lease expires and the webhook is taken again.
    async fn before_recording(
        &self,
        webhook: &Webhook,
        transition: &Transition,
    ) -> anyhow::Result<()>;

    async fn after_recording(&self, id: &str, transition: &Transition) -> anyhow::Result<()>;
}

/// Locally nothing follows: the worker finds what is due in the store.
pub struct NoFollowUp;

#[async_trait]
impl FollowUp for NoFollowUp {
    async fn before_recording(&self, _: &Webhook, _: &Transition) -> anyhow::Result<()> {
        Ok(())
    }

    async fn after_recording(&self, _: &str, _: &Transition) -> anyhow::Result<()> {
        Ok(())
    }
}

/// How a record (or a notice after it) is tried again when the store (or the queue) is
/// unavailable: three tries in all, about 100 ms and then 400 ms apart (jitter adds up to
/// as much again, so attempts that failed together do not retry together).
fn tries() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_factor(4.0)
        .with_max_times(2)
        .with_jitter()
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
    /// Held for its destination (open or paused), not attempted.
    Held,
    /// Not attempted yet, as its destination's rate or concurrency asks: due again then.
    Deferred(Status),
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
pub struct Attempter<'a> {
    pub store: &'a dyn WebhookStore,
    pub processor: &'a dyn Processor,
    pub follow_up: &'a dyn FollowUp,
    pub settings: &'a Settings,
    pub metrics: &'a dyn Metrics,
}

impl Attempter<'_> {
    /// Takes `id` if it is due and its destination lets it, processes it and records the
    /// outcome. `webhook` is the webhook when the caller has it already (a stream image, a
    /// queue message); without it, it is read (its destination is named from it). A
    /// webhook due with its budget spent (its last attempt never finished) is dead-lettered
    /// instead of taken again; one whose destination is open or paused is held.
    pub async fn run(
        &self,
        id: &str,
        webhook: Option<&Webhook>,
    ) -> Result<Attempted, AttemptError> {
        let Some(status) = self.store.status(id).await? else {
            return Ok(Attempted::Missing);
        };
        let policy = &self.settings.policy;
        if let Some(dead) = status.abandon(now_ms(), policy) {
            let webhook = match webhook {
                Some(webhook) => Some(Cow::Borrowed(webhook)),
                None => self.store.webhook(id).await?.map(Cow::Owned),
            };
            return self
                .record_dead_end(id, status.version, webhook.as_deref(), dead)
                .await;
        }
        let lease_ms = self.settings.lease.as_millis() as u64;
        if status.claim(now_ms(), lease_ms, policy).is_err() {
            tracing::debug!(id, state = %status.state, "not taken");
            return Ok(Attempted::NotTaken(status));
        }
        let webhook = match webhook {
            Some(webhook) => Some(Cow::Borrowed(webhook)),
            None => self.store.webhook(id).await?.map(Cow::Owned),
        };
        // Room for its payload, before it is taken: the attempts under way hold a bounded
        // memory, however large their payloads. The claim's clock starts after the wait, so
        // the wait costs none of its lease (and the compare-and-swap below sees whatever
        // changed meanwhile).
        let _room = match &webhook {
            Some(webhook) => Some(self.settings.payloads.take(webhook.payload.len()).await),
            None => None,
        };
        let now = now_ms();
        let Ok(claimed) = status.claim(now, lease_ms, policy) else {
            return Ok(Attempted::NotTaken(status));
        };
        // Its destination decides first whether it is attempted at all: an open or paused
        // one holds it, spending none of its budget. (An attempt whose lease expired is
        // taken over whatever the destination: it was let through once.)
        let (mut named, mut probing, mut lease) = (None, false, None);
        if let Some(webhook) = &webhook
            && status.state != State::Processing
        {
            let asked = self.processor.destination(webhook).await;
            let name = asked.name.clone();
            let ask = breaker::Ask {
                breaker: &self.settings.breaker,
                limits: self.settings.pacing.limits(&name),
                lease_until: now.saturating_add(lease_ms as i64),
            };
            match breaker::admit(self.store, &ask, &name, now).await? {
                Admission::Hold(reason) => return self.hold(id, &status, &name, reason).await,
                Admission::Wait { until, reason } => {
                    return self.defer(id, &status, &name, until, reason).await;
                }
                Admission::Go {
                    probe,
                    lease: place,
                } => {
                    (probing, lease) = (probe, place);
                    named = Some(asked);
                }
            }
        }
        // Taking over an expired lease records the attempt that never finished.
        let claim = Transition {
            attempt: status.taken_over(now),
            ..Transition::to(claimed.clone())
        };
        if !self.store.swap_status(id, status.version, &claim).await? {
            tracing::debug!(id, "another attempt took it first");
            return Ok(Attempted::TakenByAnother);
        }
        let Some(webhook) = webhook else {
            let reason = "its webhook item is missing: nothing can process it".to_owned();
            let dead = claimed.give_up(now_ms(), reason);
            return self.record_dead_end(id, claimed.version, None, dead).await;
        };

        let started = Instant::now();
        let destination = named.as_ref().map(|named| named.name.clone());
        let processed = self
            .processor
            .process(&webhook, claimed.attempts, named)
            .await;
        let outcome = processed.outcome;
        // The destination hears how it went whether or not the record below stands: the
        // delivery happened either way.
        let destination = destination.unwrap_or(processed.destination);
        let changed = breaker::record(
            self.store,
            &self.settings.breaker,
            &destination,
            &outcome,
            lease,
            now_ms(),
        )
        .await;
        if let Some(changed) = changed {
            self.metrics.record(&Event::Circuit {
                destination: &destination,
                open: changed.circuit == destination::Circuit::Open,
                failures: changed.failures,
                last_error: changed.last_error.as_deref(),
            });
        }
        let transition = match &outcome {
            Outcome::Retry { reason, .. } if probing => {
                destination::probe_failed(&claimed, &destination, reason, now_ms())
            }
            _ => claimed.finish(id, &outcome, policy, now_ms()).ok(),
        }
        .expect("a claimed status is processing");
        self.follow_up
            .before_recording(&webhook, &transition)
            .await
            .map_err(AttemptError::FollowUp)?;
        if !self.record(id, claimed.version, &transition).await? {
            tracing::warn!(
                id,
                "the lease expired before the outcome was recorded; the attempt is discarded"
            );
            return Ok(Attempted::Discarded);
        }
        log_attempt(
            &webhook,
            &destination,
            &claimed,
            &outcome,
            &transition,
            started,
        );
        self.count(&webhook, &destination, &transition, started.elapsed());
        self.notify(id, &transition).await;
        Ok(Attempted::Recorded(transition.status.state))
    }

    /// Holds a waiting webhook for its destination ([`destination::hold`]).
    async fn hold(
        &self,
        id: &str,
        status: &Status,
        destination: &str,
        reason: String,
    ) -> Result<Attempted, AttemptError> {
        let Some(held) = destination::hold(status, destination, reason, now_ms()) else {
            return Ok(Attempted::NotTaken(status.clone()));
        };
        if !self.record(id, status.version, &held).await? {
            return Ok(Attempted::TakenByAnother);
        }
        tracing::info!(
            id,
            destination,
            reason = held.status.last_error.as_deref().unwrap_or(""),
            "held"
        );
        self.metrics.record(&Event::Held { destination });
        Ok(Attempted::Held)
    }

    /// Defers a waiting webhook to `until`, as its destination's pace asks
    /// ([`pacing::defer`]).
    async fn defer(
        &self,
        id: &str,
        status: &Status,
        destination: &str,
        until: i64,
        reason: String,
    ) -> Result<Attempted, AttemptError> {
        let Some(deferred) = pacing::defer(status, until, now_ms()) else {
            return Ok(Attempted::NotTaken(status.clone()));
        };
        if !self.record(id, status.version, &deferred).await? {
            return Ok(Attempted::TakenByAnother);
        }
        tracing::debug!(id, destination, reason, until, "deferred");
        Ok(Attempted::Deferred(deferred.status))
    }

    /// Records a webhook that cannot be processed again as needing an operator.
    async fn record_dead_end(
        &self,
        id: &str,
        expected_version: u64,
        webhook: Option<&Webhook>,
        dead: Transition,
    ) -> Result<Attempted, AttemptError> {
        if !self.record(id, expected_version, &dead).await? {
            return Ok(Attempted::TakenByAnother);
        }
        tracing::error!(
            id,
            reason = dead.status.last_error.as_deref().unwrap_or(""),
            "dead-lettered: an operator is required"
        );
        // No source is named with parentheses: this cannot pass for one.
        let origin = webhook.map_or("(missing)", |w| w.origin.as_str());
        self.metrics.record(&Event::DeadLettered {
            origin,
            id,
            attempts: dead.status.attempts,
            reason: dead.status.last_error.as_deref().unwrap_or(""),
        });
        self.notify(id, &dead).await;
        Ok(Attempted::Recorded(dead.status.state))
    }

    /// Counts a recorded attempt: its outcome and time, the webhook's wait if it completed,
    /// the dead letter if it needs an operator.
    fn count(&self, webhook: &Webhook, destination: &str, transition: &Transition, took: Duration) {
        let (origin, state) = (webhook.origin.as_str(), transition.status.state);
        match state {
            State::Completed => {
                let waited = transition.status.updated_at - webhook.received_at;
                let waited = Duration::from_millis(waited.max(0) as u64);
                self.metrics.record(&Event::Delivered {
                    origin,
                    destination,
                    waited,
                });
            }
            State::OperatorRequired => self.metrics.record(&Event::DeadLettered {
                origin,
                id: &webhook.id,
                attempts: transition.status.attempts,
                reason: transition.status.last_error.as_deref().unwrap_or(""),
            }),
            _ => {}
        }
        // Last, so that whoever sees the attempt counted sees what it led to.
        self.metrics.record(&Event::Attempt {
            origin,
            destination,
            state,
            took,
        });
    }

    /// Writes `transition` over `expected_version`, trying again while the store is
    /// unavailable. A try whose answer was lost may have been written: a lost
    /// compare-and-swap after it is checked against what is stored.
    async fn record(
        &self,
        id: &str,
        expected_version: u64,
        transition: &Transition,
    ) -> Result<bool, StoreError> {
        let tried = AtomicBool::new(false);
        let swap = || async {
            let again = tried.swap(true, Ordering::Relaxed);
            match self
                .store
                .swap_status(id, expected_version, transition)
                .await
            {
                Ok(false) if again => {
                    let stored = self.store.status(id).await?;
                    Ok(stored.as_ref() == Some(&transition.status))
                }
                answer => answer,
            }
        };
        swap.retry(tries())
            .when(|error| matches!(error, StoreError::Unavailable(_)))
            .notify(|error, _| tracing::warn!(id, %error, "recording failed; trying again"))
            .await
    }

    /// What follows a recorded transition, tried a few times: the record stands either way.
    async fn notify(&self, id: &str, transition: &Transition) {
        let notified = (|| self.follow_up.after_recording(id, transition))
            .retry(tries())
            .notify(|error, _| {
                tracing::warn!(
                    id,
                    error = format!("{error:#}"),
                    "the follow-up failed; trying again"
                )
            })
            .await;
        if let Err(error) = notified {
            tracing::error!(
                id,
                state = %transition.status.state,
                error = format!("{error:#}"),
                "recorded, but what follows it could not be sent"
            );
        }
    }
}

/// One line per attempt, and an error for a dead letter.
fn log_attempt(
    webhook: &Webhook,
    destination: &str,
    claimed: &Status,
    outcome: &Outcome,
    transition: &Transition,
    started: Instant,
) {
    let (id, origin, attempt) = (&webhook.id, &webhook.origin, claimed.attempts);
    let state = transition.status.state;
    let elapsed_ms = started.elapsed().as_millis() as u64;
    match outcome {
        Outcome::Completed => {
            tracing::info!(id, origin, destination, attempt, elapsed_ms, %state, "processed")
        }
        Outcome::Retry { reason, .. } | Outcome::Reject { reason } => {
            tracing::warn!(id, origin, destination, attempt, elapsed_ms, %state, reason, "attempt failed")
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
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::{Arc, Mutex};

    use inbox_core::destination::{Breaker, Destination, Held};
    use inbox_core::lifecycle::RetryPolicy;
    use inbox_core::listing::{Counts, Filter, Page, Query};
    use inbox_core::model::Details;
    use inbox_core::store::release_held;
    use inbox_stores::Captured;
    use inbox_stores::sqlite::SqliteStore;

    use crate::metrics::NoMetrics;

    use super::*;

    fn settings() -> Settings {
        Settings {
            policy: RetryPolicy::Backoff {
                max_retries: 1,
                base_delay_ms: 60_000,
                max_delay_ms: 60_000,
            },
            processor_timeout: Duration::from_secs(1),
            lease: Duration::from_secs(2),
            concurrency: 1,
            component_memory_bytes: 64 << 20,
            poll_interval: Duration::from_millis(10),
            sweep_grace: Duration::ZERO,
            sweep_limit: 10,
            wake_ahead: Duration::from_secs(360),
            breaker: Breaker {
                failures: 2,
                probe_ms: 60_000,
                max_probe_ms: 60_000,
            },
            release_batch: 10,
            pacing: inbox_core::pacing::Pacing::default(),
            payloads: crate::budget::BodyBudget::new(1 << 20),
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
        async fn destination(&self, _: &Webhook) -> Named {
            Named::new("scripted".into())
        }

        async fn process(&self, webhook: &Webhook, attempt: u32, _: Option<Named>) -> Processed {
            self.seen.lock().unwrap().push(attempt);
            if let Some(store) = &self.meanwhile {
                // The lease is taken over (it expired, and another worker retook it).
                let status = store.status(&webhook.id).await.unwrap().unwrap();
                let mut taken = status.clone();
                taken.version += 1;
                let transition = Transition::to(taken);
                assert!(
                    store
                        .swap_status(&webhook.id, status.version, &transition)
                        .await
                        .unwrap()
                );
            }
            Processed {
                outcome: self.outcomes.lock().unwrap().remove(0),
                destination: "scripted".into(),
            }
        }
    }

    /// Notes every transition it is shown, before or after it is recorded, and can refuse
    /// them.
    #[derive(Default)]
    struct Recorder {
        seen: Mutex<Vec<(&'static str, State)>>,
        refuse: bool,
    }

    #[async_trait]
    impl FollowUp for Recorder {
        async fn before_recording(
            &self,
            _: &Webhook,
            transition: &Transition,
        ) -> anyhow::Result<()> {
            self.seen
                .lock()
                .unwrap()
                .push(("before", transition.status.state));
            if self.refuse {
                anyhow::bail!("the queue is down");
            }
            Ok(())
        }

        async fn after_recording(&self, _: &str, transition: &Transition) -> anyhow::Result<()> {
            self.seen
                .lock()
                .unwrap()
                .push(("after", transition.status.state));
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

    /// Makes the stored status of `id` look as `change` says, as another writer would.
    async fn rewrite(store: &SqliteStore, id: &str, change: impl FnOnce(&mut Status)) {
        let status = store.status(id).await.unwrap().unwrap();
        let mut changed = status.clone();
        change(&mut changed);
        changed.version += 1;
        let write = Transition::to(changed);
        assert!(store.swap_status(id, status.version, &write).await.unwrap());
    }

    #[tokio::test]
    async fn an_open_destination_holds_without_spending_and_a_probe_closes_it() {
        let (_dir, store) = store();
        let hooks: Vec<Webhook> = ["a", "b", "c", "d"].into_iter().map(webhook).collect();
        for hook in &hooks {
            store.capture(hook.clone(), false).await.unwrap();
        }
        let processor = Scripted::new(vec![retry(), retry(), Outcome::Completed]);
        let settings = settings();
        let attempts = Attempter {
            store: store.as_ref(),
            processor: &processor,
            follow_up: &NoFollowUp,
            settings: &settings,
            metrics: &NoMetrics,
        };
        // Two failures in a row open it (the settings' breaker).
        for hook in &hooks[..2] {
            assert_eq!(
                attempts.run(&hook.id, None).await.unwrap(),
                Attempted::Recorded(State::Failed)
            );
        }
        let open = store.destination("scripted").await.unwrap().unwrap();
        assert_eq!((open.state(), open.failures), ("open", 2));
        for hook in &hooks[2..] {
            assert_eq!(attempts.run(&hook.id, None).await.unwrap(), Attempted::Held);
            let held = store.status(&hook.id).await.unwrap().unwrap();
            assert_eq!((held.state, held.attempts), (State::Received, 0));
        }
        assert_eq!(
            processor.seen.lock().unwrap().len(),
            2,
            "nothing held was run"
        );
        assert_eq!(store.held_count("scripted").await.unwrap(), 2);
        // Before its probe nothing is released; once due, one is.
        let now = now_ms();
        assert!(
            release_held(store.as_ref(), now, 10)
                .await
                .unwrap()
                .is_empty()
        );
        let due = Destination {
            probe_at: Some(0),
            version: open.version + 1,
            ..open.clone()
        };
        assert!(store.swap_destination(open.version, &due).await.unwrap());
        let probe = release_held(store.as_ref(), now, 10).await.unwrap();
        assert_eq!(probe.len(), 1);
        assert_eq!(
            attempts.run(&probe[0].0, None).await.unwrap(),
            Attempted::Recorded(State::Completed)
        );
        let closed = store.destination("scripted").await.unwrap().unwrap();
        assert_eq!((closed.state(), closed.failures), ("closed", 0));
        // Closed, it releases the rest, and each is attempted with its budget whole.
        let rest = release_held(store.as_ref(), now_ms(), 10).await.unwrap();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].1.attempts, 0);
        assert_eq!(store.held_count("scripted").await.unwrap(), 0);
    }

    /// Delivers each webhook to a destination named after its origin; `down` fails.
    struct ByOrigin {
        down: &'static str,
    }

    #[async_trait]
    impl Processor for ByOrigin {
        async fn destination(&self, webhook: &Webhook) -> Named {
            Named::new(webhook.origin.clone())
        }

        async fn process(&self, webhook: &Webhook, _: u32, _: Option<Named>) -> Processed {
            Processed {
                outcome: if webhook.origin == self.down {
                    retry()
                } else {
                    Outcome::Completed
                },
                destination: webhook.origin.clone(),
            }
        }
    }

    #[tokio::test]
    async fn one_destination_down_never_holds_another_s_webhooks() {
        let (_dir, store) = store();
        let settings = settings();
        let attempts = Attempter {
            store: store.as_ref(),
            processor: &ByOrigin { down: "stripe" },
            follow_up: &NoFollowUp,
            settings: &settings,
            metrics: &NoMetrics,
        };
        for i in 0..4 {
            let down = webhook(&format!("down-{i}"));
            store.capture(down.clone(), false).await.unwrap();
            attempts.run(&down.id, None).await.unwrap();
            let other = Webhook {
                id: inbox_core::id::webhook_id("github", &format!("up-{i}")),
                origin: "github".into(),
                ..webhook(&format!("up-{i}"))
            };
            store.capture(other.clone(), false).await.unwrap();
            assert_eq!(
                attempts.run(&other.id, None).await.unwrap(),
                Attempted::Recorded(State::Completed)
            );
        }
        let down = store.destination("stripe").await.unwrap().unwrap();
        assert_eq!(down.state(), "open");
        assert_eq!(store.held_count("stripe").await.unwrap(), 2);
        let other = store.destination("github").await.unwrap().unwrap();
        assert_eq!((other.state(), other.failures), ("closed", 0));
        assert_eq!(store.held_count("github").await.unwrap(), 0);
    }

    #[tokio::test]
    async fn an_attempt_takes_runs_follows_up_and_records_within_the_budget() {
        let (_dir, store) = store();
        let hook = webhook("a");
        store.capture(hook.clone(), false).await.unwrap();
        let processor = Scripted::new(vec![retry(), retry()]);
        let follow_up = Recorder::default();
        let settings = settings();
        let attempts = Attempter {
            store: store.as_ref(),
            processor: &processor,
            follow_up: &follow_up,
            settings: &settings,
            metrics: &NoMetrics,
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
        rewrite(&store, &hook.id, |s| s.next_attempt_at = Some(0)).await;
        assert_eq!(
            attempts.run(&hook.id, Some(&hook)).await.unwrap(),
            Attempted::Recorded(State::OperatorRequired)
        );
        assert_eq!(*processor.seen.lock().unwrap(), [1, 2]);
        assert_eq!(
            *follow_up.seen.lock().unwrap(),
            [
                ("before", State::Failed),
                ("after", State::Failed),
                ("before", State::OperatorRequired),
                ("after", State::OperatorRequired)
            ]
        );
        assert_eq!(
            store
                .details(&hook.id)
                .await
                .unwrap()
                .unwrap()
                .dead_letters
                .len(),
            1
        );
        assert_eq!(
            attempts.run("no-such-id", None).await.unwrap(),
            Attempted::Missing
        );
    }

    #[tokio::test]
    async fn an_attempt_that_never_finished_is_not_retaken_past_the_budget() {
        let (_dir, store) = store();
        let hook = webhook("crashed");
        store.capture(hook.clone(), false).await.unwrap();
        // Both attempts of the budget were taken and their hosts died: the lease expired.
        rewrite(&store, &hook.id, |s| {
            s.state = State::Processing;
            s.attempts = 2;
            s.lease_until = Some(now_ms() - 1);
            s.next_attempt_at = None;
        })
        .await;
        let processor = Scripted::new(Vec::new());
        let follow_up = Recorder::default();
        let settings = settings();
        let attempts = Attempter {
            store: store.as_ref(),
            processor: &processor,
            follow_up: &follow_up,
            settings: &settings,
            metrics: &NoMetrics,
        };
        assert_eq!(
            attempts.run(&hook.id, None).await.unwrap(),
            Attempted::Recorded(State::OperatorRequired)
        );
        assert!(processor.seen.lock().unwrap().is_empty(), "not run again");
        let dead = store.status(&hook.id).await.unwrap().unwrap();
        assert_eq!((dead.state, dead.attempts), (State::OperatorRequired, 2));
        let letters = store.details(&hook.id).await.unwrap().unwrap().dead_letters;
        assert!(letters[0].reason.contains("never finished"), "{letters:?}");
        assert_eq!(
            *follow_up.seen.lock().unwrap(),
            [("after", State::OperatorRequired)],
            "the notice follows the record"
        );
    }

    #[tokio::test]
    async fn a_status_without_its_webhook_is_dead_lettered_not_retaken() {
        let (dir, store) = store();
        let hook = webhook("orphan");
        store.capture(hook.clone(), false).await.unwrap();
        rusqlite::Connection::open(dir.path().join("inbox.db"))
            .unwrap()
            .execute("DELETE FROM items WHERE sk = 'WEBHOOK'", [])
            .unwrap();
        let processor = Scripted::new(Vec::new());
        let settings = settings();
        let attempts = Attempter {
            store: store.as_ref(),
            processor: &processor,
            follow_up: &NoFollowUp,
            settings: &settings,
            metrics: &NoMetrics,
        };
        assert_eq!(
            attempts.run(&hook.id, None).await.unwrap(),
            Attempted::Recorded(State::OperatorRequired)
        );
        // Without its webhook item there are no details to show: read the dead letter.
        let reason: String = rusqlite::Connection::open(dir.path().join("inbox.db"))
            .unwrap()
            .query_row(
                "SELECT last_error FROM items WHERE sk LIKE 'DEAD#%'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert!(reason.contains("webhook item is missing"), "{reason}");
    }

    #[tokio::test]
    async fn nothing_is_recorded_when_the_follow_up_fails_or_the_lease_was_lost() {
        let (_dir, store) = store();
        let hook = webhook("b");
        store.capture(hook.clone(), false).await.unwrap();
        let processor = Scripted::new(vec![Outcome::Completed]);
        let refusing = Recorder {
            refuse: true,
            ..Recorder::default()
        };
        let settings = settings();
        let attempts = Attempter {
            store: store.as_ref(),
            processor: &processor,
            follow_up: &refusing,
            settings: &settings,
            metrics: &NoMetrics,
        };
        let error = attempts.run(&hook.id, Some(&hook)).await.unwrap_err();
        assert!(matches!(error, AttemptError::FollowUp(_)), "{error}");
        let held = store.status(&hook.id).await.unwrap().unwrap();
        assert_eq!(
            (held.state, held.attempts),
            (State::Processing, 1),
            "left to its lease"
        );

        let other = webhook("c");
        store.capture(other.clone(), false).await.unwrap();
        let mut overtaken = Scripted::new(vec![Outcome::Reject {
            reason: "no".into(),
        }]);
        overtaken.meanwhile = Some(store.clone());
        let follow_up = Recorder::default();
        let attempts = Attempter {
            store: store.as_ref(),
            processor: &overtaken,
            follow_up: &follow_up,
            settings: &settings,
            metrics: &NoMetrics,
        };
        assert_eq!(
            attempts.run(&other.id, None).await.unwrap(),
            Attempted::Discarded
        );
        assert_eq!(
            store.status(&other.id).await.unwrap().unwrap().state,
            State::Processing
        );
        assert_eq!(
            *follow_up.seen.lock().unwrap(),
            [("before", State::OperatorRequired)],
            "no dead-queue notice for an outcome that was not recorded"
        );
    }

    /// A store whose first status writes fail as if it were unreachable; `after_writing`
    /// fails them after the write went through (the answer lost on the way back).
    struct Flaky {
        inner: Arc<SqliteStore>,
        failures: AtomicU32,
        after_writing: bool,
    }

    #[async_trait]
    impl WebhookStore for Flaky {
        async fn capture(
            &self,
            webhook: Webhook,
            refuse_replayed_body: bool,
        ) -> Result<Captured, StoreError> {
            self.inner.capture(webhook, refuse_replayed_body).await
        }
        async fn webhook(&self, id: &str) -> Result<Option<Webhook>, StoreError> {
            self.inner.webhook(id).await
        }
        async fn status(&self, id: &str) -> Result<Option<Status>, StoreError> {
            self.inner.status(id).await
        }
        async fn swap_status(
            &self,
            id: &str,
            expected_version: u64,
            transition: &Transition,
        ) -> Result<bool, StoreError> {
            let recording = transition.status.state != State::Processing;
            if recording && self.failures.load(Ordering::SeqCst) > 0 {
                self.failures.fetch_sub(1, Ordering::SeqCst);
                if self.after_writing {
                    self.inner
                        .swap_status(id, expected_version, transition)
                        .await?;
                }
                return Err(StoreError::Unavailable("the network blinked".into()));
            }
            self.inner
                .swap_status(id, expected_version, transition)
                .await
        }
        async fn due(&self, now: i64, limit: usize) -> Result<Vec<String>, StoreError> {
            self.inner.due(now, limit).await
        }
        async fn waiting(
            &self,
            waits: inbox_core::store::Waits,
            limit: usize,
        ) -> Result<Vec<(String, Status)>, StoreError> {
            self.inner.waiting(waits, limit).await
        }
        async fn list(&self, query: &Query) -> Result<Page, StoreError> {
            self.inner.list(query).await
        }
        async fn counts(&self, filter: &Filter) -> Result<Counts, StoreError> {
            self.inner.counts(filter).await
        }
        async fn details(&self, id: &str) -> Result<Option<Details>, StoreError> {
            self.inner.details(id).await
        }
        async fn destinations(&self) -> Result<Vec<Destination>, StoreError> {
            self.inner.destinations().await
        }
        async fn destination(&self, name: &str) -> Result<Option<Destination>, StoreError> {
            self.inner.destination(name).await
        }
        async fn swap_destination(
            &self,
            expected_version: u64,
            destination: &Destination,
        ) -> Result<bool, StoreError> {
            self.inner
                .swap_destination(expected_version, destination)
                .await
        }
        async fn held(&self, name: &str, limit: usize) -> Result<Vec<Held>, StoreError> {
            self.inner.held(name, limit).await
        }
        async fn held_count(&self, name: &str) -> Result<u64, StoreError> {
            self.inner.held_count(name).await
        }
        async fn unhold(&self, name: &str, held: &Held) -> Result<(), StoreError> {
            self.inner.unhold(name, held).await
        }
    }

    #[tokio::test]
    async fn a_record_the_store_could_not_take_is_tried_again() {
        for after_writing in [false, true] {
            let (_dir, store) = store();
            let hook = webhook("flaky");
            store.capture(hook.clone(), false).await.unwrap();
            let flaky = Flaky {
                inner: store.clone(),
                failures: AtomicU32::new(2),
                after_writing,
            };
            let processor = Scripted::new(vec![Outcome::Completed]);
            let settings = settings();
            let attempts = Attempter {
                store: &flaky,
                processor: &processor,
                follow_up: &NoFollowUp,
                settings: &settings,
                metrics: &NoMetrics,
            };
            assert_eq!(
                attempts.run(&hook.id, None).await.unwrap(),
                Attempted::Recorded(State::Completed),
                "written {}",
                if after_writing {
                    "before the answer was lost"
                } else {
                    "on a later try"
                }
            );
            let status = store.status(&hook.id).await.unwrap().unwrap();
            assert_eq!((status.state, status.attempts), (State::Completed, 1));
        }
    }
}
