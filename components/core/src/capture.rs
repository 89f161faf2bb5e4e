//! What the capture endpoint decides, given a request: the route, whether the delivery is
//! genuine and well formed, and the webhook to store. The component only moves bytes.

use crate::config::{CaptureLimits, Config, ConfigError, describe};
use crate::listing::{Cursor, DEFAULT_LIMIT, Filter, MAX_LIMIT, Query};
use crate::model::{State, Webhook};
use crate::provider::{Headers, Source};
use crate::{Problem, id};

pub const WEBHOOKS_PATH: &str = "/api/webhooks";
/// How many webhooks are in each state.
pub const COUNTS_PATH: &str = "/api/counts";
/// The seed's demo: sends a signed BigCommerce event to this app's own capture route.
pub const DEMO_PATH: &str = "/demo/send-webhook";
/// The operators' web console: a page and its assets, served by the capture component.
pub const CONSOLE_PATH: &str = "/console";

/// The most request headers, the largest one, and all of them together.
pub const MAX_HEADERS: usize = 100;
pub const MAX_HEADER_BYTES: usize = 8 * 1024;
pub const MAX_TOTAL_HEADER_BYTES: usize = 64 * 1024;

/// Every configuration key the capture path reads, for the built-in sources (a named
/// source in `sources` adds its own `<name>_secret`, ...). Hosts declare these: spin.toml's
/// variables are checked against this list.
pub const CONFIG_KEYS: [&str; 16] = [
    "admin_token",
    "bigcommerce_replay_guard",
    "bigcommerce_secret",
    "bigcommerce_token",
    "bigcommerce_token_header",
    "github_replay_guard",
    "github_secret",
    "max_body_bytes",
    "shopify_replay_guard",
    "shopify_secret",
    "sources",
    "standard_webhooks_replay_guard",
    "standard_webhooks_secret",
    "stripe_replay_guard",
    "stripe_secret",
    "timestamp_tolerance_s",
];

/// Every route the capture component serves, as (method, path with `{variables}`): what a
/// host's router must send to it (template.yaml's HTTP API is checked against this list).
pub const ROUTES: [(&str, &str); 9] = [
    ("POST", "/api/webhooks/{origin}"),
    ("GET", "/api/webhooks/{id}"),
    ("GET", "/api/webhooks/{id}/payload"),
    ("GET", WEBHOOKS_PATH),
    ("POST", "/api/webhooks/{id}/replay"),
    ("GET", COUNTS_PATH),
    ("POST", DEMO_PATH),
    ("GET", CONSOLE_PATH),
    ("GET", "/console/{asset}"),
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `POST /api/webhooks/{origin}`
    Capture { origin: String },
    /// `GET /api/webhooks/{id}` (admin): everything but the payload.
    Status { id: String },
    /// `GET /api/webhooks/{id}/payload` (admin): the raw body.
    Payload { id: String },
    /// `GET /api/webhooks?status=&origin=&type=&search=&after=&limit=` (admin)
    List { query: Query },
    /// `POST /api/webhooks/{id}/replay` (admin)
    Replay { id: String },
    /// `GET /api/counts?origin=&type=&search=` (admin)
    Counts { filter: Filter },
    /// `POST /demo/send-webhook`
    SendDemo,
    /// `GET /console` and `GET /console/{asset}`: public files; the page asks for the
    /// admin token and sends it with every API call.
    Console { asset: String },
}

