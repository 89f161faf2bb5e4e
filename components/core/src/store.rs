//! What a store answers, the same for every store (the native ones and the store
//! components, on SQLite or DynamoDB), and the operator's status changes, which every
//! store carries out the same way: read the status, write the change with a
//! compare-and-swap from the version read.

use crate::lifecycle::{Transition, TransitionError};
use crate::model::Status;

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
    #[error("no webhook has the id {0}")]
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
        let current = current.ok_or_else(|| StoreError::NotFound(id.to_owned()))?;
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
    use crate::model::State;

    #[test]
    fn a_resend_is_a_compare_and_swap_from_the_version_read() {
        let dead = Status {
            state: State::OperatorRequired,
            retries: 3,
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
            Err(StoreError::NotFound("b".into()))
        );
    }
}
