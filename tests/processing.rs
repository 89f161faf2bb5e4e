//! Processing through the real worker: retries, the dead-letter record, replay, forwarding
//! to a destination, and processors that trap, loop or hoard memory.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::*;

const PATIENCE: Duration = Duration::from_secs(20);

#[test]
fn a_webhook_that_keeps_failing_gets_three_attempts_then_needs_an_operator_and_replay_completes_it()
{
    let inbox = Inbox::start(&[("INBOX_DEMO_FAILURE_RATE", "1")]);
    let (code, answer) = inbox.post_bigcommerce(&bigcommerce_event("hash-dead"));
    assert_eq!(code, 202);
    let id = answer["id"].as_str().unwrap().to_owned();

    let status = inbox.wait_for(&id, "operator_required", PATIENCE);
    assert_eq!(
        status["retries"], 3,
        "a first run and two retries: {status}"
    );
    assert!(
        status["last_error"]
            .as_str()
            .unwrap()
            .contains("retries exhausted"),
        "{status}"
    );

    let (ok, listed) = inbox.cli(&["list", "--status", "operator_required"]);
    assert!(ok, "{listed}");
    assert!(listed.contains(&id), "{listed}");
    let (ok, shown) = inbox.cli(&["status", &id]);
    assert!(ok, "{shown}");
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(
        shown["dead_letters"].as_array().unwrap().len(),
        1,
        "{shown}"
    );
    assert_eq!(shown["dead_letters"][0]["attempts"], 3);
    // Every attempt is on record, with how it ended.
    let ended: Vec<&str> = shown["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["state"].as_str().unwrap())
        .collect();
    assert_eq!(ended, ["failed", "failed", "operator_required"], "{shown}");

    // The operator fixes the cause (here: the failure rate), then replays.
    let inbox = inbox.restart(&[("INBOX_DEMO_FAILURE_RATE", "0")]);
    assert_eq!(
        inbox.status(&id).1["status"],
        "operator_required",
        "nothing happens without a replay"
    );
    let (ok, replayed) = inbox.cli(&["replay", &id]);
    assert!(ok, "{replayed}");
    let status = inbox.wait_for(&id, "completed", PATIENCE);
    assert_eq!(status["retries"], 1, "a fresh budget: {status}");

    let (ok, refused) = inbox.cli(&["replay", &id]);
    assert!(!ok, "a completed webhook is not replayed: {refused}");
}

#[test]
fn the_retry_budget_is_configurable() {
    let inbox = Inbox::start(&[("INBOX_DEMO_FAILURE_RATE", "1"), ("INBOX_MAX_RETRIES", "0")]);
    let (_, answer) = inbox.post_bigcommerce(&bigcommerce_event("hash-budget"));
    let status = inbox.wait_for(
        answer["id"].as_str().unwrap(),
        "operator_required",
        PATIENCE,
    );
    assert_eq!(status["retries"], 1, "{status}");
}

/// A destination on 127.0.0.1 that answers with the given statuses in turn and records
/// what it was sent.
fn destination(answers: Vec<u16>) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for (stream, status) in listener.incoming().zip(answers) {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap();
                }
                head.push_str(&line);
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            record
                .lock()
                .unwrap()
                .push(head + &String::from_utf8(body).unwrap());
            let reply = format!(
                "HTTP/1.1 {status} Status\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
            stream.write_all(reply.as_bytes()).unwrap();
        }
    });
    (url, seen)
}

