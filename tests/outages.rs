//! Outages of a destination, on `inbox serve` with the clock scaled down: the breaker holds
//! webhooks without spending their retries and probes with one at a time; an operator
//! pauses and resumes a destination.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

const PATIENCE: Duration = Duration::from_secs(60);

/// A destination on 127.0.0.1 that answers 503 while down and 200 while up, counting what
/// it was sent either way.
struct Backend {
    url: String,
    up: Arc<AtomicBool>,
    seen_down: Arc<AtomicUsize>,
    seen_up: Arc<AtomicUsize>,
}

impl Backend {
    fn start(up: bool) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let backend = Backend {
            url: format!("http://{}/hooks", listener.local_addr().unwrap()),
            up: Arc::new(AtomicBool::new(up)),
            seen_down: Arc::default(),
            seen_up: Arc::default(),
        };
        let (is_up, down, ok) = (
            backend.up.clone(),
            backend.seen_down.clone(),
            backend.seen_up.clone(),
        );
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let (is_up, down, ok) = (is_up.clone(), down.clone(), ok.clone());
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut length = 0;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if let Some(value) =
                            line.to_ascii_lowercase().strip_prefix("content-length:")
                        {
                            length = value.trim().parse().unwrap();
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let mut body = vec![0; length];
                    let _ = reader.read_exact(&mut body);
                    let status = if is_up.load(Ordering::SeqCst) {
                        ok.fetch_add(1, Ordering::SeqCst);
                        "200 OK"
                    } else {
                        down.fetch_add(1, Ordering::SeqCst);
                        "503 Service Unavailable"
                    };
                    let reply = format!(
                        "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    );
                    let _ = stream.write_all(reply.as_bytes());
                });
            }
        });
        backend
    }

    /// Its name as the default processor gives it: scheme, host and port.
    fn name(&self) -> String {
        self.url.strip_suffix("/hooks").unwrap().to_owned()
    }
}

fn destinations(inbox: &Inbox) -> Vec<Value> {
    let (ok, out) = inbox.cli(&["destinations", "--json"]);
    assert!(ok, "{out}");
    out.lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn wait_until(what: &str, inbox: &Inbox, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen\n{}",
            inbox.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn count(inbox: &Inbox, state: &str) -> usize {
    inbox.states().iter().filter(|(_, s, _)| s == state).count()
}

#[test]
fn an_outage_ends_with_every_webhook_completed_and_the_destination_saw_only_failures_and_probes() {
    let backend = Backend::start(false);
    let env = [
        ("INBOX_FORWARD_URL", backend.url.as_str()),
        // Without the breaker, this schedule dead-letters a webhook within a second.
        ("INBOX_RETRY_SCHEDULE", "100ms,200ms,400ms"),
        ("INBOX_BREAKER_FAILURES", "3"),
        ("INBOX_BREAKER_PROBE_MS", "250"),
        ("INBOX_BREAKER_MAX_PROBE_MS", "1000"),
        ("INBOX_PROCESSOR_TIMEOUT_MS", "2000"),
    ];
    let mut inbox = Inbox::start(&env);
    let started = Instant::now();
    let send = |inbox: &Inbox, range: std::ops::Range<usize>| {
        for i in range {
            let (code, _) = inbox.post_bigcommerce(&bigcommerce_event(&format!("outage-{i}")));
            assert_eq!(code, 202);
        }
    };
    send(&inbox, 0..100);
    let open = |inbox: &Inbox| destinations(inbox).iter().any(|d| d["state"] == "open");
    wait_until("the destination opening", &inbox, || open(&inbox));

    // A worker killed while the destination is open loses nothing and keeps its state.
    inbox.kill();
    inbox = inbox.restart(&env);
    let listed = destinations(&inbox);
    assert_eq!(listed.len(), 1, "{listed:?}");
    let down = &listed[0];
    assert_eq!(down["name"], backend.name());
    assert_eq!(down["state"], "open");
    assert!(
        down["last_error"].as_str().unwrap().contains("503"),
        "{down}"
    );
    assert!(down["opened_at"].as_i64().is_some(), "{down}");

    // More arrive during an outage of many probe intervals.
    send(&inbox, 100..200);
    wait_until("every webhook held", &inbox, || {
        destinations(&inbox)[0]["held"].as_u64().unwrap() >= 150
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(count(&inbox, "operator_required"), 0);

    backend.up.store(true, Ordering::SeqCst);
    let outage = started.elapsed();
    let recovered = Instant::now();
    wait_until("every webhook completed", &inbox, || {
        count(&inbox, "completed") == 200
    });
    let drained = recovered.elapsed();
    let seen_down = backend.seen_down.load(Ordering::SeqCst);
    // While down it saw the failures that opened it, the attempts already under way then
    // (8 at a time, and again those the killed worker left, retaken when their lease
    // expired), and one probe per interval at most.
    let probes = outage.as_millis() as usize / 250 + 2;
    assert!(
        seen_down <= 3 + 8 + 8 + probes,
        "{seen_down} deliveries while down for {outage:?} (at most {probes} probes)"
    );
    assert_eq!(count(&inbox, "operator_required"), 0);
    let closed = &destinations(&inbox)[0];
    assert_eq!(closed["state"], "closed", "{closed}");
    assert_eq!(closed["held"], 0, "{closed}");
    eprintln!(
        "outage of {outage:?}: 200 webhooks, {seen_down} deliveries while down, \
         {} after; the last completed {drained:?} after recovery",
        backend.seen_up.load(Ordering::SeqCst)
    );
}

#[test]
fn a_paused_destination_holds_its_webhooks_until_resumed() {
    let backend = Backend::start(true);
    let inbox = Inbox::start(&[("INBOX_FORWARD_URL", backend.url.as_str())]);
    let (_, first) = inbox.post_bigcommerce(&bigcommerce_event("pause-0"));
    inbox.wait_for(first["id"].as_str().unwrap(), "completed", PATIENCE);
    let name = backend.name();
    let path = format!(
        "/api/destinations/{}/pause",
        name.replace(':', "%3A").replace('/', "%2F")
    );
    // Closed by default: no token, no pause.
    let (code, _) = request(&inbox.url, "POST", &path, &[], b"");
    assert_eq!(code, 401);
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let (code, paused) = request(&inbox.url, "POST", &path, &[("authorization", &auth)], b"");
    assert_eq!(code, 200, "{paused}");
    assert_eq!(paused["state"], "paused");

    for i in 1..=20 {
        inbox.post_bigcommerce(&bigcommerce_event(&format!("pause-{i}")));
    }
    wait_until("20 webhooks held", &inbox, || {
        destinations(&inbox)[0]["held"] == 20
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        backend.seen_up.load(Ordering::SeqCst),
        1,
        "nothing delivered while paused"
    );
    assert_eq!(count(&inbox, "received"), 20, "held, with no attempt spent");
    let (code, listed) = request(
        &inbox.url,
        "GET",
        "/api/destinations",
        &[("authorization", &auth)],
        b"",
    );
    assert_eq!(code, 200);
    assert_eq!(listed[0]["state"], "paused", "{listed}");
    assert_eq!(listed[0]["held"], 20, "{listed}");

    let (ok, out) = inbox.cli(&["resume", &name]);
    assert!(ok, "{out}");
    wait_until("every webhook completed", &inbox, || {
        count(&inbox, "completed") == 21
    });
    assert_eq!(backend.seen_up.load(Ordering::SeqCst), 21);
    let (ok, out) = inbox.cli(&["pause", "https://never.example:443"]);
    assert!(!ok && out.contains("no destination named"), "{out}");
}
