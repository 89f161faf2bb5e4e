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

use sha2::{Digest, Sha256};

use crate::config::{Config, ConfigError, describe, parsed};
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
    /// Set when the webhook is held for a destination (`crate::destination`): the hold
    /// item to write under it.
    pub hold_for: Option<String>,
}

impl Transition {
    /// A change that ends no attempt and needs no operator.
    pub fn to(status: Status) -> Transition {
        Transition {
            status,
            dead_letter: None,
            attempt: None,
            hold_for: None,
        }
    }
}

/// How long a failed webhook waits before each retry, and so how many retries it gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryPolicy {
    /// The waits before each retry in milliseconds, in order (`INBOX_RETRY_SCHEDULE`); each
    /// is spread by up to a tenth either way, so webhooks that failed together do not come
    /// back together.
    Schedule(Vec<u64>),
    /// The seed's: `max_retries` waits doubling from `base_delay_ms`, capped at
    /// `max_delay_ms`, exactly.
    Backoff {
        max_retries: u32,
        base_delay_ms: u64,
        max_delay_ms: u64,
    },
}

/// The default schedule (Svix's): a blip is retried in seconds, a deploy in minutes, and an
/// outage of a day is spanned: 27 h 35 min from the first failure to the last attempt.
pub const DEFAULT_SCHEDULE: &str = "5s,5m,30m,2h,5h,10h,10h";

/// The settings of [`RetryPolicy::Backoff`], which a schedule replaces.
const BACKOFF_KEYS: [&str; 3] = ["max_retries", "retry_base_delay_ms", "retry_max_delay_ms"];

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::Schedule(parse_schedule(DEFAULT_SCHEDULE).expect("the default parses"))
    }
}

/// The longest wait a schedule may hold: 30 days.
const LONGEST_WAIT_MS: u64 = 30 * 24 * 3_600_000;

/// The waits of a schedule (`5s,5m,30m,2h`), in milliseconds.
pub fn parse_schedule(raw: &str) -> Result<Vec<u64>, String> {
    raw.split(',')
        .map(str::trim)
        .map(|wait| {
            let parsed = humantime::parse_duration(wait)
                .map_err(|e| format!("{wait:?} is not a duration such as 5s, 30m or 2h: {e}"))?;
            u64::try_from(parsed.as_millis())
                .ok()
                .filter(|ms| *ms <= LONGEST_WAIT_MS)
                .ok_or_else(|| format!("{wait:?} is longer than 30 days"))
        })
        .collect()
}

impl RetryPolicy {
    /// `INBOX_RETRY_SCHEDULE`; or, without it, the seed's exponential backoff if any of its
    /// settings is given (the others at the seed's values: two retries, from a second, up
    /// to an hour); or else [`DEFAULT_SCHEDULE`].
    pub fn from_config(config: &dyn Config) -> Result<Self, ConfigError> {
        let backoff: Vec<&str> = BACKOFF_KEYS
            .into_iter()
            .filter(|key| config.get(key).is_some())
            .collect();
        match config.get("retry_schedule") {
            Some(_) if !backoff.is_empty() => Err(ConfigError(format!(
                "{} replaces {}: set one or the other",
                describe("retry_schedule"),
                backoff
                    .iter()
                    .map(|key| describe(key))
                    .collect::<Vec<_>>()
                    .join(" and ")
            ))),
            Some(raw) => parse_schedule(&raw)
                .map(RetryPolicy::Schedule)
                .map_err(|e| ConfigError(format!("{} = {raw:?}: {e}", describe("retry_schedule")))),
            None if backoff.is_empty() => Ok(RetryPolicy::default()),
            None => Ok(RetryPolicy::Backoff {
                max_retries: parsed(config, "max_retries", 2)?,
                base_delay_ms: parsed(config, "retry_base_delay_ms", 1_000)?,
                max_delay_ms: parsed(config, "retry_max_delay_ms", 3_600_000)?,
            }),
        }
    }

    pub fn max_retries(&self) -> u32 {
        match self {
            RetryPolicy::Schedule(waits) => u32::try_from(waits.len()).unwrap_or(u32::MAX),
            RetryPolicy::Backoff { max_retries, .. } => *max_retries,
        }
    }

    pub fn max_attempts(&self) -> u32 {
        self.max_retries().saturating_add(1)
    }

