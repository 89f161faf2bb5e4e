//! The native host of the webhook inbox: runs the capture and processor components on
//! SQLite locally, and on DynamoDB, DynamoDB Streams and SQS under AWS Lambda.

pub mod bindings;
pub mod engine;
pub mod guest_log;
pub mod host;
pub mod lambda;
pub mod operator;
pub mod outgoing;
pub mod processing;
pub mod queue;
pub mod spin;
pub mod store;
pub mod stream;