pub fn route(method: &str, path_with_query: &str) -> Result<Route, Problem> {
    let (path, query) = path_with_query
        .split_once('?')
        .unwrap_or((path_with_query, ""));
    let not_found = || Problem::not_found(format!("no route for {}", printable(path)));
    let allowed = |allow: &'static str, how: &str| {
        Problem::method_not_allowed(
            allow,
            format!("{} is not allowed here; use {how}", printable(method)),
        )
    };
    let only = |wanted: &'static str, route: Route| {
        if method == wanted {
            Ok(route)
        } else {
            Err(allowed(wanted, wanted))
        }
    };
    if path == DEMO_PATH {
        return only("POST", Route::SendDemo);
    }
    if path == COUNTS_PATH {
        let filter = Parameters::parse(query, &["origin", "type", "search"])?.filter();
        return only("GET", Route::Counts { filter });
    }
    if path == CONSOLE_PATH || path == "/console/" {
        return only(
            "GET",
            Route::Console {
                asset: String::new(),
            },
        );
    }
    if let Some(asset) = path.strip_prefix("/console/") {
        return only(
            "GET",
            Route::Console {
                asset: asset.to_owned(),
            },
        );
    }
    let rest = path.strip_prefix(WEBHOOKS_PATH).ok_or_else(not_found)?;
    let segments: Vec<&str> = match rest {
        "" => Vec::new(),
        rest => rest
            .strip_prefix('/')
            .ok_or_else(not_found)?
            .split('/')
            .collect(),
    };
    match (method, segments.as_slice()) {
        ("GET", []) => list_route(query),
        (_, []) => Err(allowed("GET", "GET")),
        ("POST", [origin]) if !origin.is_empty() => Ok(Route::Capture {
            origin: (*origin).to_owned(),
        }),
        ("GET", [id]) if id::is_webhook_id(id) => Ok(Route::Status {
            id: (*id).to_owned(),
        }),
        ("GET", [_]) => Err(Problem::not_found("no webhook has this id")),
        (_, [segment]) if !segment.is_empty() => {
            Err(allowed("GET, POST", "POST to deliver, GET to read"))
        }
        ("POST", [id, "replay"]) if id::is_webhook_id(id) => Ok(Route::Replay {
            id: (*id).to_owned(),
        }),
        (_, [id, "replay"]) if id::is_webhook_id(id) => Err(allowed("POST", "POST")),
        ("GET", [id, "payload"]) if id::is_webhook_id(id) => Ok(Route::Payload {
            id: (*id).to_owned(),
        }),
        (_, [id, "payload"]) if id::is_webhook_id(id) => Err(allowed("GET", "GET")),
        _ => Err(not_found()),
    }
}

fn list_route(query: &str) -> Result<Route, Problem> {
    let parameters = Parameters::parse(
        query,
        &["status", "origin", "type", "search", "after", "limit"],
    )?;
    let state = parameters
        .get("status")
        .map(|value| {
            value.parse::<State>().map_err(|_| {
                let known: Vec<_> = State::ALL.iter().map(|s| s.as_str()).collect();
                Problem::bad_request(format!(
                    "unknown status `{}`; expected one of {}",
                    printable(value),
                    known.join(", ")
                ))
            })
        })
        .transpose()?;
    let after = parameters
        .get("after")
        .map(|value| value.parse::<Cursor>().map_err(Problem::bad_request))
        .transpose()?;
    let limit = match parameters.get("limit") {
        None => DEFAULT_LIMIT,
        Some(value) => value
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| Problem::bad_request(format!("limit must be 1 to {MAX_LIMIT}")))?,
    };
    Ok(Route::List {
        query: Query {
            filter: parameters.filter(),
            state,
            after,
            limit,
        },
    })
}

/// A query string's parameters, each named at most once and among those a route takes.
struct Parameters(Vec<(String, String)>);

impl Parameters {
    fn parse(query: &str, known: &[&str]) -> Result<Parameters, Problem> {
        let mut seen: Vec<(String, String)> = Vec::new();
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            if !known.contains(&name.as_ref()) {
                return Err(Problem::bad_request(format!(
                    "unknown query parameter `{}`; use {}",
                    printable(&name),
                    known.join(", ")
                )));
            }
            if seen.iter().any(|(n, _)| *n == name) {
                return Err(Problem::bad_request(format!(
                    "query parameter `{name}` is given twice"
                )));
            }
            seen.push((name.into_owned(), value.into_owned()));
        }
        Ok(Parameters(seen))
    }

    /// A parameter's value; an empty one counts as not given (a form's blank field).
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, v)| n == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    fn filter(&self) -> Filter {
        Filter {
            origin: self.get("origin").map(str::to_owned),
            event_type: self.get("type").map(str::to_owned),
            search: self.get("search").map(str::to_owned),
        }
    }
}

/// The query string of the list's next page: the same list, from `after`.
pub fn next_page(query: &Query, after: &Cursor) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    if let Some(state) = query.state {
        out.append_pair("status", state.as_str());
    }
    for (name, value) in [
        ("origin", &query.filter.origin),
        ("type", &query.filter.event_type),
        ("search", &query.filter.search),
    ] {
        if let Some(value) = value {
            out.append_pair(name, value);
        }
    }
    out.append_pair("after", &after.to_string());
    out.append_pair("limit", &query.limit.to_string());
    format!("{WEBHOOKS_PATH}?{}", out.finish())
}