    /// The wait after failed attempt number `attempt` (1-based) of webhook `id`: the
    /// schedule's, spread by a tenth either way by a hash of both (so the same attempt of
    /// the same webhook always waits as long, and a burst spreads out), or the backoff's.
    pub fn wait_ms(&self, attempt: u32, id: &str) -> u64 {
        match self {
            RetryPolicy::Schedule(waits) => {
                let index = attempt.saturating_sub(1) as usize;
                let Some(wait) = waits.get(index).or(waits.last()).copied() else {
                    return 0;
                };
                let tenth = wait / 10;
                let digest = Sha256::new()
                    .chain_update(id.as_bytes())
                    .chain_update(attempt.to_be_bytes())
                    .finalize();
                let spread = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
                wait - tenth + spread % (2 * tenth + 1)
            }
            RetryPolicy::Backoff {
                base_delay_ms,
                max_delay_ms,
                ..
            } => {
                let exponent = attempt.saturating_sub(1).min(32);
                base_delay_ms
                    .saturating_mul(1u64 << exponent)
                    .min(*max_delay_ms)
            }
        }
    }

    /// The longest a destination's own `Retry-After` may hold a webhook back: the longest
    /// wait of the schedule, or the backoff's cap.
    pub fn longest_wait_ms(&self) -> u64 {
        match self {
            RetryPolicy::Schedule(waits) => waits.iter().copied().max().unwrap_or(0),
            RetryPolicy::Backoff { max_delay_ms, .. } => *max_delay_ms,
        }
    }

    /// From the first failure to the last attempt, at the waits' middle.
    pub fn span_ms(&self) -> u64 {
        (1..=self.max_retries())
            .map(|attempt| match self {
                RetryPolicy::Schedule(waits) => waits[attempt as usize - 1],
                RetryPolicy::Backoff { .. } => self.wait_ms(attempt, ""),
            })
            .fold(0, u64::saturating_add)
    }
}

