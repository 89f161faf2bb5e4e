//! The capture component: `POST /api/webhooks/{origin}`, the admin API and the console.
//!
//! All decisions are the core's; this file turns wasi:http requests into calls to it and
//! to the host's store, and the answers back into responses.

mod console;
mod response;

mod bindings {
    inbox_guest::with_shared_interfaces!("capture", "../../wit");
}

use bindings::exports::wasi::http::incoming_handler::Guest;
use bindings::webhooks::inbox::store;
use inbox_core::capture::{self, Route};
use inbox_core::clock::now_ms;
use inbox_core::provider::Headers;
use inbox_core::{Problem, Webhook};
use inbox_guest::config::WasiConfig;
use inbox_guest::http;
use inbox_guest::wasi::http::types::{IncomingBody, IncomingRequest, Method, ResponseOutparam};
use inbox_guest::wasi::io::streams::StreamError;
use response::Response;

struct Component;

bindings::export!(Component with_types_in bindings);

impl Guest for Component {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let response = match serve(request) {
            Ok(response) => response,
            Err(problem) => Response::problem(&problem),
        };
        response.send(response_out);
    }
}

fn serve(request: IncomingRequest) -> Result<Response, Problem> {
    let method = method_name(&request.method());
    let path = request.path_with_query().unwrap_or_default();
    let headers = Headers::new(request.headers().entries());
    // The Host the request was sent to: wasi-http gives it as the authority (and keeps
    // the Host header itself from the component). Admin requests are checked against it.
    let host = request.authority();
    let host = host.as_deref();
    let route = capture::route(&method, &path)?;
    capture::check_headers(&headers)?;
    match route {
        Route::Capture { origin } => {
            // An unknown origin is refused before its body is read.
            let intake = capture::intake(&origin, &WasiConfig)?;
            // Verified as it arrives: a 25 MB body is not read a second time.
            let mut signature = intake.signature(&headers, &WasiConfig, now_ms());
            let body = read_body(&request, &headers, intake.limits.max_body_bytes, |chunk| {
                if let Ok(signature) = &mut signature {
                    signature.update(chunk);
                }
            })?;
            let webhook = intake.accept_signed(&headers, body, signature, now_ms())?;
            store_webhook(webhook, intake.refuse_replayed_body)
        }
        Route::Status { id } => {
            capture::authorize_admin(host, &headers, &WasiConfig)?;
            let details = store::get_details(&id)
                .map_err(store_problem)?
                .ok_or_else(|| Problem::not_found("no webhook has this id"))?;
            Ok(Response::json(200, &details_from_wit(details)))
        }
        Route::Payload { id } => {
            capture::authorize_admin(host, &headers, &WasiConfig)?;
            let webhook = store::get_webhook(&id)
                .map_err(store_problem)?
                .ok_or_else(|| Problem::not_found("no webhook has this id"))?;
            Ok(Response::payload(webhook_from_wit(webhook)))
        }
        Route::List { query } => {
            capture::authorize_admin(host, &headers, &WasiConfig)?;
            let page = store::list_webhooks(&query_to_wit(query.clone())).map_err(store_problem)?;
            let page = page_from_wit(page);
            let mut response = Response::json(200, &page.webhooks);
            if let Some(next) = &page.next {
                // RFC 8288, as GitHub pages its API: the body stays a plain array.
                let link = format!("<{}>; rel=\"next\"", capture::next_page(&query, next));
                response.headers.push(("link", link.into_bytes()));
            }
            Ok(response)
        }
        Route::Counts { filter } => {
            capture::authorize_admin(host, &headers, &WasiConfig)?;
            let counts = store::count_webhooks(&filter_to_wit(filter)).map_err(store_problem)?;
            Ok(Response::json(200, &counts_from_wit(counts)))
        }
        Route::Replay { id } => {
            capture::authorize_admin(host, &headers, &WasiConfig)?;
            let status = store::replay(&id).map_err(store_problem)?;
            let state = state_from_wit(status.state);
            Ok(Response::json(
                200,
                &serde_json::json!({ "id": id, "status": state }),
            ))
        }
        Route::Destinations => {
            capture::authorize_admin(host, &headers, &WasiConfig)?;
            let destinations = store::list_destinations().map_err(store_problem)?;
            let views: Vec<_> = destinations.into_iter().map(destination_from_wit).collect();
            Ok(Response::json(200, &views))
        }
        Route::Pause { name, paused } => {
            capture::authorize_admin(host, &headers, &WasiConfig)?;
            let destination = store::pause_destination(&name, paused).map_err(store_problem)?;
            Ok(Response::json(200, &destination_from_wit(destination)))
        }
        Route::Console { asset } => console::asset(&asset),
        Route::SendDemo => {
            capture::authorize_demo(host, &headers, &WasiConfig)?;
            send_demo()
        }
    }
}

