//! The default processor: forwards each webhook to `forward_url`, and/or simulates the
//! seed's work (`demo_delay_ms`, `demo_failure_rate`); with neither, it completes and logs.

mod bindings {
    inbox_guest::with_shared_interfaces!("processor", "../../wit");
}

use std::time::Duration;

use bindings::exports::webhooks::inbox::destinations;
use bindings::exports::webhooks::inbox::handler::{Guest, Outcome, RetryRequest};
use bindings::webhooks::inbox::types::Webhook;
use inbox_core::config::Config;
use inbox_core::forward::{Demo, Target, classify_response};
use inbox_core::lifecycle;
use inbox_guest::config::WasiConfig;
use inbox_guest::http;
use inbox_guest::wasi::http::types::Method;

struct Processor;

bindings::export!(Processor with_types_in bindings);

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

/// The forward URL's scheme, host and port; without one (or with one that does not parse,
/// which every attempt then retries with the reason), the processor itself.
impl destinations::Guest for Processor {
    fn destination(_webhook: Webhook) -> String {
        WasiConfig
            .get("forward_url")
            .and_then(|url| Target::parse(&url).ok())
            .map_or_else(
                || "inbox-processor".to_owned(),
                |target| target.destination(),
            )
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
    let request = http::Request {
        method: Method::Post,
        https: target.https,
        authority: &target.authority,
        path_with_query: &target.path_with_query,
        headers: headers
            .iter()
            .map(|(name, value)| (name.to_string(), value.as_bytes().to_vec()))
            .collect(),
        body: &webhook.payload,
        timeout: Some(Duration::from_secs(10)),
    };
    // The destination's answer body is not ours: it is drained, not kept.
    match http::send(&request, 0) {
        Ok(answer) => classify_response(answer.status, answer.header("retry-after").as_deref()),
        Err(reason) => lifecycle::Outcome::Retry {
            reason: format!("forwarding to {} failed: {reason}", target.authority),
            delay_ms: None,
        },
    }
}
