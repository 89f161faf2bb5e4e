//! Configuration as the components see it: lower-case keys without a prefix
//! (`stripe_secret`), which the native host maps from `INBOX_STRIPE_SECRET` and Spin
//! from its variable of the same name.

use std::collections::BTreeMap;
use std::time::Duration;

pub const ENV_PREFIX: &str = "INBOX_";

/// A source of configuration values.
pub trait Config {
    fn get(&self, key: &str) -> Option<String>;
}

impl Config for BTreeMap<String, String> {
    fn get(&self, key: &str) -> Option<String> {
        BTreeMap::get(self, key).cloned()
    }
}

/// The environment variable a key comes from on the native host.
pub fn env_name(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.to_ascii_uppercase())
}

/// The configuration keys found in an environment (`INBOX_MAX_RETRIES=3` -> `max_retries`).
/// An empty variable counts as unset, as deployment templates pass optional settings.
pub fn from_env(vars: impl IntoIterator<Item = (String, String)>) -> BTreeMap<String, String> {
    vars.into_iter()
        .filter_map(|(name, value)| {
            let key = name.strip_prefix(ENV_PREFIX)?;
            (!key.is_empty() && !value.is_empty()).then(|| (key.to_ascii_lowercase(), value))
        })
        .collect()
}

/// Where to tell an operator to set `key`.
pub fn describe(key: &str) -> String {
    format!("{} (Spin variable `{key}`)", env_name(key))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// A setting parsed from `key`, or `default` when it is not set.
pub fn parsed<T: std::str::FromStr>(
    config: &dyn Config,
    key: &str,
    default: T,
) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match config.get(key) {
        None => Ok(default),
        Some(raw) => raw
            .trim()
            .parse()
            .map_err(|e| ConfigError(format!("{} = {raw:?} is not valid: {e}", describe(key)))),
    }
}

/// A list of secrets (comma separated, so a secret can be rotated without downtime).
pub fn secrets(config: &dyn Config, key: &str) -> Vec<String> {
    config
        .get(key)
        .map(|raw| {
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Limits on what capture accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureLimits {
    pub max_body_bytes: usize,
    pub timestamp_tolerance: Duration,
}

impl CaptureLimits {
    /// GitHub's largest delivery (25 MB), which GitHub never sends again once refused. A
    /// store that holds less refuses more itself (`413`), and a host that carries less
    /// (Lambda) sets less.
    pub const DEFAULT_MAX_BODY_BYTES: usize = 25 * 1024 * 1024;
    /// The most any host takes: a body is held whole in a component's memory.
    pub const HARD_MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

    pub fn from_config(config: &dyn Config) -> Result<Self, ConfigError> {
        let max_body_bytes = parsed(config, "max_body_bytes", Self::DEFAULT_MAX_BODY_BYTES)?;
        if max_body_bytes > Self::HARD_MAX_BODY_BYTES {
            return Err(ConfigError(format!(
                "{} = {max_body_bytes} is over {} bytes, more than a component holds",
                describe("max_body_bytes"),
                Self::HARD_MAX_BODY_BYTES
            )));
        }
        Ok(CaptureLimits {
            max_body_bytes,
            timestamp_tolerance: Duration::from_secs(parsed(config, "timestamp_tolerance_s", 300)?),
        })
    }
}

/// A configuration of `pairs`, for tests.
#[cfg(test)]
pub(crate) fn from_pairs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::from_pairs as config;

    #[test]
    fn env_maps_to_lower_case_keys_without_prefix() {
        let map = from_env([
            ("INBOX_STRIPE_SECRET".into(), "whsec_x".into()),
            ("INBOX_".into(), "ignored".into()),
            ("INBOX_FORWARD_URL".into(), "".into()),
            ("HOME".into(), "/root".into()),
        ]);
        assert_eq!(map, config(&[("stripe_secret", "whsec_x")]));
        assert_eq!(env_name("stripe_secret"), "INBOX_STRIPE_SECRET");
    }

    #[test]
    fn parsed_settings_name_the_variable_when_invalid() {
        let c = config(&[("max_retries", "two")]);
        let err = parsed(&c, "max_retries", 2u32).unwrap_err();
        assert!(err.0.contains("INBOX_MAX_RETRIES"), "{err}");
        assert_eq!(parsed(&config(&[]), "max_retries", 2u32), Ok(2));
    }

    #[test]
    fn secrets_are_a_comma_separated_list() {
        let c = config(&[("stripe_secret", " old , new ,")]);
        assert_eq!(secrets(&c, "stripe_secret"), vec!["old", "new"]);
        assert!(secrets(&c, "github_secret").is_empty());
    }

    #[test]
    fn body_limit_takes_github_s_largest_and_has_a_ceiling() {
        let c = config(&[("max_body_bytes", "40000000")]);
        assert!(CaptureLimits::from_config(&c).is_err());
        let limits = CaptureLimits::from_config(&config(&[])).unwrap();
        assert!(limits.max_body_bytes >= 25_000_000, "GitHub's largest");
        assert_eq!(limits.timestamp_tolerance, Duration::from_secs(300));
    }
}
