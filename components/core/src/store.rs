//! What a store does and answers, the same for every store (the native ones and the store
//! components, on SQLite or DynamoDB), and the operator's status changes, which every
//! store carries out the same way: read the status, write the change with a
//! compare-and-swap from the version read.

use async_trait::async_trait;

use crate::destination::{self, Breaker, Destination, DestinationView, Held, Release};
use crate::lifecycle::{Transition, TransitionError};
use crate::listing::{Counts, Filter, Page, Query};
use crate::model::{Details, State, Status, Webhook};

/// Where webhooks and their statuses are kept (not `Store`: the hosts have wasmtime's).
#[async_trait]
pub trait WebhookStore: Send + Sync + 'static {
    /// Writes the webhook and its `received` status atomically, unless the id exists (or,
    /// with `refuse_replayed_body`, the origin delivered the same body before). The store
    /// takes the webhook, so its payload is not copied on the way to the disk.
    async fn capture(
        &self,
        webhook: Webhook,
        refuse_replayed_body: bool,
    ) -> Result<Captured, StoreError>;
    async fn webhook(&self, id: &str) -> Result<Option<Webhook>, StoreError>;
    async fn status(&self, id: &str) -> Result<Option<Status>, StoreError>;
    /// Writes `transition` if the stored status still has `expected_version`; `false` if
    /// another writer got there first.
    async fn swap_status(
        &self,
        id: &str,
        expected_version: u64,
        transition: &Transition,
    ) -> Result<bool, StoreError>;
    /// Ids whose next attempt is due at `now`, or whose lease has expired.
    async fn due(&self, now: i64, limit: usize) -> Result<Vec<String>, StoreError>;
    /// The webhooks waiting for an attempt (`received` or `failed`) that `waits` matches,
    /// with their statuses, the soonest due first.
    async fn waiting(
        &self,
        waits: Waits,
        limit: usize,
    ) -> Result<Vec<(String, Status)>, StoreError>;
    /// A page of the webhooks `query` asks for, newest received first.
    async fn list(&self, query: &Query) -> Result<Page, StoreError>;
    /// How many webhooks passing `filter` are in each state.
    async fn counts(&self, filter: &Filter) -> Result<Counts, StoreError>;
    /// Everything about a webhook but its payload: its status, attempts and dead letters.
    async fn details(&self, id: &str) -> Result<Option<Details>, StoreError>;
    /// Every destination written so far, by name.
    async fn destinations(&self) -> Result<Vec<Destination>, StoreError>;
    async fn destination(&self, name: &str) -> Result<Option<Destination>, StoreError>;
    /// Writes `destination` if the stored one still has `expected_version` (0: if none is
    /// stored); `false` if another writer got there first.
    async fn swap_destination(
        &self,
        expected_version: u64,
        destination: &Destination,
    ) -> Result<bool, StoreError>;
    /// Up to `limit` hold items of `name` (a status may have moved on since: see
    /// [`destination::release`]).
    async fn held(&self, name: &str, limit: usize) -> Result<Vec<Held>, StoreError>;
    /// How many hold items `name` has.
    async fn held_count(&self, name: &str) -> Result<u64, StoreError>;
    /// Deletes a hold item of `name`; none there is no error.
    async fn unhold(&self, name: &str, held: &Held) -> Result<(), StoreError>;
}

/// Changes destination `name` with `change` (from a closed destination if none is stored),
/// reading again when another writer got there first. The destination as it stands after,
/// with whether `change` changed it.
pub async fn change_destination(
    store: &dyn WebhookStore,
    name: &str,
    breaker: &Breaker,
    mut change: impl FnMut(&Destination) -> Option<Destination>,
) -> Result<(Destination, bool), StoreError> {
    for _ in 0..DESTINATION_TRIES {
        let current = store
            .destination(name)
            .await?
            .unwrap_or_else(|| Destination::new(name, breaker));
        let Some(next) = change(&current) else {
            return Ok((current, false));
        };
        if store.swap_destination(current.version, &next).await? {
            return Ok((next, true));
        }
    }
    Err(StoreError::Conflict(format!(
        "destination {name} kept changing while it was being written; try again"
    )))
}

/// An operator pauses (`paused`) or resumes destination `name`: as it stands after, with
/// what it holds. Only a destination the inbox has seen (an attempt named it) is known.
pub async fn set_paused(
    store: &dyn WebhookStore,
    name: &str,
    paused: bool,
    now: i64,
) -> Result<DestinationView, StoreError> {
    if store.destination(name).await?.is_none() {
        return Err(StoreError::NotFound(format!("destination named {name}")));
    }
    let (destination, _) =
        change_destination(store, name, &Breaker::default(), |current| match paused {
            true => current.pause(now),
            false => current.resume(now),
        })
        .await?;
    let held = store.held_count(name).await?;
    Ok(DestinationView::new(&destination, held))
}

/// How often [`change_destination`] reads again after losing a race.
const DESTINATION_TRIES: usize = 8;

/// Every destination as operators list it, with how many webhooks it holds.
pub async fn destination_views(
    store: &dyn WebhookStore,
) -> Result<Vec<DestinationView>, StoreError> {
    let mut views = Vec::new();
    for destination in store.destinations().await? {
        let held = store.held_count(&destination.name).await?;
        views.push(DestinationView::new(&destination, held));
    }
    Ok(views)
}

