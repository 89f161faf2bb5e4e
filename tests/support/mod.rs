//! Drives a real `inbox` process over HTTP on 127.0.0.1, each test on its own database
//! and port. Signatures are computed here with the `hmac` crate, independently of the
//! code under test.

#![allow(dead_code)]

pub mod large;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

pub const BIGCOMMERCE_SECRET: &str = "bc-test-secret";
pub const STRIPE_SECRET: &str = "whsec_test_secret";
/// As long as the inbox takes without a warning (32 characters or more).
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";

pub fn inbox_exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_inbox"))
}

/// A component built by scripts/test, beside the default ones.
pub fn component(name: &str) -> PathBuf {
    built(
        &format!("wasm32-wasip2/release/{name}.wasm"),
        "run scripts/test",
    )
}

/// A processor built from a kit in processors/ (`python`, `javascript`) by scripts/test.
pub fn kit_processor(language: &str) -> PathBuf {
    built(
        &format!("processors/{language}.wasm"),
        &format!("run scripts/test (or processors/{language}/build)"),
    )
}

/// A file the build put at `relative` in the cargo target directory.
fn built(relative: &str, how: &str) -> PathBuf {
    let path = inbox_exe().parent().unwrap().join("..").join(relative);
    assert!(path.is_file(), "{} is missing: {how}", path.display());
    path
}

