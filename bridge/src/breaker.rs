//! What an attempt asks of its destination before it starts, and tells it after: the
//! rules are `inbox_core::destination`'s, the state the store's, so every worker and every
//! invocation follows the same breaker and pause.

use inbox_core::destination::{Breaker, Destination, Gate};
use inbox_core::lifecycle::Outcome;
use inbox_stores::{StoreError, WebhookStore};

/// What a destination lets an attempt do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Attempt it; the destination as read (or as the probe wrote it).
    Go(Destination),
    /// Hold it, for this reason.
    Hold(String),
}

/// How often a probe lost to another invocation is looked at again before holding.
const TRIES: usize = 4;

/// Asks destination `name` at `now` ([`Destination::gate`]); a due probe is claimed with a
/// compare-and-swap, so of many attempts racing for it one goes and the others are held.
pub async fn admit(
    store: &dyn WebhookStore,
    breaker: &Breaker,
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
                    ..Destination::new(name, breaker)
                };
                store.swap_destination(0, &first).await?;
                continue;
            }
        };
        match current.gate(now, breaker) {
            Gate::Deliver => return Ok(Admission::Go(current)),
            Gate::Hold { reason } => return Ok(Admission::Hold(reason)),
            Gate::Probe { claimed } => {
                if store.swap_destination(current.version, &claimed).await? {
                    tracing::info!(destination = name, "probing an open destination");
                    return Ok(Admission::Go(claimed));
                }
            }
        }
    }
    Ok(Admission::Hold(format!(
        "held: {name} is open and another attempt is probing it"
    )))
}

/// Tells destination `name` how an attempt to it ended; it opens or closes as the breaker
/// says. A failure to write it is logged: the attempt stands, and the next one counts.
pub async fn record(
    store: &dyn WebhookStore,
    breaker: &Breaker,
    name: &str,
    outcome: &Outcome,
    now: i64,
) {
    let mut before = None;
    let changed = inbox_core::store::change_destination(store, name, breaker, |current| {
        before = Some(current.clone());
        current.after(outcome, now, breaker)
    })
    .await;
    match (changed, before) {
        (Ok((after, true)), Some(before)) => {
            if after.opened_from(&before) {
                tracing::warn!(
                    destination = name,
                    failures = after.failures,
                    last_error = after.last_error.as_deref().unwrap_or(""),
                    "destination open: its webhooks are held until a probe succeeds"
                );
            } else if after.closed_from(&before) {
                tracing::info!(
                    destination = name,
                    "destination closed: releasing what it held"
                );
            }
        }
        (Ok(_), _) => {}
        (Err(error), _) => {
            tracing::error!(destination = name, %error, "the destination's state could not be written")
        }
    }
}
