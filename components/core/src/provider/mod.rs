//! Who may deliver to which origin, and how each provider proves it.
//!
//! Every check runs on the raw body bytes and compares in constant time.

mod bigcommerce;
pub use bigcommerce::demo_delivery;
mod github;
mod shopify;
mod standard_webhooks;
mod stripe;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::Problem;
use crate::config::{Config, ConfigError, describe};

type HmacSha256 = Hmac<Sha256>;

/// How a provider proves a delivery is theirs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    BigCommerce,
    Stripe,
    GitHub,
    Shopify,
    StandardWebhooks,
}

impl Scheme {
    pub const ALL: [Scheme; 5] = [
        Scheme::BigCommerce,
        Scheme::Stripe,
        Scheme::GitHub,
        Scheme::Shopify,
        Scheme::StandardWebhooks,
    ];

    /// The scheme's name, which is also the origin it is served on.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::BigCommerce => "bigcommerce",
            Scheme::Stripe => "stripe",
            Scheme::GitHub => "github",
            Scheme::Shopify => "shopify",
            Scheme::StandardWebhooks => "standard-webhooks",
        }
    }

    pub fn from_name(name: &str) -> Option<Scheme> {
        Scheme::ALL.into_iter().find(|scheme| scheme.name() == name)
    }

    /// Whether a delivery can be sent again as a new event by whoever saw it once: the
    /// signature covers the body only, and neither the id header nor a timestamp is signed
    /// (GitHub's `X-GitHub-Delivery`, Shopify's `X-Shopify-Event-Id`). Stripe and Standard
    /// Webhooks sign their id and a timestamp; BigCommerce's id is the body's own `hash`.
    pub fn replayable(self) -> bool {
        matches!(self, Scheme::GitHub | Scheme::Shopify)
    }

    /// The request headers worth keeping with the webhook: never credentials.
    pub fn stored_headers(self) -> &'static [&'static str] {
        match self {
            Scheme::BigCommerce | Scheme::Stripe => &["content-type", "user-agent"],
            Scheme::GitHub => &[
                "content-type",
                "user-agent",
                "x-github-event",
                "x-github-delivery",
                "x-github-hook-id",
                "x-github-hook-installation-target-type",
                "x-github-hook-installation-target-id",
            ],
            Scheme::Shopify => &[
                "content-type",
                "user-agent",
                "x-shopify-topic",
                "x-shopify-event-id",
                "x-shopify-webhook-id",
                "x-shopify-triggered-at",
                "x-shopify-shop-domain",
                "x-shopify-api-version",
            ],
            Scheme::StandardWebhooks => &[
                "content-type",
                "user-agent",
                "webhook-id",
                "webhook-timestamp",
            ],
        }
    }
}

/// The settings a source may have, each under `<origin>_<setting>` ([`Source::key`]).
pub const SOURCE_SETTINGS: [&str; 4] = ["secret", "token", "token_header", "replay_guard"];

/// An origin deliveries arrive on (`/api/webhooks/{origin}`), and the scheme it speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub origin: String,
    pub scheme: Scheme,
}

/// What the provider says about an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub event_type: String,
    pub idempotency_key: String,
    pub provider_timestamp: Option<i64>,
}

impl Source {
    /// The source behind `origin`: a scheme's own name, or one named in `sources`
    /// (`acme:standard-webhooks,shop2:shopify`).
    pub fn find(origin: &str, config: &dyn Config) -> Result<Option<Source>, ConfigError> {
        if let Some(scheme) = Scheme::from_name(origin) {
            return Ok(Some(Source {
                origin: origin.to_owned(),
                scheme,
            }));
        }
        Ok(Source::named(config)?
            .into_iter()
            .find(|source| source.origin == origin))
    }

    /// Every source, built-in and named, with its settings checked: what a host refuses to
    /// start on.
    pub fn check_all(config: &dyn Config) -> Result<(), ConfigError> {
        for source in Source::all(config)? {
            source.refuses_replayed_body(config)?;
        }
        Ok(())
    }

    /// The built-in sources (each scheme on its own name) and the named ones.
    pub fn all(config: &dyn Config) -> Result<Vec<Source>, ConfigError> {
        let builtin = Scheme::ALL.iter().map(|scheme| Source {
            origin: scheme.name().to_owned(),
            scheme: *scheme,
        });
        Ok(builtin.chain(Source::named(config)?).collect())
    }

