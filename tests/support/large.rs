//! Large deliveries for the tests: GitHub push events of any size, signed, and a
//! destination that keeps the length and digest of what it is sent.

use std::io::{BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use hmac::Mac;
use sha2::{Digest, Sha256};

use super::{http, read_request};

pub const GITHUB_SECRET: &str = "gh-large-secret";
pub const MB: usize = 1_000_000;

/// A GitHub push event of exactly `bytes`, many commits long, some of it not ASCII.
pub fn push_event(bytes: usize, delivery: &str) -> Vec<u8> {
    let commit = |i: usize| {
        serde_json::json!({
            "id": format!("{i:040x}"),
            "message": format!("commit {i}: {} — é", "change ".repeat(120)),
            "author": {"name": "Octo Cat", "email": "octo@example.com"},
            "added": [format!("src/file_{i}.rs")],
        })
    };
    let mut event = serde_json::json!({
        "ref": "refs/heads/main",
        "after": delivery,
        "commits": [],
        "padding": "",
    });
    // Room for the longest commit (its number grows), the rest padding.
    let one = commit(usize::MAX).to_string().len() + 1;
    let commits: Vec<_> = (0..bytes.saturating_sub(1_000) / one).map(commit).collect();
    event["commits"] = commits.into();
    let room = bytes - event.to_string().len();
    event["padding"] = "p".repeat(room).into();
    let body = event.to_string().into_bytes();
    assert_eq!(body.len(), bytes);
    body
}

/// The headers GitHub sends with `body`.
pub fn github_headers(body: &[u8], delivery: &str) -> Vec<(String, String)> {
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(GITHUB_SECRET.as_bytes()).unwrap();
    mac.update(body);
    vec![
        ("Content-Type".into(), "application/json".into()),
        ("X-GitHub-Event".into(), "push".into()),
        ("X-GitHub-Delivery".into(), delivery.into()),
        (
            "X-Hub-Signature-256".into(),
            format!("sha256={}", hex::encode(mac.finalize().into_bytes())),
        ),
    ]
}

pub fn github_request(body: &[u8], delivery: &str) -> Vec<u8> {
    let headers = github_headers(body, delivery);
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    http("POST", "/api/webhooks/github", &headers, body)
}

/// A destination on 127.0.0.1 answering 200, keeping the length and digest of each body.
pub struct Destination {
    pub url: String,
    pub bodies: Arc<Mutex<Vec<(usize, String)>>>,
}

impl Destination {
    pub fn start() -> Destination {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let destination = Destination {
            url: format!("http://{}/hooks", listener.local_addr().unwrap()),
            bodies: Arc::default(),
        };
        let bodies = destination.bodies.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let bodies = bodies.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let Some((headers, body)) = read_request(&mut reader) else {
                        return;
                    };
                    assert!(
                        headers.iter().any(|(name, _)| name == "content-length"),
                        "a forwarded body has its length"
                    );
                    let digest = hex::encode(Sha256::digest(&body));
                    bodies.lock().unwrap().push((body.len(), digest));
                    let _ = stream.write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    );
                });
            }
        });
        destination
    }
}
