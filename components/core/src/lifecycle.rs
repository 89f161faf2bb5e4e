//! The state machine of a webhook's status, and the retry policy.
//!
//! ```text
//! received -> processing -> completed
//! processing -> failed -> (when due) processing ...
//! processing -> operator_required   (rejected, or retries exhausted)
//! operator_required -> (replay) received
//! processing, lease expired -> processing   (a crashed attempt is retaken)
//! received, failed, expired processing -> (requeue) received   (a stuck one, by an operator)
//! ```
//!
//! Every transition returns the next status with `version + 1`; a store writes it only if
//! the stored version is still the one the transition started from (compare-and-swap), so
//! two processors never both win, and a processor that lost its lease cannot record.

use crate::config::{Config, ConfigError, parsed};
pub use crate::model::{Attempt, DeadLetter};
use crate::model::{State, Status};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransitionError {
    pub from: State,
    pub action: &'static str,
    pub reason: String,
}

impl std::fmt::Display for TransitionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cannot {} a webhook that is {}: {}",
            self.action, self.from, self.reason
        )
    }
}

impl std::error::Error for TransitionError {}

/// How a processing attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    /// Transient: try again within the budget, not before `delay_ms` if given.
    Retry {
        reason: String,
        delay_ms: Option<u64>,
    },
    /// Permanent: an operator has to look at it.
    Reject {
        reason: String,
    },
}

/// A status change to write, with the records it implies (written in the same commit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub status: Status,
    /// Set when the webhook lands in `operator_required`: what went wrong, to keep.
    pub dead_letter: Option<DeadLetter>,
    /// Set when an attempt ends (or one that never finished is taken over): how it went.
    pub attempt: Option<Attempt>,
}

impl Transition {
    /// A change that ends no attempt and needs no operator.
    pub fn to(status: Status) -> Transition {
        Transition {
            status,
            dead_letter: None,
            attempt: None,
        }
    }
}

/// Retry budget and backoff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first run (the seed: two).
    pub max_retries: u32,
    pub base_delay_ms: u64,
    pub max_delay_ms: u64,
}

/// The seed's: a first run and two retries, backing off from a second to at most an hour.
impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 2,
            base_delay_ms: 1_000,
            max_delay_ms: 3_600_000,
        }
    }
}

impl RetryPolicy {
    pub fn from_config(config: &dyn Config) -> Result<Self, ConfigError> {
        let default = RetryPolicy::default();
        Ok(RetryPolicy {
            max_retries: parsed(config, "max_retries", default.max_retries)?,
            base_delay_ms: parsed(config, "retry_base_delay_ms", default.base_delay_ms)?,
            max_delay_ms: parsed(config, "retry_max_delay_ms", default.max_delay_ms)?,
        })
    }

    pub fn max_attempts(&self) -> u32 {
        self.max_retries.saturating_add(1)
    }

    /// The wait after failed attempt number `attempt` (1-based): exponential, capped.
    pub fn backoff_ms(&self, attempt: u32) -> u64 {
        let exponent = attempt.saturating_sub(1).min(32);
        self.base_delay_ms
            .saturating_mul(1u64 << exponent)
            .min(self.max_delay_ms)
    }
}

impl Status {
    /// The status written together with a newly captured webhook: due at once.
    pub fn received(now: i64) -> Status {
        Status {
            state: State::Received,
            attempts: 0,
            version: 1,
            updated_at: now,
            lease_until: None,
            next_attempt_at: Some(now),
            last_error: None,
        }
    }

    /// What a webhook whose items are gone is answered as, when the replay guard still
    /// knows its body: only a completed webhook's items go (its retention ran out), so it
    /// was completed; when, and after how many attempts, is no longer known.
    pub fn forgotten() -> Status {
        Status {
            state: State::Completed,
            attempts: 0,
            version: 0,
            updated_at: 0,
            lease_until: None,
            next_attempt_at: None,
            last_error: None,
        }
    }

    /// When it is next due for an attempt: a waiting webhook's next attempt, or when the
    /// lease of the attempt under way runs out. `None` once it is finished.
    pub fn due_at(&self) -> Option<i64> {
        match self.state {
            State::Received | State::Failed => {
                Some(self.next_attempt_at.unwrap_or(self.updated_at))
            }
            State::Processing => Some(self.lease_until.unwrap_or(self.updated_at)),
            State::Completed | State::OperatorRequired => None,
        }
    }