/// The seed's demo sender: a fresh, signed BigCommerce `store/order/created` POSTed to
/// this app's own capture route, whose answer it passes on. `self.alt` is the authority
/// Spin (and the native host) take for the app itself.
fn send_demo() -> Result<Response, Problem> {
    let secret = inbox_core::config::secrets(&WasiConfig, "bigcommerce_secret")
        .into_iter()
        .next()
        .ok_or_else(|| {
            Problem::unavailable(format!(
                "the demo signs with the BigCommerce secret: set {}",
                inbox_core::config::describe("bigcommerce_secret")
            ))
        })?;
    let random = bindings::wasi::random::random::get_random_bytes(20);
    let hash: String = random[..16].iter().map(|b| format!("{b:02x}")).collect();
    let order_id = u32::from_le_bytes([random[16], random[17], random[18], random[19]]) % 100_000;
    let (body, signature) =
        inbox_core::provider::demo_delivery(&secret, &hash, order_id, now_ms() / 1_000);
    let request = http::Request {
        method: Method::Post,
        https: false,
        authority: SELF_AUTHORITY,
        path_with_query: "/api/webhooks/bigcommerce",
        headers: vec![
            ("content-type".into(), b"application/json".to_vec()),
            ("signature".into(), signature.into_bytes()),
        ],
        body: &body,
        timeout: None,
    };
    let failed = |reason: String| {
        eprintln!("capture: the demo delivery failed: {reason}");
        Problem::unavailable("the demo delivery could not be sent to the capture route")
    };
    let answer = http::send(&request, usize::MAX).map_err(failed)?;
    let content_type = answer.header("content-type").unwrap_or_default();
    let content_type = if content_type.starts_with(Problem::CONTENT_TYPE) {
        Problem::CONTENT_TYPE
    } else {
        "application/json"
    };
    // What the capture route's answer says of itself (Retry-After, WWW-Authenticate) is
    // the demo's answer too.
    let relayed: Vec<_> = RELAYED_HEADERS
        .into_iter()
        .filter_map(|name| Some((name, answer.header(name)?.into_bytes())))
        .collect();
    let mut response = Response::new(answer.status, content_type, answer.body.map_err(failed)?);
    response.headers = relayed;
    Ok(response)
}

/// The headers of the capture route's answer the demo route passes on.
const RELAYED_HEADERS: [&str; 3] = ["retry-after", "www-authenticate", "allow"];

/// The authority Spin (and the native host) read as the app itself.
const SELF_AUTHORITY: &str = "self.alt";

fn store_webhook(webhook: Webhook, refuse_replayed_body: bool) -> Result<Response, Problem> {
    let id = webhook.id.clone();
    let stored = store::capture(&webhook_to_wit(webhook), refuse_replayed_body);
    let (code, id, status, duplicate) = match stored.map_err(store_problem)? {
        store::CaptureOutcome::Stored(status) => (202, id, status, false),
        store::CaptureOutcome::Duplicate(existing) => (200, existing.id, existing.status, true),
    };
    let state = state_from_wit(status.state);
    Ok(Response::json(
        code,
        &serde_json::json!({ "id": id, "status": state, "duplicate": duplicate }),
    ))
}

/// Reads the body, refusing it as soon as it passes `limit` (nothing past the limit is read),
/// each piece handed to `arrived` as it comes.
fn read_body(
    request: &IncomingRequest,
    headers: &Headers,
    limit: usize,
    mut arrived: impl FnMut(&[u8]),
) -> Result<Vec<u8>, Problem> {
    let declared = headers
        .single("content-length")?
        .map(|len| {
            len.parse::<u64>()
                .map_err(|_| Problem::bad_request("Content-Length is not a number"))
        })
        .transpose()?;
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(capture::body_too_large(limit));
    }
    let body = request
        .consume()
        .map_err(|()| Problem::bad_request("the request body was already consumed"))?;
    let stream = body
        .stream()
        .map_err(|()| Problem::bad_request("the request body cannot be read"))?;
    // Room for the whole body at once when its length is declared: no copy on growing.
    let mut bytes = Vec::with_capacity(declared.map_or(0, |len| len as usize));
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => {
                if bytes.len() + chunk.len() > limit {
                    return Err(capture::body_too_large(limit));
                }
                arrived(&chunk);
                if bytes.is_empty() && bytes.capacity() <= chunk.len() {
                    bytes = chunk;
                } else {
                    bytes.extend_from_slice(&chunk);
                }
            }
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(error)) => {
                return Err(Problem::bad_request(format!(
                    "the request body could not be read: {}",
                    error.to_debug_string()
                )));
            }
        }
    }
    drop(stream);
    IncomingBody::finish(body);
    Ok(bytes)
}

fn store_problem(error: store::StoreError) -> Problem {
    match error {
        store::StoreError::Unavailable(detail) => {
            eprintln!("capture: store unavailable: {detail}");
            Problem::unavailable("the inbox cannot store webhooks right now; retry later")
        }
        store::StoreError::TooLarge(detail) => Problem::too_large(detail),
        store::StoreError::NotFound => Problem::not_found("no webhook has this id"),
        store::StoreError::Conflict(detail) => Problem::new(409, "Conflict", detail),
    }
}

fn method_name(method: &Method) -> String {
    match method {
        Method::Get => "GET".into(),
        Method::Head => "HEAD".into(),
        Method::Post => "POST".into(),
        Method::Put => "PUT".into(),
        Method::Delete => "DELETE".into(),
        Method::Connect => "CONNECT".into(),
        Method::Options => "OPTIONS".into(),
        Method::Trace => "TRACE".into(),
        Method::Patch => "PATCH".into(),
        Method::Other(other) => other.clone(),
    }
}

inbox_core::wit_conversions!(bindings::webhooks::inbox::types);
inbox_core::destination_conversions!(bindings::webhooks::inbox::store);
