//! A response must never look complete when it is not. A capture component whose answer
//! breaks off after its head (it traps, runs past its deadline, drops or leaks its body)
//! makes `inbox serve` abort the connection, with no clean end of a length-delimited or
//! chunked body, and the Lambda bridge answer `500`, never a `200` carrying a cut body.
//! The component is `tests/components/misbehaving-capture`.

mod moto;
mod support;

use moto::LambdaFunction;
use support::{Inbox, component};

/// The body the misbehaving component announces.
const BODY_BYTES: usize = 512 * 1024;

/// The capture deadline, which the `loop` endings run into: ample for the whole answers.
const DEADLINE_MS: &str = "3000";

/// The answers that break off after their head, by path. (On `inbox serve` hyper itself
/// refuses to end a body short of its `Content-Length`; the chunked ones are the host's
/// to abort. A body leaked without a length is not told apart from a finished one.)
const CUT: [&str; 7] = [
    "/cut/length/trap",
    "/cut/length/loop",
    "/cut/length/unfinished",
    "/cut/length/leaked",
    "/cut/chunked/trap",
    "/cut/chunked/loop",
    "/cut/chunked/unfinished",
];

/// The same answers, whole.
const WHOLE: [&str; 2] = ["/whole/length", "/whole/chunked"];

/// A response's status and body if it arrived whole by its own framing (`Content-Length`
/// or chunked); else how it fell short.
fn framed(response: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("cut within its head, after {} bytes", response.len()))?;
    let head = String::from_utf8_lossy(&response[..end]).to_ascii_lowercase();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let body = &response[end + 4..];
    let header = |name: &str| {
        head.lines()
            .filter_map(|line| line.split_once(':'))
            .find(|(n, _)| n.trim() == name)
            .map(|(_, v)| v.trim().to_owned())
    };
    let whole = if let Some(length) = header("content-length") {
        let length: usize = length.parse().unwrap();
        if body.len() == length {
            Ok(body.to_vec())
        } else {
            Err(format!("{} of {length} bytes", body.len()))
        }
    } else if header("transfer-encoding").as_deref() == Some("chunked") {
        dechunk(body)
    } else {
        Err("neither a length nor chunks: ended by the connection's close".to_owned())
    };
    Ok((status, whole?))
}