impl std::fmt::Display for RetryPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let span = std::time::Duration::from_secs(self.span_ms() / 1_000);
        write!(
            f,
            "{} retries over {}",
            self.max_retries(),
            humantime::format_duration(span)
        )
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

    /// How long it waits for its next attempt, from its last change: `None` when no
    /// attempt is scheduled.
    pub fn wait_ms(&self) -> Option<i64> {
        self.next_attempt_at
            .map(|at| at.saturating_sub(self.updated_at))
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
            hold_for: None,
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

    /// Records how the attempt that claimed this status (of webhook `id`) ended.
    pub fn finish(
        &self,
        id: &str,
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
                hold_for: None,
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
                    .wait_ms(self.attempts, id)
                    .max(delay_ms.unwrap_or(0).min(policy.longest_wait_ms()));
                Transition {
                    status: Status {
                        state: State::Failed,
                        next_attempt_at: Some(
                            now.saturating_add(i64::try_from(wait).unwrap_or(i64::MAX)),
                        ),
                        last_error: Some(reason.clone()),
                        ..base.clone()
                    },
                    dead_letter: None,
                    attempt: self.attempt_ended(now, State::Failed, Some(reason.clone())),
                    hold_for: None,
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
        RetryPolicy::Backoff {
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
            .finish("w", &Outcome::Completed, &policy(), 20)
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
            let next = status.finish("w", &retry("boom"), &policy(), now).unwrap();
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
        let dead = last.finish("w", &retry("boom"), &policy(), now).unwrap();
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
                "w",
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
                .finish("w", &outcome, &policy(), 0)
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
            .finish("w", &Outcome::Completed, &policy(), LEASE as i64)
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
                "w",
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
        let failed = processing.finish("w", &retry, &policy(), 1).unwrap().status;
        assert!(failed.replay(2).is_err(), "its retry is already scheduled");
        assert!(
            processing
                .finish("w", &Outcome::Completed, &policy(), 1)
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
        let failed = processing.finish("w", &retry, &policy(), 1).unwrap().status;
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
            .finish("w", &Outcome::Completed, &policy(), 1)
            .unwrap();
        assert!(done.status.requeue(2).is_err());
        let reject = Outcome::Reject {
            reason: "no".into(),
        };
        let dead = processing
            .finish("w", &reject, &policy(), 1)
            .unwrap()
            .status;
        let refused = dead.requeue(2).unwrap_err();
        assert!(refused.to_string().contains("replay"), "{refused}");
    }

    #[test]
    fn backoff_is_exponential_and_capped() {
        let p = policy();
        assert_eq!(p.max_attempts(), 3);
        assert_eq!(p.wait_ms(1, "w"), 1_000);
        assert_eq!(p.wait_ms(3, "w"), 4_000);
        assert_eq!(p.wait_ms(40, "w"), 60_000);
    }

    fn configured(pairs: &[(&str, &str)]) -> Result<RetryPolicy, ConfigError> {
        let config: std::collections::BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        RetryPolicy::from_config(&config)
    }

    #[test]
    fn the_default_schedule_spans_more_than_a_day() {
        let default = configured(&[]).unwrap();
        assert_eq!(default, RetryPolicy::default());
        assert_eq!(default.max_attempts(), 8);
        assert!(default.span_ms() > 24 * 3_600_000, "{default}");
        assert_eq!(default.to_string(), "7 retries over 1day 3h 35m 5s");
    }

    #[test]
    fn a_schedule_is_its_waits_and_replaces_the_backoff_settings() {
        let schedule = configured(&[("retry_schedule", "1s, 2m,1h30m,0s")]).unwrap();
        assert_eq!(
            schedule,
            RetryPolicy::Schedule(vec![1_000, 120_000, 5_400_000, 0])
        );
        assert_eq!(schedule.max_attempts(), 5);
        assert_eq!(schedule.longest_wait_ms(), 5_400_000);
        // The seed's two quick retries are one setting away, and keep their meaning.
        assert_eq!(
            configured(&[("max_retries", "2")]).unwrap(),
            RetryPolicy::Backoff {
                max_retries: 2,
                base_delay_ms: 1_000,
                max_delay_ms: 3_600_000
            }
        );
        let both = configured(&[("retry_schedule", "5s"), ("retry_base_delay_ms", "50")]);
        let error = both.unwrap_err().to_string();
        assert!(
            error.contains("INBOX_RETRY_SCHEDULE") && error.contains("INBOX_RETRY_BASE_DELAY_MS"),
            "{error}"
        );
        let error = configured(&[("retry_schedule", "5s,soon")]).unwrap_err();
        assert!(error.to_string().contains("\"soon\""), "{error}");
        let error = configured(&[("retry_schedule", "5s,")]).unwrap_err();
        assert!(error.to_string().contains("\"\""), "{error}");
        let error = configured(&[("retry_schedule", "31d")]).unwrap_err();
        assert!(error.to_string().contains("longer than 30 days"), "{error}");
        assert!(configured(&[("retry_schedule", "30d")]).is_ok());
    }

    #[test]
    fn a_schedules_waits_are_spread_a_tenth_either_way_the_same_for_the_same_attempt() {
        let p = RetryPolicy::Schedule(vec![10_000, 300_000]);
        let waits: Vec<u64> = (0..1_000).map(|n| p.wait_ms(1, &format!("w{n}"))).collect();
        assert!(waits.iter().all(|w| (9_000..=11_000).contains(w)));
        let (low, high) = (waits.iter().min().unwrap(), waits.iter().max().unwrap());
        assert!(*low < 9_200 && *high > 10_800, "spread: {low}..{high}");
        assert_eq!(
            p.wait_ms(1, "w7"),
            waits[7],
            "the same attempt waits as long"
        );
        assert!((270_000..=330_000).contains(&p.wait_ms(2, "w")));
        assert!(
            (270_000..=330_000).contains(&p.wait_ms(9, "w")),
            "past the schedule: its last wait"
        );
    }

    #[test]
    fn a_schedule_runs_its_waits_then_needs_an_operator() {
        let p = RetryPolicy::Schedule(vec![5_000, 60_000]);
        let mut status = Status::received(0);
        let mut now = 0;
        for wait in [5_000, 60_000] {
            status = status.claim(now, LEASE, &p).unwrap();
            let next = status.finish("w", &retry("down"), &p, now).unwrap().status;
            let waited = next.next_attempt_at.unwrap() - now;
            assert!(
                (wait * 9 / 10..=wait * 11 / 10).contains(&waited),
                "{waited}"
            );
            now += waited;
            status = next;
        }
        let last = status.claim(now, LEASE, &p).unwrap();
        let dead = last.finish("w", &retry("down"), &p, now).unwrap();
        assert_eq!(dead.status.state, State::OperatorRequired);
        assert_eq!(dead.status.attempts, 3);
        // A Retry-After is honoured up to the schedule's longest wait.
        let asked = Outcome::Retry {
            reason: "429".into(),
            delay_ms: Some(u64::MAX),
        };
        let first = Status::received(0).claim(0, LEASE, &p).unwrap();
        let held = first.finish("w", &asked, &p, 0).unwrap().status;
        assert_eq!(held.next_attempt_at, Some(60_000));
    }
}