/// Refuses too many or too large headers before anything else is read (431).
pub fn check_headers(headers: &Headers) -> Result<(), Problem> {
    let too_large = |detail: String| Problem::new(431, "Request Header Fields Too Large", detail);
    if headers.len() > MAX_HEADERS {
        return Err(too_large(format!("more than {MAX_HEADERS} headers")));
    }
    let mut total = 0;
    for (name, value) in headers.iter() {
        let size = name.len() + value.len();
        if size > MAX_HEADER_BYTES {
            return Err(too_large(format!(
                "header `{}` is over {MAX_HEADER_BYTES} bytes",
                printable(name)
            )));
        }
        total += size;
    }
    if total > MAX_TOTAL_HEADER_BYTES {
        return Err(too_large(format!(
            "the headers are over {MAX_TOTAL_HEADER_BYTES} bytes together"
        )));
    }
    Ok(())
}

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
    /// The webhook to store for a delivery whose headers passed [`check_headers`], or why
    /// it is refused. The signature is checked before the body is parsed, so nothing
    /// unauthenticated reaches the JSON parser.
    /// The webhook keeps `body` as its payload, without a copy.
    pub fn accept(
        &self,
        headers: &Headers,
        body: Vec<u8>,
        config: &dyn Config,
        now_ms: i64,
    ) -> Result<Webhook, Problem> {
        let Intake { source, limits, .. } = self;
        if body.len() > limits.max_body_bytes {
            return Err(body_too_large(limits.max_body_bytes));
        }
        source.verify(
            headers,
            &body,
            config,
            now_ms,
            limits.timestamp_tolerance.as_secs(),
        )?;
        check_content_type(headers)?;
        let event: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| Problem::bad_request(format!("the body is not valid JSON: {e}")))?;
        if !event.is_object() {
            return Err(Problem::bad_request("the body must be a JSON object"));
        }
        let event = source.describe_event(headers, &body, &event)?;
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

