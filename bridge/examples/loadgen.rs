//! A load generator for the capture endpoint: N keep-alive connections on 127.0.0.1 send
//! pre-signed BigCommerce deliveries (each unique, so each is a durable commit) or, as a
//! baseline through the same HTTP and wasm path without the store, deliveries to an unknown
//! origin. Bounded in count; prints throughput and latency percentiles.
//!
//! `flood`: every connection opens at once and sends one delivery of the largest body the
//! inbox accepts by default (256 KiB); a connection that gets no answer is counted by why.
//!
//! `capture:BYTES` sends deliveries padded to BYTES each (`scripts/bench-large`).
//!
//! `cargo run --release --example loadgen -- URL SECRET capture[:BYTES]|baseline|flood CONNECTIONS REQUESTS`

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, secret, scenario, connections, requests] = args.as_slice() else {
        eprintln!("usage: loadgen URL SECRET capture[:BYTES]|baseline|flood CONNECTIONS REQUESTS");
        std::process::exit(2);
    };
    let address = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let connections: usize = connections.parse().expect("CONNECTIONS is a number");
    let requests: usize = requests.parse().expect("REQUESTS is a number");
    let (scenario, size) = match scenario.split_once(':') {
        Some((scenario, size)) => (scenario, size.parse().expect("BYTES is a number")),
        None => (scenario.as_str(), 0),
    };
    let origin = match scenario {
        "capture" | "flood" => "bigcommerce",
        "baseline" => "unknown-origin",
        other => panic!("unknown scenario {other}"),
    };
    let run_id = std::process::id();
    if scenario == "flood" {
        return flood(&address, secret, connections, run_id);
    }
    // Signed before the clock starts: the generator measures the server, not itself.
    let batches: Vec<Vec<Vec<u8>>> = (0..connections)
        .map(|c| {
            (0..requests / connections)
                .map(|i| {
                    let hash = format!("{run_id}-{scenario}-{c}-{i}");
                    request_of_size(&address, origin, secret, &hash, size)
                })
                .collect()
        })
        .collect();

    let started = Instant::now();
    let workers: Vec<_> = batches
        .into_iter()
        .map(|batch| {
            let address = address.clone();
            std::thread::spawn(move || send_all(&address, batch))
        })
        .collect();
    let mut latencies = Vec::new();
    let mut statuses = std::collections::BTreeMap::new();
    for worker in workers {
        for (status, latency) in worker.join().expect("a connection thread failed") {
            *statuses.entry(status).or_insert(0) += 1;
            latencies.push(latency);
        }
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let percentile =
        |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "{scenario}: {} requests over {connections} connections in {:.2} s = {:.1} req/s; p50 {:?}, p99 {:?}; statuses {statuses:?}",
        latencies.len(),
        elapsed.as_secs_f64(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        percentile(0.50),
        percentile(0.99),
    );
}

/// Each flood delivery's size: the body limit before it became GitHub's 25 MB, so that the
/// flood's figures stay comparable (BENCHMARKS.md has large bodies on their own).
const MAX_BODY_BYTES: usize = 256 * 1024;

fn flood(address: &str, secret: &str, connections: usize, run_id: u32) {
    let requests: Vec<Vec<u8>> = (0..connections)
        .map(|c| {
            let hash = format!("{run_id}-flood-{c}");
            request_of_size(address, "bigcommerce", secret, &hash, MAX_BODY_BYTES)
        })
        .collect();
    let start = std::sync::Arc::new(std::sync::Barrier::new(connections));
    let started = Instant::now();
    let workers: Vec<_> = requests
        .into_iter()
        .map(|request| {
            let address = address.to_owned();
            let start = start.clone();
            std::thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn(move || {
                    start.wait();
                    let sent = Instant::now();
                    (send_one(&address, &request), sent.elapsed())
                })
                .expect("a thread per connection")
        })
        .collect();
    let mut statuses = std::collections::BTreeMap::new();
    let mut slowest = Duration::ZERO;
    for worker in workers {
        let (status, latency) = worker.join().expect("a connection thread failed");
        *statuses.entry(status).or_insert(0) += 1;
        slowest = slowest.max(latency);
    }
    println!(
        "flood: {connections} connections at once, {MAX_BODY_BYTES} bytes each, answered in {:.2} s (slowest {slowest:?}); statuses {statuses:?}",
        started.elapsed().as_secs_f64()
    );
}

/// One request on its own connection: its status, or why it got none.
fn send_one(address: &str, request: &[u8]) -> String {
    let stream = match TcpStream::connect(address) {
        Ok(stream) => stream,
        Err(error) => return format!("connect: {:?}", error.kind()),
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut writer = stream;
    // The server may answer (503) and close before it has read it all: then the write fails
    // and the answer is still there to read.
    let _ = writer.write_all(request);
    let mut line = String::new();
    match reader.read_line(&mut line) {
        Ok(0) => "closed without an answer".into(),
        Ok(_) => line.split(' ').nth(1).unwrap_or("garbled").to_owned(),
        Err(error) => format!("read: {:?}", error.kind()),
    }
}

/// A signed delivery whose body is padded to `size` bytes (if it is shorter).
fn request_of_size(address: &str, origin: &str, secret: &str, hash: &str, size: usize) -> Vec<u8> {
    let head = format!(
        r#"{{"scope":"store/order/created","store_id":"1025646","data":{{"type":"order","id":250}},"hash":"{hash}","created_at":1561479335,"producer":"stores/abc123""#
    );
    let padding = size.saturating_sub(head.len() + r#","padding":""}"#.len());
    let body = if padding > 0 {
        format!(r#"{head},"padding":"{}"}}"#, "x".repeat(padding))
    } else {
        format!("{head}}}")
    };
    let mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .expect("any key")
        .chain_update(body.as_bytes())
        .finalize()
        .into_bytes();
    let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac);
    format!(
        "POST /api/webhooks/{origin} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nSignature: {signature}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn send_all(address: &str, batch: Vec<Vec<u8>>) -> Vec<(u16, Duration)> {
    let stream = TcpStream::connect(address).expect("the server is listening");
    stream.set_nodelay(true).expect("nodelay");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut writer = stream;
    batch
        .into_iter()
        .map(|request| {
            let sent = Instant::now();
            writer.write_all(&request).expect("send");
            (read_response(&mut reader), sent.elapsed())
        })
        .collect()
}

fn read_response(reader: &mut BufReader<TcpStream>) -> u16 {
    let mut line = String::new();
    reader.read_line(&mut line).expect("status line");
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    let mut length = 0;
    loop {
        line.clear();
        reader.read_line(&mut line).expect("header");
        if line == "\r\n" {
            break;
        }
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().expect("a length");
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).expect("body");
    status
}
