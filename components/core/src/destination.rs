//! Destinations: where processors deliver, each with a circuit breaker and a pause switch
//! kept in the store, so every worker and every Lambda invocation follows one state.
//!
//! ```text
//! closed -> (INBOX_BREAKER_FAILURES retryable failures in a row) open
//! open -> (a probe's time) one real webhook is attempted -> completed or rejected: closed
//!                                                        -> retryable: open, the next probe later
//! any -> (pause) paused -> (resume) as it was
//! ```
//!
//! While a destination is open or paused its webhooks are held: not attempted, their retry
//! budget untouched, each kept under the destination (a hold item) until it closes or is
//! resumed and they are released. A hold waits [`HOLD_RECHECK_MS`] at most, so a webhook
//! whose hold item was lost is looked at again rather than forgotten.

use serde::{Deserialize, Serialize};

use crate::config::{Config, ConfigError, parsed};
use crate::lifecycle::{Outcome, Transition};
use crate::model::{State, Status};

/// The longest a held webhook waits before it is looked at again, released or not.
pub const HOLD_RECHECK_MS: i64 = 6 * 3_600_000;
/// The longest destination name kept (what a processor names is cut to it).
pub const MAX_NAME_BYTES: usize = 256;

/// When a destination opens and how often it is probed while open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Breaker {
    /// Retryable failures in a row that open it (`INBOX_BREAKER_FAILURES`, default 5).
    pub failures: u32,
    /// The wait before the first probe (`INBOX_BREAKER_PROBE_MS`, default 30 s); each
    /// failed probe doubles it, up to `max_probe_ms`.
    pub probe_ms: u64,
    /// `INBOX_BREAKER_MAX_PROBE_MS`, default 10 minutes.
    pub max_probe_ms: u64,
}

impl Default for Breaker {
    fn default() -> Self {
        Breaker {
            failures: 5,
            probe_ms: 30_000,
            max_probe_ms: 600_000,
        }
    }
}

impl Breaker {
    pub fn from_config(config: &dyn Config) -> Result<Breaker, ConfigError> {
        let default = Breaker::default();
        let breaker = Breaker {
            failures: parsed(config, "breaker_failures", default.failures)?,
            probe_ms: parsed(config, "breaker_probe_ms", default.probe_ms)?,
            max_probe_ms: parsed(config, "breaker_max_probe_ms", default.max_probe_ms)?,
        };
        if breaker.failures == 0 || breaker.probe_ms == 0 {
            return Err(ConfigError(
                "INBOX_BREAKER_FAILURES and INBOX_BREAKER_PROBE_MS must be positive".into(),
            ));
        }
        if breaker.max_probe_ms < breaker.probe_ms {
            return Err(ConfigError(
                "INBOX_BREAKER_MAX_PROBE_MS must be at least INBOX_BREAKER_PROBE_MS".into(),
            ));
        }
        Ok(breaker)
    }
}

impl std::fmt::Display for Breaker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "opens after {} failures in a row, probes every {} ms up to {} ms",
            self.failures, self.probe_ms, self.max_probe_ms
        )
    }
}

/// A destination's circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Circuit {
    Closed,
    Open,
}

/// A destination as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Destination {
    pub name: String,
    pub circuit: Circuit,
    /// Paused by an operator: nothing is attempted, whatever the circuit.
    pub paused: bool,
    /// Retryable failures in a row.
    pub failures: u32,
    /// The last failure's reason, as recorded for the webhook (secrets redacted).
    pub last_error: Option<String>,
    /// When it last opened, while open.
    pub opened_at: Option<i64>,
    /// While open: when the next probe may go.
    pub probe_at: Option<i64>,
    /// While open: the wait before the probe after the next.
    pub probe_ms: u64,
    /// With a rate: when the next delivery may start ([`crate::pacing`]).
    #[serde(default)]
    pub next_slot_at: Option<i64>,
    /// With a concurrency: when each delivery under way gives its place back at the latest.
    #[serde(default)]
    pub leases: Vec<i64>,
    /// Incremented by every write: the token of the compare-and-swap; 0 before the first.
    pub version: u64,
    pub updated_at: i64,
}

/// What a destination lets happen to one of its webhooks now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// Closed: attempt it.
    Deliver,
    /// Open and a probe is due: attempt it once `claimed` is written over the version read
    /// (so one invocation of many probes).
    Probe { claimed: Destination },
    /// Open or paused: hold it, spending nothing, until released.
    Hold { reason: String },
}

/// What a destination's webhooks held get now ([`Destination::releases`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// Closed and running: every held webhook, a batch at a time.
    All,
    /// Open with a probe due: one, which becomes the probe.
    Probe,
    /// Open before its probe, or paused.
    Nothing,
}

