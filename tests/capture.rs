//! Capture over real HTTP: what is accepted, what is refused, and that refusals store nothing.

mod support;

use std::sync::{Arc, Barrier};
use std::time::Duration;

use support::*;

#[test]
fn signed_bigcommerce_and_stripe_webhooks_are_captured_and_completed() {
    let inbox = Inbox::start(&[]);

    let (code, answer) = inbox.post_bigcommerce(&bigcommerce_event("hash-1"));
    assert_eq!(code, 202, "{answer}");
    assert_eq!(answer["status"], "received");
    let bigcommerce = answer["id"].as_str().unwrap().to_owned();

    let event = stripe_event("evt_1");
    let signature = sign_stripe(STRIPE_SECRET, unix_now(), &event);
    let (code, answer) = inbox.post("stripe", &[("Stripe-Signature", &signature)], &event);
    assert_eq!(code, 202, "{answer}");
    let stripe = answer["id"].as_str().unwrap().to_owned();
    assert_ne!(bigcommerce, stripe);

    for (id, origin, kind) in [
        (&bigcommerce, "bigcommerce", "store/order/created"),
        (&stripe, "stripe", "payment_intent.succeeded"),
    ] {
        let status = inbox.wait_for(id, "completed", Duration::from_secs(15));
        assert_eq!(status["origin"], origin);
        assert_eq!(status["type"], kind);
        assert_eq!(status["retries"], 1, "one attempt: {status}");
        assert_eq!(status["last_error"], serde_json::Value::Null);
    }
    assert_eq!(
        inbox.item_count(),
        6,
        "a WEBHOOK, a STATUS and an ATTEMPT item each"
    );
}

