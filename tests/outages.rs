//! Outages of a destination, on `inbox serve` with the clock scaled down: the breaker holds
//! webhooks without spending their retries and probes with one at a time; an operator
//! pauses and resumes a destination.

mod support;

use std::io::{BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
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
    /// When each delivery it answered 200 arrived.
    arrivals: Arc<Mutex<Vec<Instant>>>,
    /// The most deliveries it was answering at once.
    most_at_once: Arc<AtomicUsize>,
}

impl Backend {
    fn start(up: bool) -> Backend {
        Backend::answering_after(up, Duration::ZERO)
    }

    /// One that takes `delay` to answer each delivery.
    fn answering_after(up: bool, delay: Duration) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let backend = Backend {
            url: format!("http://{}/hooks", listener.local_addr().unwrap()),
            up: Arc::new(AtomicBool::new(up)),
            seen_down: Arc::default(),
            seen_up: Arc::default(),
            arrivals: Arc::default(),
            most_at_once: Arc::default(),
        };
        let (is_up, down, ok) = (
            backend.up.clone(),
            backend.seen_down.clone(),
            backend.seen_up.clone(),
        );
        let (arrivals, most) = (backend.arrivals.clone(), backend.most_at_once.clone());
        let at_once = Arc::new(AtomicUsize::new(0));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let (is_up, down, ok) = (is_up.clone(), down.clone(), ok.clone());
                let (arrivals, most, at_once) = (arrivals.clone(), most.clone(), at_once.clone());
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    if read_request(&mut reader).is_none() {
                        return;
                    }
                    let status = if is_up.load(Ordering::SeqCst) {
                        arrivals.lock().unwrap().push(Instant::now());
                        let now = at_once.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(delay);
                        at_once.fetch_sub(1, Ordering::SeqCst);
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

/// An operator's alert endpoint on 127.0.0.1: answers the first `failing` requests `500`,
/// then records each notice and answers 204; a request without its `Host` is answered 400
/// (as virtual hosts answer it) and not recorded.
struct AlertReceiver {
    url: String,
    notices: Arc<Mutex<Vec<Received>>>,
    requests: Arc<AtomicUsize>,
}

/// The secret notices are signed with, and its key.
const ALERT_SECRET: &str = "whsec_YWxlcnQtc2VjcmV0";
const ALERT_KEY: &[u8] = b"alert-secret";

impl AlertReceiver {
    fn start(failing: usize) -> AlertReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let receiver = AlertReceiver {
            url: format!("http://{address}/alerts?token=alert-url-token"),
            notices: Arc::default(),
            requests: Arc::default(),
        };
        let (notices, requests) = (receiver.notices.clone(), receiver.requests.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let Some((headers, body)) = read_request(&mut reader) else {
                    continue;
                };
                let status = if !headers.contains(&("host".to_owned(), address.to_string())) {
                    "400 Bad Request"
                } else if requests.fetch_add(1, Ordering::SeqCst) < failing {
                    "500 Internal Server Error"
                } else {
                    notices.lock().unwrap().push((headers, body));
                    "204 No Content"
                };
                let reply =
                    format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                let _ = stream.write_all(reply.as_bytes());
            }
        });
        receiver
    }

    /// The notices received so far whose signature checks out, as JSON; one that does not
    /// fails the test.
    fn verified(&self) -> Vec<Value> {
        use base64::Engine as _;
        use hmac::Mac as _;
        let notices = self.notices.lock().unwrap().clone();
        notices
            .into_iter()
            .map(|(headers, body)| {
                let header = |name: &str| {
                    headers
                        .iter()
                        .find(|(n, _)| n == name)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default()
                };
                let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(ALERT_KEY).unwrap();
                mac.update(
                    format!("{}.{}.", header("webhook-id"), header("webhook-timestamp")).as_bytes(),
                );
                mac.update(&body);
                let expected =
                    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
                assert_eq!(header("webhook-signature"), format!("v1,{expected}"));
                serde_json::from_slice(&body).unwrap()
            })
            .collect()
    }
}