impl Destination {
    /// A destination never written: closed, running.
    pub fn new(name: &str, breaker: &Breaker) -> Destination {
        Destination {
            name: name.to_owned(),
            circuit: Circuit::Closed,
            paused: false,
            failures: 0,
            last_error: None,
            opened_at: None,
            probe_at: None,
            probe_ms: breaker.probe_ms,
            next_slot_at: None,
            leases: Vec::new(),
            version: 0,
            updated_at: 0,
        }
    }

    /// `paused`, `open` or `closed`, as operators see it.
    pub fn state(&self) -> &'static str {
        match (self.paused, self.circuit) {
            (true, _) => "paused",
            (false, Circuit::Open) => "open",
            (false, Circuit::Closed) => "closed",
        }
    }

    fn next(&self, now: i64) -> Destination {
        Destination {
            version: self.version + 1,
            updated_at: now,
            ..self.clone()
        }
    }

    pub fn gate(&self, now: i64, breaker: &Breaker) -> Gate {
        if self.paused {
            return Gate::Hold {
                reason: format!("held: {} is paused by an operator", self.name),
            };
        }
        match (self.circuit, self.probe_at) {
            (Circuit::Closed, _) => Gate::Deliver,
            (Circuit::Open, Some(at)) if at > now => Gate::Hold {
                reason: format!(
                    "held: {} is open after {} failures in a row",
                    self.name, self.failures
                ),
            },
            (Circuit::Open, _) => {
                let wait = self.probe_ms.max(breaker.probe_ms);
                Gate::Probe {
                    claimed: Destination {
                        probe_at: Some(now.saturating_add(wait as i64)),
                        probe_ms: wait.saturating_mul(2).min(breaker.max_probe_ms),
                        ..self.next(now)
                    },
                }
            }
        }
    }

    /// The destination once an attempt to it ended with `outcome`: `None` when nothing
    /// changes (a delivery to a healthy destination writes nothing).
    pub fn after(&self, outcome: &Outcome, now: i64, breaker: &Breaker) -> Option<Destination> {
        match outcome {
            // It answered: whatever it thought of the webhook, it is up.
            Outcome::Completed | Outcome::Reject { .. } => {
                (self.circuit == Circuit::Open || self.failures > 0).then(|| Destination {
                    circuit: Circuit::Closed,
                    failures: 0,
                    opened_at: None,
                    probe_at: None,
                    probe_ms: breaker.probe_ms,
                    ..self.next(now)
                })
            }
            Outcome::Retry { reason, .. } => {
                let failures = self.failures.saturating_add(1);
                let opens = self.circuit == Circuit::Closed && failures >= breaker.failures;
                let mut next = Destination {
                    failures,
                    last_error: Some(reason.clone()),
                    ..self.next(now)
                };
                if opens {
                    next.circuit = Circuit::Open;
                    next.opened_at = Some(now);
                    next.probe_at = Some(now.saturating_add(breaker.probe_ms as i64));
                    next.probe_ms = breaker.probe_ms.saturating_mul(2).min(breaker.max_probe_ms);
                }
                Some(next)
            }
        }
    }

    /// Whether `after` opened it (for alerts and logs).
    pub fn opened_from(&self, before: &Destination) -> bool {
        before.circuit == Circuit::Closed && self.circuit == Circuit::Open
    }

    /// Whether `after` closed it.
    pub fn closed_from(&self, before: &Destination) -> bool {
        before.circuit == Circuit::Open && self.circuit == Circuit::Closed
    }

    /// Paused by an operator; `None` if it already is.
    pub fn pause(&self, now: i64) -> Option<Destination> {
        (!self.paused).then(|| Destination {
            paused: true,
            ..self.next(now)
        })
    }

    /// Running again; `None` if it is not paused.
    pub fn resume(&self, now: i64) -> Option<Destination> {
        self.paused.then(|| Destination {
            paused: false,
            ..self.next(now)
        })
    }

    pub fn releases(&self, now: i64) -> Release {
        match (self.paused, self.circuit) {
            (true, _) => Release::Nothing,
            (false, Circuit::Closed) => Release::All,
            (false, Circuit::Open) if self.probe_at.is_none_or(|at| at <= now) => Release::Probe,
            (false, Circuit::Open) => Release::Nothing,
        }
    }
}

/// A webhook held for a destination, as its hold item records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub id: String,
    /// The status version the hold wrote: a status changed since is no longer held by it.
    pub version: u64,
}

/// A destination as operators list it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestinationView {
    pub name: String,
    pub state: String,
    pub failures: u32,
    pub last_error: Option<String>,
    pub held: u64,
    pub opened_at: Option<i64>,
    pub next_probe_at: Option<i64>,
    pub updated_at: i64,
}

