//! GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>`. No timestamp is
//! signed; `X-GitHub-Delivery` (a GUID) identifies the delivery, and a redelivery keeps it.

use super::checks::{BodyMac, body_mac};
use super::delivery::{EventMeta, Headers, Source};
use crate::Problem;
use crate::config::Config;

const SIGNATURE: &str = "x-hub-signature-256";

pub(super) fn signature(
    source: &Source,
    headers: &Headers,
    config: &dyn Config,
) -> Result<BodyMac, Problem> {
    let secrets = source.required_secrets(config)?;
    let value = headers
        .single(SIGNATURE)?
        .ok_or_else(|| Problem::unauthorized("header `X-Hub-Signature-256` is missing"))?;
    let decode = |v: &str| hex::decode(v.strip_prefix("sha256=")?).ok();
    body_mac(
        &secrets,
        "X-Hub-Signature-256",
        value,
        "sha256=<hex>",
        decode,
    )
}

/// The type is `X-GitHub-Event`, refined by the payload's `action` (`issues.opened`).
pub(super) fn describe_event(
    headers: &Headers,
    event: &serde_json::Value,
) -> Result<EventMeta, Problem> {
    let kind = headers
        .single("x-github-event")?
        .filter(|v| !v.is_empty())
        .ok_or_else(|| Problem::bad_request("header `X-GitHub-Event` is missing"))?;
    let delivery = headers
        .single("x-github-delivery")?
        .filter(|v| !v.is_empty())
        .ok_or_else(|| Problem::bad_request("header `X-GitHub-Delivery` is missing"))?;
    let event_type = match event.get("action").and_then(serde_json::Value::as_str) {
        Some(action) => format!("{kind}.{action}"),
        None => kind.to_owned(),
    };
    Ok(EventMeta {
        event_type,
        idempotency_key: delivery.to_owned(),
        provider_timestamp: None,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::provider::Scheme;

    fn check(secret: &str, signature: &str, body: &[u8]) -> Result<(), Problem> {
        let source = Source {
            origin: "github".into(),
            scheme: Scheme::GitHub,
        };
        let headers = Headers::new(vec![(
            "X-Hub-Signature-256".into(),
            signature.as_bytes().to_vec(),
        )]);
        let config = BTreeMap::from([("github_secret".to_string(), secret.to_string())]);
        source.verify(&headers, body, &config, 0, 300)
    }

    // The example in GitHub's documentation on validating webhook deliveries.
    const DOC_SECRET: &str = "It's a Secret to Everybody";
    const DOC_SIGNATURE: &str =
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    #[test]
    fn verifies_githubs_published_example() {
        assert_eq!(check(DOC_SECRET, DOC_SIGNATURE, b"Hello, World!"), Ok(()));
        assert_eq!(
            check(
                &format!("old,{DOC_SECRET}"),
                DOC_SIGNATURE,
                b"Hello, World!"
            ),
            Ok(())
        );
    }

    #[test]
    fn refuses_anything_else() {
        assert!(check(DOC_SECRET, DOC_SIGNATURE, b"Hello, World?").is_err());
        assert!(check(DOC_SECRET, DOC_SIGNATURE, b"Hello,  World!").is_err());
        assert!(check("other", DOC_SIGNATURE, b"Hello, World!").is_err());
        assert!(check(DOC_SECRET, "sha256=", b"Hello, World!").is_err());
        assert!(check(DOC_SECRET, &DOC_SIGNATURE[..40], b"Hello, World!").is_err());
        assert!(check(DOC_SECRET, &DOC_SIGNATURE[7..], b"Hello, World!").is_err());
        assert!(
            check(
                DOC_SECRET,
                &DOC_SIGNATURE.replace("sha256", "sha1"),
                b"Hello, World!"
            )
            .is_err()
        );
    }

    #[test]
    fn event_comes_from_headers_and_action() {
        let headers = Headers::new(vec![
            ("X-GitHub-Event".into(), b"issues".to_vec()),
            (
                "X-GitHub-Delivery".into(),
                b"72d3162e-cc78-11e3-81ab-4c9367dc0958".to_vec(),
            ),
        ]);
        let event = describe_event(&headers, &serde_json::json!({"action": "opened"})).unwrap();
        assert_eq!(event.event_type, "issues.opened");
        assert_eq!(
            event.idempotency_key,
            "72d3162e-cc78-11e3-81ab-4c9367dc0958"
        );
        assert_eq!(
            describe_event(&headers, &serde_json::json!({}))
                .unwrap()
                .event_type,
            "issues"
        );
        assert_eq!(
            describe_event(&Headers::default(), &serde_json::json!({}))
                .unwrap_err()
                .status,
            400
        );
    }
}
