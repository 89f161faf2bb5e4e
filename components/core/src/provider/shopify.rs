//! Shopify: `X-Shopify-Hmac-Sha256: <base64 HMAC-SHA256 of the raw body>` under the app's
//! client secret. The topic and event id travel in headers; nothing time-related is signed.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::checks::{BodyMac, body_mac};
use super::delivery::{EventMeta, Headers, Source};
use crate::config::Config;
use crate::{Problem, id};

const SIGNATURE: &str = "x-shopify-hmac-sha256";

pub(super) fn signature(
    source: &Source,
    headers: &Headers,
    config: &dyn Config,
) -> Result<BodyMac, Problem> {
    let secrets = source.required_secrets(config)?;
    let value = headers
        .single(SIGNATURE)?
        .ok_or_else(|| Problem::unauthorized("header `X-Shopify-Hmac-Sha256` is missing"))?;
    let decode = |v: &str| STANDARD.decode(v).ok();
    body_mac(&secrets, "X-Shopify-Hmac-Sha256", value, "base64", decode)
}

pub(super) fn describe_event(headers: &Headers, body: &[u8]) -> Result<EventMeta, Problem> {
    let topic = headers
        .single("x-shopify-topic")?
        .filter(|v| !v.is_empty())
        .ok_or_else(|| Problem::bad_request("header `X-Shopify-Topic` is missing"))?;
    let idempotency_key = match headers.single("x-shopify-event-id")? {
        Some(event_id) if !event_id.is_empty() => event_id.to_owned(),
        _ => id::body_hash_key(body),
    };
    Ok(EventMeta {
        event_type: topic.to_owned(),
        idempotency_key,
        provider_timestamp: None,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use hmac::Mac;

    use super::*;
    use crate::provider::Scheme;
    use crate::provider::checks::HmacSha256;

    const BODY: &[u8] = br#"{"id":820982911946154508,"email":"jon@example.com"}"#;

    fn sign(secret: &str, body: &[u8]) -> String {
        let mac = HmacSha256::new_from_slice(secret.as_bytes())
            .unwrap()
            .chain_update(body)
            .finalize()
            .into_bytes();
        STANDARD.encode(mac)
    }

    fn check(secret: &str, signature: &str, body: &[u8]) -> Result<(), Problem> {
        let source = Source {
            origin: "shop2".into(),
            scheme: Scheme::Shopify,
        };
        let headers = Headers::new(vec![(
            "X-Shopify-Hmac-Sha256".into(),
            signature.as_bytes().to_vec(),
        )]);
        let config = BTreeMap::from([("shop2_secret".to_string(), secret.to_string())]);
        source.verify(&headers, body, &config, 0, 300)
    }

    #[test]
    fn verifies_the_body_under_any_configured_secret() {
        assert_eq!(check("s", &sign("s", BODY), BODY), Ok(()));
        assert_eq!(check("old, s", &sign("s", BODY), BODY), Ok(()));
        assert!(check("s", &sign("t", BODY), BODY).is_err());
        assert!(check("s", &sign("s", BODY), b"{}").is_err());
        assert!(check("s", "", BODY).is_err());
        assert!(check("s", &sign("s", BODY)[..20], BODY).is_err());
    }

    #[test]
    fn event_key_is_the_event_id_or_the_body() {
        let headers = Headers::new(vec![
            ("X-Shopify-Topic".into(), b"orders/create".to_vec()),
            (
                "X-Shopify-Event-Id".into(),
                b"98880550-7158-44d4-b7cd-2c97c8a091b5".to_vec(),
            ),
        ]);
        let event = describe_event(&headers, BODY).unwrap();
        assert_eq!(event.event_type, "orders/create");
        assert_eq!(
            event.idempotency_key,
            "98880550-7158-44d4-b7cd-2c97c8a091b5"
        );
        let no_id = Headers::new(vec![("X-Shopify-Topic".into(), b"orders/create".to_vec())]);
        assert_eq!(
            describe_event(&no_id, BODY).unwrap().idempotency_key,
            id::body_hash_key(BODY)
        );
    }
}