impl DestinationView {
    pub fn new(destination: &Destination, held: u64) -> DestinationView {
        DestinationView {
            name: destination.name.clone(),
            state: destination.state().to_owned(),
            failures: destination.failures,
            last_error: destination.last_error.clone(),
            held,
            opened_at: destination.opened_at,
            next_probe_at: match destination.circuit {
                Circuit::Open => destination.probe_at,
                Circuit::Closed => None,
            },
            updated_at: destination.updated_at,
        }
    }
}

/// Holds a waiting webhook for `destination`: the same state and attempts, looked at again
/// after [`HOLD_RECHECK_MS`] unless released first; `None` unless it is waiting.
pub fn hold(status: &Status, destination: &str, reason: String, now: i64) -> Option<Transition> {
    matches!(status.state, State::Received | State::Failed).then(|| Transition {
        hold_for: Some(destination.to_owned()),
        ..Transition::to(Status {
            version: status.version + 1,
            updated_at: now,
            next_attempt_at: Some(now.saturating_add(HOLD_RECHECK_MS)),
            last_error: Some(reason),
            ..status.clone()
        })
    })
}

/// A probe that failed: the webhook is held again, the attempt recorded but not counted
/// against its budget (the outage is the destination's, which the breaker knows), so the
/// webhooks that probe a long outage do not run out of retries. `None` unless `claimed`
/// is an attempt under way.
pub fn probe_failed(
    claimed: &Status,
    destination: &str,
    reason: &str,
    now: i64,
) -> Option<Transition> {
    (claimed.state == State::Processing).then(|| Transition {
        status: Status {
            state: State::Failed,
            attempts: claimed.attempts.saturating_sub(1),
            version: claimed.version + 1,
            updated_at: now,
            lease_until: None,
            next_attempt_at: Some(now.saturating_add(HOLD_RECHECK_MS)),
            last_error: Some(format!("held: {destination} is open: {reason}")),
        },
        attempt: claimed.attempt_ended(
            now,
            State::Failed,
            Some(format!("a probe of {destination}, not counted: {reason}")),
        ),
        dead_letter: None,
        hold_for: Some(destination.to_owned()),
    })
}

