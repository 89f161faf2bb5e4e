//! What happened, for the metrics to count: the events every host records, why a delivery
//! was refused, and the trait they are recorded through.

use std::pin::Pin;
use std::time::Duration;

use inbox_core::State;
use prometheus_client::encoding::EncodeLabelValue;

/// Something to count.
#[derive(Debug, Clone, PartialEq)]
pub enum Event<'a> {
    /// A delivery stored (`202`).
    Received { origin: &'a str },
    /// A redelivery of a webhook already stored (`200`).
    Duplicate { origin: &'a str },
    /// A delivery refused, and why (by its status).
    Refused { reason: Reason },
    /// An attempt to `destination` ended, leaving the webhook in `state`, after `took`.
    Attempt {
        origin: &'a str,
        destination: &'a str,
        state: State,
        took: Duration,
    },
    /// A webhook completed at `destination`, `waited` after it was received.
    Delivered {
        origin: &'a str,
        destination: &'a str,
        waited: Duration,
    },
    /// A webhook held for its destination (open or paused), not attempted.
    Held { destination: &'a str },
    /// A destination's circuit breaker opened (`open`, after `failures` in a row, the last
    /// with `last_error`) or closed.
    Circuit {
        destination: &'a str,
        open: bool,
        failures: u32,
        last_error: Option<&'a str>,
    },
    /// Webhook `id` needs an operator, after `attempts`, for `reason`.
    DeadLettered {
        origin: &'a str,
        id: &'a str,
        attempts: u32,
        reason: &'a str,
    },
}

/// Why a delivery was refused, from its status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Reason {
    malformed,
    unauthenticated,
    unknown_origin,
    method_not_allowed,
    timeout,
    too_large,
    not_json,
    headers_too_large,
    unavailable,
    other,
}

impl Reason {
    pub(super) fn of(status: u16) -> Reason {
        match status {
            400 => Reason::malformed,
            401 | 403 => Reason::unauthenticated,
            404 => Reason::unknown_origin,
            405 => Reason::method_not_allowed,
            408 => Reason::timeout,
            413 => Reason::too_large,
            415 => Reason::not_json,
            431 => Reason::headers_too_large,
            503 => Reason::unavailable,
            _ => Reason::other,
        }
    }

    pub(super) fn name(self) -> String {
        format!("{self:?}")
    }
}

/// Where events go.
pub trait Metrics: Send + Sync {
    fn record(&self, event: &Event<'_>);

    /// Waits, up to `within`, for what recording started and still sends (alerts): a
    /// Lambda invocation calls it before it answers, since a frozen environment sends
    /// nothing and may never be thawed.
    fn flush(&self, _within: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(std::future::ready(()))
    }
}

/// Where events go when nobody reads them (tests, `inbox worker` without an address).
pub struct NoMetrics;

impl Metrics for NoMetrics {
    fn record(&self, _: &Event<'_>) {}
}
