//! How fast a destination is delivered to: at most `rate` deliveries a second, evenly
//! spaced, and at most `concurrency` at once, whatever the number of workers or Lambda
//! invocations (the state is the destination's, in the store). A delivery that must wait
//! is deferred to its slot with nothing spent; so a destination that recovers drains its
//! backlog at the pace it can take.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::{Config, ConfigError};
use crate::destination::Destination;
use crate::lifecycle::Transition;
use crate::model::{State, Status};

/// The wait before trying again for a place among the deliveries at once, when none of
/// theirs ends sooner: short, as a delivery usually takes milliseconds.
pub const CONCURRENCY_RETRY_MS: i64 = 200;

/// One destination's limits; `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Deliveries a second.
    pub rate: Option<f64>,
    /// Deliveries at once.
    pub concurrency: Option<u32>,
}

impl Limits {
    pub fn is_unlimited(&self) -> bool {
        self.rate.is_none() && self.concurrency.is_none()
    }
}

/// The limits of every destination: `INBOX_DESTINATION_RATE` and
/// `INBOX_DESTINATION_CONCURRENCY` for all, `INBOX_DESTINATION_LIMITS` for some
/// (`https://api.example.com:443 rate=5 concurrency=2; https://b.example:443 rate=50`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pacing {
    pub default: Limits,
    pub overrides: BTreeMap<String, Limits>,
}

impl Pacing {
    pub fn from_config(config: &dyn Config) -> Result<Pacing, ConfigError> {
        let default = Limits {
            rate: rate(
                config.get("destination_rate").as_deref(),
                "INBOX_DESTINATION_RATE",
            )?,
            concurrency: concurrency(
                config.get("destination_concurrency").as_deref(),
                "INBOX_DESTINATION_CONCURRENCY",
            )?,
        };
        let mut overrides = BTreeMap::new();
        for entry in config
            .get("destination_limits")
            .unwrap_or_default()
            .split(';')
            .filter(|entry| !entry.trim().is_empty())
        {
            let mut words = entry.split_whitespace();
            let name = words.next().unwrap_or_default().to_owned();
            let mut limits = default;
            for word in words {
                let invalid = || {
                    ConfigError(format!(
                        "INBOX_DESTINATION_LIMITS: `{word}` for {name} is not rate=N or concurrency=N"
                    ))
                };
                match word.split_once('=').ok_or_else(invalid)? {
                    ("rate", value) => limits.rate = rate(Some(value), "INBOX_DESTINATION_LIMITS")?,
                    ("concurrency", value) => {
                        limits.concurrency = concurrency(Some(value), "INBOX_DESTINATION_LIMITS")?
                    }
                    _ => return Err(invalid()),
                }
            }
            overrides.insert(name, limits);
        }
        Ok(Pacing { default, overrides })
    }

    pub fn limits(&self, name: &str) -> Limits {
        self.overrides.get(name).copied().unwrap_or(self.default)
    }
}

fn rate(value: Option<&str>, variable: &str) -> Result<Option<f64>, ConfigError> {
    value
        .filter(|v| !v.trim().is_empty())
        .map(|v| match v.trim().parse::<f64>() {
            Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
            _ => Err(ConfigError(format!(
                "{variable}: `{v}` is not a positive number of deliveries a second"
            ))),
        })
        .transpose()
}

fn concurrency(value: Option<&str>, variable: &str) -> Result<Option<u32>, ConfigError> {
    value
        .filter(|v| !v.trim().is_empty())
        .map(|v| match v.trim().parse::<u32>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(ConfigError(format!(
                "{variable}: `{v}` is not a positive number of deliveries at once"
            ))),
        })
        .transpose()
}

/// What pacing lets a delivery do now.
#[derive(Debug, Clone, PartialEq)]
pub enum Pace {
    /// Go, once `taken` (its slot, its place among those at once) is written over the
    /// version read; `lease` is its place, to give back when it ends.
    Go {
        taken: Destination,
        lease: Option<i64>,
    },
    /// Wait until then, spending nothing.
    Wait { until: i64, reason: String },
}

/// Takes a slot and a place for a delivery at `now`, its place held until `lease_until`
/// at most (a delivery whose host died gives it back then).
pub fn take(destination: &Destination, limits: &Limits, now: i64, lease_until: i64) -> Pace {
    let mut taken = Destination {
        version: destination.version + 1,
        updated_at: now,
        ..destination.clone()
    };
    taken.leases.retain(|end| *end > now);
    if let Some(most) = limits.concurrency
        && taken.leases.len() >= most as usize
    {
        let first_free = taken.leases.iter().min().copied().unwrap_or(now);
        return Pace::Wait {
            until: first_free.min(now + CONCURRENCY_RETRY_MS),
            reason: format!("{most} deliveries at once to {} already", destination.name),
        };
    }
    if let Some(rate) = limits.rate {
        let slot = destination.next_slot_at.unwrap_or(now).max(now);
        if slot > now {
            return Pace::Wait {
                until: slot,
                reason: format!("{} takes {rate} deliveries a second", destination.name),
            };
        }
        taken.next_slot_at = Some(slot + (1_000.0 / rate).ceil() as i64);
    }
    let lease = limits.concurrency.map(|_| lease_until);
    taken.leases.extend(lease);
    Pace::Go { taken, lease }
}

