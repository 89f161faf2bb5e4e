//! Every signature scheme against the running host, with deliveries signed by an
//! independent implementation (tests/fixtures/signed_deliveries.py, Python's hmac).

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::*;

fn signed_deliveries() -> Value {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/signed_deliveries.py");
    let output = Command::new("python3")
        .arg(&script)
        .output()
        .unwrap_or_else(|e| panic!("python3 is needed to sign the test deliveries: {e}"));
    assert!(
        output.status.success(),
        "{} failed: {}",
        script.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// An inbox configured with the fixture's secrets and sources.
fn start_with(fixture: &Value) -> Inbox {
    let env: Vec<(&str, &str)> = fixture["env"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str().unwrap()))
        .collect();
    Inbox::start(&env)
}

fn headers_of(case: &Value) -> Vec<(&str, &str)> {
    case["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| (pair[0].as_str().unwrap(), pair[1].as_str().unwrap()))
        .collect()
}

#[test]
fn every_scheme_accepts_exactly_the_genuine_deliveries() {
    let fixture = signed_deliveries();
    let inbox = start_with(&fixture);

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
    assert_eq!(
        inbox.item_count(),
        2 * accepted.len() as i64,
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
    let inbox = start_with(&fixture);
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
