//! The settings of a DynamoDB store that reaches AWS by itself (Spin's component):
//! the configuration keys it reads, so hosts can declare them.

pub const TABLE: &str = "dynamodb_table";
pub const REGION: &str = "aws_region";
pub const ACCESS_KEY_ID: &str = "aws_access_key_id";
pub const SECRET_ACCESS_KEY: &str = "aws_secret_access_key";
pub const SESSION_TOKEN: &str = "aws_session_token";
pub const ENDPOINT_URL: &str = "aws_endpoint_url";
pub const RETENTION_DAYS: &str = "retention_days";
pub const REPLAY_GUARD_DAYS: &str = "replay_guard_days";
pub const ALL: [&str; 8] = [
    TABLE,
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

/// How long what a store keeps lives, in seconds; `None` is forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Retention {
    /// A webhook, from when it completed (nothing expires while it needs work).
    pub completed_secs: Option<u64>,
    /// A body's digest, from when it was received: how long the replay guard refuses the
    /// same body again.
    pub body_secs: Option<u64>,
}

impl Retention {
    /// `retention_days` (30 unless set) and `replay_guard_days` (three times the
    /// retention unless set or empty, as Spin's manifest leaves it); 0 is forever.
    pub fn from_config(
        config: &dyn crate::config::Config,
    ) -> Result<Retention, crate::config::ConfigError> {
        let days: u64 = crate::config::parsed(config, RETENTION_DAYS, 30)?;
        let guard: u64 = match config.get(REPLAY_GUARD_DAYS) {
            Some(set) if !set.trim().is_empty() => {
                crate::config::parsed(config, REPLAY_GUARD_DAYS, 0)?
            }
            _ => days * 3,
        };
        let secs = |days: u64| (days > 0).then_some(days * 86_400);
        Ok(Retention {
            completed_secs: secs(days),
            body_secs: secs(guard),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_replay_guard_outlives_the_webhook_unless_told_otherwise() {
        let config = |pairs: &[(&str, &str)]| -> std::collections::BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let default = Retention::from_config(&config(&[])).unwrap();
        assert_eq!(default.completed_secs, Some(30 * 86_400));
        assert_eq!(default.body_secs, Some(90 * 86_400));
        let forever = Retention::from_config(&config(&[(RETENTION_DAYS, "0")])).unwrap();
        assert_eq!(forever, Retention::default());
        let set = Retention::from_config(&config(&[(REPLAY_GUARD_DAYS, "7")])).unwrap();
        assert_eq!(set.body_secs, Some(7 * 86_400));
        let empty = Retention::from_config(&config(&[(REPLAY_GUARD_DAYS, " ")])).unwrap();
        assert_eq!(empty, default);
    }
}