    /// Whether a worker may take it now.
    pub fn is_claimable(&self, now: i64) -> bool {
        match self.state {
            State::Received | State::Failed => self.next_attempt_at.is_none_or(|due| due <= now),
            State::Processing => self.lease_until.is_none_or(|until| until <= now),
            State::Completed | State::OperatorRequired => false,
        }
    }

    /// Whether it has had every attempt its budget allows.
    pub fn budget_spent(&self, policy: &RetryPolicy) -> bool {
        self.attempts >= policy.max_attempts()
    }

    /// Takes the webhook for an attempt: `processing`, one more attempt, leased until
    /// `now + lease_ms`. An expired lease (a crashed attempt) is retaken the same way, as
    /// long as the budget allows another attempt; past it, see [`Status::abandon`].
    pub fn claim(
        &self,
        now: i64,
        lease_ms: u64,
        policy: &RetryPolicy,
    ) -> Result<Status, TransitionError> {
        if !self.is_claimable(now) {
            let reason = match self.state {
                State::Processing => "another attempt holds the lease".to_owned(),
                State::Received | State::Failed => "its next attempt is not due yet".to_owned(),
                State::Completed | State::OperatorRequired => "it is finished".to_owned(),
            };
            return Err(self.refuse("claim", reason));
        }
        if self.budget_spent(policy) {
            return Err(self.refuse("claim", format!("its {} attempts are spent", self.attempts)));
        }
        Ok(Status {
            state: State::Processing,
            attempts: self.attempts.saturating_add(1),
            version: self.version + 1,
            updated_at: now,
            lease_until: Some(now.saturating_add(lease_ms as i64)),
            next_attempt_at: None,
            last_error: self.last_error.clone(),
        })
    }

    /// A webhook due for another attempt with its budget spent: its last attempt never
    /// finished (the host was killed, ran out of memory or of time before recording it), so
    /// it needs an operator rather than one attempt more. `None` while it is not due, or
    /// the budget allows another attempt.
    pub fn abandon(&self, now: i64, policy: &RetryPolicy) -> Option<Transition> {
        (self.is_claimable(now) && self.budget_spent(policy)).then(|| {
            self.give_up(
                now,
                format!(
                    "retries exhausted after {} attempts: the last one never finished (its host stopped or ran out of time)",
                    self.attempts
                ),
            )
        })
    }

    /// Sends it to an operator, with a dead letter saying why: for a webhook that cannot be
    /// processed whatever its budget (its webhook item is gone), or one [`abandon`]ed.
    ///
    /// [`abandon`]: Status::abandon
    pub fn give_up(&self, now: i64, reason: String) -> Transition {
        Transition {
            status: Status {
                state: State::OperatorRequired,
                version: self.version + 1,
                updated_at: now,
                lease_until: None,
                next_attempt_at: None,
                last_error: Some(reason.clone()),
                ..self.clone()
            },
            attempt: self.attempt_ended(now, State::OperatorRequired, Some(reason.clone())),
            dead_letter: Some(DeadLetter {
                at: now,
                attempts: self.attempts,
                reason,
            }),
        }
    }

    /// The record of the attempt holding this status, ending now in `state`; `None` when no
    /// attempt holds it.
    pub fn attempt_ended(&self, now: i64, state: State, error: Option<String>) -> Option<Attempt> {
        (self.state == State::Processing).then_some(Attempt {
            number: self.attempts,
            started_at: self.updated_at,
            ended_at: now,
            state,
            error,
        })
    }

    /// The record of an attempt whose lease expired before it finished, as another
    /// attempt takes the webhook over (`None` unless it was held).
    pub fn taken_over(&self, now: i64) -> Option<Attempt> {
        self.attempt_ended(
            now,
            State::Processing,
            Some(
                "it never finished: its lease expired (its host stopped or ran out of time)".into(),
            ),
        )
    }

