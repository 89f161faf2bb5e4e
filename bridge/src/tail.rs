//! `inbox tail`: what arrives and what becomes of it, as it happens. It polls the store,
//! so it follows any host writing to it (`inbox serve`, Spin, Lambda on DynamoDB): new
//! webhooks from the top of the list, and the status of every webhook on its way (those
//! in flight when it started, and those that arrived since) until it is finished.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Result;
use inbox_core::State;
use inbox_core::listing::{Cursor, Query};
use inbox_core::model::StatusView;
use inbox_stores::WebhookStore;
use serde::Serialize;

use crate::pager;

/// Something that happened to a webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum WebhookChange {
    Arrived {
        #[serde(flatten)]
        webhook: StatusView,
    },
    Changed {
        from: State,
        #[serde(flatten)]
        webhook: StatusView,
    },
}

impl WebhookChange {
    pub fn webhook(&self) -> &StatusView {
        match self {
            WebhookChange::Arrived { webhook } | WebhookChange::Changed { webhook, .. } => webhook,
        }
    }
}

/// How far behind the newest webhook seen a look reads again: a webhook is received
/// (its `received_at` set) before its commit, so one received earlier can commit after a
/// newer one was seen; within this window it is still found (capture's own deadline is
/// 10 s, and several hosts' clocks may differ a little).
const LOOK_BACK_MS: i64 = 15_000;
/// A page of a look: on DynamoDB each page is a scan, so as few as the window needs.
const PAGE: u32 = inbox_core::listing::MAX_LIMIT;

pub struct Tail {
    /// When the newest webhook seen was received (never later than this machine's now, so
    /// one host whose clock runs fast cannot hide the others' arrivals).
    newest_at: Option<i64>,
    /// The webhooks seen within the look-back window, by id, with when they were received.
    seen: HashMap<String, i64>,
    /// The webhooks on their way, as last seen.
    following: HashMap<String, StatusView>,
}

impl Tail {
    /// Starts from now: what is stored is history, and the webhooks in flight are followed.
    /// History is read first: a webhook stored between the two reads is then an arrival
    /// at the first look, and followed from there.
    pub async fn start(store: &dyn WebhookStore) -> Result<Tail> {
        let mut tail = Tail {
            newest_at: None,
            seen: HashMap::new(),
            following: HashMap::new(),
        };
        let top = store
            .list(&Query {
                limit: 1,
                ..Query::default()
            })
            .await?;
        if let Some(newest) = top.webhooks.first() {
            tail.saw(newest.received_at);
            for view in tail.recent(store).await? {
                tail.seen.insert(view.id, view.received_at);
            }
        }
        for state in [State::Received, State::Processing, State::Failed] {
            let query = Query {
                state: Some(state),
                ..Query::default()
            };
            for view in pager::every(store, query).await? {
                tail.following.insert(view.id.clone(), view);
            }
        }
        Ok(tail)
    }

    /// Moves the newest time seen to `received_at`, if later, but not past now.
    fn saw(&mut self, received_at: i64) {
        let at = received_at.min(inbox_core::clock::now_ms());
        self.newest_at = self.newest_at.max(Some(at));
    }

    /// The webhooks received within the look-back window of the newest seen (all of them
    /// when none was seen yet), newest first, a page at a time.
    async fn recent(&self, store: &dyn WebhookStore) -> Result<Vec<StatusView>> {
        let floor = self.newest_at.map(|at| at - LOOK_BACK_MS);
        let mut query = Query {
            limit: PAGE,
            ..Query::default()
        };
        let mut recent = Vec::new();
        loop {
            let page = store.list(&query).await?;
            for view in page.webhooks {
                if floor.is_some_and(|floor| view.received_at < floor) {
                    return Ok(recent);
                }
                recent.push(view);
            }
            match page.next {
                Some(next) => query.after = Some(next),
                None => return Ok(recent),
            }
        }
    }