#[test]
fn webhooks_are_forwarded_and_a_5xx_is_retried() {
    let (url, seen) = destination(vec![503, 200]);
    let inbox = Inbox::start(&[("INBOX_FORWARD_URL", &url)]);
    let event = bigcommerce_event("hash-forward");
    let (_, answer) = inbox.post_bigcommerce(&event);
    let id = answer["id"].as_str().unwrap();

    let status = inbox.wait_for(id, "completed", PATIENCE);
    assert_eq!(status["retries"], 2, "{status}");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    let last = seen[1].to_ascii_lowercase();
    assert!(last.starts_with("post /hooks "), "{last}");
    assert!(
        last.contains(&format!("x-inbox-webhook-id: {id}")),
        "{last}"
    );
    assert!(last.contains("x-inbox-attempt: 2"), "{last}");
    assert!(
        seen[1].ends_with(std::str::from_utf8(&event).unwrap()),
        "the payload, byte for byte"
    );
    // Each attempt is logged with the destination the processor named: the forward URL's
    // scheme, host and port, not its path.
    let named = url.strip_suffix("/hooks").unwrap();
    let attempts: Vec<String> = inbox
        .log()
        .lines()
        .filter(|line| {
            line.contains(id) && (line.contains("processed") || line.contains("attempt failed"))
        })
        .map(str::to_owned)
        .collect();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    for line in &attempts {
        assert!(line.contains(named) && !line.contains("/hooks"), "{line}");
    }
}

#[test]
fn a_410_from_the_destination_is_permanent() {
    let (url, _) = destination(vec![410]);
    let inbox = Inbox::start(&[("INBOX_FORWARD_URL", &url)]);
    let (_, answer) = inbox.post_bigcommerce(&bigcommerce_event("hash-gone"));
    let status = inbox.wait_for(
        answer["id"].as_str().unwrap(),
        "operator_required",
        PATIENCE,
    );
    assert_eq!(status["retries"], 1, "{status}");
    assert!(
        status["last_error"].as_str().unwrap().contains("410"),
        "{status}"
    );
}

/// Runs the misbehaving processor, which misbehaves on its first attempt only.
fn misbehaving(how: &str, extra: &[(&str, &str)]) -> (Inbox, serde_json::Value) {
    let processor = component("misbehaving_processor");
    let mut env = vec![
        ("INBOX_PROCESSOR_WASM", processor.to_str().unwrap()),
        ("INBOX_PROCESSOR_MISBEHAVIOUR", how),
        ("INBOX_PROCESSOR_MISBEHAVE_ATTEMPTS", "1"),
    ];
    env.extend_from_slice(extra);
    let inbox = Inbox::start(&env);
    let (code, answer) = inbox.post_bigcommerce(&bigcommerce_event(&format!("hash-{how}")));
    assert_eq!(code, 202);
    let status = inbox.wait_for(answer["id"].as_str().unwrap(), "completed", PATIENCE);
    assert_eq!(
        status["retries"], 2,
        "the misbehaving attempt counted as a failure: {status}"
    );
    // The host kept serving throughout.
    let (code, _) = inbox.post_bigcommerce(&bigcommerce_event(&format!("hash-{how}-after")));
    assert_eq!(code, 202);
    (inbox, status)
}

#[test]
fn a_processor_that_traps_is_a_failed_attempt() {
    let (_, status) = misbehaving("trap", &[]);
    assert!(
        status["last_error"].as_str().unwrap().contains("trap"),
        "{status}"
    );
}

#[test]
fn a_processor_that_loops_forever_is_interrupted_at_its_deadline() {
    let (_, status) = misbehaving("loop", &[("INBOX_PROCESSOR_TIMEOUT_MS", "500")]);
    let error = status["last_error"].as_str().unwrap();
    assert!(error.contains("deadline"), "{status}");
}

#[test]
fn a_processor_that_hoards_memory_hits_its_limit() {
    let (_, status) = misbehaving(
        "memory",
        &[("INBOX_MAX_COMPONENT_MEMORY_BYTES", "33554432")],
    );
    assert!(
        status["last_error"]
            .as_str()
            .unwrap()
            .ends_with("it reached its memory limit of 32 MiB (INBOX_MAX_COMPONENT_MEMORY_BYTES)"),
        "{status}"
    );
}

