//! The Spin path without Spin: the capture component composed with the store component
//! that spin.toml names (`[component.capture.dependencies]`), run by the native host with
//! Spin's `spin:sqlite` over a real SQLite file, and processed from that file by the
//! native worker (capture host -> store -> processing host, as on AWS).

mod support;

use std::time::Duration;

use support::{ADMIN_TOKEN, Inbox, bigcommerce_event, component, request};

fn start(env: &[(&str, &str)]) -> Inbox {
    let store = component("inbox_store_sqlite");
    let mut settings = vec![("INBOX_STORE_WASM", store.to_str().unwrap())];
    settings.extend_from_slice(env);
    Inbox::start(&settings)
}

#[test]
fn the_store_component_captures_once_and_the_worker_processes_it() {
    let inbox = start(&[]);
    assert!(
        inbox.log().contains("inbox_store_sqlite.wasm"),
        "{}",
        inbox.log()
    );
    let body = bigcommerce_event("spin-hash-1");
    let (code, first) = inbox.post_bigcommerce(&body);
    assert_eq!(code, 202, "{first}\n{}", inbox.log());
    let id = first["id"].as_str().unwrap().to_owned();
    let (code, again) = inbox.post_bigcommerce(&body);
    assert_eq!((code, again["id"].as_str()), (200, Some(id.as_str())));
    assert_eq!(again["duplicate"], true);

    // Read back through the store component (get-webhook, get-status) once the native
    // worker has processed what it wrote.
    let view = inbox.wait_for(&id, "completed", Duration::from_secs(10));
    assert_eq!(view["type"], "store/order/created");
    assert_eq!(view["retries"], 1);
    assert_eq!(inbox.item_count(), 2);
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let (code, list) = request(
        &inbox.url,
        "GET",
        "/api/webhooks?status=completed",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(code, 200, "{list}");
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], id.as_str());
}

