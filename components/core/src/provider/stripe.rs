//! Stripe: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]`, hex HMAC-SHA256 of
//! `"{t}.{raw body}"` under the endpoint secret (used as is, `whsec_` included).

use super::checks::{BodyMac, check_timestamp, required_str};
use super::delivery::{EventMeta, Headers, Source};
use crate::Problem;
use crate::config::Config;

const HEADER: &str = "stripe-signature";

pub(super) fn signature(
    source: &Source,
    headers: &Headers,
    config: &dyn Config,
    now_s: i64,
    tolerance_s: u64,
) -> Result<BodyMac, Problem> {
    let secrets = source.required_secrets(config)?;
    let header = headers
        .single(HEADER)?
        .ok_or_else(|| Problem::unauthorized("header `Stripe-Signature` is missing"))?;

    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) if timestamp.is_none() => timestamp = Some(t),
            Some(("t", _)) => {
                return Err(Problem::unauthorized(
                    "`Stripe-Signature` carries more than one timestamp",
                ));
            }
            Some(("v1", sig)) => signatures.push(sig),
            // Other schemes (v0, test-mode extras) are not ours to trust.
            _ => {}
        }
    }
    let timestamp: i64 = timestamp
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| Problem::unauthorized("`Stripe-Signature` has no valid timestamp `t`"))?;
    if signatures.is_empty() {
        return Err(Problem::unauthorized(
            "`Stripe-Signature` has no `v1` signature",
        ));
    }
    check_timestamp("Stripe-Signature", timestamp, now_s, tolerance_s)?;

    let prefix = format!("{timestamp}.");
    let signatures = signatures
        .iter()
        .filter_map(|sig| hex::decode(sig).ok())
        .collect();
    Ok(BodyMac::new(
        secrets.iter().map(String::as_bytes),
        prefix.as_bytes(),
        signatures,
        "no `v1` signature in `Stripe-Signature` matches the body",
    ))
}

pub(super) fn describe_event(event: &serde_json::Value) -> Result<EventMeta, Problem> {
    Ok(EventMeta {
        event_type: required_str(event, "type")?.to_owned(),
        idempotency_key: required_str(event, "id")?.to_owned(),
        provider_timestamp: event.get("created").and_then(serde_json::Value::as_i64),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use hmac::Mac;

    use super::*;

    const NOW_MS: i64 = 1_700_000_000_000;
    const BODY: &[u8] = br#"{"id":"evt_1","type":"payment_intent.succeeded","created":1700000000}"#;

    fn stripe() -> Source {
        Source {
            origin: "stripe".into(),
            scheme: super::super::Scheme::Stripe,
        }
    }

    fn config(secret: &str) -> BTreeMap<String, String> {
        BTreeMap::from([("stripe_secret".to_string(), secret.to_string())])
    }

    fn sign(secret: &str, t: i64, body: &[u8]) -> String {
        let mac = super::super::checks::HmacSha256::new_from_slice(secret.as_bytes())
            .unwrap()
            .chain_update(format!("{t}.").as_bytes())
            .chain_update(body)
            .finalize()
            .into_bytes();
        hex::encode(mac)
    }

    fn check(header: &str, body: &[u8], secret: &str) -> Result<(), Problem> {
        let headers = Headers::new(vec![(
            "Stripe-Signature".into(),
            header.as_bytes().to_vec(),
        )]);
        stripe().verify(&headers, body, &config(secret), NOW_MS, 300)
    }

    #[test]
    fn accepts_a_fresh_valid_signature_among_others() {
        let t = NOW_MS / 1000 - 10;
        let good = sign("whsec_a", t, BODY);
        assert_eq!(check(&format!("t={t},v1={good}"), BODY, "whsec_a"), Ok(()));
        let bad = sign("whsec_b", t, BODY);
        assert_eq!(
            check(
                &format!("t={t},v0={bad},v1={bad},v1={good}"),
                BODY,
                "whsec_a"
            ),
            Ok(())
        );
        // Rotation: either configured secret verifies.
        assert_eq!(
            check(&format!("t={t},v1={good}"), BODY, "whsec_z,whsec_a"),
            Ok(())
        );
    }

    #[test]
    fn refuses_wrong_secret_tampered_body_and_malformed_headers() {
        let t = NOW_MS / 1000;
        let good = sign("whsec_a", t, BODY);
        assert!(check(&format!("t={t},v1={good}"), BODY, "whsec_b").is_err());
        assert!(check(&format!("t={t},v1={good}"), b"{}", "whsec_a").is_err());
        assert!(check(&format!("t={t},v1="), BODY, "whsec_a").is_err());
        assert!(check(&format!("t={t},v1={}", &good[..32]), BODY, "whsec_a").is_err());
        assert!(check(&format!("v1={good}"), BODY, "whsec_a").is_err());
        assert!(check(&format!("t={t}"), BODY, "whsec_a").is_err());
        assert!(check(&format!("t={t},v0={good}"), BODY, "whsec_a").is_err());
        assert!(check(&format!("t={t},t={t},v1={good}"), BODY, "whsec_a").is_err());
        assert!(check("", BODY, "whsec_a").is_err());
    }

    #[test]
    fn refuses_stale_and_future_timestamps() {
        for t in [NOW_MS / 1000 - 301, NOW_MS / 1000 + 301] {
            let sig = sign("whsec_a", t, BODY);
            let err = check(&format!("t={t},v1={sig}"), BODY, "whsec_a").unwrap_err();
            assert!(err.detail.contains("tolerance"), "{err}");
        }
    }

    #[test]
    fn missing_header_or_secret_is_401() {
        let err = stripe()
            .verify(&Headers::default(), BODY, &config("whsec_a"), NOW_MS, 300)
            .unwrap_err();
        assert_eq!(err.status, 401);
        let err = stripe()
            .verify(&Headers::default(), BODY, &BTreeMap::new(), NOW_MS, 300)
            .unwrap_err();
        assert!(err.detail.contains("INBOX_STRIPE_SECRET"), "{err}");
    }

    #[test]
    fn event_id_and_type_are_required() {
        let event: serde_json::Value = serde_json::from_slice(BODY).unwrap();
        let described = describe_event(&event).unwrap();
        assert_eq!(described.idempotency_key, "evt_1");
        assert_eq!(described.provider_timestamp, Some(1_700_000_000));
        assert!(describe_event(&serde_json::json!({"type": "x"})).is_err());
        assert!(describe_event(&serde_json::json!({"id": 5, "type": "x"})).is_err());
    }
}
