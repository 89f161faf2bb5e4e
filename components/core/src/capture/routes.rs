//! Which route a request is, from its method and path (with the route's query parsed), and
//! what each route allows when the method is wrong (405 with its own `Allow`).

use super::printable::printable;
use super::query::Parameters;
use crate::listing::{Cursor, DEFAULT_LIMIT, Filter, MAX_LIMIT, Query};
use crate::model::State;
use crate::{Problem, id};

pub const WEBHOOKS_PATH: &str = "/api/webhooks";
/// How many webhooks are in each state.
pub const COUNTS_PATH: &str = "/api/counts";
/// The destinations processors deliver to: their breakers and pauses.
pub const DESTINATIONS_PATH: &str = "/api/destinations";
/// The seed's demo: sends a signed BigCommerce event to this app's own capture route.
pub const DEMO_PATH: &str = "/demo/send-webhook";
/// The operators' web console: a page and its assets, served by the capture component.
pub const CONSOLE_PATH: &str = "/console";

/// Every route the capture component serves, as (method, path with `{variables}`): what a
/// host's router must send to it (template.yaml's HTTP API is checked against this list).
pub const ROUTES: [(&str, &str); 12] = [
    ("POST", "/api/webhooks/{origin}"),
    ("GET", "/api/webhooks/{id}"),
    ("GET", "/api/webhooks/{id}/payload"),
    ("GET", WEBHOOKS_PATH),
    ("POST", "/api/webhooks/{id}/replay"),
    ("GET", COUNTS_PATH),
    ("GET", DESTINATIONS_PATH),
    ("POST", "/api/destinations/{name}/pause"),
    ("POST", "/api/destinations/{name}/resume"),
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
    /// `GET /api/destinations` (admin)
    Destinations,
    /// `POST /api/destinations/{name}/pause` and `/resume` (admin); the name
    /// percent-encoded, as it holds `:` and `/`.
    Pause { name: String, paused: bool },
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
    if let Some(rest) = path.strip_prefix(DESTINATIONS_PATH) {
        return destination_route(method, rest).ok_or_else(not_found)?;
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

/// The routes under [`DESTINATIONS_PATH`], from what follows it; `None` for no route.
fn destination_route(method: &str, rest: &str) -> Option<Result<Route, Problem>> {
    let post = |route: Route| match method {
        "POST" => Ok(route),
        _ => Err(Problem::method_not_allowed(
            "POST",
            format!("{} is not allowed here; use POST", printable(method)),
        )),
    };
    if rest.is_empty() {
        return Some(match method {
            "GET" => Ok(Route::Destinations),
            _ => Err(Problem::method_not_allowed(
                "GET",
                format!("{} is not allowed here; use GET", printable(method)),
            )),
        });
    }
    let (name, action) = rest.strip_prefix('/')?.split_once('/')?;
    let paused = match action {
        "pause" => true,
        "resume" => false,
        _ => return None,
    };
    let name = percent_encoding::percent_decode_str(name)
        .decode_utf8()
        .ok()?;
    if name.is_empty() {
        return None;
    }
    Some(post(Route::Pause {
        name: name.into_owned(),
        paused,
    }))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::paging::next_page;

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
            Route::Destinations => 9,
            Route::Pause { paused: true, .. } => 10,
            Route::Pause { paused: false, .. } => 11,
        };
        let id = id::webhook_id("stripe", "evt_1");
        let mut kinds: Vec<usize> = ROUTES
            .iter()
            .map(|(method, path)| {
                let path = path
                    .replace("{origin}", "stripe")
                    .replace("{id}", &id)
                    .replace("{asset}", "app.js")
                    .replace("{name}", "https%3A%2F%2Fapi.example.com%3A443");
                let served = route(method, &path);
                kind(&served.unwrap_or_else(|p| panic!("{method} {path}: {p:?}")))
            })
            .collect();
        kinds.sort();
        assert_eq!(kinds, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
        assert_eq!(
            route(
                "POST",
                "/api/destinations/https%3A%2F%2Fapi.example.com%3A443/pause"
            ),
            Ok(Route::Pause {
                name: "https://api.example.com:443".into(),
                paused: true
            })
        );
        assert_eq!(
            route("GET", "/api/destinations/x/pause")
                .unwrap_err()
                .status,
            405
        );
        assert_eq!(route("POST", "/api/destinations").unwrap_err().status, 405);
        assert_eq!(
            route("POST", "/api/destinations/x/stop")
                .unwrap_err()
                .status,
            404
        );
        assert_eq!(
            route("POST", "/api/destinations//pause")
                .unwrap_err()
                .status,
            404
        );
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
}