    /// Records how the attempt that claimed this status ended.
    pub fn finish(
        &self,
        outcome: &Outcome,
        policy: &RetryPolicy,
        now: i64,
    ) -> Result<Transition, TransitionError> {
        if self.state != State::Processing {
            return Err(self.refuse("finish", "it is not being processed".to_owned()));
        }
        let base = Status {
            version: self.version + 1,
            updated_at: now,
            lease_until: None,
            next_attempt_at: None,
            ..self.clone()
        };
        let dead = |reason: String| self.give_up(now, reason);
        Ok(match outcome {
            Outcome::Completed => Transition {
                status: Status {
                    state: State::Completed,
                    ..base.clone()
                },
                dead_letter: None,
                attempt: self.attempt_ended(now, State::Completed, None),
            },
            Outcome::Reject { reason } => dead(format!("rejected: {reason}")),
            Outcome::Retry { reason, .. } if self.attempts >= policy.max_attempts() => {
                dead(format!(
                    "retries exhausted after {} attempts: {reason}",
                    self.attempts
                ))
            }
            Outcome::Retry { reason, delay_ms } => {
                let wait = policy
                    .backoff_ms(self.attempts)
                    .max(delay_ms.unwrap_or(0).min(policy.max_delay_ms));
                Transition {
                    status: Status {
                        state: State::Failed,
                        next_attempt_at: Some(now.saturating_add(wait as i64)),
                        last_error: Some(reason.clone()),
                        ..base.clone()
                    },
                    dead_letter: None,
                    attempt: self.attempt_ended(now, State::Failed, Some(reason.clone())),
                }
            }
        })
    }

    /// An operator sends a dead webhook round again with a fresh retry budget. (A `failed`
    /// one is already on its way: its retry is scheduled.)
    pub fn replay(&self, now: i64) -> Result<Status, TransitionError> {
        match self.state {
            State::OperatorRequired => Ok(Status {
                state: State::Received,
                attempts: 0,
                version: self.version + 1,
                updated_at: now,
                lease_until: None,
                next_attempt_at: Some(now),
                last_error: self.last_error.clone(),
            }),
            _ => Err(self.refuse(
                "replay",
                "only operator_required webhooks are replayed".to_owned(),
            )),
        }
    }

    /// An operator sends a stuck webhook round again now: one the pipeline lost track of
    /// (on AWS, a stream batch Lambda gave up on, or a retry message redriven to the dead
    /// queue). It keeps the attempts it has used, so the retry budget still holds. A live
    /// lease is never taken over, and a finished webhook stays finished (a dead one is
    /// replayed instead).
    pub fn requeue(&self, now: i64) -> Result<Status, TransitionError> {
        match self.state {
            State::Received | State::Failed => {}
            State::Processing if self.lease_until.is_none_or(|until| until <= now) => {}
            State::Processing => {
                return Err(self.refuse(
                    "requeue",
                    "an attempt holds the lease; it is not stuck".to_owned(),
                ));
            }
            State::Completed => {
                return Err(self.refuse("requeue", "it is finished".to_owned()));
            }
            State::OperatorRequired => {
                return Err(self.refuse(
                    "requeue",
                    "it needs an operator; replay it for a fresh retry budget".to_owned(),
                ));
            }
        }
        Ok(Status {
            state: State::Received,
            attempts: self.attempts,
            version: self.version + 1,
            updated_at: now,
            lease_until: None,
            next_attempt_at: Some(now),
            last_error: self.last_error.clone(),
        })
    }

    fn refuse(&self, action: &'static str, reason: String) -> TransitionError {
        TransitionError {
            from: self.state,
            action,
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: u64 = 30_000;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_retries: 2,
            base_delay_ms: 1_000,
            max_delay_ms: 60_000,
        }
    }

    fn retry(reason: &str) -> Outcome {
        Outcome::Retry {
            reason: reason.into(),
            delay_ms: None,
        }
    }

