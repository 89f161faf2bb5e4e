//! `inbox serve --metrics-listen`: what a scripted run sent, read back from the Prometheus
//! endpoint as a scraper reads it.

mod support;

use std::time::Duration;

use inbox_bridge::conformance::destination::{Answer, Destination};
use support::*;

/// The address the inbox logged for its metrics (it was asked for port 0).
fn metrics_address(inbox: &Inbox) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let log = inbox.log();
        if let Some(line) = log
            .lines()
            .find(|l| l.contains("serving metrics at /metrics"))
        {
            let address = line
                .split("address=")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .unwrap();
            return format!("http://{address}");
        }
        assert!(std::time::Instant::now() < deadline, "{log}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The value of the sample named exactly `series` (name and labels), as scraped.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_metrics_count_what_was_sent() {
    let destination = Destination::start().await.unwrap();
    destination.answer(Answer {
        status: 200,
        retry_after: None,
    });
    let url = destination.url();
    let inbox = Inbox::start(&[
        ("INBOX_METRICS_LISTEN", "127.0.0.1:0"),
        ("INBOX_FORWARD_URL", &url),
    ]);
    let metrics = metrics_address(&inbox);

    let mut ids = Vec::new();
    for n in 0..5 {
        let (code, answer) = inbox.post_bigcommerce(&bigcommerce_event(&format!("m-{n}")));
        assert_eq!(code, 202);
        ids.push(answer["id"].as_str().unwrap().to_owned());
    }
    for n in 0..2 {
        let (code, _) = inbox.post_bigcommerce(&bigcommerce_event(&format!("m-{n}")));
        assert_eq!(code, 200, "a redelivery");
    }
    for _ in 0..3 {
        let body = bigcommerce_event("m-forged");
        let (code, _) = inbox.post("bigcommerce", &[("Signature", "forged")], &body);
        assert_eq!(code, 401);
    }
    assert_eq!(inbox.post("nowhere", &[], b"{}").0, 404);
    for id in &ids {
        inbox.wait_for(id, "completed", Duration::from_secs(20));
    }
    // One the destination refuses for good.
    destination.answer(Answer {
        status: 410,
        retry_after: None,
    });
    let (_, answer) = inbox.post_bigcommerce(&bigcommerce_event("m-gone"));
    inbox.wait_for(
        answer["id"].as_str().unwrap(),
        "operator_required",
        Duration::from_secs(20),
    );
    // The admin API and the console are not deliveries.
    inbox.status(&ids[0]);
    request(&inbox.url, "GET", "/console", &[], b"");

    // An attempt is counted once its outcome is committed, a moment after the status
    // endpoint can see it: scrape until the six are in.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let text = loop {
        let (code, text) = request_raw(&metrics, "GET", "/metrics", &[], b"");
        assert_eq!(code, 200, "{text}");
        if sample(&text, "inbox_attempt_duration_seconds_count") == 6.0 {
            break text;
        }
        assert!(std::time::Instant::now() < deadline, "{text}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let origin = "{origin=\"bigcommerce\"}";
    assert_eq!(
        sample(&text, &format!("inbox_webhooks_received_total{origin}")),
        6.0
    );
    assert_eq!(
        sample(&text, &format!("inbox_webhooks_duplicate_total{origin}")),
        2.0
    );
    assert_eq!(
        sample(
            &text,
            "inbox_webhooks_refused_total{reason=\"unauthenticated\"}"
        ),
        3.0
    );
    assert_eq!(
        sample(
            &text,
            "inbox_webhooks_refused_total{reason=\"unknown_origin\"}"
        ),
        1.0
    );
    let attempts = |outcome: &str| {
        sample(
            &text,
            &format!("inbox_attempts_total{{origin=\"bigcommerce\",outcome=\"{outcome}\"}}"),
        )
    };
    assert_eq!(attempts("completed"), 5.0);
    assert_eq!(attempts("operator_required"), 1.0);
    assert_eq!(
        sample(&text, &format!("inbox_dead_letters_total{origin}")),
        1.0
    );
    assert_eq!(sample(&text, "inbox_attempt_duration_seconds_count"), 6.0);
    assert_eq!(sample(&text, "inbox_delivery_latency_seconds_count"), 5.0);
    assert_eq!(sample(&text, "inbox_webhooks{state=\"completed\"}"), 5.0);
    assert_eq!(
        sample(&text, "inbox_webhooks{state=\"operator_required\"}"),
        1.0
    );
    assert_eq!(sample(&text, "inbox_webhooks{state=\"received\"}"), 0.0);
    // The same attempts by destination: the forward URL's scheme, host and port.
    let authority = url.trim_start_matches("http://").split('/').next().unwrap();
    let d = format!("destination=\"http://{authority}\"");
    let completed = format!("inbox_destination_attempts_total{{{d},outcome=\"completed\"}}");
    assert_eq!(sample(&text, &completed), 5.0, "{text}");
    let latency = format!("inbox_destination_delivery_latency_seconds_count{{{d}}}");
    assert_eq!(sample(&text, &latency), 5.0);
    let state = |s: &str| {
        sample(
            &text,
            &format!("inbox_destination_state{{{d},state=\"{s}\"}}"),
        )
    };
    assert_eq!(
        (state("closed"), state("open"), state("paused")),
        (1.0, 0.0, 0.0)
    );
    assert_eq!(
        sample(&text, &format!("inbox_destination_held{{{d}}}")),
        0.0
    );
    assert!(!text.contains("nowhere"), "a refused origin is no label");
    assert_eq!(request_raw(&metrics, "GET", "/", &[], b"").0, 404);
}
