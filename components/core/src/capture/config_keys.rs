//! The configuration keys the capture path reads.

/// Every configuration key the capture path reads, for the built-in sources (a named
/// source in `sources` adds its own `<name>_secret`, ...). Hosts declare these: spin.toml's
/// variables are checked against this list.
pub const CONFIG_KEYS: [&str; 18] = [
    "admin_token",
    "allowed_hosts",
    "bigcommerce_replay_guard",
    "bigcommerce_secret",
    "bigcommerce_token",
    "bigcommerce_token_header",
    "demo_sender",
    "github_replay_guard",
    "github_secret",
    "max_body_bytes",
    "shopify_replay_guard",
    "shopify_secret",
    "sources",
    "standard_webhooks_replay_guard",
    "standard_webhooks_secret",
    "stripe_replay_guard",
    "stripe_secret",
    "timestamp_tolerance_s",
];

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::capture::auth::{authorize_admin, authorize_demo};
    use crate::capture::intake::intake;
    use crate::config::Config;
    use crate::provider::Headers;

    /// A configuration that notes every key asked for.
    struct Recording(
        BTreeMap<String, String>,
        std::cell::RefCell<std::collections::BTreeSet<String>>,
    );

    impl Config for Recording {
        fn get(&self, key: &str) -> Option<String> {
            self.1.borrow_mut().insert(key.to_owned());
            self.0.get(key).cloned()
        }
    }

    #[test]
    fn config_keys_lists_every_key_the_capture_path_reads() {
        let mut values: BTreeMap<String, String> = CONFIG_KEYS
            .iter()
            .filter(|key| key.ends_with("_secret") || key.ends_with("_token"))
            .map(|key| (key.to_string(), "s3cret".to_string()))
            .collect();
        values.insert("standard_webhooks_secret".into(), "whsec_czNjcmV0".into());
        let config = Recording(values, Default::default());
        let headers = Headers::new(Vec::new());
        for scheme in crate::provider::Scheme::ALL {
            let intake = intake(scheme.name(), &config).unwrap();
            assert!(intake.accept(&headers, b"{}".to_vec(), &config, 0).is_err());
        }
        // An origin that is not built in is looked up among the named sources.
        assert_eq!(intake("acme", &config).err().map(|p| p.status), Some(404));
        assert!(authorize_admin(Some("localhost"), &headers, &config).is_err());
        assert!(authorize_demo(Some("localhost"), &headers, &config).is_err());
        let read: Vec<String> = config.1.into_inner().into_iter().collect();
        assert_eq!(read, CONFIG_KEYS);
    }
}
