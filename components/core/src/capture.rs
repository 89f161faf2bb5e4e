//! What the capture endpoint decides, given a request: the route, whether the delivery is
//! genuine and well formed, and the webhook to store. The component only moves bytes.

use crate::config::{CaptureLimits, Config, describe};
use crate::model::Webhook;
use crate::provider::{Headers, Provider};
use crate::{Problem, id};

pub const WEBHOOKS_PATH: &str = "/api/webhooks/";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `POST /api/webhooks/{origin}`
    Capture { origin: String },
    /// `GET /api/webhooks/{id}`
    Status { id: String },
}

pub fn route(method: &str, path_with_query: &str) -> Result<Route, Problem> {
    let path = path_with_query
        .split_once('?')
        .map_or(path_with_query, |(path, _)| path);
    let segment = path
        .strip_prefix(WEBHOOKS_PATH)
        .filter(|s| !s.is_empty() && !s.contains('/'))
        .ok_or_else(|| Problem::not_found(format!("no route for {path}")))?;
    match method {
        "POST" => Ok(Route::Capture {
            origin: segment.to_owned(),
        }),
        "GET" if id::is_webhook_id(segment) => Ok(Route::Status {
            id: segment.to_owned(),
        }),
        "GET" => Err(Problem::not_found("no webhook has this id")),
        _ => Err(Problem::method_not_allowed(format!(
            "{method} is not allowed here: POST delivers a webhook, GET reads one"
        ))),
    }
}

/// The webhook to store for a delivery, or why it is refused. Signatures are checked before
/// the body is parsed, so nothing unauthenticated reaches the JSON parser.
pub fn accept(
    origin: &str,
    headers: &Headers,
    body: &[u8],
    config: &dyn Config,
    now_ms: i64,
) -> Result<Webhook, Problem> {
    let provider = Provider::for_origin(origin)
        .ok_or_else(|| Problem::not_found(format!("unknown origin `{}`", printable(origin))))?;
    let limits = CaptureLimits::from_config(config)
        .map_err(|e| Problem::unavailable(format!("the inbox is misconfigured: {e}")))?;
    if body.len() > limits.max_body_bytes {
        return Err(body_too_large(limits.max_body_bytes));
    }
    provider.verify(
        origin,
        headers,
        body,
        config,
        now_ms,
        limits.timestamp_tolerance.as_secs(),
    )?;
    let event: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| Problem::bad_request(format!("the body is not valid JSON: {e}")))?;
    if !event.is_object() {
        return Err(Problem::bad_request("the body must be a JSON object"));
    }
    let event = provider.describe_event(body, &event)?;
    Ok(Webhook {
        id: id::webhook_id(origin, &event.idempotency_key),
        origin: origin.to_owned(),
        event_type: event.event_type,
        provider_timestamp: event.provider_timestamp,
        received_at: now_ms,
        idempotency_key: event.idempotency_key,
        headers: headers.allowed(provider.stored_headers()),
        payload: body.to_vec(),
    })
}

pub fn body_too_large(limit: usize) -> Problem {
    Problem::too_large(format!(
        "the body is over the {limit} byte limit ({})",
        describe("max_body_bytes")
    ))
}

/// Checks `Authorization: Bearer <admin_token>` for the admin endpoints. Without a
/// configured token they are closed (403); a missing or wrong token is a 401.
pub fn authorize_admin(headers: &Headers, config: &dyn Config) -> Result<(), Problem> {
    let tokens = crate::config::secrets(config, "admin_token");
    if tokens.is_empty() {
        return Err(Problem::new(
            403,
            "Forbidden",
            format!(
                "the admin endpoints are closed until {} is set",
                describe("admin_token")
            ),
        ));
    }
    let presented = headers
        .single("authorization")?
        .and_then(|value| value.strip_prefix("Bearer "))
        .ok_or_else(|| {
            Problem::unauthorized("an `Authorization: Bearer` admin token is required")
        })?;
    if tokens
        .iter()
        .any(|token| crate::provider::secret_matches(token, presented))
    {
        Ok(())
    } else {
        Err(Problem::unauthorized("the admin token is not valid"))
    }
}

/// An origin as it may be echoed back: short, and nothing but plain characters.
fn printable(origin: &str) -> String {
    origin
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '?'
            }
        })
        .collect()
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
            ("Content-Type".into(), b"application/json".to_vec()),
            ("Cookie".into(), b"nope".to_vec()),
        ])
    }

    #[test]
    fn routes() {
        let id = id::webhook_id("a", "b");
        assert_eq!(
            route("POST", "/api/webhooks/stripe?x=1"),
            Ok(Route::Capture {
                origin: "stripe".into()
            })
        );
        assert_eq!(
            route("GET", &format!("/api/webhooks/{id}")),
            Ok(Route::Status { id })
        );
        assert_eq!(
            route("GET", "/api/webhooks/../../x").unwrap_err().status,
            404
        );
        assert_eq!(route("GET", "/api/webhooks/").unwrap_err().status, 404);
        assert_eq!(route("POST", "/api/webhooks/a/b").unwrap_err().status, 404);
        assert_eq!(route("GET", "/").unwrap_err().status, 404);
        assert_eq!(
            route("DELETE", "/api/webhooks/stripe").unwrap_err().status,
            405
        );
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
            vec![("content-type".to_string(), "application/json".to_string())],
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
        let big = vec![b' '; 256 * 1024 + 1];
        assert_eq!(status("bigcommerce", &signed(&big), &big), 413);
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(
            status("bigcommerce", &signed(deep.as_bytes()), deep.as_bytes()),
            400
        );
    }

    #[test]
    fn unknown_origins_are_not_echoed_raw() {
        let err = accept("<script>", &Headers::default(), b"", &config(), 0).unwrap_err();
        assert!(!err.detail.contains('<'), "{}", err.detail);
    }

    #[test]
    fn admin_endpoints_need_the_configured_bearer_token() {
        let bearer = |v: &str| Headers::new(vec![("Authorization".into(), v.as_bytes().to_vec())]);
        assert_eq!(authorize_admin(&bearer("Bearer adm1n"), &config()), Ok(()));
        assert_eq!(
            authorize_admin(&bearer("Bearer nope"), &config())
                .unwrap_err()
                .status,
            401
        );
        assert_eq!(
            authorize_admin(&bearer("adm1n"), &config())
                .unwrap_err()
                .status,
            401
        );
        assert_eq!(
            authorize_admin(&Headers::default(), &config())
                .unwrap_err()
                .status,
            401
        );
        let closed = authorize_admin(&bearer("Bearer adm1n"), &BTreeMap::new()).unwrap_err();
        assert_eq!(closed.status, 403);
        assert!(closed.detail.contains("INBOX_ADMIN_TOKEN"));
    }
}