    /// The sources configured in `sources`, checked.
    pub fn named(config: &dyn Config) -> Result<Vec<Source>, ConfigError> {
        let Some(raw) = config.get("sources") else {
            return Ok(Vec::new());
        };
        let mut sources: Vec<Source> = Vec::new();
        for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let invalid =
                |why: String| ConfigError(format!("{}: `{entry}` {why}", describe("sources")));
            let (origin, scheme) = entry
                .split_once(':')
                .ok_or_else(|| invalid("must be NAME:SCHEME".into()))?;
            let scheme = Scheme::from_name(scheme.trim()).ok_or_else(|| {
                let known: Vec<_> = Scheme::ALL.iter().map(|s| s.name()).collect();
                invalid(format!(
                    "names an unknown scheme; known: {}",
                    known.join(", ")
                ))
            })?;
            let origin = origin.trim();
            let well_formed = (1..=32).contains(&origin.len())
                && origin.starts_with(|c: char| c.is_ascii_lowercase())
                && origin
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !well_formed {
                return Err(invalid(
                    "must be 1 to 32 lower-case letters, digits or dashes, starting with a letter"
                        .into(),
                ));
            }
            if Scheme::from_name(origin).is_some() || sources.iter().any(|s| s.origin == origin) {
                return Err(invalid("names an origin that already exists".into()));
            }
            sources.push(Source {
                origin: origin.to_owned(),
                scheme,
            });
        }
        Ok(sources)
    }

    /// Whether a body this source delivered before is refused as a replay (answered as the
    /// duplicate of the first webhook): `<origin>_replay_guard` (`on` or `off`), on by
    /// default where a delivery can be replayed ([`Scheme::replayable`]).
    pub fn refuses_replayed_body(&self, config: &dyn Config) -> Result<bool, ConfigError> {
        let key = self.key("replay_guard");
        match config.get(&key).as_deref().map(str::trim) {
            None | Some("") => Ok(self.scheme.replayable()),
            Some("on" | "true") => Ok(true),
            Some("off" | "false") => Ok(false),
            Some(other) => Err(ConfigError(format!(
                "{} = {other:?} must be on or off",
                describe(&key)
            ))),
        }
    }

    /// The config key of one of this source's settings: `standard_webhooks_secret`.
    pub fn key(&self, setting: &str) -> String {
        format!("{}_{setting}", self.origin.replace('-', "_"))
    }

    /// Proves the delivery came from the provider (401 otherwise).
    pub fn verify(
        &self,
        headers: &Headers,
        body: &[u8],
        config: &dyn Config,
        now_ms: i64,
        tolerance_s: u64,
    ) -> Result<(), Problem> {
        let now_s = now_ms.div_euclid(1000);
        match self.scheme {
            Scheme::BigCommerce => bigcommerce::verify(self, headers, body, config),
            Scheme::Stripe => stripe::verify(self, headers, body, config, now_s, tolerance_s),
            Scheme::GitHub => github::verify(self, headers, body, config),
            Scheme::Shopify => shopify::verify(self, headers, body, config),
            Scheme::StandardWebhooks => {
                standard_webhooks::verify(self, headers, body, config, now_s, tolerance_s)
            }
        }
    }

    /// What the provider says about the event (400 if the delivery lacks it).
    pub fn describe_event(
        &self,
        headers: &Headers,
        body: &[u8],
        event: &serde_json::Value,
    ) -> Result<Event, Problem> {
        match self.scheme {
            Scheme::BigCommerce => bigcommerce::describe_event(body, event),
            Scheme::Stripe => stripe::describe_event(event),
            Scheme::GitHub => github::describe_event(headers, event),
            Scheme::Shopify => shopify::describe_event(headers, body),
            Scheme::StandardWebhooks => standard_webhooks::describe_event(headers, event),
        }
    }

    /// The secrets configured for this source, or a 401 that says which variable to set.
    fn required_secrets(&self, config: &dyn Config) -> Result<Vec<String>, Problem> {
        let key = self.key("secret");
        let secrets = crate::config::secrets(config, &key);
        if secrets.is_empty() {
            return Err(Problem::unauthorized(format!(
                "origin `{}` has no secret configured, so no delivery can be verified: set {}",
                self.origin,
                describe(&key)
            )));
        }
        Ok(secrets)
    }
}

/// Refuses a signed timestamp further than `tolerance_s` from now, either way.
fn check_timestamp(
    header: &str,
    timestamp: i64,
    now_s: i64,
    tolerance_s: u64,
) -> Result<(), Problem> {
    let age = now_s.saturating_sub(timestamp);
    if age.unsigned_abs() > tolerance_s {
        return Err(Problem::unauthorized(format!(
            "`{header}` is {} s {} now, outside the {tolerance_s} s tolerance",
            age.unsigned_abs(),
            if age > 0 { "before" } else { "after" },
        )));
    }
    Ok(())
}

