//! The operators' console in a real browser: Debian's Chromium, headless, driven by
//! Playwright for Python (tests/console/drive.py), against a real `inbox serve` whose
//! destination was down overnight. The script signs in (a wrong token first), filters,
//! pages, opens a webhook and reads its payload, replays one dead webhook and then every
//! other, and looks at the list on a phone; it saves a screenshot of each page.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use inbox_bridge::conformance::destination::{Answer, Destination};
use inbox_core::lifecycle::{RetryPolicy, Transition};
use inbox_core::model::StatusView;
use inbox_stores::WebhookStore;
use inbox_stores::sqlite::SqliteStore;
use serde_json::{Value, json};
use support::{ADMIN_TOKEN, Inbox, STRIPE_SECRET, bigcommerce_event, sign_stripe, stripe_event};

/// How many webhooks the destination refused overnight: more than a page of the list.
const DEAD: usize = 60;

fn answer(status: u16) -> Answer {
    Answer {
        status,
        retry_after: None,
    }
}

/// How many webhooks the inbox holds in each state.
fn counts(inbox: &Inbox) -> Value {
    let auth = format!("Bearer {ADMIN_TOKEN}");
    support::request(
        &inbox.url,
        "GET",
        "/api/counts",
        &[("Authorization", &auth)],
        b"",
    )
    .1
}

/// Waits until the inbox holds `n` webhooks in `state`.
fn wait_for_count(inbox: &Inbox, state: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let counts = counts(inbox);
        if counts[state] == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "never {n} {state}: {counts}\n{}",
            inbox.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_recovers_a_bad_morning_in_the_console() {
    let python = std::env::var("INBOX_CONSOLE_PYTHON").expect(
        "INBOX_CONSOLE_PYTHON names the Python with Playwright: run scripts/test, which installs it",
    );
    let chromium = std::env::var("INBOX_CHROMIUM")
        .expect("INBOX_CHROMIUM names Debian's chromium: run scripts/test, which installs it");

    // The night: the destination answers 410 Gone, so every delivery needs an operator.
    let destination = Destination::start().await.unwrap();
    destination.answer(answer(410));
    let url = destination.url();
    // The worker wakes for what this inbox captures or replays, not on a timer, so the
    // webhooks written below from outside stay as they are written.
    let inbox = Inbox::start(&[
        ("INBOX_FORWARD_URL", &url),
        ("INBOX_RETRY_BASE_DELAY_MS", "3600000"),
        ("INBOX_WORKER_POLL_MS", "3600000"),
    ]);
    for n in 0..DEAD {
        let (code, _) = inbox.post_bigcommerce(&bigcommerce_event(&format!("night-{n}")));
        assert_eq!(code, 202);
    }
    wait_for_count(&inbox, "operator_required", DEAD);

    // The morning: some succeed, two fail and wait for a retry in an hour.
    destination.answer(answer(200));
    for n in 0..3 {
        let body = stripe_event(&format!("evt_morning_{n}"));
        let signature = sign_stripe(STRIPE_SECRET, support::unix_now(), &body);
        let (code, _) = inbox.post("stripe", &[("Stripe-Signature", &signature)], &body);
        assert_eq!(code, 202);
    }
    wait_for_count(&inbox, "completed", 3);
    destination.answer(answer(503));
    for n in 0..2 {
        inbox.post_bigcommerce(&bigcommerce_event(&format!("flaky-{n}")));
    }
    wait_for_count(&inbox, "failed", 2);
    destination.answer(answer(200));

    // One taken by an attempt still running, and one not yet due (its sender's clock is
    // ahead): written as another host would, straight into the database.
    let store = SqliteStore::open(&inbox.db()).unwrap();
    let now = inbox_core::clock::now_ms();
    for (key, received_at) in [("running", now), ("early", now + 3_600_000)] {
        let webhook = inbox_core::Webhook {
            id: inbox_core::id::webhook_id("bigcommerce", key),
            origin: "bigcommerce".into(),
            event_type: "store/cart/created".into(),
            provider_timestamp: None,
            received_at,
            idempotency_key: key.into(),
            headers: vec![("content-type".into(), "application/json".into())],
            payload: bigcommerce_event(key),
        };
        store.capture(webhook.clone(), false).await.unwrap();
        if key == "running" {
            let status = store.status(&webhook.id).await.unwrap().unwrap();
            let taken = status
                .claim(now, 3_600_000, &RetryPolicy::default())
                .unwrap();
            let claim = Transition::to(taken);
            assert!(
                store
                    .swap_status(&webhook.id, status.version, &claim)
                    .await
                    .unwrap()
            );
        }
    }

    let dead: Vec<StatusView> = inbox_bridge::pager::every(
        &store,
        inbox_core::listing::Query {
            state: Some(inbox_core::State::OperatorRequired),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let opened = &dead[7];
    let payload = store.webhook(&opened.id).await.unwrap().unwrap().payload;
    let expected = json!({
        "dead": DEAD,
        "completed": 3,
        "total": DEAD + 3 + 2 + 2,
        "open": opened.id,
        "open_received_at": opened.received_at,
        "open_payload": String::from_utf8(payload).unwrap(),
    });

    let screenshots = screenshots_dir();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/console/drive.py");
    let output = Command::new(&python)
        .arg(&script)
        .env("CONSOLE_URL", format!("{}/console", inbox.url))
        .env("CONSOLE_TOKEN", ADMIN_TOKEN)
        .env("CONSOLE_CHROMIUM", &chromium)
        .env("CONSOLE_SCREENSHOTS", &screenshots)
        .env("CONSOLE_EXPECTED", expected.to_string())
        .output()
        .expect("the console driver runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "the console driver failed:\n{stdout}\n{}\n{}",
        String::from_utf8_lossy(&output.stderr),
        inbox.log()
    );

    // What the browser did, seen from the store: nothing left for an operator, the
    // replays delivered.
    let states = counts(&inbox);
    assert_eq!(states["operator_required"], 0, "{states}");
    assert_eq!(states["completed"], DEAD + 3, "{states}");
    for name in [
        "sign-in",
        "list",
        "webhook",
        "replayed",
        "phone-list",
        "phone-webhook",
    ] {
        let shot = screenshots.join(format!("{name}.png"));
        assert!(shot.is_file(), "{} was not saved", shot.display());
    }
    println!("screenshots: {}", screenshots.display());
}

/// Where the screenshots go: beside the build, kept after the run.
fn screenshots_dir() -> PathBuf {
    let dir = support::inbox_exe()
        .parent()
        .unwrap()
        .join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
