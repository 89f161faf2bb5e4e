//! Standard Webhooks: `webhook-id`, `webhook-timestamp` and
//! `webhook-signature: v1,<base64> [v1,<base64> ...]`, the base64 HMAC-SHA256 of
//! `"{id}.{timestamp}.{body}"` under the base64-decoded secret that follows `whsec_`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::checks::{BodyMac, check_timestamp};
use super::delivery::{EventMeta, Headers, Source};
use crate::Problem;
use crate::config::{Config, describe};

pub(super) fn signature(
    source: &Source,
    headers: &Headers,
    config: &dyn Config,
    now_s: i64,
    tolerance_s: u64,
) -> Result<BodyMac, Problem> {
    let secrets = source.required_secrets(config)?;
    let keys = secrets
        .iter()
        .map(|secret| {
            STANDARD
                .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
                .map_err(|_| secret_misconfigured(&source.key("secret")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let id = required(headers, "webhook-id")?;
    let timestamp = required(headers, "webhook-timestamp")?;
    let signatures = required(headers, "webhook-signature")?;
    let timestamp_s: i64 = timestamp
        .parse()
        .map_err(|_| Problem::unauthorized("`webhook-timestamp` is not a number of seconds"))?;
    check_timestamp("webhook-timestamp", timestamp_s, now_s, tolerance_s)?;

    let prefix = format!("{id}.{timestamp}.");
    let signatures = signatures
        .split(' ')
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(|signature| STANDARD.decode(signature).ok())
        .collect();
    Ok(BodyMac::new(
        keys,
        prefix.as_bytes(),
        signatures,
        "no `v1` signature in `webhook-signature` matches the body",
    ))
}

/// A secret that is not `whsec_<base64>` is the operator's mistake, not the sender's: 503,
/// naming the variable, never its value.
fn secret_misconfigured(key: &str) -> Problem {
    Problem::unavailable(format!(
        "the inbox is misconfigured: {} must be whsec_<base64>",
        describe(key)
    ))
}

fn required<'a>(headers: &'a Headers, name: &str) -> Result<&'a str, Problem> {
    headers
        .single(name)?
        .filter(|v| !v.is_empty())
        .ok_or_else(|| Problem::unauthorized(format!("header `{name}` is missing")))
}

/// The type is the payload's `type` (the specification's recommended envelope).
pub(super) fn describe_event(
    headers: &Headers,
    event: &serde_json::Value,
) -> Result<EventMeta, Problem> {
    let id = required(headers, "webhook-id").map_err(|p| Problem::bad_request(p.detail))?;
    let timestamp = headers
        .single("webhook-timestamp")?
        .and_then(|t| t.parse().ok());
    let event_type = event
        .get("type")
        .and_then(serde_json::Value::as_str)
        .filter(|t| !t.is_empty())
        .unwrap_or("webhook");
    Ok(EventMeta {
        event_type: event_type.to_owned(),
        idempotency_key: id.to_owned(),
        provider_timestamp: timestamp,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::provider::Scheme;

    // The example in the Standard Webhooks specification.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TIMESTAMP: i64 = 1614265330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn check(secret: &str, signature: &str, body: &[u8], now_s: i64) -> Result<(), Problem> {
        let source = Source {
            origin: "standard-webhooks".into(),
            scheme: Scheme::StandardWebhooks,
        };
        let headers = Headers::new(vec![
            ("webhook-id".into(), ID.as_bytes().to_vec()),
            (
                "webhook-timestamp".into(),
                TIMESTAMP.to_string().into_bytes(),
            ),
            ("webhook-signature".into(), signature.as_bytes().to_vec()),
        ]);
        let config = BTreeMap::from([("standard_webhooks_secret".to_string(), secret.to_string())]);
        source.verify(&headers, body, &config, now_s * 1000, 300)
    }

    #[test]
    fn verifies_the_specifications_example() {
        assert_eq!(check(SECRET, SIGNATURE, BODY, TIMESTAMP), Ok(()));
        let several = format!("v1,Ym9ndXM= v1a,abc {SIGNATURE}");
        assert_eq!(check(SECRET, &several, BODY, TIMESTAMP + 299), Ok(()));
        let rotated = format!("whsec_{},{SECRET}", STANDARD.encode(b"previous secret"));
        assert_eq!(check(&rotated, SIGNATURE, BODY, TIMESTAMP), Ok(()));
    }

    #[test]
    fn refuses_empty_short_and_wrong_signatures() {
        // One published implementation accepted `v1,` because it compared with `zip`.
        assert!(check(SECRET, "v1,", BODY, TIMESTAMP).is_err());
        assert!(check(SECRET, "v1,g0hM9SsE", BODY, TIMESTAMP).is_err());
        assert!(check(SECRET, &SIGNATURE[..20], BODY, TIMESTAMP).is_err());
        assert!(check(SECRET, &SIGNATURE.replace("v1,", "v2,"), BODY, TIMESTAMP).is_err());
        assert!(check(SECRET, SIGNATURE, br#"{"test":2432232314}"#, TIMESTAMP).is_err());
        let other = format!("whsec_{}", STANDARD.encode(b"another secret"));
        assert!(check(&other, SIGNATURE, BODY, TIMESTAMP).is_err());
    }

    #[test]
    fn refuses_stale_and_future_timestamps() {
        assert!(check(SECRET, SIGNATURE, BODY, TIMESTAMP + 301).is_err());
        assert!(check(SECRET, SIGNATURE, BODY, TIMESTAMP - 301).is_err());
    }

    #[test]
    fn a_secret_that_is_not_base64_is_a_misconfiguration() {
        let problem = check("whsec_***", SIGNATURE, BODY, TIMESTAMP).unwrap_err();
        assert_eq!(problem.status, 503);
        assert!(!problem.detail.contains("***"), "{}", problem.detail);
    }
}
