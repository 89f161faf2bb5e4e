//! The default processor's decisions: where to forward, what a destination's answer means,
//! and the seed's simulated work.

use sha2::{Digest, Sha256};

use crate::config::{Config, ConfigError, describe, parsed};
use crate::lifecycle::Outcome;

/// An `http` or `https` URL split the way `wasi:http` wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub https: bool,
    pub authority: String,
    pub path_with_query: String,
}

impl Target {
    pub fn parse(url: &str) -> Result<Target, ConfigError> {
        let invalid = |why: &str| {
            ConfigError(format!(
                "{} = {:?} is not a valid URL: {why}",
                describe("forward_url"),
                crate::redact::url(url)
            ))
        };
        let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(invalid("it must start with http:// or https://"));
        };
        // A user and password may hold a `/`: any `@` before the query is refused.
        let before_query = rest.find(['?', '#']).unwrap_or(rest.len());
        if rest[..before_query].contains('@') {
            return Err(invalid("the host is missing or carries credentials"));
        }
        let (authority, path) = match rest.find(['/', '?']) {
            Some(at) => rest.split_at(at),
            None => (rest, "/"),
        };
        if authority.is_empty() || authority.contains([' ', '#']) {
            return Err(invalid("the host is missing or carries credentials"));
        }
        let path = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_owned()
        };
        Ok(Target {
            https,
            authority: authority.to_owned(),
            path_with_query: path.split('#').next().unwrap_or("/").to_owned(),
        })
    }

    /// The destination it names (the `destinations` interface of the WIT contract): its
    /// scheme, host and port, the port given even when it is the scheme's own, so that one
    /// destination has one name; never its path or query, which may hold a token.
    pub fn destination(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        let authority = self.authority.to_ascii_lowercase();
        // A port follows the host, after the `]` of an IPv6 address.
        let host_end = authority.rfind(']').map_or(0, |end| end + 1);
        if authority[host_end..].contains(':') {
            format!("{scheme}://{authority}")
        } else {
            let port = if self.https { 443 } else { 80 };
            format!("{scheme}://{authority}:{port}")
        }
    }
}

/// What a destination's HTTP status means for the webhook: 2xx done; 408, 429 and 5xx
/// transient (honouring `Retry-After` in seconds); 410 and other 4xx permanent.
pub fn classify_response(status: u16, retry_after: Option<&str>) -> Outcome {
    let delay_ms = retry_after
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| s.saturating_mul(1000));
    match status {
        200..=299 => Outcome::Completed,
        408 | 429 | 500..=599 => Outcome::Retry {
            reason: format!("destination answered {status}"),
            delay_ms,
        },
        _ => Outcome::Reject {
            reason: format!("destination answered {status}"),
        },
    }
}

/// The seed's simulated work: a delay and a failure rate, reproducible from a seed.
#[derive(Debug, Clone, PartialEq)]
pub struct Demo {
    pub failure_rate: f64,
    pub delay_ms: (u64, u64),
    pub seed: u64,
}

impl Demo {
    /// `None` unless `demo_failure_rate` or `demo_delay_ms` is set.
    pub fn from_config(config: &dyn Config) -> Result<Option<Demo>, ConfigError> {
        if config.get("demo_failure_rate").is_none() && config.get("demo_delay_ms").is_none() {
            return Ok(None);
        }
        let failure_rate: f64 = parsed(config, "demo_failure_rate", 0.0)?;
        if !(0.0..=1.0).contains(&failure_rate) {
            return Err(ConfigError(format!(
                "{} must be between 0 and 1",
                describe("demo_failure_rate")
            )));
        }
        let delay_ms = match config.get("demo_delay_ms") {
            None => (0, 0),
            Some(raw) => parse_range(&raw).ok_or_else(|| {
                ConfigError(format!(
                    "{} = {raw:?} must be milliseconds, or a range such as 100-200",
                    describe("demo_delay_ms")
                ))
            })?,
        };
        Ok(Some(Demo {
            failure_rate,
            delay_ms,
            seed: parsed(config, "demo_seed", 0)?,
        }))
    }

