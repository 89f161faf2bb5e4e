//! BigCommerce sends no signature: a hook carries the custom headers chosen when it was
//! created (a shared token). The seed's demo sender signs instead: header `Signature`,
//! base64url (no padding) HMAC-SHA256 of the raw body.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::checks::{Signature, body_mac, required_str, secret_matches};
use super::delivery::{EventMeta, Headers, Source};
use crate::config::{Config, describe, secrets};
use crate::{Problem, id};

const SIGNATURE_HEADER: &str = "signature";
const DEFAULT_TOKEN_HEADER: &str = "authorization";

/// Passes when at least one configured scheme is presented and every presented one holds.
pub(super) fn signature(
    source: &Source,
    headers: &Headers,
    config: &dyn Config,
) -> Result<Signature, Problem> {
    let hmac_secrets = secrets(config, &source.key("secret"));
    let tokens = secrets(config, &source.key("token"));
    if hmac_secrets.is_empty() && tokens.is_empty() {
        return Err(Problem::unauthorized(format!(
            "origin `{}` has no secret configured, so no delivery can be verified: set {} or {}",
            source.origin,
            describe(&source.key("secret")),
            describe(&source.key("token")),
        )));
    }

    let mut mac = None;
    if !hmac_secrets.is_empty()
        && let Some(value) = headers.single(SIGNATURE_HEADER)?
    {
        let decode = |v: &str| URL_SAFE_NO_PAD.decode(v.trim_end_matches('=')).ok();
        mac = Some(body_mac(
            &hmac_secrets,
            "Signature",
            value,
            "base64url",
            decode,
        )?);
    }
    let mut verified = mac.is_some();
    if !tokens.is_empty() {
        let header = config
            .get(&source.key("token_header"))
            .map(|h| h.trim().to_ascii_lowercase())
            .unwrap_or_else(|| DEFAULT_TOKEN_HEADER.to_owned());
        if let Some(presented) = headers.single(&header)? {
            let presented = if header == DEFAULT_TOKEN_HEADER {
                presented.strip_prefix("Bearer ").unwrap_or_default()
            } else {
                presented
            };
            if !tokens.iter().any(|token| secret_matches(token, presented)) {
                return Err(Problem::unauthorized(format!(
                    "header `{header}` does not carry a valid token"
                )));
            }
            verified = true;
        }
    }
    if verified {
        Ok(Signature(mac))
    } else {
        Err(Problem::unauthorized(
            "the delivery carries no signature or token",
        ))
    }
}

pub(super) fn describe_event(body: &[u8], event: &serde_json::Value) -> Result<EventMeta, Problem> {
    let event_type = required_str(event, "scope")?.to_owned();
    // The same `hash` arrives when the same event fires twice; without one, the body is the key.
    let idempotency_key = match event.get("hash") {
        Some(serde_json::Value::String(hash)) if !hash.is_empty() => hash.clone(),
        None => id::body_hash_key(body),
        Some(_) => {
            return Err(Problem::bad_request(
                "field `hash` must be a non-empty string",
            ));
        }
    };
    Ok(EventMeta {
        event_type,
        idempotency_key,
        provider_timestamp: event.get("created_at").and_then(serde_json::Value::as_i64),
    })
}

/// The seed's demo sender: a `store/order/created` event with a fresh `hash` (so each one
/// is a new webhook), signed as the seed signs it. Returns the body and its `Signature`.
pub fn demo_delivery(secret: &str, hash: &str, order_id: u32, now_s: i64) -> (Vec<u8>, String) {
    let body = serde_json::json!({
        "scope": "store/order/created",
        "store_id": "1025646",
        "data": { "type": "order", "id": order_id },
        "hash": hash,
        "created_at": now_s,
        "producer": "stores/demo",
    });
    let body = serde_json::to_vec(&body).expect("a JSON value serialises");
    let signature = URL_SAFE_NO_PAD.encode(super::checks::hmac_sha256(secret.as_bytes(), &body));
    (body, signature)
}

#[cfg(test)]
mod tests {
    use hmac::Mac;

    use super::*;

    use crate::config::from_pairs as config;

    #[test]
    fn a_demo_delivery_is_captured_as_a_new_webhook_and_only_under_its_secret() {
        let (body, signature) = demo_delivery("s", "f00d", 7, 1_795_000_000);
        let headers = Headers::new(vec![
            ("signature".into(), signature.into_bytes()),
            ("content-type".into(), b"application/json".to_vec()),
        ]);
        let accepted = crate::capture::accept(
            "bigcommerce",
            &headers,
            &body,
            &config(&[("bigcommerce_secret", "s")]),
            1_795_000_000_000,
        )
        .unwrap();
        assert_eq!(accepted.idempotency_key, "f00d");
        assert_eq!(accepted.event_type, "store/order/created");
        let refused = crate::capture::accept(
            "bigcommerce",
            &headers,
            &body,
            &config(&[("bigcommerce_secret", "other")]),
            1_795_000_000_000,
        );
        assert_eq!(refused.unwrap_err().status, 401);
    }

