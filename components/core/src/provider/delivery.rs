//! What a delivery is checked as: the source it arrived on, its headers, and what the
//! provider says about its event.

use super::scheme::Scheme;
use crate::Problem;

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
pub struct EventMeta {
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