    /// The delay and whether to fail, for one attempt: the same inputs always roll the same.
    pub fn roll(&self, webhook_id: &str, attempt: u32) -> (u64, bool) {
        let digest = Sha256::new()
            .chain_update(self.seed.to_le_bytes())
            .chain_update(webhook_id.as_bytes())
            .chain_update(attempt.to_le_bytes())
            .finalize();
        let word = |i: usize| u64::from_le_bytes(digest[i..i + 8].try_into().expect("8 bytes"));
        let (low, high) = self.delay_ms;
        let delay = low + word(0) % (high - low + 1);
        // 53 random bits give a uniform float in [0, 1).
        let unit = (word(8) >> 11) as f64 / (1u64 << 53) as f64;
        (delay, unit < self.failure_rate)
    }
}

fn parse_range(raw: &str) -> Option<(u64, u64)> {
    let raw = raw.trim();
    let (low, high) = match raw.split_once('-') {
        Some((low, high)) => (low.trim().parse().ok()?, high.trim().parse().ok()?),
        None => {
            let ms = raw.parse().ok()?;
            (ms, ms)
        }
    };
    (low <= high).then_some((low, high))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn targets() {
        let t = Target::parse("http://127.0.0.1:8080/hooks?x=1").unwrap();
        assert_eq!(
            t,
            Target {
                https: false,
                authority: "127.0.0.1:8080".into(),
                path_with_query: "/hooks?x=1".into()
            }
        );
        let t = Target::parse("https://example.com").unwrap();
        assert_eq!((t.https, t.path_with_query.as_str()), (true, "/"));
        assert_eq!(Target::parse("https://h?q").unwrap().path_with_query, "/?q");
        assert!(Target::parse("ftp://h/").is_err());
        assert!(Target::parse("http:///x").is_err());
        assert!(Target::parse("http://user:pw@h/").is_err());
    }

    #[test]
    fn a_destination_is_named_by_scheme_host_and_port_without_path_or_query() {
        let name = |url: &str| Target::parse(url).unwrap().destination();
        assert_eq!(
            name("https://hooks.slack.com/services/T0/B0/secret?token=x"),
            "https://hooks.slack.com:443"
        );
        assert_eq!(
            name("https://API.example.com:443/"),
            "https://api.example.com:443"
        );
        assert_eq!(name("http://127.0.0.1:8080/hooks"), "http://127.0.0.1:8080");
        assert_eq!(name("http://example.com?k=v"), "http://example.com:80");
        assert_eq!(name("http://[::1]/x"), "http://[::1]:80");
        assert_eq!(name("http://[::1]:9000/x"), "http://[::1]:9000");
    }

    #[test]
    fn responses_map_to_outcomes() {
        assert_eq!(classify_response(204, None), Outcome::Completed);
        for status in [408, 429, 500, 503] {
            assert!(matches!(
                classify_response(status, None),
                Outcome::Retry { .. }
            ));
        }
        assert_eq!(
            classify_response(429, Some("7")),
            Outcome::Retry {
                reason: "destination answered 429".into(),
                delay_ms: Some(7_000)
            }
        );
        for status in [400, 404, 410, 301] {
            assert!(matches!(
                classify_response(status, None),
                Outcome::Reject { .. }
            ));
        }
    }

    #[test]
    fn demo_is_reproducible_and_honours_its_rate() {
        let config = |rate: &str| {
            BTreeMap::from([
                ("demo_failure_rate".to_string(), rate.to_string()),
                ("demo_delay_ms".to_string(), "100-200".to_string()),
            ])
        };
        assert_eq!(Demo::from_config(&BTreeMap::new()), Ok(None));
        let demo = Demo::from_config(&config("0.2")).unwrap().unwrap();
        assert_eq!(demo.roll("a", 1), demo.roll("a", 1));
        let failures = (0..10_000)
            .filter(|i| demo.roll(&i.to_string(), 1).1)
            .count();
        assert!(
            (1_700..2_300).contains(&failures),
            "{failures} of 10000 failed"
        );
        assert!((0..1_000).all(|i| (100..=200).contains(&demo.roll(&i.to_string(), 1).0)));
        let always = Demo::from_config(&config("1")).unwrap().unwrap();
        assert!((0..100).all(|i| always.roll(&i.to_string(), 1).1));
        let never = Demo::from_config(&config("0")).unwrap().unwrap();
        assert!((0..100).all(|i| !never.roll(&i.to_string(), 1).1));
        assert!(Demo::from_config(&config("1.5")).is_err());
        assert_eq!(parse_range("150"), Some((150, 150)));
        assert_eq!(parse_range("200-100"), None);
    }
}