    #[test]
    fn happy_path_counts_one_attempt() {
        let received = Status::received(0);
        let processing = received.claim(10, LEASE, &policy()).unwrap();
        assert_eq!(processing.state, State::Processing);
        assert_eq!(processing.attempts, 1);
        assert_eq!(processing.version, 2);
        assert_eq!(processing.lease_until, Some(10 + LEASE as i64));
        let done = processing
            .finish(&Outcome::Completed, &policy(), 20)
            .unwrap();
        assert_eq!(done.status.state, State::Completed);
        assert_eq!(done.status.version, 3);
        assert_eq!(done.dead_letter, None);
        assert_eq!(
            done.attempt,
            Some(Attempt {
                number: 1,
                started_at: 10,
                ended_at: 20,
                state: State::Completed,
                error: None,
            })
        );
        assert!(done.status.claim(30, LEASE, &policy()).is_err());
        // Only an attempt that held the webhook is recorded.
        assert_eq!(received.taken_over(5), None);
        let lost = processing.taken_over(10 + LEASE as i64).unwrap();
        assert_eq!((lost.number, lost.state), (1, State::Processing));
    }

    #[test]
    fn first_run_plus_two_retries_then_operator_required() {
        let mut status = Status::received(0);
        let mut now = 0;
        for attempt in 1..=2 {
            status = status.claim(now, LEASE, &policy()).unwrap();
            assert_eq!(status.attempts, attempt);
            let next = status.finish(&retry("boom"), &policy(), now).unwrap();
            assert_eq!(next.status.state, State::Failed);
            let due = next.status.next_attempt_at.unwrap();
            assert_eq!(due - now, 1_000 << (attempt - 1));
            assert!(
                next.status.claim(due - 1, LEASE, &policy()).is_err(),
                "not due yet"
            );
            now = due;
            status = next.status;
        }
        let last = status.claim(now, LEASE, &policy()).unwrap();
        assert_eq!(last.attempts, 3);
        let dead = last.finish(&retry("boom"), &policy(), now).unwrap();
        assert_eq!(dead.status.state, State::OperatorRequired);
        assert_eq!(dead.status.attempts, 3);
        let attempt = dead.attempt.unwrap();
        assert_eq!(
            (attempt.number, attempt.state),
            (3, State::OperatorRequired)
        );
        let letter = dead.dead_letter.unwrap();
        assert_eq!(letter.attempts, 3);
        assert_eq!(attempt.error.as_ref(), Some(&letter.reason));
        assert!(
            letter.reason.contains("retries exhausted"),
            "{}",
            letter.reason
        );
        assert!(
            dead.status
                .claim(now + 1_000_000, LEASE, &policy())
                .is_err()
        );
    }

    #[test]
    fn rejection_is_permanent_at_once() {
        let processing = Status::received(0).claim(0, LEASE, &policy()).unwrap();
        let dead = processing
            .finish(
                &Outcome::Reject {
                    reason: "410 Gone".into(),
                },
                &policy(),
                1,
            )
            .unwrap();
        assert_eq!(dead.status.state, State::OperatorRequired);
        assert_eq!(
            dead.status.last_error.as_deref(),
            Some("rejected: 410 Gone")
        );
    }

    #[test]
    fn retry_after_is_honoured_but_capped() {
        let processing = Status::received(0).claim(0, LEASE, &policy()).unwrap();
        let asked = |delay_ms| {
            let outcome = Outcome::Retry {
                reason: "429".into(),
                delay_ms: Some(delay_ms),
            };
            processing
                .finish(&outcome, &policy(), 0)
                .unwrap()
                .status
                .next_attempt_at
                .unwrap()
        };
        assert_eq!(asked(5_000), 5_000);
        assert_eq!(asked(10), 1_000, "never sooner than the backoff");
        assert_eq!(asked(u64::MAX), 60_000, "never later than the cap");
    }

    #[test]
    fn an_expired_lease_is_retaken_and_the_stale_holder_cannot_record() {
        let first = Status::received(0).claim(0, LEASE, &policy()).unwrap();
        assert!(
            first.claim(LEASE as i64 - 1, LEASE, &policy()).is_err(),
            "lease still held"
        );
        let second = first.claim(LEASE as i64, LEASE, &policy()).unwrap();
        assert_eq!(second.attempts, 2);
        // The stale holder computes from its own copy: the version it would swap from is
        // no longer the stored one, so a store's compare-and-swap refuses it.
        let stale = first
            .finish(&Outcome::Completed, &policy(), LEASE as i64)
            .unwrap();
        assert_ne!(stale.status.version - 1, second.version);
    }

