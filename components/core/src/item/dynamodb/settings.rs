//! The settings of a DynamoDB store that reaches AWS by itself (Spin's component):
//! the configuration keys it reads, so hosts can declare them.

pub const TABLE: &str = "dynamodb_table";
pub const REGION: &str = "aws_region";
pub const ACCESS_KEY_ID: &str = "aws_access_key_id";
pub const SECRET_ACCESS_KEY: &str = "aws_secret_access_key";
pub const SESSION_TOKEN: &str = "aws_session_token";
pub const ENDPOINT_URL: &str = "aws_endpoint_url";
/// The S3 bucket for payloads too large for their item; without one they are refused.
pub const PAYLOAD_BUCKET: &str = "payload_bucket";
pub use crate::item::retention::{REPLAY_GUARD_DAYS, RETENTION_DAYS};
pub const ALL: [&str; 9] = [
    TABLE,
    PAYLOAD_BUCKET,
    REGION,
    ACCESS_KEY_ID,
    SECRET_ACCESS_KEY,
    SESSION_TOKEN,
    ENDPOINT_URL,
    RETENTION_DAYS,
    REPLAY_GUARD_DAYS,
];
/// Those to keep out of logs.
pub const SECRET: [&str; 3] = [ACCESS_KEY_ID, SECRET_ACCESS_KEY, SESSION_TOKEN];
