//! A delivery to an origin: its source and limits, its signature and content checked, and
//! the webhook it becomes.

use super::limits::{body_too_large, check_headers};
use super::printable::printable;
use super::top_level::{TopLevelError, top_level};
use crate::config::{CaptureLimits, Config, ConfigError};
use crate::model::Webhook;
use crate::provider::{Headers, Signature, Source};
use crate::{Problem, id};

/// The longest delivery id (idempotency key) taken, well inside what DynamoDB's `key`
/// index can hold (2,048 bytes): a longer one is refused before anything is stored,
/// rather than failing the store's write. Providers' ids are tens of bytes.
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 1_024;

/// Webhooks are JSON: `application/json` or a `+json` type, with any parameters (415).
pub fn check_content_type(headers: &Headers) -> Result<(), Problem> {
    let unsupported = |what: String| {
        Problem::new(
            415,
            "Unsupported Media Type",
            format!("{what}; webhooks are accepted as application/json"),
        )
    };
    let value = headers
        .single("content-type")?
        .ok_or_else(|| unsupported("the request has no Content-Type".into()))?;
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
    {
        Ok(())
    } else {
        Err(unsupported(format!(
            "Content-Type `{}` is not JSON",
            printable(&essence)
        )))
    }
}

/// The source a delivery to `origin` comes from (404 if there is none).
pub fn source(origin: &str, config: &dyn Config) -> Result<Source, Problem> {
    Source::find(origin, config)
        .map_err(|e| Problem::unavailable(format!("the inbox is misconfigured: {e}")))?
        .ok_or_else(|| Problem::not_found(format!("unknown origin `{}`", printable(origin))))
}

/// What a delivery to one origin is checked against, resolved once, before its body is read.
#[derive(Debug, Clone)]
pub struct Intake {
    pub source: Source,
    pub limits: CaptureLimits,
    /// Whether the store refuses a body this source delivered before.
    pub refuse_replayed_body: bool,
}

/// The intake of `origin`: 404 for an unknown origin, 503 for a misconfigured inbox.
pub fn intake(origin: &str, config: &dyn Config) -> Result<Intake, Problem> {
    let misconfigured =
        |e: ConfigError| Problem::unavailable(format!("the inbox is misconfigured: {e}"));
    let source = source(origin, config)?;
    let limits = CaptureLimits::from_config(config).map_err(misconfigured)?;
    let refuse_replayed_body = source
        .refuses_replayed_body(config)
        .map_err(misconfigured)?;
    Ok(Intake {
        source,
        limits,
        refuse_replayed_body,
    })
}

impl Intake {
    /// The check of the delivery's signature, begun from its headers before its body is
    /// read: the body is fed to it as it arrives ([`Signature::update`]). A refusal is
    /// kept for [`Intake::accept_signed`], which answers the body's size first.
    pub fn signature(
        &self,
        headers: &Headers,
        config: &dyn Config,
        now_ms: i64,
    ) -> Result<Signature, Problem> {
        self.source.signature(
            headers,
            config,
            now_ms,
            self.limits.timestamp_tolerance.as_secs(),
        )
    }

    /// The webhook to store for a delivery whose headers passed [`check_headers`], or why
    /// it is refused; its whole body at once.
    pub fn accept(
        &self,
        headers: &Headers,
        body: Vec<u8>,
        config: &dyn Config,
        now_ms: i64,
    ) -> Result<Webhook, Problem> {
        let signature = self
            .signature(headers, config, now_ms)
            .map(|mut signature| {
                signature.update(&body);
                signature
            });
        self.accept_signed(headers, body, signature, now_ms)
    }

    /// [`Intake::accept`] for a body whose `signature` was fed every byte of it as it
    /// arrived. The signature is checked before the body is parsed, so nothing
    /// unauthenticated reaches the JSON parser. The webhook keeps `body` as its payload,
    /// without a copy.
    pub fn accept_signed(
        &self,
        headers: &Headers,
        body: Vec<u8>,
        signature: Result<Signature, Problem>,
        now_ms: i64,
    ) -> Result<Webhook, Problem> {
        let Intake { source, limits, .. } = self;
        if body.len() > limits.max_body_bytes {
            return Err(body_too_large(limits.max_body_bytes));
        }
        signature?.finish()?;
        check_content_type(headers)?;
        let event = top_level(&body).map_err(|error| match error {
            TopLevelError::Json(e) => {
                Problem::bad_request(format!("the body is not valid JSON: {e}"))
            }
            TopLevelError::NotAnObject => Problem::bad_request("the body must be a JSON object"),
        })?;
        let event = source.describe_event(headers, &body, &event)?;
        if event.idempotency_key.len() > MAX_IDEMPOTENCY_KEY_BYTES {
            return Err(Problem::bad_request(format!(
                "the delivery's id is {} bytes; at most {MAX_IDEMPOTENCY_KEY_BYTES} are taken",
                event.idempotency_key.len()
            )));
        }
        Ok(Webhook {
            id: id::webhook_id(&source.origin, &event.idempotency_key),
            origin: source.origin.clone(),
            event_type: event.event_type,
            provider_timestamp: event.provider_timestamp,
            received_at: now_ms,
            idempotency_key: event.idempotency_key,
            headers: headers.allowed(source.scheme.stored_headers()),
            payload: body,
        })
    }
}

