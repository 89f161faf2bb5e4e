//! The native stores behind the core's [`WebhookStore`], so the rules (in `inbox_core`)
//! never know which store runs: embedded SQLite ([`sqlite`]) and DynamoDB ([`dynamodb`],
//! the same store Spin's DynamoDB component runs, given the SDK's native HTTP client).

pub mod dynamodb;
pub mod pool;
pub mod sqlite;

pub use inbox_core::store::{Captured, StoreError, Waits, WebhookStore, replay, requeue};
