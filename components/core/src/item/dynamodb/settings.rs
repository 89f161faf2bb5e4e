//! The settings of a DynamoDB store that reaches AWS by itself (Spin's component):
//! the configuration keys it reads, so hosts can declare them.

pub const TABLE: &str = "dynamodb_table";
pub const REGION: &str = "aws_region";
pub const ACCESS_KEY_ID: &str = "aws_access_key_id";
pub const SECRET_ACCESS_KEY: &str = "aws_secret_access_key";
pub const SESSION_TOKEN: &str = "aws_session_token";
pub const ENDPOINT_URL: &str = "aws_endpoint_url";
pub const RETENTION_DAYS: &str = "retention_days";
pub const ALL: [&str; 7] = [
    TABLE,
    REGION,
    ACCESS_KEY_ID,
    SECRET_ACCESS_KEY,
    SESSION_TOKEN,
    ENDPOINT_URL,
    RETENTION_DAYS,
];
/// Those to keep out of logs.
pub const SECRET: [&str; 3] = [ACCESS_KEY_ID, SECRET_ACCESS_KEY, SESSION_TOKEN];

/// How long items are kept (the TTL): `retention_days`, 30 unless set; 0 is forever.
pub fn retention_secs(
    config: &dyn crate::config::Config,
) -> Result<Option<u64>, crate::config::ConfigError> {
    let days: u64 = crate::config::parsed(config, RETENTION_DAYS, 30)?;
    Ok((days > 0).then_some(days * 86_400))
}
