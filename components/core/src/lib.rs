//! The rules of the webhook inbox, in plain Rust shared by every component and host.
//!
//! Nothing here does I/O but read the clock: hosts and components feed it bytes, headers,
//! configuration, query answers and the current time, and act on what it decides. What a
//! store does (the SQL statements and their order, the DynamoDB requests and what their
//! answers mean) is planned here too, so the native stores and the store components only
//! carry bytes to SQLite or DynamoDB.

pub mod alert;
pub mod capture;
pub mod clock;
pub mod config;
pub mod destination;
pub mod forward;
pub mod id;
pub mod item;
pub mod lifecycle;
pub mod listing;
pub mod model;
pub mod pacing;
pub mod problem;
pub mod provider;
pub mod redact;
pub mod scope;
pub mod store;
mod wit_conversions;

pub use model::{State, Status, Webhook};
pub use problem::Problem;