/// Request headers with case-insensitive lookup that refuses ambiguity.
#[derive(Debug, Clone, Default)]
pub struct Headers(Vec<(String, Vec<u8>)>);

impl Headers {
    pub fn new(pairs: Vec<(String, Vec<u8>)>) -> Self {
        Headers(pairs)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.0
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_slice()))
    }

    /// The one value of `name`, if present. A security header sent twice is refused
    /// rather than guessed at.
    pub fn single(&self, name: &str) -> Result<Option<&str>, Problem> {
        let mut values = self.0.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name));
        let Some((_, value)) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(Problem::bad_request(format!(
                "header `{name}` was sent more than once"
            )));
        }
        std::str::from_utf8(value)
            .map(|v| Some(v.trim()))
            .map_err(|_| Problem::bad_request(format!("header `{name}` is not valid UTF-8")))
    }

    /// The headers named in `allow`, lower-cased, in request order.
    pub fn allowed(&self, allow: &[&str]) -> Vec<(String, String)> {
        self.0
            .iter()
            .filter(|(n, _)| allow.iter().any(|a| n.eq_ignore_ascii_case(a)))
            .filter_map(|(n, v)| Some((n.to_ascii_lowercase(), String::from_utf8(v.clone()).ok()?)))
            .collect()
    }
}

/// Checks a signature over the raw body alone (the seed's demo scheme, GitHub, Shopify).
/// `decode` turns the header's value into the MAC's bytes, `None` if it is not `format`.
fn verify_body_mac(
    secrets: &[String],
    header: &str,
    value: &str,
    format: &str,
    decode: impl Fn(&str) -> Option<Vec<u8>>,
    body: &[u8],
) -> Result<(), Problem> {
    let signature = decode(value)
        .ok_or_else(|| Problem::unauthorized(format!("`{header}` must be {format}")))?;
    if secrets
        .iter()
        .any(|secret| hmac_matches(secret.as_bytes(), &[body], &signature))
    {
        Ok(())
    } else {
        Err(Problem::unauthorized(format!(
            "`{header}` does not match the body"
        )))
    }
}

/// Whether `signature` is the HMAC-SHA256 of `message` under `key` (constant time; an
/// empty or short signature never matches).
/// HMAC-SHA256 of `message` under `key`.
fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

fn hmac_matches(key: &[u8], message: &[&[u8]], signature: &[u8]) -> bool {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    for part in message {
        mac.update(part);
    }
    signature.len() == 32 && mac.verify_slice(signature).is_ok()
}

/// Constant-time equality of two secrets of any length (hashing first hides the length).
pub(crate) fn secret_matches(a: &str, b: &str) -> bool {
    Sha256::digest(a.as_bytes())
        .ct_eq(&Sha256::digest(b.as_bytes()))
        .into()
}

fn required_str<'a>(event: &'a serde_json::Value, field: &str) -> Result<&'a str, Problem> {
    match event.get(field) {
        Some(serde_json::Value::String(s)) if !s.is_empty() => Ok(s),
        Some(_) => Err(Problem::bad_request(format!(
            "field `{field}` must be a non-empty string"
        ))),
        None => Err(Problem::bad_request(format!("field `{field}` is missing"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lookup_ignores_case_and_refuses_duplicates() {
        let headers = Headers::new(vec![
            ("Signature".into(), b" abc ".to_vec()),
            ("x-dup".into(), b"1".to_vec()),
            ("X-Dup".into(), b"2".to_vec()),
            ("x-bin".into(), vec![0xff]),
        ]);
        assert_eq!(headers.single("signature"), Ok(Some("abc")));
        assert_eq!(headers.single("missing"), Ok(None));
        assert_eq!(headers.single("x-dup").unwrap_err().status, 400);
        assert_eq!(headers.single("x-bin").unwrap_err().status, 400);
    }

    #[test]
    fn hmac_refuses_empty_and_truncated_signatures() {
        let mac = HmacSha256::new_from_slice(b"k")
            .unwrap()
            .chain_update(b"m")
            .finalize()
            .into_bytes();
        assert!(hmac_matches(b"k", &[b"m"], &mac));
        assert!(!hmac_matches(b"k", &[b"m"], &[]));
        assert!(!hmac_matches(b"k", &[b"m"], &mac[..16]));
        assert!(!hmac_matches(b"other", &[b"m"], &mac));
    }

    #[test]
    fn secrets_compare_by_value() {
        assert!(secret_matches("token", "token"));
        assert!(!secret_matches("token", "token2"));
        assert!(!secret_matches("", "token"));
    }
}
