//! What operators graph and alert on, named once for every host: webhooks received,
//! duplicates, refusals by reason, attempts by outcome, how long attempts take and how
//! long a webhook waits to be delivered, dead letters, and the backlog by state.
//!
//! `inbox serve` keeps them for Prometheus ([`Prometheus`], on its own listen address);
//! the Lambda functions write each as a line in CloudWatch's embedded metric format
//! ([`Emf`]), which CloudWatch turns into metrics from the logs, with no call to make.
//!
//! - `event`: what happened ([`Event`], [`Reason`]) and where it goes ([`Metrics`]);
//! - `delivery`: which requests are deliveries, and what their answers count as
//!   ([`of_delivery`]);
//! - `prometheus`: the registry `inbox serve` keeps, and its text ([`Prometheus`]);
//! - `emf`: the lines the Lambda functions write ([`Emf`], [`emf()`]);
//! - `alerts`: notices to `INBOX_ALERT_URL` for what needs a person ([`with_alerts`]).

mod alerts;
mod delivery;
mod emf;
mod event;
mod prometheus;

pub use alerts::with_alerts;
pub use delivery::of_delivery;
pub use emf::{EMF_NAMESPACE, Emf, emf};
pub use event::{Event, Metrics, NoMetrics, Reason};
pub use prometheus::{OPENMETRICS, Prometheus};