/// A chunked body, if it ends with its last chunk.
fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| format!("cut within a chunk's size, after {} bytes", body.len()))?;
        let size = std::str::from_utf8(&rest[..line_end]).unwrap();
        let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16)
            .map_err(|e| format!("a chunk size {size:?}: {e}"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return if rest.starts_with(b"\r\n") {
                Ok(body)
            } else {
                Err("cut after the last chunk".to_owned())
            };
        }
        if rest.len() < size + 2 {
            return Err(format!("cut within a chunk, after {} bytes", body.len()));
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

fn expected_body() -> Vec<u8> {
    let mut body = vec![b'x'; BODY_BYTES];
    body[0] = b'"';
    body[BODY_BYTES - 1] = b'"';
    body
}

/// `inbox serve` with the misbehaving capture component.
fn misbehaving_inbox() -> Inbox {
    let capture = component("misbehaving_capture");
    Inbox::start(&[
        ("INBOX_CAPTURE_WASM", capture.to_str().unwrap()),
        ("INBOX_CAPTURE_TIMEOUT_MS", DEADLINE_MS),
    ])
}

#[test]
fn inbox_serve_aborts_an_answer_that_breaks_off_and_never_ends_it_cleanly() {
    let inbox = misbehaving_inbox();
    let get = |path: &str| {
        let request = support::http("GET", path, &[], b"");
        support::exchange(&inbox.url, &request).unwrap()
    };
    for path in CUT {
        // Whether the head and the first half of the body left before the abort is a race
        // with hyper's write buffer; either way the answer must not end as complete.
        let response = get(path);
        assert!(
            framed(&response).is_err(),
            "{path}: a cut answer ended as if complete\n{}",
            inbox.log()
        );
        if response.starts_with(b"HTTP/1.1 ") {
            assert!(
                response.starts_with(b"HTTP/1.1 200 "),
                "{path}: the head, if any, is the component's"
            );
        }
    }
    for path in WHOLE {
        let answer = framed(&get(path));
        assert!(
            matches!(&answer, Ok((200, body)) if *body == expected_body()),
            "{path}: {:?}",
            answer.map(|(status, body)| (status, body.len()))
        );
    }
    assert!(
        inbox
            .log()
            .contains("the capture component's answer failed"),
        "{}",
        inbox.log()
    );
}

/// A capture instance serves again only after an answer it gave whole, and at most
/// `INBOX_CAPTURE_REUSE_COUNT` requests: a trap, a deadline or a resource it left behind (a
/// leaked body) drops it. `/count` answers how many `/count` requests its instance served,
/// which only a kept instance remembers. A capture component the operator chose gets a
/// fresh instance for every request unless told otherwise, as it may keep such state.
#[test]
fn a_capture_instance_serves_again_only_after_a_whole_answer_and_within_its_count() {
    let capture = component("misbehaving_capture");
    let inbox = Inbox::start(&[
        ("INBOX_CAPTURE_WASM", capture.to_str().unwrap()),
        ("INBOX_CAPTURE_TIMEOUT_MS", DEADLINE_MS),
        ("INBOX_CAPTURE_REUSE_COUNT", "3"),
    ]);
    let get = |path: &str| {
        let request = support::http("GET", path, &[], b"");
        support::exchange(&inbox.url, &request).unwrap()
    };
    let steps = [
        ("/count", Some("1")),
        ("/count", Some("2")),
        ("/count", Some("3")),
        // Three requests served: a fresh instance.
        ("/count", Some("1")),
        ("/whole/length", None),
        ("/count", Some("2")),
        // Three again: a fresh instance.
        ("/count", Some("1")),
        ("/cut/length/trap", None),
        ("/count", Some("1")),
        ("/cut/length/leaked", None),
        ("/count", Some("1")),
        ("/stall", None),
        ("/count", Some("1")),
    ];
    for (n, (path, counted)) in steps.into_iter().enumerate() {
        let response = get(path);
        if let Some(counted) = counted {
            let answer = framed(&response);
            assert!(
                matches!(&answer, Ok((200, body)) if body == counted.as_bytes()),
                "step {n}, {path}: {:?}\n{}",
                answer.map(|(status, body)| (status, String::from_utf8_lossy(&body).into_owned())),
                inbox.log()
            );
        }
    }

    let fresh = misbehaving_inbox();
    for _ in 0..3 {
        let request = support::http("GET", "/count", &[], b"");
        let answer = framed(&support::exchange(&fresh.url, &request).unwrap());
        assert!(
            matches!(&answer, Ok((200, body)) if body == b"1"),
            "{answer:?}"
        );
    }
}

/// A request without a body whose capture runs out of time meets the inbox's slowness: a
/// 503 to retry, not a 408 for a body that did not come.
#[test]
fn inbox_serve_answers_503_when_capture_runs_out_of_time_on_a_request_without_a_body() {
    let inbox = misbehaving_inbox();
    let request = support::http("GET", "/stall", &[], b"");
    let (status, _) = support::send_raw(&inbox.url, &request).unwrap();
    assert_eq!(status, 503, "{}", inbox.log());
}

#[test]
fn the_lambda_bridge_answers_500_for_an_answer_that_breaks_off() {
    let capture = component("misbehaving_capture");
    // The bridge as API Gateway's target; nothing here reaches AWS.
    let mut env: Vec<(String, String)> = [
        ("AWS_REGION", moto::REGION),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("INBOX_TABLE", "unused"),
        ("INBOX_FAILED_QUEUE_URL", "http://127.0.0.1:9/failed"),
        ("INBOX_DEAD_QUEUE_URL", "http://127.0.0.1:9/dead"),
        ("INBOX_LAMBDA_COMPONENTS", "capture"),
        ("INBOX_CAPTURE_TIMEOUT_MS", DEADLINE_MS),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    env.push((
        "INBOX_CAPTURE_WASM".to_owned(),
        capture.to_str().unwrap().to_owned(),
    ));
    let function = LambdaFunction::start(&["lambda"], &env);
    let get = |path: &str| function.invoke(&moto::http_event("GET", path, &[], b""));
    for path in CUT {
        let response = get(path);
        let body = response["body"].as_str().unwrap_or_default();
        assert_eq!(
            response["statusCode"],
            500,
            "{path}: answered with {} bytes of body",
            body.len()
        );
        let problem: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(problem["status"], 500, "{path}: {problem}");
        assert_eq!(
            response["headers"]["content-type"], "application/problem+json",
            "{path}"
        );
    }
    for path in WHOLE {
        let response = get(path);
        assert_eq!(response["statusCode"], 200, "{path}");
        assert_eq!(
            response["body"].as_str().unwrap().as_bytes(),
            expected_body().as_slice(),
            "{path}"
        );
    }
    assert!(
        function
            .log()
            .contains("the capture component's answer failed"),
        "{}",
        function.log()
    );
}