/// Every check of a delivery in one call: the origin, the headers, then [`Intake::accept`].
pub fn accept(
    origin: &str,
    headers: &Headers,
    body: &[u8],
    config: &dyn Config,
    now_ms: i64,
) -> Result<Webhook, Problem> {
    let intake = intake(origin, config)?;
    check_headers(headers)?;
    intake.accept(headers, body.to_vec(), config, now_ms)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use base64::Engine;
    use hmac::{Hmac, Mac};
    use sha2::Sha256;

    use super::*;

    const BODY: &[u8] =
        br#"{"scope":"store/order/created","store_id":"1025646","data":{"type":"order","id":250},"hash":"f1c2","created_at":1561479335,"producer":"stores/abc"}"#;

    fn config() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("bigcommerce_secret".to_string(), "s3cret".to_string()),
            ("admin_token".to_string(), "adm1n".to_string()),
        ])
    }

    fn signed(body: &[u8]) -> Headers {
        let mac = Hmac::<Sha256>::new_from_slice(b"s3cret")
            .unwrap()
            .chain_update(body)
            .finalize()
            .into_bytes();
        let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac);
        Headers::new(vec![
            ("Signature".into(), signature.into_bytes()),
            (
                "Content-Type".into(),
                b"application/json; charset=utf-8".to_vec(),
            ),
            ("Cookie".into(), b"nope".to_vec()),
        ])
    }

    #[test]
    fn a_genuine_bigcommerce_delivery_becomes_a_webhook() {
        let webhook = accept("bigcommerce", &signed(BODY), BODY, &config(), 5).unwrap();
        assert_eq!(webhook.id, id::webhook_id("bigcommerce", "f1c2"));
        assert_eq!(webhook.event_type, "store/order/created");
        assert_eq!(webhook.provider_timestamp, Some(1561479335));
        assert_eq!(webhook.received_at, 5);
        assert_eq!(webhook.payload, BODY);
        assert_eq!(
            webhook.headers,
            vec![(
                "content-type".to_string(),
                "application/json; charset=utf-8".to_string()
            )],
            "only allow-listed headers are kept"
        );
    }

    #[test]
    fn refusals_carry_the_right_status() {
        let c = config();
        let status = |origin: &str, headers: &Headers, body: &[u8]| {
            accept(origin, headers, body, &c, 0).unwrap_err().status
        };
        assert_eq!(status("acme", &signed(BODY), BODY), 404);
        assert_eq!(status("bigcommerce", &Headers::default(), BODY), 401);
        assert_eq!(status("bigcommerce", &signed(b"{}"), BODY), 401);
        assert_eq!(status("bigcommerce", &signed(b"{nope"), b"{nope"), 400);
        assert_eq!(status("bigcommerce", &signed(b"[1]"), b"[1]"), 400);
        assert_eq!(
            status("bigcommerce", &signed(b"{}"), b"{}"),
            400,
            "no scope"
        );
        let long_hash = format!(
            r#"{{"scope":"store/order/created","hash":"{}"}}"#,
            "f".repeat(1_025)
        );
        assert_eq!(
            status(
                "bigcommerce",
                &signed(long_hash.as_bytes()),
                long_hash.as_bytes()
            ),
            400,
            "a delivery id too long for the store"
        );
        let big = vec![b' '; CaptureLimits::DEFAULT_MAX_BODY_BYTES + 1];
        assert_eq!(status("bigcommerce", &signed(&big), &big), 413);
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(
            status("bigcommerce", &signed(deep.as_bytes()), deep.as_bytes()),
            400
        );
    }

    #[test]
    fn content_type_must_be_json() {
        let with =
            |value: &str| Headers::new(vec![("Content-Type".into(), value.as_bytes().to_vec())]);
        assert_eq!(check_content_type(&with("application/json")), Ok(()));
        assert_eq!(
            check_content_type(&with("Application/JSON; charset=UTF-8")),
            Ok(())
        );
        assert_eq!(
            check_content_type(&with("application/cloudevents+json")),
            Ok(())
        );
        for bad in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "application/jsonx",
            "",
        ] {
            assert_eq!(
                check_content_type(&with(bad)).unwrap_err().status,
                415,
                "{bad}"
            );
        }
        assert_eq!(
            check_content_type(&Headers::default()).unwrap_err().status,
            415
        );
    }

    #[test]
    fn named_sources_are_served_with_their_own_secret() {
        let c = BTreeMap::from([
            ("sources".to_string(), "acme:bigcommerce".to_string()),
            ("acme_secret".to_string(), "s3cret".to_string()),
        ]);
        let webhook = accept("acme", &signed(BODY), BODY, &c, 0).unwrap();
        assert_eq!(webhook.origin, "acme");
        assert_eq!(webhook.id, id::webhook_id("acme", "f1c2"));
        assert_eq!(
            accept("acme", &signed(BODY), BODY, &config(), 0)
                .unwrap_err()
                .status,
            404
        );
        let broken = BTreeMap::from([("sources".to_string(), "acme".to_string())]);
        assert_eq!(
            accept("acme", &signed(BODY), BODY, &broken, 0)
                .unwrap_err()
                .status,
            503
        );
    }

    #[test]
    fn unknown_origins_are_not_echoed_raw() {
        let err = accept("<script>", &Headers::default(), b"", &config(), 0).unwrap_err();
        assert!(!err.detail.contains('<'), "{}", err.detail);
    }
}