    #[test]
    fn attempts_that_never_finish_spend_the_budget_then_need_an_operator() {
        // Every attempt's host dies: the lease expires and the webhook is taken again,
        // until the budget is spent.
        let mut status = Status::received(0);
        let mut now = 0;
        for attempt in 1..=policy().max_attempts() {
            assert_eq!(status.abandon(now, &policy()), None);
            status = status.claim(now, LEASE, &policy()).unwrap();
            assert_eq!(status.attempts, attempt);
            now += LEASE as i64;
        }
        let refused = status.claim(now, LEASE, &policy()).unwrap_err();
        assert!(refused.reason.contains("3 attempts are spent"), "{refused}");
        assert_eq!(
            status.abandon(now - 1, &policy()),
            None,
            "the last attempt may still finish"
        );
        let dead = status.abandon(now, &policy()).unwrap();
        assert_eq!(dead.status.state, State::OperatorRequired);
        assert_eq!(dead.status.attempts, 3, "exactly the budget");
        assert_eq!(dead.status.lease_until, None);
        let letter = dead.dead_letter.unwrap();
        assert_eq!(letter.attempts, 3);
        assert!(
            letter.reason.contains("never finished"),
            "{}",
            letter.reason
        );
    }

    #[test]
    fn replay_gives_a_fresh_budget_only_to_dead_webhooks() {
        let processing = Status::received(0).claim(0, LEASE, &policy()).unwrap();
        let dead = processing
            .finish(
                &Outcome::Reject {
                    reason: "no".into(),
                },
                &policy(),
                5,
            )
            .unwrap()
            .status;
        let replayed = dead.replay(9).unwrap();
        assert_eq!(replayed.state, State::Received);
        assert_eq!(replayed.attempts, 0);
        assert!(replayed.is_claimable(9));
        assert!(Status::received(0).replay(1).is_err());
        assert!(processing.replay(1).is_err());
        let retry = Outcome::Retry {
            reason: "503".into(),
            delay_ms: None,
        };
        let failed = processing.finish(&retry, &policy(), 1).unwrap().status;
        assert!(failed.replay(2).is_err(), "its retry is already scheduled");
        assert!(
            processing
                .finish(&Outcome::Completed, &policy(), 1)
                .unwrap()
                .status
                .replay(2)
                .is_err()
        );
    }

    #[test]
    fn requeue_sends_a_stuck_webhook_round_again_with_its_attempts_kept() {
        let processing = Status::received(0).claim(0, LEASE, &policy()).unwrap();
        let retry = Outcome::Retry {
            reason: "503".into(),
            delay_ms: None,
        };
        let failed = processing.finish(&retry, &policy(), 1).unwrap().status;
        let requeued = failed.requeue(2).unwrap();
        assert_eq!(requeued.state, State::Received);
        assert_eq!(
            requeued.attempts, 1,
            "the budget still counts the first attempt"
        );
        assert_eq!(requeued.version, failed.version + 1);
        assert_eq!(requeued.last_error.as_deref(), Some("503"));
        assert!(requeued.is_claimable(2), "due now, not at the old backoff");
        assert!(Status::received(0).requeue(1).is_ok());

        assert!(
            processing.requeue(LEASE as i64 - 1).is_err(),
            "a live lease is not taken over"
        );
        let expired = processing.requeue(LEASE as i64).unwrap();
        assert_eq!(
            (expired.state, expired.lease_until),
            (State::Received, None)
        );

        let done = processing
            .finish(&Outcome::Completed, &policy(), 1)
            .unwrap();
        assert!(done.status.requeue(2).is_err());
        let reject = Outcome::Reject {
            reason: "no".into(),
        };
        let dead = processing.finish(&reject, &policy(), 1).unwrap().status;
        let refused = dead.requeue(2).unwrap_err();
        assert!(refused.to_string().contains("replay"), "{refused}");
    }

    #[test]
    fn backoff_is_exponential_and_capped() {
        let p = policy();
        assert_eq!(p.max_attempts(), 3);
        assert_eq!(p.backoff_ms(1), 1_000);
        assert_eq!(p.backoff_ms(3), 4_000);
        assert_eq!(p.backoff_ms(40), 60_000);
    }
}
