//! Slow and flooding clients against the running host: trickled headers, idle keep-alive
//! connections and stalled bodies are dropped within their deadlines, connections over
//! the limit are refused, a store that cannot keep up makes capture answer 503, and a
//! genuine webhook still gets in.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::*;

fn connect(inbox: &Inbox) -> TcpStream {
    let stream = TcpStream::connect(inbox.url.strip_prefix("http://").unwrap()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    stream
}

/// Whether the server has closed `stream` (or answered and closed): a read sees its end.
fn closed(stream: &mut TcpStream) -> bool {
    let mut buffer = [0u8; 512];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(error) if error.kind() == std::io::ErrorKind::TimedOut => return false,
            Err(_) => return true,
        }
    }
}

/// POSTs a fresh signed webhook until it is captured; how long that took.
fn captured_within(inbox: &Inbox, hash: &str, patience: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let body = bigcommerce_event(hash);
        let request = bigcommerce_request(&body);
        if let Ok((202, _)) = send_raw(&inbox.url, &request) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < patience,
            "no webhook got in within {patience:?}\n{}",
            inbox.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn clients_trickling_their_headers_are_dropped_and_a_webhook_still_gets_in() {
    let inbox = Inbox::start(&[
        ("INBOX_HEADER_TIMEOUT_MS", "1500"),
        ("INBOX_MAX_CONNECTIONS", "100"),
    ]);
    // 300 clients start a request and send one more header byte every 300 ms.
    let started = Instant::now();
    let mut slow: Vec<TcpStream> = (0..300).map(|_| connect(&inbox)).collect();
    for stream in &mut slow {
        let _ = stream.write_all(b"POST /api/webhooks/bigcommerce HTTP/1.1\r\nhost: x\r\nx-slow: ");
    }
    let mut open: Vec<usize> = (0..slow.len()).collect();
    while !open.is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{} slow clients still connected after {:?}",
            open.len(),
            started.elapsed()
        );
        for &i in &open {
            let _ = slow[i].write_all(b"a");
        }
        open.retain(|&i| !closed(&mut slow[i]));
        std::thread::sleep(Duration::from_millis(300));
    }
    // Those over the limit were refused at once, the others dropped at the header deadline.
    assert!(
        started.elapsed() >= Duration::from_millis(1_500),
        "dropped after {:?}, before the deadline",
        started.elapsed()
    );
    captured_within(&inbox, "hash-after-slow-clients", Duration::from_secs(5));
    // A webhook gets in while they trickle, too, once the deadline has freed their places.
    let mut again: Vec<TcpStream> = (0..50).map(|_| connect(&inbox)).collect();
    for stream in &mut again {
        let _ = stream.write_all(b"POST /api/webhooks/bigcommerce HTTP/1.1\r\n");
    }
    captured_within(&inbox, "hash-among-slow-clients", Duration::from_secs(5));
}

