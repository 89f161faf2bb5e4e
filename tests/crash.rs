//! Durability: every acknowledged webhook survives a SIGKILL and completes after a restart.

mod support;

use std::time::{Duration, Instant};

use support::*;

#[test]
fn acknowledged_webhooks_survive_sigkill_and_all_complete_after_restart() {
    let inbox = Inbox::start(&[
        ("INBOX_DEMO_DELAY_MS", "300-600"),
        ("INBOX_PROCESSOR_TIMEOUT_MS", "1000"),
        ("INBOX_WORKER_CONCURRENCY", "2"),
    ]);
    let ids: Vec<String> = (0..30)
        .map(|i| {
            let (code, answer) =
                inbox.post_bigcommerce(&bigcommerce_event(&format!("hash-crash-{i}")));
            assert_eq!(code, 202, "{answer}");
            answer["id"].as_str().unwrap().to_owned()
        })
        .collect();

    // Kill while attempts are under way, so that their leases are left behind.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !inbox
        .cli(&["list", "--status", "processing"])
        .1
        .contains("processing")
    {
        assert!(Instant::now() < deadline, "nothing was ever processing");
        std::thread::sleep(Duration::from_millis(20));
    }
    let inbox = inbox.restart(&[("INBOX_DEMO_DELAY_MS", "0")]);

    let mut retaken = 0;
    for id in &ids {
        let status = inbox.wait_for(id, "completed", Duration::from_secs(30));
        if status["retries"] == 2 {
            retaken += 1;
        }
        assert!(status["retries"].as_u64().unwrap() <= 2, "{status}");
    }
    assert!(
        retaken >= 1,
        "an attempt cut short by the kill is retaken once its lease expires"
    );
    assert_eq!(inbox.captured_item_count(), 2 * ids.len() as i64);
}

#[test]
fn sigterm_lets_the_attempts_in_flight_finish_before_the_host_exits() {
    let mut inbox = Inbox::start(&[
        ("INBOX_DEMO_DELAY_MS", "700"),
        ("INBOX_WORKER_CONCURRENCY", "2"),
    ]);
    for i in 0..6 {
        let (code, _) = inbox.post_bigcommerce(&bigcommerce_event(&format!("hash-term-{i}")));
        assert_eq!(code, 202);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !inbox
        .states()
        .iter()
        .any(|(_, state, _)| state == "processing")
    {
        assert!(Instant::now() < deadline, "nothing was ever processing");
        std::thread::sleep(Duration::from_millis(20));
    }

    let status = inbox.terminate(Duration::from_secs(10));
    assert!(status.success(), "{status}\n{}", inbox.log());
    let states = inbox.states();
    assert!(
        states.iter().all(|(_, state, _)| state != "processing"),
        "an attempt was abandoned mid-way: {states:?}"
    );
    assert!(
        states
            .iter()
            .any(|(_, state, retries)| state == "completed" && *retries == 1)
    );
    // What was not started waits, untouched, for the next start.
    assert!(
        states.iter().all(
            |(_, state, retries)| (state == "completed" && *retries == 1)
                || (state == "received" && *retries == 0)
        ),
        "{states:?}"
    );
}

#[test]
fn a_webhook_whose_every_attempt_kills_the_host_needs_an_operator_after_exactly_its_budget() {
    // Attempts take 1.8 s of a 2 s deadline (the lease runs 3 s): the kill, as soon as an
    // attempt is seen to start, always lands mid-attempt.
    let settings = [
        ("INBOX_DEMO_DELAY_MS", "1800"),
        ("INBOX_PROCESSOR_TIMEOUT_MS", "2000"),
        ("INBOX_MAX_RETRIES", "2"),
    ];
    let mut inbox = Inbox::start(&settings);
    let (code, answer) = inbox.post_bigcommerce(&bigcommerce_event("hash-crash-loop"));
    assert_eq!(code, 202, "{answer}");
    let id = answer["id"].as_str().unwrap().to_owned();
    let state_of = |inbox: &Inbox| {
        let states = inbox.states();
        let (_, state, retries) = states.iter().find(|(i, _, _)| *i == id).unwrap().clone();
        (state, retries)
    };
    for attempt in 1..=3 {
        let deadline = Instant::now() + Duration::from_secs(15);
        while state_of(&inbox) != ("processing".to_owned(), attempt) {
            assert!(
                Instant::now() < deadline,
                "attempt {attempt} never started: {:?}\n{}",
                state_of(&inbox),
                inbox.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // The host dies mid-attempt (kill -9, OOM, a Lambda timeout).
        inbox = inbox.restart(&[]);
    }
    let view = inbox.wait_for(&id, "operator_required", Duration::from_secs(15));
    assert_eq!(view["retries"], 3, "exactly the budget: {view}");
    let (ok, status) = inbox.cli(&["status", &id]);
    assert!(ok, "{status}");
    assert!(status.contains("never finished"), "{status}");
    // It is not taken again.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(state_of(&inbox), ("operator_required".to_owned(), 3));
}