#[test]
fn the_same_webhook_delivered_three_times_at_once_is_stored_and_processed_once() {
    let inbox = Arc::new(Inbox::start(&[("INBOX_DEMO_DELAY_MS", "100")]));
    let body = bigcommerce_event("hash-concurrent");
    let barrier = Arc::new(Barrier::new(3));
    let answers: Vec<_> = (0..3)
        .map(|_| {
            let (inbox, body, barrier) = (inbox.clone(), body.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                inbox.post_bigcommerce(&body)
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();

    let mut codes: Vec<_> = answers.iter().map(|(code, _)| *code).collect();
    codes.sort();
    assert_eq!(codes, [200, 200, 202], "{answers:?}");
    let id = answers[0].1["id"].as_str().unwrap();
    assert!(answers.iter().all(|(_, a)| a["id"] == id), "{answers:?}");
    assert!(
        answers
            .iter()
            .filter(|(code, _)| *code == 200)
            .all(|(_, a)| a["duplicate"] == true)
    );

    let status = inbox.wait_for(id, "completed", Duration::from_secs(15));
    assert_eq!(status["retries"], 1, "processed once: {status}");
    assert_eq!(
        inbox.item_count(),
        3,
        "the webhook, its status, one attempt"
    );

    // A later redelivery is acknowledged with the current status and changes nothing.
    let (code, answer) = inbox.post_bigcommerce(&body);
    assert_eq!(
        (code, &answer["status"]),
        (200, &serde_json::json!("completed"))
    );
    assert_eq!(inbox.status(id).1["retries"], 1);
}

type Refusal<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, &'a [u8], u16);

#[test]
fn refused_deliveries_get_the_right_status_and_store_nothing() {
    let inbox = Inbox::start(&[]);
    let event = bigcommerce_event("hash-refused");
    let wrong_secret = sign_bigcommerce("not-the-secret", &event);
    let malformed = b"{\"scope\": \"store/order/created\", ".to_vec();
    let malformed_signature = sign_bigcommerce(BIGCOMMERCE_SECRET, &malformed);
    let stripe = stripe_event("evt_stale");
    let stale = sign_stripe(STRIPE_SECRET, unix_now() - 600, &stripe);
    let future = sign_stripe(STRIPE_SECRET, unix_now() + 600, &stripe);
    let oversized = format!(
        "{{\"scope\":\"store/order/created\",\"hash\":\"big\",\"pad\":\"{}\"}}",
        "x".repeat(25 * 1024 * 1024)
    )
    .into_bytes();
    let oversized_signature = sign_bigcommerce(BIGCOMMERCE_SECRET, &oversized);

    // (what, origin, headers, body, expected status)
    let cases: [Refusal; 9] = [
        (
            "wrong signature",
            "bigcommerce",
            vec![("Signature", &wrong_secret)],
            &event,
            401,
        ),
        ("missing signature", "bigcommerce", vec![], &event, 401),
        (
            "empty signature",
            "bigcommerce",
            vec![("Signature", "")],
            &event,
            401,
        ),
        (
            "stale Stripe timestamp",
            "stripe",
            vec![("Stripe-Signature", &stale)],
            &stripe,
            401,
        ),
        (
            "future Stripe timestamp",
            "stripe",
            vec![("Stripe-Signature", &future)],
            &stripe,
            401,
        ),
        ("missing Stripe signature", "stripe", vec![], &stripe, 401),
        (
            "malformed JSON",
            "bigcommerce",
            vec![("Signature", &malformed_signature)],
            &malformed,
            400,
        ),
        ("unknown origin", "shopifake", vec![], &event, 404),
        (
            "oversized body",
            "bigcommerce",
            vec![("Signature", &oversized_signature)],
            &oversized,
            413,
        ),
    ];
    for (what, origin, headers, body, expected) in cases {
        let (code, problem) = inbox.post(origin, &headers, body);
        assert_eq!(code, expected, "{what}: {problem}");
        assert_eq!(
            problem["status"], expected,
            "{what}: problem+json body: {problem}"
        );
        assert!(
            problem["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{what}: {problem}"
        );
        assert!(
            !problem.to_string().contains(BIGCOMMERCE_SECRET)
                && !problem.to_string().contains(STRIPE_SECRET),
            "{what}: a secret leaked: {problem}"
        );
    }
    let (code, text) = request_raw(&inbox.url, "DELETE", "/api/webhooks/bigcommerce", &[], b"");
    assert_eq!(code, 405, "{text}");
    assert_eq!(
        inbox.item_count(),
        0,
        "nothing is stored for a refused request"
    );

    // The host keeps serving.
    let (code, answer) = inbox.post_bigcommerce(&event);
    assert_eq!(code, 202, "{answer}");
}

#[test]
fn an_origin_without_a_secret_refuses_and_names_the_variable() {
    let inbox = Inbox::start(&[("INBOX_STRIPE_SECRET", "")]);
    let event = stripe_event("evt_unconfigured");
    let signature = sign_stripe(STRIPE_SECRET, unix_now(), &event);
    let (code, problem) = inbox.post("stripe", &[("Stripe-Signature", &signature)], &event);
    assert_eq!(code, 401);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("INBOX_STRIPE_SECRET"),
        "{problem}"
    );
    assert_eq!(inbox.item_count(), 0);
}

#[test]
fn the_status_endpoint_requires_the_admin_token() {
    let inbox = Inbox::start(&[]);
    let (_, answer) = inbox.post_bigcommerce(&bigcommerce_event("hash-admin"));
    let path = format!("/api/webhooks/{}", answer["id"].as_str().unwrap());

    let (code, _) = request(&inbox.url, "GET", &path, &[], b"");
    assert_eq!(code, 401);
    let (code, _) = request(
        &inbox.url,
        "GET",
        &path,
        &[("Authorization", "Bearer wrong")],
        b"",
    );
    assert_eq!(code, 401);
    let (code, status) = inbox.status(answer["id"].as_str().unwrap());
    assert_eq!(code, 200, "{status}");
    let (code, _) = inbox.status("00000000-0000-0000-0000-000000000000");
    assert_eq!(code, 404);

    let closed = Inbox::start(&[("INBOX_ADMIN_TOKEN", "")]);
    let (code, problem) = request(
        &closed.url,
        "GET",
        &path,
        &[("Authorization", "Bearer ")],
        b"",
    );
    assert_eq!(code, 403, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("INBOX_ADMIN_TOKEN")
    );
}

#[test]
fn a_store_that_cannot_commit_answers_503_and_the_provider_retries_later() {
    let inbox = Inbox::start(&[]);
    // Another process holds SQLite's write lock for longer than the store waits for it.
    let blocker = rusqlite::Connection::open(inbox.db()).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let body = bigcommerce_event("hash-busy");
    let (code, problem) = inbox.post_bigcommerce(&body);
    assert_eq!(code, 503, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("retry"),
        "{problem}"
    );
    blocker.execute_batch("ROLLBACK").unwrap();
    assert_eq!(inbox.item_count(), 0, "nothing half-written");

    // The provider's retry succeeds once the store is back.
    let (code, answer) = inbox.post_bigcommerce(&body);
    assert_eq!(code, 202, "{answer}");
}

/// One capture instance serves request after request (the inbox keeps it between them),
/// and none of them sees anything of the ones before: not a body, a header, a verified
/// signature or an admin token.
#[test]
fn a_kept_capture_instance_carries_nothing_from_one_request_to_the_next() {
    let inbox = Inbox::start(&[("INBOX_LOG", "info,inbox_wasm_host::capture=debug")]);
    let marker = "private-body-of-the-first-delivery";
    let probe = "private-header-of-the-first-delivery";
    let secrets = [
        marker,
        probe,
        ADMIN_TOKEN,
        BIGCOMMERCE_SECRET,
        STRIPE_SECRET,
    ];
    let told_nothing = |what: &str, answer: &serde_json::Value| {
        let text = answer.to_string();
        for secret in secrets {
            assert!(!text.contains(secret), "{what} told {secret}: {text}");
        }
    };

    let first = bigcommerce_event(marker);
    let signature = sign_bigcommerce(BIGCOMMERCE_SECRET, &first);
    let (code, answer) = inbox.post(
        "bigcommerce",
        &[("Signature", &signature), ("X-Probe", probe)],
        &first,
    );
    assert_eq!(code, 202, "{answer}");
    let first_id = answer["id"].as_str().unwrap().to_owned();

    // The first delivery's signature does not pass for another body, nor does none.
    let second = bigcommerce_event("second");
    for headers in [vec![("Signature", signature.as_str())], vec![]] {
        let (code, answer) = inbox.post("bigcommerce", &headers, &second);
        assert_eq!(code, 401, "{answer}");
        told_nothing("a refused delivery", &answer);
    }
    let malformed = b"{\"hash\": ";
    let signature = sign_bigcommerce(BIGCOMMERCE_SECRET, malformed);
    let (code, answer) = inbox.post("bigcommerce", &[("Signature", &signature)], malformed);
    assert_eq!(code, 400, "{answer}");
    told_nothing("malformed JSON", &answer);

    let third = stripe_event("evt_after_the_first");
    let signature = sign_stripe(STRIPE_SECRET, unix_now(), &third);
    let (code, answer) = inbox.post("stripe", &[("Stripe-Signature", &signature)], &third);
    assert_eq!(code, 202, "{answer}");
    told_nothing("the next capture", &answer);
    let third_id = answer["id"].as_str().unwrap().to_owned();

    // The admin token opens one request, not the instance.
    let (code, status) = inbox.status(&first_id);
    assert_eq!(code, 200, "{status}");
    assert_eq!(status["idempotency_key"], marker, "{status}");
    let path = format!("/api/webhooks/{first_id}");
    let (code, answer) = request(&inbox.url, "GET", &path, &[], b"");
    assert_eq!(code, 401, "{answer}");
    told_nothing("a request without the token", &answer);

    let (code, status) = inbox.status(&third_id);
    assert_eq!(code, 200, "{status}");
    told_nothing("the next webhook's status", &status);
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let (code, payload) = request_raw(
        &inbox.url,
        "GET",
        &format!("/api/webhooks/{third_id}/payload"),
        &[("Authorization", &auth)],
        b"",
    );
    assert_eq!(code, 200);
    assert_eq!(payload.as_bytes(), third.as_slice());
    assert_eq!(
        inbox.captured_item_count(),
        4,
        "a WEBHOOK and a STATUS item for each of the two deliveries accepted"
    );

    let made = inbox.log().matches("a new capture instance").count();
    assert_eq!(
        made,
        1,
        "one instance served every request\n{}",
        inbox.log()
    );
}
