//! The rules of the webhook inbox, in plain Rust shared by every component and host.
//!
//! Nothing here does I/O: hosts and components feed it bytes, headers, configuration and
//! the current time, and act on what it decides.

pub mod capture;
pub mod config;
pub mod forward;
pub mod id;
pub mod item;
pub mod lifecycle;
pub mod model;
pub mod problem;
pub mod provider;
mod wit_conversions;

pub use model::{State, Status, Webhook};
pub use problem::Problem;