/// Releases what the destinations let go at `now` ([`Destination::releases`]): up to
/// `limit` held webhooks of each closed one, one of each open one whose probe is due. The
/// webhooks released, with their new statuses (due now).
pub async fn release_held(
    store: &dyn WebhookStore,
    now: i64,
    limit: usize,
) -> Result<Vec<(String, Status)>, StoreError> {
    let mut released = Vec::new();
    for destination in store.destinations().await? {
        let wanted = match destination.releases(now) {
            Release::All => limit,
            Release::Probe => 1,
            Release::Nothing => continue,
        };
        let mut freed = 0;
        // Stale hold items (their webhook moved on) are deleted as they are met.
        while freed < wanted {
            let holds = store.held(&destination.name, wanted - freed).await?;
            if holds.is_empty() {
                break;
            }
            for held in holds {
                if let Some(status) = store.status(&held.id).await?
                    && let Some(release) = destination::release(&status, &held, now)
                    && store
                        .swap_status(&held.id, status.version, &release)
                        .await?
                {
                    released.push((held.id.clone(), release.status));
                    freed += 1;
                }
                store.unhold(&destination.name, &held).await?;
            }
        }
    }
    Ok(released)
}

/// Which waiting webhooks [`WebhookStore::waiting`] finds: those whose next attempt falls
/// from `from` to `to` (both included), after a wait (from their last change to that
/// attempt) longer than `longer_than` milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waits {
    pub from: i64,
    pub to: i64,
    pub longer_than: i64,
}

impl Waits {
    pub fn matches(&self, status: &Status) -> bool {
        matches!(status.state, State::Received | State::Failed)
            && status
                .next_attempt_at
                .is_some_and(|at| (self.from..=self.to).contains(&at))
            && status.wait_ms().is_some_and(|wait| wait > self.longer_than)
    }
}

/// Sends a dead webhook round again with a fresh retry budget ([`Resend::replay`]).
pub async fn replay(store: &dyn WebhookStore, id: &str, now: i64) -> Result<Status, StoreError> {
    let resend = Resend::replay(id, store.status(id).await?, now)?;
    resend_with(store, id, resend).await
}

/// Sends a stuck webhook round again now, with the attempts it used ([`Resend::requeue`]).
pub async fn requeue(store: &dyn WebhookStore, id: &str, now: i64) -> Result<Status, StoreError> {
    let resend = Resend::requeue(id, store.status(id).await?, now)?;
    resend_with(store, id, resend).await
}

async fn resend_with(
    store: &dyn WebhookStore,
    id: &str,
    resend: Resend,
) -> Result<Status, StoreError> {
    let swapped = store
        .swap_status(id, resend.expected_version, &resend.transition)
        .await?;
    resend.outcome(id, swapped)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Captured {
    /// The webhook and its `received` status were committed together.
    Stored(Status),
    /// Nothing was written: the webhook `id` is stored with `status` (this one, or, when
    /// replayed bodies are refused, the first webhook of its origin with the same body).
    Duplicate { id: String, status: Status },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("too large to store: {0}")]
    TooLarge(String),
    #[error("storage is unavailable: {0}")]
    Unavailable(String),
    #[error("stored data cannot be read: {0}")]
    Corrupt(String),
    /// What is not there, named: `a webhook with the id …`, `a destination named …`.
    #[error("there is no {0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
}

/// An operator sending a webhook round again: the change to write over `expected_version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resend {
    pub expected_version: u64,
    pub transition: Transition,
    done: &'static str,
}

impl Resend {
    /// A dead webhook, with a fresh retry budget ([`Status::replay`]).
    pub fn replay(id: &str, current: Option<Status>, now: i64) -> Result<Resend, StoreError> {
        Resend::new(id, current, "replayed", |status| status.replay(now))
    }

    /// A stuck webhook, with the attempts it used ([`Status::requeue`]).
    pub fn requeue(id: &str, current: Option<Status>, now: i64) -> Result<Resend, StoreError> {
        Resend::new(id, current, "requeued", |status| status.requeue(now))
    }

    fn new(
        id: &str,
        current: Option<Status>,
        done: &'static str,
        change: impl FnOnce(&Status) -> Result<Status, TransitionError>,
    ) -> Result<Resend, StoreError> {
        let current =
            current.ok_or_else(|| StoreError::NotFound(format!("webhook with the id {id}")))?;
        let status = change(&current).map_err(|e| StoreError::Conflict(e.to_string()))?;
        Ok(Resend {
            expected_version: current.version,
            transition: Transition::to(status),
            done,
        })
    }

    /// The new status once the store's compare-and-swap has answered `swapped`.
    pub fn outcome(self, id: &str, swapped: bool) -> Result<Status, StoreError> {
        if swapped {
            Ok(self.transition.status)
        } else {
            Err(StoreError::Conflict(format!(
                "{id} changed while it was being {}; try again",
                self.done
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resend_is_a_compare_and_swap_from_the_version_read() {
        let dead = Status {
            state: State::OperatorRequired,
            attempts: 3,
            version: 7,
            updated_at: 1,
            lease_until: None,
            next_attempt_at: None,
            last_error: Some("rejected: 410".into()),
        };
        let replay = Resend::replay("a", Some(dead.clone()), 5).unwrap();
        assert_eq!(replay.expected_version, 7);
        assert_eq!(replay.transition.status.version, 8);
        assert_eq!(
            replay.clone().outcome("a", true).unwrap().state,
            State::Received
        );
        let lost = replay.outcome("a", false).unwrap_err();
        assert_eq!(
            lost,
            StoreError::Conflict("a changed while it was being replayed; try again".into())
        );
        assert!(matches!(
            Resend::requeue("a", Some(dead), 5),
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(
            Resend::replay("b", None, 5),
            Err(StoreError::NotFound("webhook with the id b".into()))
        );
    }
}
