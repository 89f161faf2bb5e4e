//! Least privilege over configuration: each component sees only its own keys, whatever the
//! host. Capture reads the provider secrets, tokens, sources, limits and the admin token; a
//! processor (the user's own code) only `forward_url`, the `demo_*` settings and keys
//! prefixed `processor_` (its own settings: `INBOX_PROCESSOR_*`, or `processor_*` Spin
//! variables); a store component only its own keys.

use std::collections::BTreeMap;

use crate::capture::CONFIG_KEYS;
use crate::config::Config;
use crate::item::dynamodb::settings as dynamodb;
use crate::provider::{SOURCE_SETTINGS, Source};

/// Who reads the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    Capture,
    Processor,
    /// A store component Spin composes with capture.
    Store,
}

impl Reader {
    /// Whether this reader may see `key`, given the whole configuration (which names the
    /// sources whose settings capture reads).
    pub fn may_read(self, key: &str, config: &dyn Config) -> bool {
        match self {
            Reader::Capture => CONFIG_KEYS.contains(&key) || is_source_setting(key, config),
            Reader::Processor => {
                // The simulated work's settings by name: `demo_sender` is capture's, and a
                // source named `demo` would have a `demo_secret`.
                [
                    "forward_url",
                    "demo_failure_rate",
                    "demo_delay_ms",
                    "demo_seed",
                ]
                .contains(&key)
                    || key.starts_with("processor_")
            }
            Reader::Store => dynamodb::ALL.contains(&key),
        }
    }

    /// The part of `config` this reader sees.
    pub fn visible(self, config: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        config
            .iter()
            .filter(|(key, _)| self.may_read(key, config))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect()
    }
}

/// A setting of a built-in or named source: `github_secret`, `acme_replay_guard`.
fn is_source_setting(key: &str, config: &dyn Config) -> bool {
    Source::all(config)
        .unwrap_or_default()
        .iter()
        .any(|source| {
            SOURCE_SETTINGS
                .iter()
                .any(|setting| source.key(setting) == key)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> BTreeMap<String, String> {
        [
            ("admin_token", "t"),
            ("stripe_secret", "whsec_1"),
            ("sources", "acme:standard-webhooks"),
            ("acme_secret", "whsec_2"),
            ("forward_url", "https://example.com/hook"),
            ("demo_failure_rate", "0.1"),
            ("demo_sender", "on"),
            ("processor_api_key", "mine"),
            ("processor_timeout_ms", "1000"),
            ("max_retries", "2"),
            ("aws_secret_access_key", "aws"),
            ("dynamodb_table", "t"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    fn keys(reader: Reader) -> Vec<String> {
        reader.visible(&config()).into_keys().collect()
    }

    #[test]
    fn each_component_sees_only_its_own_keys() {
        assert_eq!(
            keys(Reader::Capture),
            [
                "acme_secret",
                "admin_token",
                "demo_sender",
                "sources",
                "stripe_secret"
            ]
        );
        assert_eq!(
            keys(Reader::Processor),
            [
                "demo_failure_rate",
                "forward_url",
                "processor_api_key",
                "processor_timeout_ms"
            ]
        );
        assert_eq!(
            keys(Reader::Store),
            ["aws_secret_access_key", "dynamodb_table"]
        );
    }
}