#[test]
fn a_processor_sees_its_own_settings_and_no_secret_of_the_inbox() {
    let processor = component("misbehaving_processor");
    let inbox = Inbox::start(&[
        ("INBOX_PROCESSOR_WASM", processor.to_str().unwrap()),
        ("INBOX_PROCESSOR_MISBEHAVIOUR", "list-config"),
        ("INBOX_PROCESSOR_API_KEY", "the processor's own"),
        ("INBOX_GITHUB_SECRET", "github-secret"),
        ("INBOX_SOURCES", "acme:standard-webhooks"),
        ("INBOX_ACME_SECRET", "whsec_c2VjcmV0"),
        ("INBOX_FORWARD_URL", "http://127.0.0.1:9/hook"),
    ]);
    let (code, answer) = inbox.post_bigcommerce(&bigcommerce_event("hash-list-config"));
    assert_eq!(code, 202, "{answer}");
    // It answers with what it can see, as a rejection, so the reason keeps it.
    let status = inbox.wait_for(
        answer["id"].as_str().unwrap(),
        "operator_required",
        PATIENCE,
    );
    let seen = status["last_error"].as_str().unwrap();
    assert!(
        seen.contains("processor_api_key=the processor's own"),
        "{seen}"
    );
    assert!(
        seen.contains("processor_misbehaviour=list-config"),
        "{seen}"
    );
    assert!(seen.contains("forward_url="), "{seen}");
    for secret in [
        BIGCOMMERCE_SECRET,
        STRIPE_SECRET,
        ADMIN_TOKEN,
        "github-secret",
        "whsec_c2VjcmV0",
        "acme:standard-webhooks",
    ] {
        assert!(
            !seen.contains(secret),
            "the processor read {secret}: {seen}"
        );
    }
}

#[test]
fn operators_list_and_replay_over_http_with_the_admin_token() {
    // A slow backoff, so the replayed webhook cannot die again between two requests; a
    // breaker that does not open on its six failures, so that it does die again.
    let inbox = Inbox::start(&[
        ("INBOX_DEMO_FAILURE_RATE", "1"),
        ("INBOX_RETRY_BASE_DELAY_MS", "1000"),
        ("INBOX_BREAKER_FAILURES", "100"),
    ]);
    let (_, answer) = inbox.post_bigcommerce(&bigcommerce_event("hash-admin-http"));
    let id = answer["id"].as_str().unwrap().to_owned();
    inbox.wait_for(&id, "operator_required", PATIENCE);

    let auth = format!("Bearer {ADMIN_TOKEN}");
    let admin = [("Authorization", auth.as_str())];
    let (code, listed) = request(
        &inbox.url,
        "GET",
        "/api/webhooks?status=operator_required",
        &admin,
        b"",
    );
    assert_eq!(code, 200, "{listed}");
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["retries"], 3);
    let (code, completed) = request(
        &inbox.url,
        "GET",
        "/api/webhooks?status=completed",
        &admin,
        b"",
    );
    assert_eq!((code, completed.as_array().unwrap().len()), (200, 0));

    let replay = format!("/api/webhooks/{id}/replay");
    let (code, _) = request(&inbox.url, "POST", &replay, &[], b"");
    assert_eq!(code, 401, "replay needs the token");
    let (code, replayed) = request(&inbox.url, "POST", &replay, &admin, b"");
    assert_eq!(code, 200, "{replayed}");
    assert_eq!(replayed["status"], "received");
    let (code, again) = request(&inbox.url, "POST", &replay, &admin, b"");
    assert_eq!(code, 409, "only a dead webhook is replayed: {again}");

    // Still failing: a fresh budget of three attempts, then a second dead-letter record.
    let status = inbox.wait_for(&id, "operator_required", PATIENCE);
    assert_eq!(status["retries"], 3, "{status}");
    let (_, shown) = inbox.cli(&["status", &id]);
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(
        shown["dead_letters"].as_array().unwrap().len(),
        2,
        "{shown}"
    );

    let unknown = "/api/webhooks/6f1ed002-ab5d-5b2c-9b4e-3a1d2c3b4a59/replay";
    let (code, _) = request(&inbox.url, "POST", unknown, &admin, b"");
    assert_eq!(code, 404);
}

