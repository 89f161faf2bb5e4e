//! Every signature scheme against the running host, with deliveries signed by an
//! independent implementation (tests/fixtures/signed_deliveries.py, Python's hmac).

mod support;

use std::time::Duration;

use serde_json::Value;
use support::*;

#[test]
fn every_scheme_accepts_exactly_the_genuine_deliveries() {
    let fixture = signed_deliveries();
    let inbox = start_with(&fixture, &[]);

    let cases = fixture["cases"].as_array().unwrap();
    assert!(cases.len() >= 70, "the fixture covers every scheme");
    let mut failures = Vec::new();
    let mut accepted = Vec::new();
    for case in cases {
        let headers = headers_of(case);
        let origin = case["origin"].as_str().unwrap();
        let (code, answer) =
            inbox.post(origin, &headers, case["body"].as_str().unwrap().as_bytes());
        if u64::from(code) != case["expected"].as_u64().unwrap() {
            failures.push(format!(
                "{}: expected {}, got {code} {answer}",
                case["name"], case["expected"]
            ));
        }
        if code == 202 {
            accepted.push((origin.to_owned(), answer["id"].as_str().unwrap().to_owned()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Each accepted webhook and its status; where replays are refused (GitHub and Shopify
    // schemes), its body's digest too.
    let guarded = accepted
        .iter()
        .filter(|(origin, _)| ["github", "shopify", "shop2"].contains(&origin.as_str()))
        .count();
    assert_eq!(
        inbox.captured_item_count(),
        (2 * accepted.len() + guarded) as i64,
        "refusals store nothing"
    );

    for (origin, id) in &accepted {
        let status = inbox.wait_for(id, "completed", Duration::from_secs(20));
        assert_eq!(status["origin"], origin.as_str());
    }
    let log = inbox.log();
    for secret in fixture["env"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| !k.ends_with("SOURCES") && !k.ends_with("HEADER"))
    {
        for part in secret.1.as_str().unwrap().split(',') {
            assert!(!log.contains(part), "the log shows the secret {}", secret.0);
        }
    }
}

#[test]
fn event_types_and_keys_come_from_each_provider() {
    let fixture = signed_deliveries();
    let inbox = start_with(&fixture, &[]);
    let expected_types = [
        ("bigcommerce", "store/order/created"),
        ("stripe", "payment_intent.succeeded"),
        ("github", "issues.opened"),
        ("shopify", "orders/create"),
        ("standard-webhooks", "invoice.paid"),
        ("acme", "invoice.paid"),
    ];
    for (origin, event_type) in expected_types {
        let case = fixture["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["origin"] == origin && c["name"].as_str().unwrap().ends_with(": valid"))
            .unwrap();
        let headers = headers_of(case);
        let body = case["body"].as_str().unwrap().as_bytes();
        let (code, first) = inbox.post(origin, &headers, body);
        assert_eq!(code, 202, "{origin}: {first}");
        // The provider's own key makes a redelivery a duplicate.
        let (code, again) = inbox.post(origin, &headers, body);
        assert_eq!((code, &again["id"]), (200, &first["id"]), "{origin}");
        let (_, status) = inbox.status(first["id"].as_str().unwrap());
        assert_eq!(status["type"], event_type, "{origin}: {status}");
    }
}

const GITHUB_SECRET: &str = "gh-replay-secret";
const SHOPIFY_SECRET: &str = "shopify-replay-secret";

fn hmac_sha256(secret: &str, body: &[u8]) -> Vec<u8> {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// A genuine delivery of `origin` under the delivery id `id`: (headers, body). The body is
/// the same whatever the id, as a captured delivery sent again with another id header.
fn genuine(origin: &str, id: &str) -> (Vec<(String, String)>, Vec<u8>) {
    use base64::Engine;
    let body = br#"{"action":"opened","issue":{"number":7,"title":"order created"}}"#.to_vec();
    let headers = match origin {
        "github" => vec![
            ("x-github-event".into(), "issues".into()),
            ("x-github-delivery".into(), id.to_owned()),
            (
                "x-hub-signature-256".into(),
                format!("sha256={}", hex::encode(hmac_sha256(GITHUB_SECRET, &body))),
            ),
        ],
        _ => vec![
            ("x-shopify-topic".into(), "orders/create".into()),
            ("x-shopify-event-id".into(), id.to_owned()),
            (
                "x-shopify-hmac-sha256".into(),
                base64::engine::general_purpose::STANDARD
                    .encode(hmac_sha256(SHOPIFY_SECRET, &body)),
            ),
        ],
    };
    (headers, body)
}

fn deliver(inbox: &Inbox, origin: &str, id: &str) -> (u16, Value) {
    let (headers, body) = genuine(origin, id);
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    inbox.post(origin, &headers, &body)
}

#[test]
fn a_replayed_github_or_shopify_delivery_with_a_new_id_is_the_duplicate_of_the_first() {
    let store_component = component("inbox_store_sqlite");
    let secrets = [
        ("INBOX_GITHUB_SECRET", GITHUB_SECRET),
        ("INBOX_SHOPIFY_SECRET", SHOPIFY_SECRET),
    ];
    let mut through_component = secrets.to_vec();
    through_component.push(("INBOX_STORE_WASM", store_component.to_str().unwrap()));
    for env in [secrets.to_vec(), through_component] {
        let inbox = Inbox::start(&env);
        for origin in ["github", "shopify"] {
            let (code, first) = deliver(&inbox, origin, "delivery-1");
            assert_eq!(code, 202, "{first}\n{}", inbox.log());
            let first_id = first["id"].as_str().unwrap().to_owned();
            // Whoever saw the delivery sends it again under another id header.
            let (code, replay) = deliver(&inbox, origin, "delivery-2");
            assert_eq!(
                (code, replay["duplicate"].as_bool()),
                (200, Some(true)),
                "{replay}"
            );
            assert_eq!(
                replay["id"],
                first_id.as_str(),
                "answered as the first webhook"
            );
            // Two replays at once: neither is stored.
            let racers: Vec<_> = ["delivery-3", "delivery-4"]
                .into_iter()
                .map(|id| {
                    let (url, headers, body) = {
                        let (headers, body) = genuine(origin, id);
                        (inbox.url.clone(), headers, body)
                    };
                    let path = format!("/api/webhooks/{origin}");
                    std::thread::spawn(move || {
                        let mut all: Vec<(&str, &str)> = headers
                            .iter()
                            .map(|(k, v)| (k.as_str(), v.as_str()))
                            .collect();
                        all.push(("content-type", "application/json"));
                        request(&url, "POST", &path, &all, &body)
                    })
                })
                .collect();
            for racer in racers {
                let (code, answer) = racer.join().unwrap();
                assert_eq!(
                    (code, answer["id"].as_str()),
                    (200, Some(first_id.as_str()))
                );
            }
        }
        // One webhook of each, with its status and its body's digest.
        assert_eq!(inbox.captured_item_count(), 2 * 3, "{}", inbox.log());
    }

    // Where a source turns the guard off, the same body is a new event.
    let mut off = secrets.to_vec();
    off.push(("INBOX_GITHUB_REPLAY_GUARD", "off"));
    let inbox = Inbox::start(&off);
    assert_eq!(deliver(&inbox, "github", "delivery-1").0, 202);
    assert_eq!(deliver(&inbox, "github", "delivery-2").0, 202);
}