#[test]
fn an_idle_keep_alive_connection_and_a_stalled_body_are_dropped() {
    let inbox = Inbox::start(&[
        ("INBOX_IDLE_TIMEOUT_MS", "1000"),
        ("INBOX_BODY_TIMEOUT_MS", "500"),
    ]);
    // A request answered, then nothing: closed once idle for a second.
    let mut idle = connect(&inbox);
    idle.write_all(b"GET /nowhere HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    let started = Instant::now();
    while !closed(&mut idle) {
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "the idle connection stays open"
        );
    }
    assert!(started.elapsed() >= Duration::from_millis(900));

    // A body that stops half-way: 408 at its deadline, nothing stored.
    let body = bigcommerce_event("hash-stalled");
    let mut stalled = connect(&inbox);
    let head = format!(
        "POST /api/webhooks/bigcommerce HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nsignature: {}\r\ncontent-length: {}\r\n\r\n",
        sign_bigcommerce(BIGCOMMERCE_SECRET, &body),
        body.len()
    );
    stalled.write_all(head.as_bytes()).unwrap();
    stalled.write_all(&body[..body.len() / 2]).unwrap();
    stalled
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let started = Instant::now();
    let mut answer = [0u8; 512];
    let read = stalled.read(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(inbox.item_count(), 0);
}

#[test]
fn a_store_that_cannot_keep_up_makes_capture_answer_503_and_nothing_acknowledged_is_lost() {
    let inbox = Inbox::start(&[("INBOX_MAX_QUEUED_WRITES", "2")]);
    captured_within(&inbox, "hash-before", Duration::from_secs(5));
    // Another process holds the database's write lock: the writer waits, its queue fills.
    let blocker = rusqlite::Connection::open(inbox.db()).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let posts: Vec<_> = (0..12)
        .map(|n| {
            let url = inbox.url.clone();
            std::thread::spawn(move || {
                let body = bigcommerce_event(&format!("hash-flood-{n}"));
                let request = bigcommerce_request(&body);
                send_raw(&url, &request).unwrap()
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1_500));
    blocker.execute_batch("ROLLBACK").unwrap();
    let mut acknowledged = Vec::new();
    let mut refused = 0;
    for post in posts {
        let (code, answer) = post.join().unwrap();
        match code {
            202 => acknowledged.push(answer),
            503 => {
                assert!(
                    answer.to_ascii_lowercase().contains("retry-after"),
                    "{answer}"
                );
                refused += 1;
            }
            other => panic!("{other}: {answer}"),
        }
    }
    assert!(refused > 0, "the queue never filled");
    // Every acknowledged webhook is stored; the refused ones are not.
    let stored = inbox.states().len();
    assert_eq!(stored, 1 + acknowledged.len(), "{}", inbox.log());
    captured_within(&inbox, "hash-after", Duration::from_secs(5));
}

/// Raises this process's open file limit to `files` (within the hard limit), for tests
/// that hold that many connections at once.
fn allow_open_files(files: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid rlimit.
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
        0
    );
    assert!(
        limit.rlim_max >= files,
        "this test needs {files} open files; the hard limit is {}",
        limit.rlim_max
    );
    limit.rlim_cur = limit.rlim_cur.max(files);
    // SAFETY: as above.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
}

#[test]
fn a_burst_beyond_the_connection_limit_gets_every_answer() {
    let clients = 1_000;
    allow_open_files(2 * clients as u64 + 256);
    let inbox = Inbox::start(&[("INBOX_MAX_CONNECTIONS", "64")]);
    let start = std::sync::Arc::new(std::sync::Barrier::new(clients));
    let posts: Vec<_> = (0..clients)
        .map(|n| {
            let (url, start) = (inbox.url.clone(), start.clone());
            std::thread::Builder::new()
                .stack_size(128 * 1024)
                .spawn(move || {
                    // Bodies large enough to keep the host busy while the burst arrives.
                    let event = bigcommerce_event(&format!("hash-burst-{n}"));
                    let padding = format!("{{\"padding\":\"{}\",", "x".repeat(32 * 1024));
                    let body = [padding.as_bytes(), &event[1..]].concat();
                    let request = bigcommerce_request(&body);
                    start.wait();
                    send_raw(&url, &request)
                })
                .unwrap()
        })
        .collect();
    let mut answers = std::collections::BTreeMap::new();
    for post in posts {
        let code = match post.join().unwrap() {
            Ok((code, _)) => code.to_string(),
            Err(error) => error,
        };
        *answers.entry(code).or_insert(0) += 1;
    }
    let acknowledged = answers.get("202").copied().unwrap_or(0);
    let refused = answers.get("503").copied().unwrap_or(0);
    assert_eq!(
        acknowledged + refused,
        clients,
        "every client answered: {answers:?}"
    );
    assert!(refused > 0, "the limit was reached: {answers:?}");
    assert_eq!(inbox.states().len(), acknowledged);
}