#[test]
fn the_host_refuses_to_start_on_settings_that_would_fail_every_attempt() {
    for settings in [
        &[("INBOX_FORWARD_URL", "ftp://example.com/hooks")][..],
        &[("INBOX_DEMO_FAILURE_RATE", "2")],
        &[("INBOX_SOURCES", "acme:carrier-pigeon")],
        // Every admin request would be refused (an IPv6 address needs its brackets).
        &[("INBOX_ALLOWED_HOSTS", "::1")],
        // More instances at once than the instance pool holds.
        &[("INBOX_MAX_CONCURRENT_REQUESTS", "1000")],
        &[("INBOX_WORKER_CONCURRENCY", "1000")],
        &[("INBOX_RETRY_SCHEDULE", "5s,soon")],
        // Which would win is not guessed.
        &[("INBOX_RETRY_SCHEDULE", "5s"), ("INBOX_MAX_RETRIES", "2")],
    ] {
        let dir = tempfile::tempdir().unwrap();
        let output = std::process::Command::new(inbox_exe())
            .args(["serve", "--listen", "127.0.0.1:0", "--db"])
            .arg(dir.path().join("inbox.db"))
            .env_clear()
            .envs(settings.iter().copied())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{settings:?} started");
        for (name, _) in settings {
            assert!(stderr.contains(name), "{name}: {stderr}");
        }
    }
}

