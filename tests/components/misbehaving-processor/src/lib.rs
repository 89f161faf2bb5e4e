//! A processor that misbehaves on purpose, chosen by config key `processor_misbehaviour`:
//! `trap` panics (a wasm trap), `loop` spins forever, `memory` allocates without end,
//! `list-config` rejects the webhook with every setting it can read (`key=value, ...`),
//! `careless` posts `{}` to `forward_url` instead of the payload and completes whatever the
//! answer (what the conformance kit must fail).
//! Once the webhook's `attempt` exceeds `processor_misbehave_attempts` (if set) it
//! completes, so tests can show that a host recovers.

// A processor as they were built before the `destinations` interface: `handler` alone, so
// the tests show that such a processor still loads and runs.
mod bindings {
    inbox_guest::with_shared_interfaces!(
        "processor-before-destinations",
        "../../../wit",
        "package test:misbehaving;
        world processor-before-destinations {
            import wasi:config/store@0.2.0-draft-2024-09-27;
            import wasi:http/outgoing-handler@0.2.0;
            export webhooks:inbox/handler@0.1.0;
        }"
    );
}

use bindings::exports::webhooks::inbox::handler::{Guest, Outcome};
use bindings::webhooks::inbox::types::Webhook;
use inbox_guest::config::get as config;

struct Misbehaving;

bindings::export!(Misbehaving with_types_in bindings);

impl Guest for Misbehaving {
    fn process(_webhook: Webhook, attempt: u32) -> Outcome {
        let limit = config("processor_misbehave_attempts").and_then(|v| v.parse::<u32>().ok());
        if limit.is_some_and(|limit| attempt > limit) {
            return Outcome::Completed;
        }
        match config("processor_misbehaviour").as_deref() {
            Some("trap") => panic!("misbehaving processor: trapping on purpose"),
            Some("loop") => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            Some("memory") => {
                let mut hoard = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            Some("list-config") => {
                let seen: Vec<String> = inbox_guest::config::all()
                    .into_iter()
                    .map(|(key, value)| format!("{key}={value}"))
                    .collect();
                Outcome::Reject(seen.join(", "))
            }
            Some("careless") => {
                if let Some(target) = config("forward_url")
                    .and_then(|url| inbox_core::forward::Target::parse(&url).ok())
                {
                    let _ = inbox_guest::http::send(
                        &inbox_guest::http::Request {
                            method: inbox_guest::wasi::http::types::Method::Post,
                            https: target.https,
                            authority: &target.authority,
                            path_with_query: &target.path_with_query,
                            headers: Vec::new(),
                            body: b"{}",
                            timeout: None,
                        },
                        0,
                    );
                }
                Outcome::Completed
            }
            _ => Outcome::Completed,
        }
    }
}
