//! Who may deliver to which origin, and how each provider proves it.
//!
//! Every check runs on the raw body bytes and compares in constant time.

mod bigcommerce;
mod stripe;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::Problem;
use crate::config::{Config, describe};

type HmacSha256 = Hmac<Sha256>;

/// The provider schemes this inbox speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    BigCommerce,
    Stripe,
}

impl Provider {
    pub fn for_origin(origin: &str) -> Option<Provider> {
        match origin {
            "bigcommerce" => Some(Provider::BigCommerce),
            "stripe" => Some(Provider::Stripe),
            _ => None,
        }
    }

    /// Proves the delivery came from the provider (401 otherwise).
    pub fn verify(
        self,
        origin: &str,
        headers: &Headers,
        body: &[u8],
        config: &dyn Config,
        now_ms: i64,
        tolerance_s: u64,
    ) -> Result<(), Problem> {
        match self {
            Provider::BigCommerce => bigcommerce::verify(origin, headers, body, config),
            Provider::Stripe => stripe::verify(origin, headers, body, config, now_ms, tolerance_s),
        }
    }

    /// What the provider says about the event (400 if the payload lacks it).
    pub fn describe_event(self, body: &[u8], event: &serde_json::Value) -> Result<Event, Problem> {
        match self {
            Provider::BigCommerce => bigcommerce::describe_event(body, event),
            Provider::Stripe => stripe::describe_event(event),
        }
    }

    /// The request headers worth keeping with the webhook: never credentials.
    pub fn stored_headers(self) -> &'static [&'static str] {
        match self {
            Provider::BigCommerce => &["content-type", "user-agent"],
            Provider::Stripe => &["content-type", "user-agent"],
        }
    }
}

/// What a provider says about an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub event_type: String,
    pub idempotency_key: String,
    pub provider_timestamp: Option<i64>,
}

/// Request headers with case-insensitive lookup that refuses ambiguity.
#[derive(Debug, Clone, Default)]
pub struct Headers(Vec<(String, Vec<u8>)>);

impl Headers {
    pub fn new(pairs: Vec<(String, Vec<u8>)>) -> Self {
        Headers(pairs)
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

/// The secrets configured under `key`, or a 401 that says which variable to set.
fn required_secrets(config: &dyn Config, origin: &str, key: &str) -> Result<Vec<String>, Problem> {
    let secrets = crate::config::secrets(config, key);
    if secrets.is_empty() {
        return Err(Problem::unauthorized(format!(
            "origin `{origin}` has no secret configured, so no delivery can be verified: set {}",
            describe(key)
        )));
    }
    Ok(secrets)
}

/// Whether `signature` is the HMAC-SHA256 of `message` under `key` (constant time; an
/// empty or short signature never matches).
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