/// Gives back the place `lease` took, once its delivery ended; `None` if it is not held.
pub fn give_back(destination: &Destination, lease: i64, now: i64) -> Option<Destination> {
    let at = destination.leases.iter().position(|end| *end == lease)?;
    let mut next = Destination {
        version: destination.version + 1,
        updated_at: now,
        ..destination.clone()
    };
    next.leases.remove(at);
    Some(next)
}

/// Defers a waiting webhook to `until`, as its destination's pace asks: the same state,
/// attempts and last error; `None` unless it is waiting.
pub fn defer(status: &Status, until: i64, now: i64) -> Option<Transition> {
    matches!(status.state, State::Received | State::Failed).then(|| {
        Transition::to(Status {
            version: status.version + 1,
            updated_at: now,
            next_attempt_at: Some(until),
            ..status.clone()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::destination::Breaker;

    fn go(pace: Pace) -> (Destination, Option<i64>) {
        match pace {
            Pace::Go { taken, lease } => (taken, lease),
            Pace::Wait { until, reason } => panic!("waits until {until}: {reason}"),
        }
    }

    #[test]
    fn a_rate_spaces_deliveries_evenly() {
        let limits = Limits {
            rate: Some(4.0),
            concurrency: None,
        };
        let fresh = Destination::new("d", &Breaker::default());
        let (first, lease) = go(take(&fresh, &limits, 1_000, 9_000));
        assert_eq!((first.next_slot_at, lease), (Some(1_250), None));
        assert_eq!(
            take(&first, &limits, 1_100, 9_000),
            Pace::Wait {
                until: 1_250,
                reason: "d takes 4 deliveries a second".into()
            }
        );
        let (second, _) = go(take(&first, &limits, 1_250, 9_000));
        assert_eq!(second.next_slot_at, Some(1_500));
        // Idle for a while, it does not save up a burst.
        let (later, _) = go(take(&second, &limits, 5_000, 9_000));
        assert_eq!(later.next_slot_at, Some(5_250));
    }

    #[test]
    fn a_place_is_taken_and_given_back_and_an_expired_one_is_freed() {
        let limits = Limits {
            rate: None,
            concurrency: Some(2),
        };
        let fresh = Destination::new("d", &Breaker::default());
        let (one, a) = go(take(&fresh, &limits, 0, 10_000));
        let (two, b) = go(take(&one, &limits, 1, 10_001));
        let Pace::Wait { until, .. } = take(&two, &limits, 2, 10_002) else {
            panic!("two at once already");
        };
        assert_eq!(until, 2 + CONCURRENCY_RETRY_MS);
        let freed = give_back(&two, a.unwrap(), 3).unwrap();
        assert_eq!(freed.leases, [b.unwrap()]);
        assert_eq!(give_back(&freed, a.unwrap(), 4), None);
        // A place whose delivery died is free once its lease ends.
        let (_, c) = go(take(&two, &limits, 10_000, 20_000));
        assert_eq!(c, Some(20_000));
    }

    #[test]
    fn a_deferral_spends_nothing() {
        let received = Status::received(1);
        let deferred = defer(&received, 500, 2).unwrap();
        assert_eq!(deferred.status.next_attempt_at, Some(500));
        assert_eq!(
            (deferred.status.attempts, deferred.status.state),
            (0, State::Received)
        );
        assert!(deferred.attempt.is_none() && deferred.hold_for.is_none());
    }

    #[test]
    fn limits_come_from_the_settings_with_overrides_by_name() {
        let config: BTreeMap<String, String> = [
            ("destination_rate", "100"),
            (
                "destination_limits",
                "https://a.example:443 rate=5 concurrency=2; https://b.example:443 concurrency=1",
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let pacing = Pacing::from_config(&config).unwrap();
        assert_eq!(pacing.limits("https://c.example:443").rate, Some(100.0));
        assert_eq!(
            pacing.limits("https://a.example:443"),
            Limits {
                rate: Some(5.0),
                concurrency: Some(2)
            }
        );
        assert_eq!(
            pacing.limits("https://b.example:443"),
            Limits {
                rate: Some(100.0),
                concurrency: Some(1)
            }
        );
        let bad: BTreeMap<String, String> =
            [("destination_limits".to_owned(), "x speed=3".to_owned())].into();
        assert!(Pacing::from_config(&bad).is_err());
        let zero: BTreeMap<String, String> =
            [("destination_rate".to_owned(), "0".to_owned())].into();
        assert!(Pacing::from_config(&zero).is_err());
        assert!(
            Pacing::from_config(&BTreeMap::new())
                .unwrap()
                .default
                .is_unlimited()
        );
    }
}
