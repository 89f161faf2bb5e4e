//! Notices for an operator's own endpoint (`INBOX_ALERT_URL`): a destination opened or
//! closed, a webhook exhausted its retry schedule. A small JSON body, signed as Standard
//! Webhooks are (`webhook-id`, `webhook-timestamp`, `webhook-signature`) with
//! `INBOX_ALERT_SECRET`, so the receiver can check it came from this inbox. A notice holds
//! names, counts and reasons as the inbox records them (secrets redacted), never a payload,
//! a header or a setting.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::config::{Config, ConfigError, describe};
use crate::redact;

/// Where notices go, and the key they are signed with.
#[derive(Clone)]
pub struct AlertTarget {
    pub url: String,
    key: Vec<u8>,
}

impl std::fmt::Debug for AlertTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a token; the key is a secret.
        write!(f, "AlertTarget({})", redact::urls_in(&self.url))
    }
}

impl AlertTarget {
    /// `None` unless `INBOX_ALERT_URL` is set; then `INBOX_ALERT_SECRET` (`whsec_<base64>`)
    /// is required: an unsigned notice could be forged by anyone who finds the URL.
    pub fn from_config(config: &dyn Config) -> Result<Option<AlertTarget>, ConfigError> {
        let Some(url) = config.get("alert_url").filter(|url| !url.trim().is_empty()) else {
            return Ok(None);
        };
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(ConfigError(format!(
                "{} must be an http or https URL",
                describe("alert_url")
            )));
        }
        let secret = config.get("alert_secret").unwrap_or_default();
        let key = secret
            .strip_prefix("whsec_")
            .and_then(|key| STANDARD.decode(key).ok())
            .filter(|key| !key.is_empty())
            .ok_or_else(|| {
                ConfigError(format!(
                    "{} is set, so {} must be whsec_<base64>",
                    describe("alert_url"),
                    describe("alert_secret")
                ))
            })?;
        Ok(Some(AlertTarget { url, key }))
    }

    /// The request a notice becomes at `now_ms`: its headers and body.
    pub fn signed(&self, notice: &Notice, now_ms: i64) -> (Vec<(String, String)>, Vec<u8>) {
        let body = json!({
            "type": notice.kind,
            "timestamp": now_ms,
            "data": notice.data,
        })
        .to_string()
        .into_bytes();
        let id = format!("alert_{}", hex::encode(&Sha256::digest(&body)[..16]));
        let timestamp = (now_ms / 1_000).to_string();
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(&body);
        let signature = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
        let headers = vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            ("webhook-id".to_owned(), id),
            ("webhook-timestamp".to_owned(), timestamp),
            ("webhook-signature".to_owned(), signature),
        ];
        (headers, body)
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    /// `destination.opened`, `destination.closed` or `webhook.exhausted`.
    pub kind: &'static str,
    pub data: Value,
}

impl Notice {
    pub fn destination_opened(name: &str, failures: u32, last_error: Option<&str>) -> Notice {
        Notice {
            kind: "destination.opened",
            data: json!({
                "destination": name,
                "failures": failures,
                "last_error": last_error.map(redact::urls_in),
            }),
        }
    }

    pub fn destination_closed(name: &str) -> Notice {
        Notice {
            kind: "destination.closed",
            data: json!({ "destination": name }),
        }
    }

    /// Like Svix's `message.attempt.exhausted`: it needs an operator now.
    pub fn webhook_exhausted(id: &str, origin: &str, attempts: u32, reason: &str) -> Notice {
        Notice {
            kind: "webhook.exhausted",
            data: json!({
                "id": id,
                "origin": origin,
                "attempts": attempts,
                "reason": redact::urls_in(reason),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::from_pairs as config;

    #[test]
    fn a_notice_is_signed_as_standard_webhooks_are() {
        let target = AlertTarget::from_config(&config(&[
            ("alert_url", "https://alerts.example/hook?token=s3cr3t"),
            ("alert_secret", "whsec_c2VjcmV0"),
        ]))
        .unwrap()
        .unwrap();
        assert!(!format!("{target:?}").contains("s3cr3t"));
        let notice = Notice::destination_opened(
            "https://api.example.com:443",
            5,
            Some("503 from https://user:pw@api.example.com/x"),
        );
        let (headers, body) = target.signed(&notice, 1_700_000_000_123);
        let header = |name: &str| &headers.iter().find(|(n, _)| n == name).unwrap().1;
        assert_eq!(header("webhook-timestamp"), "1700000000");
        let signed = format!("{}.{}.", header("webhook-id"), header("webhook-timestamp"));
        let mut mac = Hmac::<Sha256>::new_from_slice(b"secret").unwrap();
        mac.update(signed.as_bytes());
        mac.update(&body);
        let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
        assert_eq!(header("webhook-signature"), &expected);
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["type"], "destination.opened");
        assert_eq!(body["data"]["failures"], 5);
        assert!(!body.to_string().contains("pw@"), "{body}");
    }

    #[test]
    fn a_url_without_a_secret_is_refused_and_none_is_no_alerts() {
        assert!(AlertTarget::from_config(&config(&[])).unwrap().is_none());
        let unsigned = AlertTarget::from_config(&config(&[("alert_url", "https://a.example/")]));
        assert!(
            unsigned
                .unwrap_err()
                .to_string()
                .contains("INBOX_ALERT_SECRET")
        );
        let bad = config(&[("alert_url", "ftp://a"), ("alert_secret", "whsec_c2VjcmV0")]);
        assert!(AlertTarget::from_config(&bad).is_err());
    }
}
