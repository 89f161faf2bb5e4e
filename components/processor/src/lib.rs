//! The default processor: forwards each webhook to `forward_url`, and/or simulates the
//! seed's work (`demo_delay_ms`, `demo_failure_rate`); with neither, it completes and logs.

mod bindings {
    wit_bindgen::generate!({
        world: "processor",
        path: "../../wit",
        generate_all,
    });
}

use std::time::Duration;

use bindings::exports::webhooks::inbox::handler::{Guest, Outcome, RetryRequest};
use bindings::wasi::http::outgoing_handler;
use bindings::wasi::http::types::{
    ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};
use bindings::webhooks::inbox::types::Webhook;
use inbox_core::config::Config;
use inbox_core::forward::{Demo, Target, classify_response};
use inbox_core::lifecycle;

struct Processor;

bindings::export!(Processor with_types_in bindings);

struct WasiConfig;

impl Config for WasiConfig {
    fn get(&self, key: &str) -> Option<String> {
        bindings::wasi::config::store::get(key).ok().flatten()
    }
}

impl Guest for Processor {
    fn process(webhook: Webhook, attempt: u32) -> Outcome {
        let outcome = process(&webhook, attempt);
        eprintln!(
            "processor: {} {} ({}) attempt {attempt}: {outcome:?}",
            webhook.origin, webhook.id, webhook.event_type
        );
        match outcome {
            lifecycle::Outcome::Completed => Outcome::Completed,
            lifecycle::Outcome::Retry { reason, delay_ms } => {
                Outcome::Retry(RetryRequest { reason, delay_ms })
            }
            lifecycle::Outcome::Reject { reason } => Outcome::Reject(reason),
        }
    }
}

fn process(webhook: &Webhook, attempt: u32) -> lifecycle::Outcome {
    let retry = |reason: String| lifecycle::Outcome::Retry {
        reason,
        delay_ms: None,
    };
    match Demo::from_config(&WasiConfig) {
        Err(error) => return retry(error.to_string()),
        Ok(Some(demo)) => {
            let (delay_ms, fail) = demo.roll(&webhook.id, attempt);
            std::thread::sleep(Duration::from_millis(delay_ms));
            if fail {
                return retry(format!(
                    "demo: simulated failure (rate {})",
                    demo.failure_rate
                ));
            }
        }
        Ok(None) => {}
    }
    match WasiConfig.get("forward_url") {
        None => lifecycle::Outcome::Completed,
        Some(url) => match Target::parse(&url) {
            Err(error) => retry(error.to_string()),
            Ok(target) => forward(&target, webhook, attempt),
        },
    }
}

/// POSTs the payload with its content type and the inbox's own headers.
fn forward(target: &Target, webhook: &Webhook, attempt: u32) -> lifecycle::Outcome {
    let content_type = webhook
        .headers
        .iter()
        .find(|(name, _)| name == "content-type")
        .map_or("application/json", |(_, value)| value.as_str());
    let headers = [
        ("content-type", content_type.to_owned()),
        // A declared length, not chunked: the payload is sent exactly as it was received.
        ("content-length", webhook.payload.len().to_string()),
        ("x-inbox-webhook-id", webhook.id.clone()),
        ("x-inbox-origin", webhook.origin.clone()),
        ("x-inbox-event-type", webhook.event_type.clone()),
        ("x-inbox-attempt", attempt.to_string()),
    ];
    let headers: Vec<_> = headers
        .iter()
        .map(|(name, value)| (name.to_string(), value.as_bytes().to_vec()))
        .collect();
    match send(target, headers, &webhook.payload) {
        Ok((status, retry_after)) => classify_response(status, retry_after.as_deref()),
        Err(reason) => lifecycle::Outcome::Retry {
            reason: format!("forwarding to {} failed: {reason}", target.authority),
            delay_ms: None,
        },
    }
}

fn send(
    target: &Target,
    headers: Vec<(String, Vec<u8>)>,
    body: &[u8],
) -> Result<(u16, Option<String>), String> {
    let fields = Fields::from_list(&headers).map_err(|e| format!("invalid header: {e:?}"))?;
    let request = OutgoingRequest::new(fields);
    let set = |ok: Result<(), ()>, what: &str| ok.map_err(|()| format!("invalid {what}"));
    set(request.set_method(&Method::Post), "method")?;
    set(
        request.set_scheme(Some(if target.https {
            &Scheme::Https
        } else {
            &Scheme::Http
        })),
        "scheme",
    )?;
    set(request.set_authority(Some(&target.authority)), "authority")?;
    set(
        request.set_path_with_query(Some(&target.path_with_query)),
        "path",
    )?;
    let outgoing = request.body().map_err(|()| "no request body".to_owned())?;

    let options = RequestOptions::new();
    let timeout = Duration::from_secs(10).as_nanos() as u64;
    // A host may not support a timeout; its own deadline still bounds the call.
    let _ = options.set_connect_timeout(Some(timeout));
    let _ = options.set_first_byte_timeout(Some(timeout));
    let pending = outgoing_handler::handle(request, Some(options)).map_err(describe)?;

    let stream = outgoing
        .write()
        .map_err(|()| "no request stream".to_owned())?;
    for chunk in body.chunks(4096) {
        stream
            .blocking_write_and_flush(chunk)
            .map_err(|e| format!("writing the body: {e:?}"))?;
    }
    drop(stream);
    OutgoingBody::finish(outgoing, None).map_err(describe)?;

    pending.subscribe().block();
    let response = pending
        .get()
        .ok_or("no response")?
        .map_err(|()| "the response was already taken".to_owned())?
        .map_err(describe)?;
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .first()
        .and_then(|v| String::from_utf8(v.clone()).ok());
    // Drain the body so the connection is released cleanly; its content is not ours.
    if let Ok(body) = response.consume() {
        if let Ok(stream) = body.stream() {
            while stream.blocking_read(64 * 1024).is_ok() {}
        }
        IncomingBody::finish(body);
    }
    Ok((status, retry_after))
}

fn describe(error: ErrorCode) -> String {
    format!("{error:?}")
}
