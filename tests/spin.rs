//! The Spin path without Spin: the capture component composed with the store component
//! that spin.toml names (`[component.capture.dependencies]`), run by the native host with
//! Spin's `spin:sqlite` over a real SQLite file, and processed from that file by the
//! native worker (capture host -> store -> processing host, as on AWS). The cloud variant's
//! store component (DynamoDB over outgoing HTTP) runs against moto, and what it writes is
//! read back by the native DynamoDB store.

mod moto;
mod support;

use std::time::Duration;

use inbox_core::State;
use inbox_core::lifecycle::{Outcome, RetryPolicy, Transition};
use inbox_stores::WebhookStore;
use inbox_stores::dynamodb::{DynamoStore, PayloadBucket, Retention};

use support::{ADMIN_TOKEN, Inbox, bigcommerce_event, component, large, request, send_raw};

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
    assert_eq!(
        inbox.item_count(),
        3,
        "the webhook, its status, one attempt"
    );
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

/// The destinations through Spin's SQLite store component: listed as the worker wrote them,
/// paused and resumed over the admin API, held and released by the worker.
#[test]
fn a_destination_is_listed_paused_and_resumed_through_the_store_component() {
    let inbox = start(&[]);
    let (_, first) = inbox.post_bigcommerce(&bigcommerce_event("spin-destination-1"));
    inbox.wait_for(
        first["id"].as_str().unwrap(),
        "completed",
        Duration::from_secs(10),
    );
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let headers = [("Authorization", auth.as_str())];
    let (code, listed) = request(&inbox.url, "GET", "/api/destinations", &headers, b"");
    assert_eq!(code, 200, "{listed}");
    assert_eq!(listed[0]["name"], "inbox-processor", "{listed}");
    assert_eq!(listed[0]["state"], "closed", "{listed}");
    let pause = "/api/destinations/inbox-processor/pause";
    let (code, paused) = request(&inbox.url, "POST", pause, &headers, b"");
    assert_eq!(
        (code, paused["state"].as_str()),
        (200, Some("paused")),
        "{paused}"
    );

    let (_, held) = inbox.post_bigcommerce(&bigcommerce_event("spin-destination-2"));
    let held = held["id"].as_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while request(&inbox.url, "GET", "/api/destinations", &headers, b"").1[0]["held"] != 1 {
        assert!(std::time::Instant::now() < deadline, "not held");
        std::thread::sleep(Duration::from_millis(50));
    }
    let resume = "/api/destinations/inbox-processor/resume";
    let (code, resumed) = request(&inbox.url, "POST", resume, &headers, b"");
    assert_eq!(
        (code, resumed["state"].as_str()),
        (200, Some("closed")),
        "{resumed}"
    );
    let done = inbox.wait_for(&held, "completed", Duration::from_secs(10));
    assert_eq!(done["retries"], 1, "the hold spent nothing: {done}");
    let never = "/api/destinations/never/pause";
    assert_eq!(request(&inbox.url, "POST", never, &headers, b"").0, 404);
}