fn destinations(inbox: &Inbox) -> Vec<Value> {
    let (ok, out) = inbox.cli(&["destinations", "--json"]);
    assert!(ok, "{out}");
    out.lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn count(inbox: &Inbox, state: &str) -> usize {
    inbox.states().iter().filter(|(_, s, _)| s == state).count()
}

#[test]
fn an_outage_ends_with_every_webhook_completed_and_the_destination_saw_only_failures_and_probes() {
    let backend = Backend::start(false);
    let alerts = AlertReceiver::start(0);
    let env = [
        ("INBOX_FORWARD_URL", backend.url.as_str()),
        ("INBOX_ALERT_URL", alerts.url.as_str()),
        ("INBOX_ALERT_SECRET", ALERT_SECRET),
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
    inbox.wait_until("the destination opening", PATIENCE, || open(&inbox));
    // The operator's endpoint hears it, signed.
    let kinds = || -> Vec<String> {
        let notices = alerts.verified();
        notices
            .iter()
            .map(|n| n["type"].as_str().unwrap().to_owned())
            .collect()
    };
    inbox.wait_until("the opening notice", PATIENCE, || !kinds().is_empty());

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
    inbox.wait_until("every webhook held", PATIENCE, || {
        destinations(&inbox)[0]["held"].as_u64().unwrap() >= 150
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(count(&inbox, "operator_required"), 0);

    backend.up.store(true, Ordering::SeqCst);
    let outage = started.elapsed();
    let recovered = Instant::now();
    inbox.wait_until("every webhook completed", PATIENCE, || {
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
    // The operator's endpoint heard it open once and close once, with nothing secret in it.
    inbox.wait_until("the closing notice", PATIENCE, || kinds().len() == 2);
    assert_eq!(kinds(), ["destination.opened", "destination.closed"]);
    let notices = alerts.verified();
    let opened = notices
        .iter()
        .find(|n| n["type"] == "destination.opened")
        .unwrap();
    assert_eq!(opened["data"]["destination"], backend.name());
    assert!(
        opened["data"]["failures"].as_u64().unwrap() >= 3,
        "{opened}"
    );
    assert!(
        !serde_json::to_string(&notices)
            .unwrap()
            .contains("alert-url-token")
    );
    assert!(
        !inbox.log().contains("alert-url-token"),
        "the alert URL's token is never logged"
    );
    eprintln!(
        "outage of {outage:?}: 200 webhooks, {seen_down} deliveries while down, \
         {} after; the last completed {drained:?} after recovery",
        backend.seen_up.load(Ordering::SeqCst)
    );
}

/// The baseline the outage test is measured against, in the same run: the same schedule
/// with a breaker that never opens dead-letters every webhook and sends the destination each
/// of their attempts.
#[test]
fn without_the_breaker_the_same_outage_needs_an_operator_for_every_webhook() {
    let backend = Backend::start(false);
    let inbox = Inbox::start(&[
        ("INBOX_FORWARD_URL", backend.url.as_str()),
        ("INBOX_RETRY_SCHEDULE", "100ms,200ms,400ms"),
        ("INBOX_BREAKER_FAILURES", "1000000"),
        ("INBOX_PROCESSOR_TIMEOUT_MS", "2000"),
    ]);
    for i in 0..100 {
        let (code, _) = inbox.post_bigcommerce(&bigcommerce_event(&format!("no-breaker-{i}")));
        assert_eq!(code, 202);
    }
    inbox.wait_until("every webhook dead-lettered", PATIENCE, || {
        count(&inbox, "operator_required") == 100
    });
    let seen_down = backend.seen_down.load(Ordering::SeqCst);
    assert_eq!(seen_down, 400, "each webhook's four attempts");
    eprintln!(
        "without the breaker: 100 webhooks, {seen_down} deliveries while down, 100 operator_required"
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
    inbox.wait_until("20 webhooks held", PATIENCE, || {
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
    inbox.wait_until("every webhook completed", PATIENCE, || {
        count(&inbox, "completed") == 21
    });
    assert_eq!(backend.seen_up.load(Ordering::SeqCst), 21);
    let (ok, out) = inbox.cli(&["pause", "https://never.example:443"]);
    assert!(!ok && out.contains("no destination named"), "{out}");
}

#[test]
fn a_backlog_drains_at_the_destination_s_rate_and_concurrency() {
    // Slower than the rate's spacing (40 ms), so that the concurrency binds too.
    let backend = Backend::answering_after(true, Duration::from_millis(150));
    let limits = format!("{} rate=25 concurrency=2", backend.name());
    let inbox = Inbox::start(&[
        ("INBOX_FORWARD_URL", backend.url.as_str()),
        ("INBOX_DESTINATION_LIMITS", limits.as_str()),
    ]);
    let (_, first) = inbox.post_bigcommerce(&bigcommerce_event("drain-0"));
    inbox.wait_for(first["id"].as_str().unwrap(), "completed", PATIENCE);
    let (ok, out) = inbox.cli(&["pause", &backend.name()]);
    assert!(ok, "{out}");
    let backlog = 60;
    for i in 1..=backlog {
        inbox.post_bigcommerce(&bigcommerce_event(&format!("drain-{i}")));
    }
    inbox.wait_until("the backlog held", PATIENCE, || {
        destinations(&inbox)[0]["held"] == backlog
    });
    backend.arrivals.lock().unwrap().clear();
    let (ok, out) = inbox.cli(&["resume", &backend.name()]);
    assert!(ok, "{out}");
    let resumed = Instant::now();
    inbox.wait_until("the backlog drained", PATIENCE, || {
        count(&inbox, "completed") == backlog + 1
    });
    let drained = resumed.elapsed();
    let arrivals = backend.arrivals.lock().unwrap().clone();
    assert_eq!(arrivals.len(), backlog);
    assert!(
        backend.most_at_once.load(Ordering::SeqCst) <= 2,
        "at most 2 at once"
    );
    // Evenly spaced at 25 a second: no second holds more than 25 (and one more at its
    // edge), however many workers wait.
    for (i, start) in arrivals.iter().enumerate() {
        let within = arrivals[i..]
            .iter()
            .take_while(|at| at.duration_since(*start) < Duration::from_secs(1))
            .count();
        assert!(within <= 26, "{within} deliveries within a second");
    }
    let span = arrivals.last().unwrap().duration_since(arrivals[0]);
    assert!(span >= Duration::from_millis(59 * 40 * 9 / 10), "{span:?}");
    eprintln!(
        "drained {backlog} at rate=25 concurrency=2 in {drained:?}: {:.1} a second, at most {} at once",
        (backlog - 1) as f64 / span.as_secs_f64(),
        backend.most_at_once.load(Ordering::SeqCst)
    );
}

/// `inbox serve` against a destination that is down, with one quick retry and a breaker
/// that does not open, so that a webhook exhausts its schedule at once; alerts to `alerts`.
fn exhausting(backend: &Backend, alerts: &AlertReceiver) -> Inbox {
    Inbox::start(&[
        ("INBOX_FORWARD_URL", backend.url.as_str()),
        ("INBOX_RETRY_SCHEDULE", "100ms"),
        ("INBOX_BREAKER_FAILURES", "100"),
        ("INBOX_ALERT_URL", alerts.url.as_str()),
        ("INBOX_ALERT_SECRET", ALERT_SECRET),
    ])
}

#[test]
fn a_webhook_that_exhausts_its_schedule_is_a_signed_notice() {
    let backend = Backend::start(false);
    // Its first try fails: the notice is tried again.
    let alerts = AlertReceiver::start(1);
    let inbox = exhausting(&backend, &alerts);
    let (_, answer) = inbox.post_bigcommerce(&bigcommerce_event("exhausted"));
    let id = answer["id"].as_str().unwrap().to_owned();
    inbox.wait_for(&id, "operator_required", PATIENCE);
    inbox.wait_until("the notice", PATIENCE, || !alerts.verified().is_empty());
    let notice = &alerts.verified()[0];
    assert_eq!(alerts.requests.load(Ordering::SeqCst), 2);
    assert_eq!(notice["type"], "webhook.exhausted", "{notice}");
    assert_eq!(notice["data"]["id"], id.as_str());
    assert_eq!(notice["data"]["attempts"], 2);
    assert!(
        notice["data"]["reason"].as_str().unwrap().contains("503"),
        "{notice}"
    );
    // Without the secret, an alert URL is refused at start, and its token is not repeated.
    let mut worker = std::process::Command::new(inbox_exe())
        .args(["worker", "--db"])
        .arg(inbox.db())
        .env_clear()
        .env("INBOX_FORWARD_URL", &backend.url)
        .env("INBOX_ALERT_URL", &alerts.url)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    while worker.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            worker.kill().unwrap();
            panic!("a worker with an unsigned alert URL kept running");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let refused = worker.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(said.contains("INBOX_ALERT_SECRET"), "{said}");
    assert!(!said.contains("alert-url-token"), "{said}");
}

#[test]
fn an_alert_that_cannot_be_delivered_is_logged_without_its_token() {
    let backend = Backend::start(false);
    let alerts = AlertReceiver::start(usize::MAX);
    let inbox = exhausting(&backend, &alerts);
    let (_, answer) = inbox.post_bigcommerce(&bigcommerce_event("undeliverable"));
    inbox.wait_for(
        answer["id"].as_str().unwrap(),
        "operator_required",
        PATIENCE,
    );
    inbox.wait_until("the undelivered alert logged", PATIENCE, || {
        inbox.log().contains("an alert could not be delivered")
    });
    assert_eq!(alerts.requests.load(Ordering::SeqCst), 3, "three tries");
    let log = inbox.log();
    assert!(log.contains("answered 500"), "{log}");
    assert!(!log.contains("alert-url-token"), "{log}");
}