#[test]
fn a_dead_webhook_is_replayed_through_the_store_component() {
    let inbox = start(&[
        ("INBOX_DEMO_FAILURE_RATE", "1.0"),
        ("INBOX_MAX_RETRIES", "0"),
    ]);
    let (code, captured) = inbox.post_bigcommerce(&bigcommerce_event("spin-hash-2"));
    assert_eq!(code, 202, "{captured}");
    let id = captured["id"].as_str().unwrap().to_owned();
    inbox.wait_for(&id, "operator_required", Duration::from_secs(10));

    let auth = format!("Bearer {ADMIN_TOKEN}");
    let path = format!("/api/webhooks/{id}/replay");
    let (code, replayed) = request(&inbox.url, "POST", &path, &[("Authorization", &auth)], b"");
    assert_eq!(
        (code, replayed["status"].as_str()),
        (200, Some("received")),
        "{replayed}"
    );
    // It goes round again (and, failing every time, ends dead again with a second record).
    let (ok, _) = inbox.cli(&["status", &id]);
    assert!(ok);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, output) = inbox.cli(&["status", &id]);
        let shown: serde_json::Value = serde_json::from_str(&output).unwrap();
        if shown["dead_letters"].as_array().unwrap().len() == 2 {
            assert_eq!(shown["status"], "operator_required");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{output}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // A second replay of a webhook that is not dead is refused, by the core's rule.
    let (code, _) = request(
        &inbox.url,
        "POST",
        "/api/webhooks/nope/replay",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(code, 404);
}

fn manifest() -> toml::Table {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../spin.toml");
    std::fs::read_to_string(path).unwrap().parse().unwrap()
}

/// The crate whose build makes `target/wasm32-wasip2/release/<crate_name>.wasm`.
fn built_crate(path: &str) -> String {
    let file = path
        .strip_prefix("target/wasm32-wasip2/release/")
        .and_then(|f| f.strip_suffix(".wasm"))
        .unwrap_or_else(|| panic!("{path} is not a release build of a wasm32-wasip2 crate"));
    file.replace('_', "-")
}

#[test]
fn spin_toml_names_what_its_build_makes_and_declares_what_the_components_read() {
    let manifest = manifest();
    assert_eq!(manifest["spin_manifest_version"].as_integer(), Some(2));
    let components = manifest["component"].as_table().unwrap();
    for trigger in manifest["trigger"]["http"].as_array().unwrap() {
        let component = trigger["component"].as_str().unwrap();
        assert!(components.contains_key(component), "{component}");
    }

    let capture = components["capture"].as_table().unwrap();
    // The capture component may send requests to the app itself (the demo), nowhere else.
    assert_eq!(
        capture["allowed_outbound_hosts"].as_array().unwrap(),
        &vec![toml::Value::from("http://self")]
    );
    let build = capture["build"]["command"].as_str().unwrap();
    let built: Vec<&str> = build
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|pair| pair[0] == "-p")
        .map(|pair| pair[1])
        .collect();
    assert!(build.contains("--target wasm32-wasip2") && build.contains("--target-dir target"));
    // Every file Spin loads is made by `spin build`, dependencies included (Spin does not
    // build them), and is the one the tests run (built by scripts/test from the same crate).
    let mut sources = vec![capture["source"].as_str().unwrap().to_owned()];
    let dependencies = capture["dependencies"].as_table().unwrap();
    let store = dependencies["webhooks:inbox/store@0.1.0"]
        .as_table()
        .unwrap();
    sources.push(store["path"].as_str().unwrap().to_owned());
    for source in &sources {
        let krate = built_crate(source);
        assert!(
            built.contains(&krate.as_str()),
            "{build} does not build {source}"
        );
        component(&krate.replace('-', "_"));
    }
    // The store component gets the database, and only that.
    assert_eq!(
        store["inherit_configuration"].as_array().unwrap(),
        &vec![toml::Value::from("sqlite_databases")]
    );
    assert_eq!(
        capture["sqlite_databases"].as_array().unwrap(),
        &vec![toml::Value::from("default")]
    );

    // Every key the capture component reads is an app variable mapped into it; secrets are
    // marked so Spin keeps them out of its logs.
    let variables = manifest["variables"].as_table().unwrap();
    let mapped = capture["variables"].as_table().unwrap();
    for key in inbox_core::capture::CONFIG_KEYS {
        let declared = variables
            .get(key)
            .unwrap_or_else(|| panic!("[variables] lacks {key}"));
        assert_eq!(
            mapped.get(key).and_then(toml::Value::as_str),
            Some(format!("{{{{ {key} }}}}").as_str()),
            "[component.capture.variables] does not map {key}"
        );
        let secret = key.ends_with("_secret") || key.ends_with("_token");
        assert_eq!(
            declared
                .get("secret")
                .and_then(toml::Value::as_bool)
                .unwrap_or(false),
            secret,
            "{key}"
        );
    }
}

#[test]
fn the_demo_route_sends_a_fresh_signed_delivery_to_the_capture_route() {
    for inbox in [Inbox::start(&[]), start(&[])] {
        let (code, first) = request(&inbox.url, "POST", "/demo/send-webhook", &[], b"");
        assert_eq!(code, 202, "{first}\n{}", inbox.log());
        let id = first["id"].as_str().unwrap().to_owned();
        let (code, second) = request(&inbox.url, "POST", "/demo/send-webhook", &[], b"");
        assert_eq!(code, 202, "{second}");
        assert_ne!(
            second["id"],
            id.as_str(),
            "each demo delivery is a new webhook"
        );
        let view = inbox.wait_for(&id, "completed", Duration::from_secs(10));
        assert_eq!(view["origin"], "bigcommerce");
        assert_eq!(view["type"], "store/order/created");
        let (code, _) = request(&inbox.url, "GET", "/demo/send-webhook", &[], b"");
        assert_eq!(code, 405);
    }
    // Without the secret it signs with, the demo says which variable to set.
    let unsigned = Inbox::start(&[("INBOX_BIGCOMMERCE_SECRET", "")]);
    let (code, problem) = request(&unsigned.url, "POST", "/demo/send-webhook", &[], b"");
    assert_eq!(code, 503, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("INBOX_BIGCOMMERCE_SECRET"),
        "{problem}"
    );
    assert_eq!(unsigned.item_count(), 0);
}