/// Releases a webhook its hold item `held` still holds: due now; `None` if it has moved on.
pub fn release(status: &Status, held: &Held, now: i64) -> Option<Transition> {
    (status.version == held.version && matches!(status.state, State::Received | State::Failed))
        .then(|| {
            Transition::to(Status {
                version: status.version + 1,
                updated_at: now,
                next_attempt_at: Some(now),
                ..status.clone()
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BREAKER: Breaker = Breaker {
        failures: 3,
        probe_ms: 1_000,
        max_probe_ms: 3_000,
    };

    fn retry() -> Outcome {
        Outcome::Retry {
            reason: "503 from https://api.example.com:443".into(),
            delay_ms: None,
        }
    }

    fn fail(destination: &Destination, times: u32, now: i64) -> Destination {
        (0..times).fold(destination.clone(), |d, _| {
            d.after(&retry(), now, &BREAKER).unwrap()
        })
    }

    #[test]
    fn it_opens_after_the_failures_in_a_row_and_a_success_between_resets_the_count() {
        let fresh = Destination::new("https://api.example.com:443", &BREAKER);
        assert_eq!(fresh.gate(0, &BREAKER), Gate::Deliver);
        let two = fail(&fresh, 2, 10);
        assert_eq!(
            (two.circuit, two.failures, two.version),
            (Circuit::Closed, 2, 2)
        );
        let healthy = two.after(&Outcome::Completed, 11, &BREAKER).unwrap();
        assert_eq!(healthy.failures, 0);
        assert_eq!(healthy.after(&Outcome::Completed, 12, &BREAKER), None);
        let open = fail(&healthy, 3, 20);
        assert_eq!(open.state(), "open");
        assert_eq!((open.opened_at, open.probe_at), (Some(20), Some(1_020)));
        assert_eq!(
            open.last_error.as_deref(),
            Some("503 from https://api.example.com:443")
        );
    }

    #[test]
    fn a_rejection_does_not_open_it_and_closes_an_open_one() {
        let reject = Outcome::Reject {
            reason: "400".into(),
        };
        let fresh = Destination::new("d", &BREAKER);
        let rejected = (0..10).fold(fresh, |d, _| d.after(&reject, 1, &BREAKER).unwrap_or(d));
        assert_eq!(rejected.circuit, Circuit::Closed);
        let open = fail(&rejected, 3, 1);
        assert_eq!(open.after(&reject, 2, &BREAKER).unwrap().state(), "closed");
    }

    #[test]
    fn an_open_destination_holds_until_its_probe_and_backs_off_to_the_cap() {
        let open = fail(&Destination::new("d", &BREAKER), 3, 0);
        assert!(matches!(open.gate(999, &BREAKER), Gate::Hold { .. }));
        assert_eq!(open.releases(999), Release::Nothing);
        assert_eq!(open.releases(1_000), Release::Probe);
        let Gate::Probe { claimed } = open.gate(1_000, &BREAKER) else {
            panic!("a probe is due");
        };
        // The probe holds the next one off: others racing on it are held.
        assert_eq!(claimed.probe_at, Some(3_000));
        assert_eq!(claimed.version, open.version + 1);
        assert!(matches!(claimed.gate(1_001, &BREAKER), Gate::Hold { .. }));
        let still_down = claimed.after(&retry(), 1_500, &BREAKER).unwrap();
        assert_eq!(still_down.circuit, Circuit::Open);
        let Gate::Probe { claimed } = still_down.gate(3_000, &BREAKER) else {
            panic!("the second probe is due");
        };
        assert_eq!(claimed.probe_at, Some(6_000), "capped at 3 s");
        let Gate::Probe { claimed } = claimed.gate(6_000, &BREAKER) else {
            panic!("the third probe is due");
        };
        assert_eq!(claimed.probe_at, Some(9_000));
        let closed = claimed.after(&Outcome::Completed, 6_100, &BREAKER).unwrap();
        assert!(closed.closed_from(&claimed));
        assert_eq!((closed.opened_at, closed.probe_at), (None, None));
        assert_eq!(closed.releases(6_100), Release::All);
    }

    #[test]
    fn a_paused_destination_holds_everything_until_resumed() {
        let open = fail(&Destination::new("d", &BREAKER), 3, 0);
        let paused = open.pause(5).unwrap();
        assert_eq!(paused.pause(6), None);
        assert_eq!(paused.state(), "paused");
        assert!(matches!(paused.gate(10_000, &BREAKER), Gate::Hold { .. }));
        assert_eq!(paused.releases(10_000), Release::Nothing);
        let resumed = paused.resume(7).unwrap();
        assert_eq!(resumed.state(), "open", "the circuit is kept");
        assert_eq!(resumed.resume(8), None);
        let running = Destination::new("e", &BREAKER)
            .pause(1)
            .unwrap()
            .resume(2)
            .unwrap();
        assert_eq!(running.gate(3, &BREAKER), Gate::Deliver);
    }

    #[test]
    fn a_hold_spends_no_attempt_and_a_release_only_frees_what_it_held() {
        let failed = Status {
            state: State::Failed,
            attempts: 2,
            version: 5,
            updated_at: 1,
            lease_until: None,
            next_attempt_at: Some(10),
            last_error: Some("503".into()),
        };
        let held = hold(&failed, "d", "held: d is open".into(), 10).unwrap();
        assert_eq!(held.hold_for.as_deref(), Some("d"));
        let status = &held.status;
        assert_eq!((status.state, status.attempts), (State::Failed, 2));
        assert_eq!(status.next_attempt_at, Some(10 + HOLD_RECHECK_MS));
        assert!(held.attempt.is_none() && held.dead_letter.is_none());
        let entry = Held {
            id: "a".into(),
            version: status.version,
        };
        let released = release(status, &entry, 20).unwrap();
        assert_eq!(released.status.next_attempt_at, Some(20));
        assert_eq!(released.status.attempts, 2);
        let moved_on = Status {
            version: status.version + 1,
            ..status.clone()
        };
        assert_eq!(release(&moved_on, &entry, 20), None);
        let processing = Status {
            state: State::Processing,
            ..failed
        };
        assert_eq!(hold(&processing, "d", String::new(), 10), None);
    }

    #[test]
    fn a_failed_probe_is_recorded_and_held_again_without_spending_an_attempt() {
        let claimed = Status::received(1)
            .claim(2, 1_000, &crate::lifecycle::RetryPolicy::default())
            .unwrap();
        let again = probe_failed(&claimed, "d", "503", 3).unwrap();
        assert_eq!(
            (again.status.state, again.status.attempts),
            (State::Failed, 0)
        );
        assert_eq!(again.hold_for.as_deref(), Some("d"));
        let attempt = again.attempt.unwrap();
        assert_eq!((attempt.number, attempt.state), (1, State::Failed));
        assert!(attempt.error.unwrap().contains("not counted"));
        assert_eq!(probe_failed(&Status::received(1), "d", "503", 3), None);
    }

    #[test]
    fn the_breaker_settings_are_checked() {
        let config = |pairs: &[(&str, &str)]| -> std::collections::BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            Breaker::from_config(&config(&[])).unwrap(),
            Breaker::default()
        );
        assert!(Breaker::from_config(&config(&[("breaker_failures", "0")])).is_err());
        assert!(
            Breaker::from_config(&config(&[
                ("breaker_probe_ms", "5000"),
                ("breaker_max_probe_ms", "1000")
            ]))
            .is_err()
        );
    }
}