/// Caller-supplied text as it may be echoed back: short, and nothing but plain characters.
fn printable(text: &str) -> String {
    text.chars()
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

    /// A configuration that notes every key asked for.
    struct Recording(
        BTreeMap<String, String>,
        std::cell::RefCell<std::collections::BTreeSet<String>>,
    );

    impl Config for Recording {
        fn get(&self, key: &str) -> Option<String> {
            self.1.borrow_mut().insert(key.to_owned());
            self.0.get(key).cloned()
        }
    }

    #[test]
    fn routes_lists_every_route_the_component_serves() {
        // Exhaustive: a new kind of route does not compile until it is counted here.
        let kind = |route: &Route| match route {
            Route::Capture { .. } => 0,
            Route::Status { .. } => 1,
            Route::Payload { .. } => 2,
            Route::List { .. } => 3,
            Route::Replay { .. } => 4,
            Route::Counts { .. } => 5,
            Route::SendDemo => 6,
            Route::Console { asset } if asset.is_empty() => 7,
            Route::Console { .. } => 8,
        };
        let id = id::webhook_id("stripe", "evt_1");
        let mut kinds: Vec<usize> = ROUTES
            .iter()
            .map(|(method, path)| {
                let path = path
                    .replace("{origin}", "stripe")
                    .replace("{id}", &id)
                    .replace("{asset}", "app.js");
                let served = route(method, &path);
                kind(&served.unwrap_or_else(|p| panic!("{method} {path}: {p:?}")))
            })
            .collect();
        kinds.sort();
        assert_eq!(kinds, [0, 1, 2, 3, 4, 5, 6, 7, 8]);
    }

    #[test]
    fn config_keys_lists_every_key_the_capture_path_reads() {
        let mut values: BTreeMap<String, String> = CONFIG_KEYS
            .iter()
            .filter(|key| key.ends_with("_secret") || key.ends_with("_token"))
            .map(|key| (key.to_string(), "s3cret".to_string()))
            .collect();
        values.insert("standard_webhooks_secret".into(), "whsec_czNjcmV0".into());
        let config = Recording(values, Default::default());
        let headers = Headers::new(Vec::new());
        for scheme in crate::provider::Scheme::ALL {
            let intake = intake(scheme.name(), &config).unwrap();
            assert!(intake.accept(&headers, b"{}".to_vec(), &config, 0).is_err());
        }
        // An origin that is not built in is looked up among the named sources.
        assert_eq!(intake("acme", &config).err().map(|p| p.status), Some(404));
        assert!(authorize_admin(&headers, &config).is_err());
        let read: Vec<String> = config.1.into_inner().into_iter().collect();
        assert_eq!(read, CONFIG_KEYS);
    }

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
            Ok(Route::Status { id: id.clone() })
        );
        assert_eq!(
            route("GET", "/api/webhooks/../../x").unwrap_err().status,
            404
        );
        assert_eq!(route("GET", "/api/webhooks/").unwrap_err().status, 404);
        assert_eq!(route("POST", "/api/webhooks/a/b").unwrap_err().status, 404);
        assert_eq!(route("GET", "/").unwrap_err().status, 404);
        assert_eq!(route("POST", "/demo/send-webhook"), Ok(Route::SendDemo));
        assert_eq!(route("GET", "/demo/send-webhook").unwrap_err().status, 405);
        assert_eq!(
            route("POST", "/demo/send-webhook/x").unwrap_err().status,
            404
        );
        assert_eq!(
            route("DELETE", "/api/webhooks/stripe").unwrap_err().status,
            405
        );
        assert_eq!(
            route("GET", &format!("/api/webhooks/{id}/payload")),
            Ok(Route::Payload { id: id.clone() })
        );
        assert_eq!(
            route("POST", &format!("/api/webhooks/{id}/payload"))
                .unwrap_err()
                .status,
            405
        );
        assert_eq!(
            route("GET", "/console"),
            Ok(Route::Console {
                asset: String::new()
            })
        );
        assert_eq!(route("POST", "/console/app.js").unwrap_err().status, 405);
        // Each 405 names what its own route allows.
        let allow = |method: &str, path: &str| route(method, path).unwrap_err().allow;
        assert_eq!(allow("GET", "/demo/send-webhook"), Some("POST"));
        assert_eq!(allow("POST", "/api/webhooks"), Some("GET"));
        assert_eq!(allow("DELETE", "/api/webhooks/stripe"), Some("GET, POST"));
        assert_eq!(
            allow("GET", &format!("/api/webhooks/{id}/replay")),
            Some("POST")
        );
        assert_eq!(allow("POST", "/console"), Some("GET"));
    }

    #[test]
    fn lists_take_filters_a_cursor_and_a_limit() {
        let id = id::webhook_id("a", "b");
        let path = format!(
            "/api/webhooks?status=operator_required&origin=bigcommerce&type=store%2Forder%2Fcreated&search=&after=17.{id}&limit=20"
        );
        let Ok(Route::List { query }) = route("GET", &path) else {
            panic!("{path} is a list");
        };
        assert_eq!(query.state, Some(State::OperatorRequired));
        assert_eq!(
            query.filter.event_type.as_deref(),
            Some("store/order/created")
        );
        // A blank field is no filter.
        assert_eq!(query.filter.search, None);
        assert_eq!(query.after.as_ref().map(|c| c.received_at), Some(17));
        assert_eq!(query.limit, 20);
        // The next page's link asks for the same list from its cursor.
        let next = next_page(
            &query,
            &Cursor {
                received_at: 9,
                id: id.clone(),
            },
        );
        let Ok(Route::List { query: again }) = route("GET", &next) else {
            panic!("{next} is a list");
        };
        assert_eq!(again.filter, query.filter);
        assert_eq!(again.after.map(|c| c.received_at), Some(9));
        for bad in [
            "status=done",
            "limit=0",
            "limit=1001",
            "after=x",
            "origin=a&origin=b",
            "token=x",
        ] {
            let refused = route("GET", &format!("/api/webhooks?{bad}")).unwrap_err();
            assert_eq!(refused.status, 400, "{bad}");
        }
        assert_eq!(
            route("GET", "/api/counts?origin=stripe"),
            Ok(Route::Counts {
                filter: Filter {
                    origin: Some("stripe".into()),
                    ..Filter::default()
                }
            })
        );
        assert_eq!(
            route("GET", "/api/counts?status=failed")
                .unwrap_err()
                .status,
            400
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
        let big = vec![b' '; 256 * 1024 + 1];
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
    fn too_many_or_too_large_headers_are_431() {
        let many = Headers::new(
            (0..=MAX_HEADERS)
                .map(|i| (format!("x-{i}"), b"1".to_vec()))
                .collect(),
        );
        assert_eq!(check_headers(&many).unwrap_err().status, 431);
        let large = Headers::new(vec![("x".into(), vec![b'a'; MAX_HEADER_BYTES])]);
        assert_eq!(check_headers(&large).unwrap_err().status, 431);
        let total = Headers::new(
            (0..9)
                .map(|i| (format!("x-{i}"), vec![b'a'; 8_000]))
                .collect(),
        );
        assert_eq!(check_headers(&total).unwrap_err().status, 431);
        assert_eq!(check_headers(&Headers::default()), Ok(()));
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