#[test]
fn a_retry_schedule_paces_the_attempts_then_needs_an_operator() {
    let inbox = Inbox::start(&[
        ("INBOX_DEMO_FAILURE_RATE", "1"),
        ("INBOX_RETRY_SCHEDULE", "500ms,1500ms"),
    ]);
    assert!(
        inbox.log().contains("2 retries over 2s"),
        "the schedule is logged at start: {}",
        inbox.log()
    );
    let (code, answer) = inbox.post_bigcommerce(&bigcommerce_event("hash-schedule"));
    assert_eq!(code, 202);
    let id = answer["id"].as_str().unwrap().to_owned();
    let status = inbox.wait_for(&id, "operator_required", PATIENCE);
    assert_eq!(
        status["retries"], 3,
        "a first run and the two retries: {status}"
    );
    let (ok, shown) = inbox.cli(&["status", &id]);
    assert!(ok, "{shown}");
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    let attempts = shown["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3, "{shown}");
    // Each retry waited its turn of the schedule, less at most a tenth of it.
    for (n, least) in [(1, 450), (2, 1_350)] {
        let waited = attempts[n]["started_at"].as_i64().unwrap()
            - attempts[n - 1]["ended_at"].as_i64().unwrap();
        assert!(waited >= least, "retry {n} after {waited} ms: {shown}");
    }
}

#[test]
fn inbox_tail_follows_arrivals_and_outcomes_as_json_lines_through_a_pipe() {
    let inbox = Inbox::start(&[("INBOX_DEMO_FAILURE_RATE", "0")]);
    let mut tail = std::process::Command::new(inbox_exe())
        .args(["tail", "--every-ms", "50", "--db"])
        .arg(inbox.db())
        .env_clear()
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Started before anything arrives: wait until it follows the store.
    let mut log = BufReader::new(tail.stderr.take().unwrap()).lines();
    while !log
        .next()
        .expect("tail says when it follows")
        .unwrap()
        .contains("following")
    {}
    std::thread::spawn(move || log.for_each(drop));
    let mut ids = Vec::new();
    for n in 0..3 {
        let (code, answer) = inbox.post_bigcommerce(&bigcommerce_event(&format!("tail-{n}")));
        assert_eq!(code, 202);
        ids.push(answer["id"].as_str().unwrap().to_owned());
    }
    let stdout = tail.stdout.take().unwrap();
    let (lines, read) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if lines.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let mut arrived = Vec::new();
    let mut completed = Vec::new();
    while completed.len() < ids.len() {
        let line = read
            .recv_timeout(PATIENCE)
            .unwrap_or_else(|_| panic!("tail went quiet: {arrived:?} {completed:?}"));
        assert!(!line.contains('\x1b'), "no colour into a pipe: {line}");
        let event: serde_json::Value = serde_json::from_str(&line).unwrap();
        let id = event["id"].as_str().unwrap().to_owned();
        if event["event"] == "arrived" {
            arrived.push(id.clone());
        }
        // Seen first already done, or done since.
        if event["status"] == "completed" {
            completed.push(id);
        }
    }
    let _ = tail.kill();
    let _ = tail.wait();
    assert_eq!(arrived, ids, "each arrival once, in order");
    completed.sort();
    ids.sort();
    assert_eq!(completed, ids);
}

#[test]
fn inbox_list_is_a_coloured_table_on_a_terminal_and_json_lines_into_a_pipe() {
    let inbox = Inbox::start(&[]);
    let (_, answer) = inbox.post_bigcommerce(&bigcommerce_event("hash-table"));
    let id = answer["id"].as_str().unwrap().to_owned();
    inbox.wait_for(&id, "completed", PATIENCE);

    let (ok, piped) = inbox.cli(&["list"]);
    assert!(ok, "{piped}");
    let line: serde_json::Value = serde_json::from_str(piped.lines().next().unwrap()).unwrap();
    assert_eq!(line["id"], id.as_str());
    assert!(!piped.contains('\x1b'), "no colour into a pipe: {piped:?}");

    // On a terminal: util-linux's `script` runs the command on a pseudo-terminal.
    let on_a_terminal = |no_color: Option<&str>| {
        let command = format!(
            "{} list --db {}",
            inbox_exe().display(),
            inbox.db().display()
        );
        let mut script = std::process::Command::new("script");
        script
            .args(["-qec", &command, "/dev/null"])
            .env_clear()
            .env("TERM", "xterm");
        if let Some(value) = no_color {
            script.env("NO_COLOR", value);
        }
        let output = script.output().expect("util-linux's script runs");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let table = on_a_terminal(None);
    assert!(
        table.contains("RECEIVED") && table.contains("LAST ERROR"),
        "{table:?}"
    );
    assert!(table.contains(&id), "{table:?}");
    assert!(table.contains("\x1b[32mcompleted"), "{table:?}");
    let plain = on_a_terminal(Some("1"));
    assert!(
        plain.contains("completed") && !plain.contains('\x1b'),
        "{plain:?}"
    );
}

/// SQLite has no TTL: `inbox serve` sweeps what the retention no longer keeps when it
/// starts (and every quarter of an hour), completed webhooks only.
#[test]
fn serve_deletes_completed_webhooks_past_the_retention_and_keeps_one_that_needs_work() {
    let inbox = Inbox::start(&[("INBOX_MAX_RETRIES", "0")]);
    let (_, old) = inbox.post_bigcommerce(&bigcommerce_event("hash-old"));
    let (_, recent) = inbox.post_bigcommerce(&bigcommerce_event("hash-recent"));
    let (old, recent) = (old["id"].as_str().unwrap(), recent["id"].as_str().unwrap());
    inbox.wait_for(old, "completed", PATIENCE);
    inbox.wait_for(recent, "completed", PATIENCE);
    let mut inbox = inbox;
    inbox.kill();
    // One completed 31 days ago, and one dead as long: a sweep takes only the first.
    let day_ms: i64 = 86_400_000;
    let long_ago = inbox_core::clock::now_ms() - 31 * day_ms;
    let conn = rusqlite::Connection::open(inbox.db()).unwrap();
    let aged = conn
        .execute(
            "UPDATE items SET updated_at = ?1 WHERE id = ?2 AND sk = 'STATUS'",
            rusqlite::params![long_ago, old],
        )
        .unwrap();
    assert_eq!(aged, 1);
    conn.execute(
        "UPDATE items SET status = 'operator_required', updated_at = ?1
         WHERE id = ?2 AND sk = 'STATUS'",
        rusqlite::params![long_ago, recent],
    )
    .unwrap();
    drop(conn);

    let inbox = inbox.restart(&[("INBOX_RETENTION_DAYS", "30")]);
    let deadline = std::time::Instant::now() + PATIENCE;
    while inbox.status(old).0 != 404 {
        assert!(
            std::time::Instant::now() < deadline,
            "the completed webhook past its retention is still there\n{}",
            inbox.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        inbox
            .log()
            .contains("deleted what the retention no longer keeps")
    );
    let (code, dead) = inbox.status(recent);
    assert_eq!(
        (code, dead["status"].as_str()),
        (200, Some("operator_required"))
    );
    let left: i64 = rusqlite::Connection::open(inbox.db())
        .unwrap()
        .query_row("SELECT COUNT(*) FROM items WHERE id = ?1", [old], |row| {
            row.get(0)
        })
        .unwrap();
    assert_eq!(left, 0, "every item of it");
}