    fn sign(secret: &str, body: &[u8]) -> String {
        let mac = super::super::checks::HmacSha256::new_from_slice(secret.as_bytes())
            .unwrap()
            .chain_update(body)
            .finalize()
            .into_bytes();
        URL_SAFE_NO_PAD.encode(mac)
    }

    fn bigcommerce() -> Source {
        Source {
            origin: "bigcommerce".into(),
            scheme: super::super::Scheme::BigCommerce,
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        Headers::new(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect(),
        )
    }

    const BODY: &[u8] = br#"{"scope":"store/order/created","hash":"h1"}"#;

    #[test]
    fn seed_signature_verifies_with_any_configured_secret() {
        let c = config(&[("bigcommerce_secret", "old,new")]);
        for secret in ["old", "new"] {
            let h = headers(&[("Signature", &sign(secret, BODY))]);
            assert_eq!(bigcommerce().verify(&h, BODY, &c, 0, 300), Ok(()));
        }
        let wrong = headers(&[("Signature", &sign("other", BODY))]);
        assert_eq!(
            bigcommerce()
                .verify(&wrong, BODY, &c, 0, 300)
                .unwrap_err()
                .status,
            401
        );
        let tampered = headers(&[("Signature", &sign("new", b"{}"))]);
        assert_eq!(
            bigcommerce()
                .verify(&tampered, BODY, &c, 0, 300)
                .unwrap_err()
                .status,
            401
        );
        let empty = headers(&[("Signature", "")]);
        assert_eq!(
            bigcommerce()
                .verify(&empty, BODY, &c, 0, 300)
                .unwrap_err()
                .status,
            401
        );
        assert_eq!(
            bigcommerce()
                .verify(&headers(&[]), BODY, &c, 0, 300)
                .unwrap_err()
                .status,
            401
        );
    }

    #[test]
    fn shared_token_in_a_configured_header() {
        let c = config(&[("bigcommerce_token", "t0k3n")]);
        let ok = headers(&[("Authorization", "Bearer t0k3n")]);
        assert_eq!(bigcommerce().verify(&ok, BODY, &c, 0, 300), Ok(()));
        let bare = headers(&[("Authorization", "t0k3n")]);
        assert!(bigcommerce().verify(&bare, BODY, &c, 0, 300).is_err());

        let custom = config(&[
            ("bigcommerce_token", "t0k3n"),
            ("bigcommerce_token_header", "X-Hook-Token"),
        ]);
        let ok = headers(&[("x-hook-token", "t0k3n")]);
        assert_eq!(bigcommerce().verify(&ok, BODY, &custom, 0, 300), Ok(()));
        let wrong = headers(&[("x-hook-token", "nope")]);
        assert!(bigcommerce().verify(&wrong, BODY, &custom, 0, 300).is_err());
    }

    #[test]
    fn a_presented_credential_that_fails_is_refused_even_if_another_passes() {
        let c = config(&[("bigcommerce_secret", "s"), ("bigcommerce_token", "t")]);
        let h = headers(&[
            ("Authorization", "Bearer t"),
            ("Signature", &sign("x", BODY)),
        ]);
        assert!(bigcommerce().verify(&h, BODY, &c, 0, 300).is_err());
    }

    #[test]
    fn unconfigured_origin_names_the_variables() {
        let err = bigcommerce()
            .verify(&headers(&[]), BODY, &config(&[]), 0, 300)
            .unwrap_err();
        assert_eq!(err.status, 401);
        assert!(err.detail.contains("INBOX_BIGCOMMERCE_SECRET"), "{err}");
        assert!(err.detail.contains("INBOX_BIGCOMMERCE_TOKEN"), "{err}");
    }

    #[test]
    fn event_key_is_the_hash_or_the_body() {
        let event: serde_json::Value = serde_json::from_slice(BODY).unwrap();
        let described = describe_event(BODY, &event).unwrap();
        assert_eq!(described.idempotency_key, "h1");
        assert_eq!(described.event_type, "store/order/created");

        let body = br#"{"scope":"store/order/created","created_at":1561479335}"#;
        let event: serde_json::Value = serde_json::from_slice(body).unwrap();
        let described = describe_event(body, &event).unwrap();
        assert_eq!(described.idempotency_key, id::body_hash_key(body));
        assert_eq!(described.provider_timestamp, Some(1561479335));

        let event = serde_json::json!({"hash": "h"});
        assert_eq!(describe_event(b"", &event).unwrap_err().status, 400);
    }
}
