//! What an attempt asks of its destination before it starts, and tells it after: the
//! rules are `inbox_core::destination`'s and `inbox_core::pacing`'s, the state the store's,
//! so every worker and every invocation follows the same breaker, pause, rate and
//! concurrency.

use inbox_core::destination::{Breaker, Destination, Gate};
use inbox_core::lifecycle::Outcome;
use inbox_core::pacing::{self, Limits, Pace};
use inbox_stores::{StoreError, WebhookStore};

/// What a destination lets an attempt do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Attempt it: a probe of an open destination or not, holding a place among the
    /// deliveries at once (`lease`) when their number is limited.
    Go { probe: bool, lease: Option<i64> },
    /// Hold it, for this reason.
    Hold(String),
    /// Not now (the rate or the concurrency): try again at `until`, spending nothing.
    Wait { until: i64, reason: String },
}

/// How often an attempt reads the destination again after another wrote it first.
const TRIES: usize = 6;

/// What the attempt of a webhook needs from destination `name` at `now`.
pub struct Ask<'a> {
    pub breaker: &'a Breaker,
    pub limits: Limits,
    /// Until when its place among the deliveries at once is held at most (its lease).
    pub lease_until: i64,
}

/// Asks destination `name` at `now` ([`Destination::gate`], then [`pacing::take`]); what
/// it lets through is written with a compare-and-swap, so of many attempts racing for a
/// probe, a slot or a place, one gets it and the others hold or wait.
pub async fn admit(
    store: &dyn WebhookStore,
    ask: &Ask<'_>,
    name: &str,
    now: i64,
) -> Result<Admission, StoreError> {
    for _ in 0..TRIES {
        let current = match store.destination(name).await? {
            Some(current) => current,
            None => {
                // Written when first seen, so operators list (and can pause) every
                // destination, not only those that failed. Losing the race is as good.
                let first = Destination {
                    version: 1,
                    updated_at: now,
                    ..Destination::new(name, ask.breaker)
                };
                store.swap_destination(0, &first).await?;
                continue;
            }
        };
        let (admitted, probe) = match current.gate(now, ask.breaker) {
            Gate::Deliver => (current.clone(), false),
            Gate::Hold { reason } => return Ok(Admission::Hold(reason)),
            Gate::Probe { claimed } => (claimed, true),
        };
        // Unlimited, a delivery writes nothing (a probe writes its claim).
        let (write, lease) = if ask.limits.is_unlimited() {
            (probe.then_some(admitted), None)
        } else {
            match pacing::take(&admitted, &ask.limits, now, ask.lease_until) {
                Pace::Go { taken, lease } => (
                    Some(Destination {
                        version: current.version + 1,
                        ..taken
                    }),
                    lease,
                ),
                Pace::Wait { until, reason } => return Ok(Admission::Wait { until, reason }),
            }
        };
        match write {
            None => return Ok(Admission::Go { probe, lease }),
            Some(next) if store.swap_destination(current.version, &next).await? => {
                if probe {
                    tracing::info!(destination = name, "probing an open destination");
                }
                return Ok(Admission::Go { probe, lease });
            }
            Some(_) => {}
        }
    }
    Ok(Admission::Wait {
        until: now + pacing::CONCURRENCY_RETRY_MS,
        reason: format!("{name} is busy: other attempts kept changing it"),
    })
}

/// Tells destination `name` how an attempt to it ended, giving back its place (`lease`);
/// it opens or closes as the breaker says: the destination as it stands, if this opened or
/// closed it. A failure to write it is logged: the attempt stands, and the next one
/// counts (a place not given back is free when its lease ends).
pub async fn record(
    store: &dyn WebhookStore,
    breaker: &Breaker,
    name: &str,
    outcome: &Outcome,
    lease: Option<i64>,
    now: i64,
) -> Option<Destination> {
    let mut before = None;
    let changed = inbox_core::store::change_destination(store, name, breaker, |current| {
        before = Some(current.clone());
        let after = current.after(outcome, now, breaker);
        match lease {
            Some(lease) => {
                let base = after.clone().unwrap_or_else(|| current.clone());
                pacing::give_back(&base, lease, now)
                    .map(|given| Destination {
                        version: current.version + 1,
                        ..given
                    })
                    .or(after)
            }
            None => after,
        }
    })
    .await;
    match (changed, before) {
        (Ok((after, true)), Some(before)) if after.opened_from(&before) => {
            tracing::warn!(
                destination = name,
                failures = after.failures,
                last_error = after.last_error.as_deref().unwrap_or(""),
                "destination open: its webhooks are held until a probe succeeds"
            );
            Some(after)
        }
        (Ok((after, true)), Some(before)) if after.closed_from(&before) => {
            tracing::info!(
                destination = name,
                "destination closed: releasing what it held"
            );
            Some(after)
        }
        (Ok(_), _) => None,
        (Err(error), _) => {
            tracing::error!(destination = name, %error, "the destination's state could not be written");
            None
        }
    }
}
