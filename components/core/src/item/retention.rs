//! How long a store keeps what it holds, the same for every store: a webhook from when it
//! completes (never while it needs work), a body's digest (the replay guard) from when it
//! was received. DynamoDB applies it with its TTL, SQLite with a sweep.

pub const RETENTION_DAYS: &str = "retention_days";
pub const REPLAY_GUARD_DAYS: &str = "replay_guard_days";

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