    /// What happened since the last look: arrivals (oldest first), then changes.
    pub async fn look(&mut self, store: &dyn WebhookStore) -> Result<Vec<WebhookChange>> {
        let mut arrived: Vec<StatusView> = self
            .recent(store)
            .await?
            .into_iter()
            .filter(|view| !self.seen.contains_key(&view.id))
            .collect();
        arrived.sort_by_key(Cursor::of);
        let mut events = Vec::new();
        for view in arrived {
            self.seen.insert(view.id.clone(), view.received_at);
            self.saw(view.received_at);
            if view.status.in_flight() {
                self.following.insert(view.id.clone(), view.clone());
            }
            events.push(WebhookChange::Arrived { webhook: view });
        }
        if let Some(newest) = self.newest_at {
            self.seen.retain(|_, at| *at >= newest - LOOK_BACK_MS);
        }
        let mut finished = Vec::new();
        for (id, seen) in &mut self.following {
            let Some(status) = store.status(id).await? else {
                continue;
            };
            if status.state == seen.status && status.updated_at == seen.updated_at {
                continue;
            }
            let from = seen.status;
            seen.status = status.state;
            seen.attempts = status.attempts;
            seen.last_error = status.last_error;
            seen.updated_at = status.updated_at;
            seen.next_attempt_at = status.next_attempt_at;
            if from != seen.status {
                events.push(WebhookChange::Changed {
                    from,
                    webhook: seen.clone(),
                });
            }
            if !seen.status.in_flight() {
                finished.push(id.clone());
            }
        }
        for id in finished {
            self.following.remove(&id);
        }
        Ok(events)
    }
}

/// Follows the store until interrupted, printing each event with `print`.
pub async fn follow(
    store: &dyn WebhookStore,
    every: Duration,
    mut print: impl FnMut(&WebhookChange),
) -> Result<()> {
    let mut tail = Tail::start(store).await?;
    tracing::info!("following the store; Ctrl-C stops");
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
        for event in tail.look(store).await? {
            print(&event);
        }
    }
}

#[cfg(test)]
mod tests {
    use inbox_core::Webhook;
    use inbox_core::lifecycle::{Outcome, RetryPolicy, Transition};
    use inbox_stores::sqlite::SqliteStore;

    use super::*;

    fn webhook(key: &str, received_at: i64) -> Webhook {
        Webhook {
            id: inbox_core::id::webhook_id("stripe", key),
            origin: "stripe".into(),
            event_type: "charge.succeeded".into(),
            provider_timestamp: None,
            received_at,
            idempotency_key: key.into(),
            headers: Vec::new(),
            payload: b"{}".to_vec(),
        }
    }

    #[tokio::test]
    async fn arrivals_then_outcomes_each_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("inbox.db")).unwrap();
        let old = webhook("old", 1_000);
        store.capture(old.clone(), false).await.unwrap();
        let mut tail = Tail::start(&store).await.unwrap();
        assert_eq!(tail.look(&store).await.unwrap(), Vec::new());

        for (key, at) in [("a", 2_000), ("b", 3_000)] {
            store.capture(webhook(key, at), false).await.unwrap();
        }
        let events = tail.look(&store).await.unwrap();
        let arrived: Vec<_> = events.iter().map(|e| e.webhook().id.clone()).collect();
        let expected = [webhook("a", 0).id, webhook("b", 0).id];
        assert_eq!(arrived, expected, "oldest first");
        assert!(tail.look(&store).await.unwrap().is_empty(), "once");

        // Received before the newest seen, committed after it: still an arrival.
        let late = webhook("late", 2_500);
        store.capture(late.clone(), false).await.unwrap();
        let events = tail.look(&store).await.unwrap();
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].webhook().id, late.id);

        // The old one, in flight when the tail started, completes.
        let policy = RetryPolicy::default();
        let status = store.status(&old.id).await.unwrap().unwrap();
        let taken = status.claim(5_000, 60_000, &policy).unwrap();
        assert!(
            store
                .swap_status(&old.id, status.version, &Transition::to(taken.clone()))
                .await
                .unwrap()
        );
        let done = taken
            .finish("w", &Outcome::Completed, &policy, 5_001)
            .unwrap();
        assert!(
            store
                .swap_status(&old.id, taken.version, &done)
                .await
                .unwrap()
        );
        let events = tail.look(&store).await.unwrap();
        assert_eq!(events.len(), 1);
        let WebhookChange::Changed { from, webhook } = &events[0] else {
            panic!("{events:?}");
        };
        assert_eq!((*from, webhook.status), (State::Received, State::Completed));
        assert_eq!(
            serde_json::to_value(&events[0]).unwrap()["event"],
            "changed"
        );
        assert!(tail.look(&store).await.unwrap().is_empty());
    }
}