fn manifest(file: &str) -> toml::Table {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(file);
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

/// Checks a manifest's wiring: every file Spin loads is made by `spin build` (dependencies
/// included: Spin does not build them) and is the one the tests run (built by scripts/test
/// from the same crate); the store component gets exactly `inherits`; every key the
/// components read is an app variable mapped into capture, secrets marked as such.
fn check_manifest(
    file: &str,
    store_crate: &str,
    inherits: &[&str],
    keys: &[&str],
    secret: &[&str],
) {
    let manifest = manifest(file);
    assert_eq!(manifest["spin_manifest_version"].as_integer(), Some(2));
    let components = manifest["component"].as_table().unwrap();
    let routes: Vec<&str> = manifest["trigger"]["http"]
        .as_array()
        .unwrap()
        .iter()
        .map(|trigger| {
            assert!(components.contains_key(trigger["component"].as_str().unwrap()));
            trigger["route"].as_str().unwrap()
        })
        .collect();
    // Every route the capture component serves reaches it (Spin's `/x/...` takes `/x` and
    // everything under it), and nothing else is routed.
    let id = inbox_core::id::webhook_id("stripe", "evt_1");
    for (method, path) in inbox_core::capture::ROUTES {
        let path = path
            .replace("{origin}", "stripe")
            .replace("{id}", &id)
            .replace("{asset}", "app.js");
        let routed = routes.iter().any(|route| match route.strip_suffix("/...") {
            Some(prefix) => path == prefix || path.starts_with(&format!("{prefix}/")),
            None => path == *route,
        });
        assert!(
            routed,
            "{file}: {method} {path} does not reach the capture component"
        );
    }
    assert_eq!(
        routes,
        [
            "/api/webhooks/...",
            "/demo/send-webhook",
            "/api/counts",
            "/api/destinations/...",
            "/console/..."
        ],
        "{file}"
    );

    let capture = components["capture"].as_table().unwrap();
    let hosts = capture["allowed_outbound_hosts"].as_array().unwrap();
    assert_eq!(
        hosts[0].as_str(),
        Some("http://self"),
        "{file}: the demo sends to the app"
    );
    let build = capture["build"]["command"].as_str().unwrap();
    let words: Vec<&str> = build.split_whitespace().collect();
    let built: Vec<&str> = words
        .windows(2)
        .filter(|pair| pair[0] == "-p")
        .map(|pair| pair[1])
        .collect();
    assert!(build.contains("--target wasm32-wasip2") && build.contains("--target-dir target"));
    let dependencies = capture["dependencies"].as_table().unwrap();
    let store = dependencies["webhooks:inbox/store@0.1.0"]
        .as_table()
        .unwrap();
    let store_path = store["path"].as_str().unwrap();
    assert_eq!(built_crate(store_path), store_crate, "{file}");
    for source in [capture["source"].as_str().unwrap(), store_path] {
        let krate = built_crate(source);
        assert!(
            built.contains(&krate.as_str()),
            "{file}: {build} does not build {source}"
        );
        component(&krate.replace('-', "_"));
    }
    let inherited: Vec<&str> = store["inherit_configuration"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(inherited, inherits, "{file}");

    let variables = manifest["variables"].as_table().unwrap();
    let mapped = capture["variables"].as_table().unwrap();
    for key in keys {
        let declared = variables
            .get(*key)
            .unwrap_or_else(|| panic!("{file}: [variables] lacks {key}"));
        assert_eq!(
            mapped.get(*key).and_then(toml::Value::as_str),
            Some(format!("{{{{ {key} }}}}").as_str()),
            "{file}: [component.capture.variables] does not map {key}"
        );
        assert_eq!(
            declared
                .get("secret")
                .and_then(toml::Value::as_bool)
                .unwrap_or(false),
            secret.contains(key),
            "{file}: {key}"
        );
    }
}

fn capture_secrets() -> Vec<&'static str> {
    inbox_core::capture::CONFIG_KEYS
        .into_iter()
        .filter(|key| key.ends_with("_secret") || key.ends_with("_token"))
        .collect()
}

#[test]
fn spin_toml_names_what_its_build_makes_and_declares_what_the_components_read() {
    check_manifest(
        "spin.toml",
        "inbox-store-sqlite",
        &["sqlite_databases"],
        &inbox_core::capture::CONFIG_KEYS,
        &capture_secrets(),
    );
    let capture = manifest("spin.toml")["component"]["capture"].clone();
    assert_eq!(
        capture["sqlite_databases"].as_array().unwrap(),
        &vec![toml::Value::from("default")]
    );
}

#[test]
fn spin_cloud_toml_is_the_same_app_on_dynamodb() {
    use inbox_core::item::dynamodb::settings;
    let keys: Vec<&str> = inbox_core::capture::CONFIG_KEYS
        .into_iter()
        .chain(settings::ALL)
        .collect();
    let mut secret = capture_secrets();
    secret.extend(settings::SECRET);
    check_manifest(
        "spin-cloud.toml",
        "inbox-store-dynamodb",
        &["allowed_outbound_hosts", "variables"],
        &keys,
        &secret,
    );
}

#[test]
fn the_demo_route_sends_a_fresh_signed_delivery_to_the_capture_route() {
    let on = ("INBOX_DEMO_SENDER", "on");
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let admin = [("Authorization", auth.as_str())];
    for inbox in [Inbox::start(&[on]), start(&[on])] {
        let (code, first) = request(&inbox.url, "POST", "/demo/send-webhook", &admin, b"");
        assert_eq!(code, 202, "{first}\n{}", inbox.log());
        let id = first["id"].as_str().unwrap().to_owned();
        let (code, second) = request(&inbox.url, "POST", "/demo/send-webhook", &admin, b"");
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
    let unsigned = Inbox::start(&[("INBOX_BIGCOMMERCE_SECRET", ""), on]);
    let (code, problem) = request(&unsigned.url, "POST", "/demo/send-webhook", &admin, b"");
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

/// The demo signs with the production BigCommerce secret: a stranger, or a page in a
/// visitor's browser (a `text/plain` POST needs no preflight), stores nothing through it.
#[test]
fn the_demo_sender_is_closed_to_strangers_on_every_host() {
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let on = [("INBOX_DEMO_SENDER", "on")];
    let strangers: [&[(&str, &str)]; 3] = [
        &[],
        &[("Content-Type", "text/plain")],
        &[("Authorization", "Bearer not-the-admin-token")],
    ];
    let hosts = [
        ("serve, off by default", Inbox::start(&[]), 404),
        ("store component, off by default", start(&[]), 404),
        ("serve, on", Inbox::start(&on), 401),
        ("store component, on", start(&on), 401),
    ];
    for (host, inbox, refused) in &hosts {
        for headers in strangers {
            let (code, problem) =
                request(&inbox.url, "POST", "/demo/send-webhook", headers, b"a=b");
            assert_eq!(code, *refused, "{host} {headers:?}: {problem}");
        }
        if *refused == 404 {
            // Off is off, for the operator too: it says how to turn it on.
            let admin = [("Authorization", auth.as_str())];
            let (code, problem) = request(&inbox.url, "POST", "/demo/send-webhook", &admin, b"");
            assert_eq!(code, 404, "{host}: {problem}");
            assert!(
                problem["detail"]
                    .as_str()
                    .is_some_and(|d| d.contains("INBOX_DEMO_SENDER=on")),
                "{host}: {problem}"
            );
        }
        assert_eq!(inbox.item_count(), 0, "{host}: the demo stored a webhook");
    }
}

/// The `WEBHOOK` item of `id` as stored, attribute by attribute.
async fn webhook_item(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    id: &str,
) -> std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue> {
    use aws_sdk_dynamodb::types::AttributeValue;
    client
        .get_item()
        .table_name(table)
        .key("PK", AttributeValue::S(format!("WH#{id}")))
        .key("SK", AttributeValue::S("WEBHOOK".into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dynamodb_store_component_writes_what_the_native_dynamodb_store_reads() {
    let moto = moto::Moto::shared();
    let client = moto.dynamodb().await;
    let table = moto::unique("spin");
    moto::create_table(&client, &table).await;
    let store_wasm = component("inbox_store_dynamodb");
    let mut settings = vec![("INBOX_STORE_WASM", store_wasm.to_str().unwrap())];
    settings.extend(moto::store_component_env(moto, &table));
    let inbox = Inbox::start(&settings);
    let body = bigcommerce_event("spin-dynamo-1");
    let (code, first) = inbox.post_bigcommerce(&body);
    assert_eq!(code, 202, "{first}\n{}", inbox.log());
    let id = first["id"].as_str().unwrap().to_owned();
    let (code, again) = inbox.post_bigcommerce(&body);
    assert_eq!(
        (code, again["duplicate"].as_bool()),
        (200, Some(true)),
        "{again}"
    );

    // The native store reads the same items: the webhook byte for byte, its status, and
    // no expiry while it needs work.
    let native = DynamoStore::new(client.clone(), table.clone(), Retention::default());
    let webhook = native.webhook(&id).await.unwrap().unwrap();
    assert_eq!(webhook.payload, body);
    assert_eq!(webhook.origin, "bigcommerce");
    let status = native.status(&id).await.unwrap().unwrap();
    assert_eq!((status.state, status.version), (State::Received, 1));
    let item = webhook_item(&client, &table, &id).await;
    assert!(!item.contains_key("expires_at"), "{item:?}");

    // Reads through the component: status and list.
    let view = inbox.status(&id).1;
    assert_eq!(view["status"], "received", "{view}");
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let (code, list) = request(
        &inbox.url,
        "GET",
        "/api/webhooks",
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(
        (code, list.as_array().map(Vec::len)),
        (200, Some(1)),
        "{list}"
    );

    // Dead-lettered by the native side, replayed through the component, with the same
    // conditional update.
    let claimed = status
        .claim(status.updated_at, 60_000, &RetryPolicy::default())
        .unwrap();
    let claim = Transition::to(claimed.clone());
    assert!(
        native
            .swap_status(&id, status.version, &claim)
            .await
            .unwrap()
    );
    let policy = RetryPolicy::Backoff {
        max_retries: 0,
        base_delay_ms: 1,
        max_delay_ms: 1,
    };
    let dead = claimed
        .finish(
            "w",
            &Outcome::Reject {
                reason: "gone".into(),
            },
            &policy,
            claimed.updated_at + 1,
        )
        .unwrap();
    assert!(
        native
            .swap_status(&id, claimed.version, &dead)
            .await
            .unwrap()
    );
    let path = format!("/api/webhooks/{id}/replay");
    let (code, replayed) = request(&inbox.url, "POST", &path, &[("Authorization", &auth)], b"");
    assert_eq!(
        (code, replayed["status"].as_str()),
        (200, Some("received")),
        "{replayed}"
    );
    let now = native.status(&id).await.unwrap().unwrap();
    assert_eq!(
        (now.state, now.version, now.attempts),
        (State::Received, dead.status.version + 1, 0)
    );
    let (code, _) = request(&inbox.url, "POST", &path, &[("Authorization", &auth)], b"");
    assert_eq!(code, 409);

    // Without its table, the component refuses to store (503) and says what to set.
    let unconfigured = Inbox::start(&settings[..1]);
    let (code, _) = unconfigured.post_bigcommerce(&bigcommerce_event("spin-dynamo-2"));
    assert_eq!(code, 503);
    assert!(
        unconfigured.log().contains("INBOX_DYNAMODB_TABLE"),
        "{}",
        unconfigured.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dynamodb_store_component_keeps_a_large_payload_in_the_bucket_as_the_native_store_does()
{
    let moto = moto::Moto::shared();
    let client = moto.dynamodb().await;
    let table = moto::unique("spin-large");
    moto::create_table(&client, &table).await;
    let s3 = moto.s3().await;
    let bucket = moto::unique("spin-payloads");
    moto::create_bucket(&s3, &bucket).await;
    let store_wasm = component("inbox_store_dynamodb");
    let mut settings = vec![
        ("INBOX_STORE_WASM", store_wasm.to_str().unwrap()),
        ("INBOX_GITHUB_SECRET", large::GITHUB_SECRET),
    ];
    settings.extend(moto::store_component_env(moto, &table));
    let body = large::push_event(2 * large::MB, "spin-large-1");
    let delivery = large::github_request(&body, "spin-large-1");

    // Without a bucket the component refuses what its item cannot hold, and says so.
    let unbucketed = Inbox::start(&settings);
    let (code, answer) = send_raw(&unbucketed.url, &delivery).unwrap();
    assert_eq!(code, 413, "{answer}\n{}", unbucketed.log());
    drop(unbucketed);

    settings.push(("INBOX_PAYLOAD_BUCKET", bucket.as_str()));
    let inbox = Inbox::start(&settings);
    let (code, answer) = send_raw(&inbox.url, &delivery).unwrap();
    assert_eq!(code, 202, "{answer}\n{}", inbox.log());
    let (_, answer) = answer.split_once("\r\n\r\n").unwrap();
    let answer: serde_json::Value = serde_json::from_str(answer).unwrap();
    let id = answer["id"].as_str().unwrap().to_owned();

    // The native store, with the same bucket, reads the webhook whole from the same key
    // layout.
    let native = DynamoStore::new(client.clone(), table.clone(), Retention::default())
        .with_payloads(PayloadBucket::new(s3.clone(), bucket.clone()));
    let webhook = native.webhook(&id).await.unwrap().unwrap();
    assert!(webhook.payload == body);
    let item = webhook_item(&client, &table, &id).await;
    let object = item["payload_object"].as_s().unwrap();
    assert!(object.starts_with(&format!("payloads/{id}/")), "{object}");
    assert!(!item.contains_key("payload"));

    // The component reads it back for the admin download.
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let download = support::exchange(
        &inbox.url,
        &support::http(
            "GET",
            &format!("/api/webhooks/{id}/payload"),
            &[("Authorization", &auth)],
            b"",
        ),
    )
    .unwrap();
    let split = download.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    assert!(download.starts_with(b"HTTP/1.1 200"));
    assert!(download[split + 4..] == body[..]);
}

/// What a real Spin 4 provides to a component: WASI 0.2 (0.2.0 to 0.2.6), `wasi:config` at
/// its 2024-09-27 draft, `spin:sqlite@3.0.0`; and the inbox's own contract between the
/// components it composes.
fn spin_4_provides(import: &str) -> bool {
    let wasi_0_2 = import.starts_with("wasi:")
        && import
            .rsplit_once("@0.2.")
            .is_some_and(|(_, patch)| patch.parse::<u32>().is_ok_and(|p| p <= 6));
    wasi_0_2
        || import == "wasi:config/store@0.2.0-draft-2024-09-27"
        || import == "spin:sqlite/sqlite@3.0.0"
        || import.starts_with("webhooks:inbox/")
}

#[test]
fn every_component_imports_only_what_spin_4_provides() {
    let engine = wasmtime::Engine::default();
    for name in [
        "inbox_capture",
        "inbox_processor",
        "inbox_store_sqlite",
        "inbox_store_dynamodb",
    ] {
        let bytes = std::fs::read(component(name)).unwrap();
        let component = wasmtime::component::Component::new(&engine, bytes).unwrap();
        let imports: Vec<String> = component
            .component_type()
            .imports(&engine)
            .map(|(import, _)| import.to_owned())
            .collect();
        assert!(!imports.is_empty());
        for import in &imports {
            assert!(
                spin_4_provides(import),
                "{name} imports {import}: {imports:?}"
            );
        }
    }
    assert!(!spin_4_provides("wasi:http/types@0.3.0"));
    assert!(!spin_4_provides("wasi:config/store@0.2.0-rc.1"));
}
