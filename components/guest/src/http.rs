//! One HTTP request over `wasi:http/outgoing-handler`, waiting for its answer: what the
//! capture component's demo, the processor and the DynamoDB store component send.

use std::time::Duration;

use crate::wasi::http::outgoing_handler;
use crate::wasi::http::types::{
    Fields, IncomingBody, IncomingResponse, Method, OutgoingBody, OutgoingRequest, RequestOptions,
    Scheme,
};
use crate::wasi::io::streams::{OutputStream, StreamError};

/// The most `blocking-write-and-flush` takes in one call (wasi:io/streams).
const MAX_WRITE: usize = 4096;

/// Writes all of `bytes` to `stream`, in pieces a WASI output stream accepts: one call with
/// more than 4,096 bytes fails, and the body is cut off.
pub fn write_all(stream: &OutputStream, bytes: &[u8]) -> Result<(), StreamError> {
    for chunk in bytes.chunks(MAX_WRITE) {
        stream.blocking_write_and_flush(chunk)?;
    }
    Ok(())
}

/// A request to send; `authority` is `host[:port]`.
pub struct Request<'a> {
    pub method: Method,
    pub https: bool,
    pub authority: &'a str,
    pub path_with_query: &'a str,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: &'a [u8],
    /// For connecting and for the first byte of the answer, where the host supports it;
    /// the host's own deadline bounds the call either way.
    pub timeout: Option<Duration>,
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    /// At most the `keep_body` bytes asked for (the rest was read and dropped), or why the
    /// body broke off: the status and headers stand either way.
    pub body: Result<Vec<u8>, String>,
}

impl Response {
    /// The first value of header `name` (lower case), if it is text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, value)| String::from_utf8(value.clone()).ok())
    }
}

/// Sends `request` and waits for the answer, keeping at most `keep_body` bytes of its body.
/// The body is read to its end either way, so the connection is released cleanly. An error
/// is a request that got no answer.
pub fn send(request: &Request<'_>, keep_body: usize) -> Result<Response, String> {
    let fields =
        Fields::from_list(&request.headers).map_err(|e| format!("invalid header: {e:?}"))?;
    let outgoing = OutgoingRequest::new(fields);
    let invalid = |what: &str| format!("invalid {what}");
    outgoing
        .set_method(&request.method)
        .map_err(|()| invalid("method"))?;
    let scheme = if request.https {
        Scheme::Https
    } else {
        Scheme::Http
    };
    outgoing
        .set_scheme(Some(&scheme))
        .map_err(|()| invalid("scheme"))?;
    outgoing
        .set_authority(Some(request.authority))
        .map_err(|()| invalid("authority"))?;
    outgoing
        .set_path_with_query(Some(request.path_with_query))
        .map_err(|()| invalid("path"))?;
    let body = outgoing.body().map_err(|()| "no request body".to_owned())?;

    let options = request.timeout.map(|timeout| {
        let options = RequestOptions::new();
        let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
        // A host may not support a timeout; its own deadline still bounds the call.
        let _ = options.set_connect_timeout(Some(nanos));
        let _ = options.set_first_byte_timeout(Some(nanos));
        options
    });
    let pending = outgoing_handler::handle(outgoing, options).map_err(|e| format!("{e:?}"))?;

    let stream = body.write().map_err(|()| "no request stream".to_owned())?;
    write_all(&stream, request.body).map_err(|e| format!("writing the body: {e:?}"))?;
    drop(stream);
    OutgoingBody::finish(body, None).map_err(|e| format!("{e:?}"))?;

    pending.subscribe().block();
    let response = pending
        .get()
        .ok_or("no response")?
        .map_err(|()| "the response was already taken".to_owned())?
        .map_err(|e| format!("{e:?}"))?;
    Ok(Response {
        status: response.status(),
        headers: response.headers().entries(),
        body: read_body(response, keep_body),
    })
}

fn read_body(response: IncomingResponse, keep: usize) -> Result<Vec<u8>, String> {
    let incoming = response
        .consume()
        .map_err(|()| "no response body".to_owned())?;
    let stream = incoming
        .stream()
        .map_err(|()| "no response stream".to_owned())?;
    let mut kept = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => {
                let room = keep.saturating_sub(kept.len());
                kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => return Err(e.to_debug_string()),
        }
    }
    drop(stream);
    IncomingBody::finish(incoming);
    Ok(kept)
}
