//! A capture component that misbehaves on purpose, chosen by the request's path:
//!
//! - `/cut/{framing}/{ending}`: answers `200` with a head announcing a 512 KiB JSON body
//!   (`framing` `length`: with its `Content-Length`; `chunked`: without), writes half of it,
//!   then ends as `ending` says: `trap` panics, `loop` spins until the host's deadline,
//!   `unfinished` drops the body unfinished, `leaked` leaks it and returns.
//! - `/whole/{framing}`: the same answer, written whole and finished.
//! - `/stall`: spins until the host's deadline without reading the request or answering.
//! - `/count`: answers how many `/count` requests this instance has served, which only an
//!   instance kept between requests can remember (the inbox's own components keep nothing).

mod bindings {
    inbox_guest::with_shared_interfaces!("capture", "../../../wit");
}

use std::sync::atomic::{AtomicU32, Ordering};

use bindings::exports::wasi::http::incoming_handler::Guest;
use inbox_guest::http::write_all;
use inbox_guest::wasi::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

/// The announced body: one JSON string, long enough to take many writes.
const BODY_BYTES: usize = 512 * 1024;

struct Misbehaving;

bindings::export!(Misbehaving with_types_in bindings);

impl Guest for Misbehaving {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match parts.as_slice() {
            ["cut", framing, ending] => answer(out, framing == &"length", Some(ending)),
            ["whole", framing] => answer(out, framing == &"length", None),
            ["stall"] => spin(),
            ["count"] => count(out),
            _ => {
                let response = OutgoingResponse::new(Fields::new());
                response.set_status_code(404).expect("a valid status");
                let body = response.body().expect("a new response has a body");
                ResponseOutparam::set(out, Ok(response));
                OutgoingBody::finish(body, None).expect("an empty body finishes");
            }
        }
    }
}

static COUNTED: AtomicU32 = AtomicU32::new(0);

/// Answers `200` with the number of `/count` requests this instance served, this one too.
fn count(out: ResponseOutparam) {
    let counted = COUNTED.fetch_add(1, Ordering::Relaxed) + 1;
    let response = OutgoingResponse::new(Fields::new());
    let body = response.body().expect("a new response has a body");
    ResponseOutparam::set(out, Ok(response));
    let stream = body.write().expect("a new body has a stream");
    write_all(&stream, counted.to_string().as_bytes()).expect("the host takes the body");
    drop(stream);
    OutgoingBody::finish(body, None).expect("the whole body was written");
}

/// Sets a `200` head, then writes the body whole, or half of it and ends as `ending` says.
fn answer(out: ResponseOutparam, with_length: bool, ending: Option<&str>) {
    let mut body = vec![b'x'; BODY_BYTES];
    body[0] = b'"';
    body[BODY_BYTES - 1] = b'"';
    let mut headers = vec![("content-type".to_owned(), b"application/json".to_vec())];
    if with_length {
        headers.push((
            "content-length".to_owned(),
            BODY_BYTES.to_string().into_bytes(),
        ));
    }
    let response = OutgoingResponse::new(Fields::from_list(&headers).expect("valid headers"));
    let outgoing = response.body().expect("a new response has a body");
    ResponseOutparam::set(out, Ok(response));
    let stream = outgoing.write().expect("a new body has a stream");
    let written = match ending {
        Some(_) => &body[..BODY_BYTES / 2],
        None => &body[..],
    };
    write_all(&stream, written).expect("the host takes the body");
    drop(stream);
    match ending {
        None => OutgoingBody::finish(outgoing, None).expect("the whole body was written"),
        Some("trap") => panic!("misbehaving capture: trapping mid-body on purpose"),
        Some("loop") => spin(),
        Some("leaked") => std::mem::forget(outgoing),
        Some(_) => drop(outgoing),
    }
}

fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}