/// The SHA-256 of a file, hex, as hosts log the components they load.
pub fn sha256_of(path: &Path) -> String {
    use sha2::Digest;
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

pub struct Inbox {
    pub dir: tempfile::TempDir,
    pub url: String,
    env: Vec<(String, String)>,
    child: Child,
}

impl Inbox {
    /// Starts `inbox serve` with the test secrets plus `env`.
    pub fn start(env: &[(&str, &str)]) -> Inbox {
        let dir = tempfile::tempdir().unwrap();
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Inbox::start_in(dir, env)
    }

    fn start_in(dir: tempfile::TempDir, env: Vec<(String, String)>) -> Inbox {
        let (child, url) = spawn_serve(dir.path(), &env);
        Inbox {
            dir,
            url,
            env,
            child,
        }
    }

    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).unwrap()
    }

    pub fn db(&self) -> PathBuf {
        self.dir.path().join("inbox.db")
    }

    /// Kills the process at once (SIGKILL): nothing gets to clean up.
    pub fn kill(&mut self) {
        // It may have exited already (see `terminate`).
        let _ = self.child.kill();
        self.child.wait().unwrap();
    }

    /// Asks the process to stop (SIGTERM), as a deployment would, and waits for it.
    pub fn terminate(&mut self, within: Duration) -> std::process::ExitStatus {
        let pid = self.pid();
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "inbox did not stop within {within:?}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The state of every webhook, read from the database (the process may be gone).
    pub fn states(&self) -> Vec<(String, String, i64)> {
        let conn = rusqlite::Connection::open(self.db()).unwrap();
        let mut statement = conn
            .prepare("SELECT id, status, retries FROM items WHERE sk = 'STATUS'")
            .unwrap();
        statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// Starts a new process on the same database, with `env` replacing the old settings.
    pub fn restart(mut self, env: &[(&str, &str)]) -> Inbox {
        self.kill();
        let mut settings = self.env.clone();
        for (k, v) in env {
            settings.retain(|(key, _)| key != k);
            settings.push((k.to_string(), v.to_string()));
        }
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        Inbox::start_in(dir, settings)
    }

    /// POSTs a delivery, as `application/json` unless `headers` say otherwise.
    pub fn post(&self, origin: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, Value) {
        let mut headers = headers.to_vec();
        if !headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("content-type"))
        {
            headers.push(("Content-Type", "application/json"));
        }
        let path = format!("/api/webhooks/{origin}");
        request(&self.url, "POST", &path, &headers, body)
    }

    pub fn post_bigcommerce(&self, body: &[u8]) -> (u16, Value) {
        let signature = sign_bigcommerce(BIGCOMMERCE_SECRET, body);
        self.post(
            "bigcommerce",
            &[
                ("Signature", &signature),
                ("Content-Type", "application/json"),
            ],
            body,
        )
    }

    pub fn status(&self, id: &str) -> (u16, Value) {
        let auth = format!("Bearer {ADMIN_TOKEN}");
        request(
            &self.url,
            "GET",
            &format!("/api/webhooks/{id}"),
            &[("Authorization", &auth)],
            b"",
        )
    }

    /// Polls the status endpoint until the webhook is in `state`.
    pub fn wait_for(&self, id: &str, state: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let (code, status) = self.status(id);
            if code == 200 && status["status"] == state {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{id} did not reach {state} within {within:?}; last seen: {code} {status}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Polls `done` until it holds, failing with `what` and the log after `within`.
    pub fn wait_until(&self, what: &str, within: Duration, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + within;
        while !done() {
            assert!(
                Instant::now() < deadline,
                "{what} did not happen within {within:?}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs an operator command (`status`, `list`, `replay`) on this inbox's database.
    pub fn cli(&self, args: &[&str]) -> (bool, String) {
        let output = Command::new(inbox_exe())
            .args(args)
            .arg("--db")
            .arg(self.db())
            .env_clear()
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        (output.status.success(), text)
    }

    /// How many items the store holds for webhooks (their own and their body digests):
    /// all but the destinations processing named and their holds.
    pub fn item_count(&self) -> i64 {
        let conn = rusqlite::Connection::open(self.db()).unwrap();
        conn.query_row(
            "SELECT COUNT(*) FROM items WHERE pk NOT LIKE 'DESTINATIONS' AND pk NOT LIKE 'HELD#%'",
            [],
            |row| row.get(0),
        )
        .unwrap()
    }

    /// How many items capture wrote (webhooks, statuses, body digests): all but the
    /// records of attempts and dead letters, and the destinations, which processing adds.
    pub fn captured_item_count(&self) -> i64 {
        let conn = rusqlite::Connection::open(self.db()).unwrap();
        conn.query_row(
            "SELECT COUNT(*) FROM items WHERE sk NOT LIKE 'ATTEMPT#%' AND sk NOT LIKE 'DEAD#%'
             AND pk NOT LIKE 'DESTINATIONS' AND pk NOT LIKE 'HELD#%'",
            [],
            |row| row.get(0),
        )
        .unwrap()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("inbox.log")).unwrap_or_default()
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `inbox serve` on a database in `dir`, with `env` over the tests' settings: the seed's
/// quick retries (50 ms apart) unless `env` gives a schedule.
fn spawn_serve(dir: &Path, env: &[(String, String)]) -> (Child, String) {
    let quick_retries = env
        .iter()
        .all(|(name, _)| name != "INBOX_RETRY_SCHEDULE")
        .then_some(("INBOX_RETRY_BASE_DELAY_MS", "50"));
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("inbox.log"))
        .unwrap();
    let mut child = Command::new(inbox_exe())
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(dir.join("inbox.db"))
        .env_clear()
        .env("HOME", std::env::var("HOME").unwrap_or_default())
        .env("INBOX_LOG", "info")
        .env("INBOX_BIGCOMMERCE_SECRET", BIGCOMMERCE_SECRET)
        .env("INBOX_STRIPE_SECRET", STRIPE_SECRET)
        .env("INBOX_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("INBOX_WORKER_POLL_MS", "50")
        .envs(quick_retries)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| {
            panic!(
                "inbox did not start: {line:?}\n{}",
                std::fs::read_to_string(dir.join("inbox.log")).unwrap_or_default()
            )
        })
        .to_owned();
    (child, url)
}

pub fn request(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Value) {
    let (code, text) = request_raw(base, method, path, headers, body);
    let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (code, json)
}

pub fn request_raw(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let (code, response) = send_raw(base, &http(method, path, headers, body)).unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map_or("", |(_, body)| body)
        .to_owned();
    (code, body)
}

/// An HTTP/1.1 request as bytes, exactly as given (plus Host, Content-Length, close).
pub fn http(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    http_to("127.0.0.1", method, path, headers, body)
}

/// An HTTP/1.1 request as bytes sent to `host` (its Host header), exactly as given (plus
/// Content-Length, close).
pub fn http_to(
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n").into_bytes();
    for (name, value) in headers {
        request.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    request.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    request.extend_from_slice(body);
    request
}

/// How long a test waits for an answer before it calls it none: only a guard against a
/// server that never answers, far past any answer on a busy machine. The deadlines a test
/// checks are the server's own.
const NO_ANSWER_AFTER: Duration = Duration::from_secs(300);

/// Sends raw bytes and returns the status code and the whole response. The request is
/// written on its own thread, so a server that answers before reading it all (a 413) is
/// still heard.
pub fn send_raw(url: &str, request: &[u8]) -> Result<(u16, String), String> {
    let text = String::from_utf8_lossy(&exchange(url, request)?).into_owned();
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no HTTP response: {:?}", &text[..text.len().min(200)]))?;
    Ok((code, text))
}

/// Sends raw bytes and returns every byte that came back before the connection ended,
/// however it ended: nothing at all when the server aborted it before answering.
pub fn exchange(url: &str, request: &[u8]) -> Result<Vec<u8>, String> {
    let address = url.strip_prefix("http://").unwrap();
    let mut stream = TcpStream::connect(address).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(NO_ANSWER_AFTER)).unwrap();
    let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
    let request = request.to_vec();
    let writing = std::thread::spawn(move || {
        let _ = writer.write_all(&request);
    });
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let _ = writing.join();
    Ok(response)
}

/// A request as a test's destination received it: its headers (names in lower case) and
/// its body.
pub type Received = (Vec<(String, String)>, Vec<u8>);

/// One HTTP/1.1 request read from `reader`, as a test's destination receives it: its
/// headers (names in lower case, values trimmed; the request line left out) and its body of
/// `Content-Length` bytes (none without one). `None` if the connection ends first.
pub fn read_request(reader: &mut impl BufRead) -> Option<Received> {
    let mut headers = Vec::new();
    let mut line = String::new();
    reader.read_line(&mut line).ok().filter(|read| *read > 0)?;
    loop {
        line.clear();
        reader.read_line(&mut line).ok().filter(|read| *read > 0)?;
        if line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.trim_end().split_once(':') {
            headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    let length = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .map_or(0, |(_, value)| value.parse().unwrap());
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((headers, body))
}

/// A BigCommerce delivery of `body`, signed with the test secret, as raw HTTP.
pub fn bigcommerce_request(body: &[u8]) -> Vec<u8> {
    http(
        "POST",
        "/api/webhooks/bigcommerce",
        &[
            ("Content-Type", "application/json"),
            ("Signature", &sign_bigcommerce(BIGCOMMERCE_SECRET, body)),
        ],
        body,
    )
}

pub fn sign_bigcommerce(secret: &str, body: &[u8]) -> String {
    let mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .unwrap()
        .chain_update(body)
        .finalize()
        .into_bytes();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac)
}

pub fn sign_stripe(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .unwrap()
        .chain_update(format!("{timestamp}.").as_bytes())
        .chain_update(body)
        .finalize()
        .into_bytes();
    format!("t={timestamp},v1={}", hex::encode(mac))
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A BigCommerce `store/order/created` event, as the seed's demo sender made them.
pub fn bigcommerce_event(hash: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "scope": "store/order/created",
        "store_id": "1025646",
        "data": { "type": "order", "id": 250 },
        "hash": hash,
        "created_at": 1561479335,
        "producer": "stores/abc123",
    }))
    .unwrap()
}

pub fn stripe_event(id: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "id": id,
        "object": "event",
        "type": "payment_intent.succeeded",
        "created": unix_now(),
        "data": { "object": { "id": "pi_1", "amount": 2000 } },
    }))
    .unwrap()
}

/// The deliveries of every scheme, signed by an independent implementation (Python's
/// hmac): `{"env", "cases": [{name, origin, headers, body, expected}]}`.
pub fn signed_deliveries() -> Value {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/signed_deliveries.py");
    let output = Command::new("python3")
        .arg(&script)
        .output()
        .unwrap_or_else(|e| panic!("python3 is needed to sign the test deliveries: {e}"));
    assert!(
        output.status.success(),
        "{} failed: {}",
        script.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// An inbox configured with the fixture's secrets and sources, and `extra`.
pub fn start_with(fixture: &Value, extra: &[(&str, &str)]) -> Inbox {
    let mut env: Vec<(&str, &str)> = fixture["env"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str().unwrap()))
        .collect();
    env.extend_from_slice(extra);
    Inbox::start(&env)
}

pub fn headers_of(case: &Value) -> Vec<(&str, &str)> {
    case["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| (pair[0].as_str().unwrap(), pair[1].as_str().unwrap()))
        .collect()
}
