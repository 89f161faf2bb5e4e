//! A hostile-input suite against the running host: every request gets the 4xx that says
//! what is wrong with it, none is
//! stored, secrets are never echoed, and the host keeps serving. And a mutation fuzzer:
//! genuine signed deliveries of every scheme with bits flipped, bodies cut, headers and
//! methods changed; the host never answers 5xx for them and stores exactly what it
//! acknowledged.

mod support;

use support::*;

struct Case {
    name: String,
    /// The status the request must get: the one that says what is wrong with it.
    status: u16,
    request: Vec<u8>,
}

fn signed(body: &[u8]) -> String {
    sign_bigcommerce(BIGCOMMERCE_SECRET, body)
}

fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let mut add = |name: String, status: u16, request: Vec<u8>| {
        cases.push(Case {
            name,
            status,
            request,
        })
    };
    let json = ("Content-Type", "application/json");

    // Malformed JSON, validly signed: it reaches the parser and is refused there.
    let malformed: &[&[u8]] = &[
        b"",
        b"{",
        b"}",
        b"[",
        b"{\"scope\":}",
        b"nul",
        b"\"string\"",
        b"123",
        b"[]",
        b"null",
        b"{\"scope\":1}",
        b"{\"scope\":\"\"}",
        b"{\"scope\":\"x\",\"hash\":5}",
        b"{\"scope\":\"a\"} x",
        b"{\"scope\":\"a\",}",
        b"{'scope':'a'}",
        b"\xEF\xBB\xBF{\"scope\":\"a\"}",
        b"{\"scope\":\"a\"\x00}",
        b"{\"scope\":\"\\ud800\"",
        b"{\"a\":1e999999}",
        b"{\"scope\":\"a\",\"scope\":",
        b"\t\n",
    ];
    for (i, body) in malformed.iter().enumerate() {
        let sig = signed(body);
        add(
            format!("malformed JSON #{i}"),
            400,
            http(
                "POST",
                "/api/webhooks/bigcommerce",
                &[json, ("Signature", &sig)],
                body,
            ),
        );
    }
    // Invalid UTF-8, validly signed.
    for (i, body) in [
        &b"{\"scope\":\"\xff\"}"[..],
        b"\xc3\x28",
        b"{\"scope\":\"store/\xed\xa0\x80\"}",
        b"\xfe\xff{}",
    ]
    .iter()
    .enumerate()
    {
        let sig = signed(body);
        add(
            format!("invalid UTF-8 #{i}"),
            400,
            http(
                "POST",
                "/api/webhooks/bigcommerce",
                &[json, ("Signature", &sig)],
                body,
            ),
        );
    }
    // Deeply nested, validly signed.
    for depth in [200, 5_000, 50_000] {
        let arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes();
        let sig = signed(&arrays);
        add(
            format!("{depth} nested arrays"),
            400,
            http(
                "POST",
                "/api/webhooks/bigcommerce",
                &[json, ("Signature", &sig)],
                &arrays,
            ),
        );
        let objects = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth)).into_bytes();
        let sig = signed(&objects);
        add(
            format!("{depth} nested objects"),
            if objects.len() > 256 * 1024 { 413 } else { 400 },
            http(
                "POST",
                "/api/webhooks/bigcommerce",
                &[json, ("Signature", &sig)],
                &objects,
            ),
        );
    }
    // Huge bodies: declared, undeclared (chunked), and a lie about the length.
    for size in [300 * 1024, 1 << 20, 8 << 20] {
        let body = vec![b'x'; size];
        add(
            format!("{size} byte body"),
            413,
            http(
                "POST",
                "/api/webhooks/bigcommerce",
                &[json, ("Signature", "x")],
                &body,
            ),
        );
    }
    let mut chunked = b"POST /api/webhooks/bigcommerce HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..40 {
        chunked.extend_from_slice(format!("{:x}\r\n{}\r\n", 10_000, "y".repeat(10_000)).as_bytes());
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    add("400 KB chunked body".into(), 413, chunked);
    add(
        "Content-Length that is not a number".into(),
        400,
        b"POST /api/webhooks/bigcommerce HTTP/1.1\r\nHost: x\r\nContent-Length: lots\r\nConnection: close\r\n\r\n{}".to_vec(),
    );
    add(
        "Content-Length and Transfer-Encoding both".into(),
        // The chunked body is read (Transfer-Encoding overrides Content-Length, RFC 9112
        // 6.3), and the delivery carries no signature.
        401,
        b"POST /api/webhooks/bigcommerce HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\n{}\r\n0\r\n\r\n".to_vec(),
    );

    // Headers: duplicated, too many, too large, malformed.
    let body = bigcommerce_event("hostile-headers");
    let sig = signed(&body);
    add(
        "Signature twice".into(),
        400,
        http(
            "POST",
            "/api/webhooks/bigcommerce",
            &[json, ("Signature", &sig), ("Signature", &sig)],
            &body,
        ),
    );
    add(
        "Content-Type twice".into(),
        400,
        http(
            "POST",
            "/api/webhooks/bigcommerce",
            &[json, json, ("Signature", &sig)],
            &body,
        ),
    );
    let stripe = stripe_event("evt_hostile");
    let stripe_sig = sign_stripe(STRIPE_SECRET, unix_now(), &stripe);
    add(
        "Stripe-Signature twice".into(),
        400,
        http(
            "POST",
            "/api/webhooks/stripe",
            &[
                json,
                ("Stripe-Signature", &stripe_sig),
                ("Stripe-Signature", "t=1,v1=00"),
            ],
            &stripe,
        ),
    );
    let many: Vec<(String, String)> = (0..150)
        .map(|i| (format!("X-Filler-{i}"), "1".into()))
        .collect();
    let mut headers: Vec<(&str, &str)> =
        many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    headers.extend([json, ("Signature", sig.as_str())]);
    add(
        "150 headers".into(),
        431,
        http("POST", "/api/webhooks/bigcommerce", &headers, &body),
    );
    let big_value = "v".repeat(10 * 1024);
    add(
        "a 10 KB header".into(),
        431,
        http(
            "POST",
            "/api/webhooks/bigcommerce",
            &[json, ("Signature", &sig), ("X-Big", &big_value)],
            &body,
        ),
    );
    let huge_value = "v".repeat(200 * 1024);
    add(
        "a 200 KB header".into(),
        431,
        http(
            "POST",
            "/api/webhooks/bigcommerce",
            &[json, ("Signature", &sig), ("X-Huge", &huge_value)],
            &body,
        ),
    );
    let eight: Vec<(String, String)> = (0..9)
        .map(|i| (format!("X-Eight-{i}"), "e".repeat(8_000)))
        .collect();
    let mut headers: Vec<(&str, &str)> = eight
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    headers.extend([json, ("Signature", sig.as_str())]);
    add(
        "72 KB of headers".into(),
        431,
        http("POST", "/api/webhooks/bigcommerce", &headers, &body),
    );
    add(
        "header without a colon".into(),
        400,
        b"POST /api/webhooks/bigcommerce HTTP/1.1\r\nHost: x\r\nNoColonHere\r\nContent-Length: 2\r\n\r\n{}".to_vec(),
    );
    add(
        "header name with a space".into(),
        400,
        b"POST /api/webhooks/bigcommerce HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\nContent-Length: 2\r\n\r\n{}".to_vec(),
    );
    add(
        "Signature with a control character".into(),
        400,
        http(
            "POST",
            "/api/webhooks/bigcommerce",
            &[json, ("Signature", "ab\x01cd")],
            &body,
        ),
    );
    add(
        "Signature that is not UTF-8".into(),
        400,
        [&b"POST /api/webhooks/bigcommerce HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nSignature: \xff\xfe\r\nContent-Length: 2\r\n\r\n{}"[..]].concat(),
    );

    // Wrong methods.
    for method in ["PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "FOO"] {
        add(
            format!("{method} on an origin"),
            405,
            http(method, "/api/webhooks/bigcommerce", &[json], b"{}"),
        );
    }
    add(
        "GET on an origin".into(),
        404,
        http("GET", "/api/webhooks/bigcommerce", &[], b""),
    );
    add(
        "DELETE on the list".into(),
        405,
        http("DELETE", "/api/webhooks", &[], b""),
    );
    let id = inbox_core_like_id();
    add(
        "GET on replay".into(),
        405,
        http("GET", &format!("/api/webhooks/{id}/replay"), &[], b""),
    );

    // Content types that are not JSON, validly signed.
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
        "application/jsonp",
        "application/json-patch",
        "text/json",
        "*/*",
        "application/json, text/plain",
        "",
    ] {
        add(
            format!("Content-Type {content_type:?}"),
            415,
            http(
                "POST",
                "/api/webhooks/bigcommerce",
                &[("Content-Type", content_type), ("Signature", &sig)],
                &body,
            ),
        );
    }
    add(
        "no Content-Type".into(),
        415,
        http(
            "POST",
            "/api/webhooks/bigcommerce",
            &[("Signature", &sig)],
            &body,
        ),
    );

    // Path tricks on the origin and the id.
    let long = "a".repeat(4_000);
    for path in [
        "/api/webhooks/../webhooks/bigcommerce".to_string(),
        "/api/webhooks/%62igcommerce".into(),
        "/api/webhooks/BIGCOMMERCE".into(),
        "/api/webhooks/bigcommerce%00".into(),
        "/api/webhooks/bigcommerce/".into(),
        "/api/webhooks//bigcommerce".into(),
        "//api/webhooks/bigcommerce".into(),
        "/API/webhooks/bigcommerce".into(),
        "/api/webhooks/bigcommerce/x".into(),
        "/api/webhooks/bigcommerce;x=1".into(),
        "/api/webhooks/.%2e/admin".into(),
        "/api/webhooks/%2e%2e%2fadmin".into(),
        format!("/api/webhooks/{long}"),
        "/api/webhooks/stripe%20".into(),
        "/api/webhooks/github\\..\\shopify".into(),
        "/api/webhooks/sources".into(),
        "/api/webhooks/acme".into(),
        "/".into(),
        "/api".into(),
        "/api/webhooksbigcommerce".into(),
    ] {
        add(
            format!("POST {}", &path[..path.len().min(60)]),
            404,
            http("POST", &path, &[json, ("Signature", &sig)], &body),
        );
    }
    for id in [
        "../../etc/passwd",
        "..%2f..%2fetc%2fpasswd",
        "00000000-0000-0000-0000-00000000000G",
        "00000000-0000-0000-0000-000000000000",
        "00000000-0000-0000-0000-0000000000000",
        "%30%30000000-0000-0000-0000-000000000000",
        "' OR 1=1 --",
        "00000000-0000-0000-0000-000000000000/replay/again",
    ] {
        let auth = format!("Bearer {ADMIN_TOKEN}");
        add(
            format!("GET id {id:?}"),
            if id.contains(' ') { 400 } else { 404 },
            http(
                "GET",
                &format!("/api/webhooks/{id}"),
                &[("Authorization", &auth)],
                b"",
            ),
        );
    }
    add(
        "a path that is not UTF-8".into(),
        400,
        b"POST /api/webhooks/\xff\xfe HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}".to_vec(),
    );

    // The admin endpoints without the right token.
    for auth in [
        "",
        "Bearer",
        "Bearer ",
        "Bearer wrong",
        "Basic dGVzdDp0ZXN0",
        &format!("bearer {ADMIN_TOKEN}"),
        &format!("Bearer  {ADMIN_TOKEN}"),
        &format!("Bearer {ADMIN_TOKEN}x"),
    ] {
        let headers: Vec<(&str, &str)> = if auth.is_empty() {
            vec![]
        } else {
            vec![("Authorization", auth)]
        };
        add(
            format!("list with {auth:?}"),
            401,
            http("GET", "/api/webhooks", &headers, b""),
        );
        add(
            format!("replay with {auth:?}"),
            401,
            http("POST", &format!("/api/webhooks/{id}/replay"), &headers, b""),
        );
    }
    add(
        "token in the query".into(),
        400,
        http(
            "GET",
            &format!("/api/webhooks?token={ADMIN_TOKEN}"),
            &[],
            b"",
        ),
    );

    // Garbage signatures on every origin.
    for origin in [
        "bigcommerce",
        "stripe",
        "github",
        "shopify",
        "standard-webhooks",
    ] {
        for garbage in ["x", "=", "v1,", "t=,v1=", "sha256=zz", "AAAA", "////"] {
            let headers = [
                json,
                ("Signature", garbage),
                ("Stripe-Signature", garbage),
                ("X-Hub-Signature-256", garbage),
                ("X-Shopify-Hmac-Sha256", garbage),
                ("webhook-signature", garbage),
                ("webhook-id", "msg_1"),
                ("webhook-timestamp", "1"),
            ];
            add(
                format!("{origin} with signature {garbage:?}"),
                401,
                http("POST", &format!("/api/webhooks/{origin}"), &headers, &body),
            );
        }
    }
    // A request line that is not HTTP.
    add("not HTTP at all".into(), 400, b"HELLO\r\n\r\n".to_vec());
    cases
}

/// A well-formed id that names no webhook.
fn inbox_core_like_id() -> &'static str {
    "6f1ed002-ab5d-5b2c-9b4e-3a1d2c3b4a59"
}

#[test]
fn hostile_requests_get_their_4xx_store_nothing_and_leave_the_host_serving() {
    let inbox = Inbox::start(&[
        // Lowered from GitHub's 25 MB, so that bodies past it are cheap to send.
        ("INBOX_MAX_BODY_BYTES", "262144"),
        ("INBOX_GITHUB_SECRET", "gh-hostile-secret"),
        ("INBOX_SHOPIFY_SECRET", "shopify-hostile-secret"),
        (
            "INBOX_STANDARD_WEBHOOKS_SECRET",
            "whsec_c2VjcmV0IGZvciBob3N0aWxlIHRlc3Rz",
        ),
    ]);
    let cases = cases();
    assert!(cases.len() >= 100, "only {} hostile requests", cases.len());

    let mut failures = Vec::new();
    for case in &cases {
        match send_raw(&inbox.url, &case.request) {
            Ok((code, text)) => {
                if code != case.status {
                    failures.push(format!(
                        "{}: {code}, not {}\n{}",
                        case.name,
                        case.status,
                        &text[..text.len().min(300)]
                    ));
                }
                let head = text.split("\r\n\r\n").next().unwrap_or_default();
                let head = head.to_ascii_lowercase();
                let wanted = match code {
                    401 => Some("\r\nwww-authenticate: bearer"),
                    405 => Some("\r\nallow: "),
                    _ => None,
                };
                if let Some(header) = wanted.filter(|header| !head.contains(header)) {
                    failures.push(format!("{}: {code} without {header:?}", case.name));
                }
                if text.contains(BIGCOMMERCE_SECRET)
                    || text.contains(STRIPE_SECRET)
                    || text.contains("gh-hostile-secret")
                {
                    failures.push(format!("{}: a secret was echoed", case.name));
                }
            }
            Err(error) => failures.push(format!("{}: {error}", case.name)),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} hostile requests misbehaved:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert_eq!(inbox.item_count(), 0, "a hostile request was stored");

    // Still serving, and nothing leaked into the log.
    let (code, answer) = inbox.post_bigcommerce(&bigcommerce_event("after-the-storm"));
    assert_eq!(code, 202, "{answer}");
    let log = inbox.log();
    for secret in [
        BIGCOMMERCE_SECRET,
        STRIPE_SECRET,
        ADMIN_TOKEN,
        "gh-hostile-secret",
        "shopify-hostile-secret",
    ] {
        assert!(!log.contains(secret), "the log shows a secret");
    }
}

/// A genuine delivery to mutate.
#[derive(Clone)]
struct Delivery {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Delivery {
    fn bytes(&self) -> Vec<u8> {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        http(&self.method, &self.path, &headers, &self.body)
    }
}

/// What a mutation did to the request, and whether it may leave the host waiting for
/// bytes that never come (then the host's deadline ends it, maybe with no answer).
struct Mutant {
    what: Vec<String>,
    request: Vec<u8>,
    cut_on_the_wire: bool,
}

const METHODS: [&str; 12] = [
    "GET",
    "PUT",
    "DELETE",
    "PATCH",
    "HEAD",
    "OPTIONS",
    "TRACE",
    "CONNECT",
    "post",
    "BREW",
    "P\u{1}ST",
    "POSTPOSTPOSTPOSTPOSTPOSTPOSTPOSTPOSTPOST",
];

const PATHS: [&str; 10] = [
    "/api/webhooks/",
    "/api/webhooks//github",
    "/api/webhooks/github/",
    "/api/webhooks/%67ithub",
    "/api/webhooks/github?x=1",
    "/../api/webhooks/github",
    "/api/webhooks/unknown-origin",
    "/api/webhooks/stripe",
    "*",
    "/api/webhooks/\u{7f}",
];

fn flip_bits(bytes: &mut [u8], rng: &mut fastrand::Rng) -> usize {
    let flips = rng.usize(1..=3);
    for _ in 0..flips {
        if !bytes.is_empty() {
            let i = rng.usize(..bytes.len());
            bytes[i] ^= 1 << rng.u8(..8);
        }
    }
    flips
}

/// One to three mutations of `delivery`.
fn mutate(delivery: &Delivery, rng: &mut fastrand::Rng) -> Mutant {
    let mut d = delivery.clone();
    let mut what = Vec::new();
    let mut raw: Option<Vec<u8>> = None;
    let mut cut_on_the_wire = false;
    // Mutations of the raw bytes come last: the request is written out for them.
    let mut kinds: Vec<usize> = (0..rng.usize(1..=3)).map(|_| rng.usize(..12)).collect();
    kinds.sort_by_key(|kind| *kind >= 10);
    for kind in kinds {
        match kind {
            0 => what.push(format!(
                "{} bit flips in the body",
                flip_bits(&mut d.body, rng)
            )),
            1 => {
                let keep = rng.usize(..=d.body.len());
                d.body.truncate(keep);
                what.push(format!("body cut to {keep} bytes"));
            }
            2 => {
                let extra: Vec<u8> = (0..rng.usize(1..64)).map(|_| rng.u8(..)).collect();
                d.body.extend_from_slice(&extra);
                what.push(format!("{} bytes appended", extra.len()));
            }
            3 if !d.headers.is_empty() => {
                let (name, _) = d.headers.remove(rng.usize(..d.headers.len()));
                what.push(format!("{name} dropped"));
            }
            4 if !d.headers.is_empty() => {
                let i = rng.usize(..d.headers.len());
                let mut value = d.headers[i].1.clone().into_bytes();
                flip_bits(&mut value, rng);
                d.headers[i].1 = String::from_utf8_lossy(&value).into_owned();
                what.push(format!("{} flipped", d.headers[i].0));
            }
            5 if !d.headers.is_empty() => {
                let (name, value) = d.headers[rng.usize(..d.headers.len())].clone();
                let value = if rng.bool() {
                    value
                } else {
                    format!("{value}x")
                };
                d.headers.push((name.clone(), value));
                what.push(format!("{name} twice"));
            }
            6 if !d.headers.is_empty() => {
                let i = rng.usize(..d.headers.len());
                d.headers[i].0 = d.headers[i]
                    .0
                    .chars()
                    .map(|c| {
                        if rng.bool() {
                            c.to_ascii_uppercase()
                        } else {
                            c.to_ascii_lowercase()
                        }
                    })
                    .collect();
                what.push(format!("{} recased", d.headers[i].0));
            }
            7 => {
                d.method = METHODS[rng.usize(..METHODS.len())].to_owned();
                what.push(format!("method {:?}", d.method));
            }
            8 => {
                d.path = PATHS[rng.usize(..PATHS.len())].to_owned();
                what.push(format!("path {:?}", d.path));
            }
            9 => {
                let kind = [
                    "text/plain",
                    "application/x-www-form-urlencoded",
                    "",
                    "application/json; charset=latin1",
                ][rng.usize(..4)];
                d.headers
                    .retain(|(n, _)| !n.eq_ignore_ascii_case("content-type"));
                d.headers.push(("Content-Type".into(), kind.into()));
                what.push(format!("content type {kind:?}"));
            }
            10 => {
                let mut bytes = raw.take().unwrap_or_else(|| d.bytes());
                let flips = flip_bits(&mut bytes, rng);
                raw = Some(bytes);
                what.push(format!("{flips} bit flips anywhere"));
            }
            11 => {
                let mut bytes = raw.take().unwrap_or_else(|| d.bytes());
                let keep = rng.usize(..bytes.len().max(1));
                bytes.truncate(keep);
                raw = Some(bytes);
                cut_on_the_wire = true;
                what.push(format!("request cut after {keep} bytes"));
            }
            _ => {}
        }
    }
    Mutant {
        what,
        request: raw.unwrap_or_else(|| d.bytes()),
        cut_on_the_wire,
    }
}

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name} is a number")))
        .unwrap_or(default)
}

#[test]
fn mutated_deliveries_never_get_a_5xx_and_only_what_was_acknowledged_is_stored() {
    // Bounded for CI; `INBOX_FUZZ_N=100000 INBOX_FUZZ_SECS=3600` for a long run, another
    // `INBOX_FUZZ_SEED` for other mutants.
    let count = setting("INBOX_FUZZ_N", 2_000) as usize;
    let seconds = setting("INBOX_FUZZ_SECS", 60);
    let seed = setting("INBOX_FUZZ_SEED", 0x5eed);
    let fixture = signed_deliveries();
    // Short deadlines, so a request cut on the wire costs little.
    let inbox = start_with(
        &fixture,
        &[
            ("INBOX_HEADER_TIMEOUT_MS", "300"),
            ("INBOX_BODY_TIMEOUT_MS", "300"),
        ],
    );
    let genuine: Vec<Delivery> = fixture["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|case| case["expected"] == 202)
        .map(|case| {
            let mut headers: Vec<(String, String)> = headers_of(case)
                .into_iter()
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .collect();
            if !headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
            {
                headers.push(("Content-Type".into(), "application/json".into()));
            }
            Delivery {
                method: "POST".into(),
                path: format!("/api/webhooks/{}", case["origin"].as_str().unwrap()),
                headers,
                body: case["body"].as_str().unwrap().as_bytes().to_vec(),
            }
        })
        .collect();
    assert!(genuine.len() >= 20, "seeds of every scheme");
    let secrets: Vec<String> = fixture["env"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| !k.ends_with("SOURCES") && !k.ends_with("HEADER"))
        .flat_map(|(_, v)| v.as_str().unwrap().split(',').map(str::to_owned))
        .collect();

    let acknowledged = std::sync::Mutex::new(std::collections::BTreeSet::new());
    let failures = std::sync::Mutex::new(Vec::new());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let started = std::time::Instant::now();
    let deadline = started + std::time::Duration::from_secs(seconds);
    let judge = |what: &str, answer: Result<(u16, String), String>, cut: bool| {
        let fail = |why: String| failures.lock().unwrap().push(format!("{what}: {why}"));
        match answer {
            Ok((code, text)) => {
                if code >= 500 {
                    fail(format!("{code}\n{}", &text[..text.len().min(300)]));
                }
                // A mutant may be a webhook of its own: the token-authenticated source
                // (`bc2`) signs no body, so its token with another body is a new delivery.
                if matches!(code, 200 | 202) {
                    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
                    match serde_json::from_str::<serde_json::Value>(body) {
                        Ok(answer) if answer["id"].is_string() => {
                            let id = answer["id"].as_str().unwrap().to_owned();
                            acknowledged.lock().unwrap().insert(id);
                        }
                        _ => fail(format!("{code} without an id: {body}")),
                    }
                }
                if let Some(secret) = secrets.iter().find(|s| text.contains(s.as_str())) {
                    fail(format!("echoed the secret {secret}"));
                }
            }
            // Cut inside its headers, a request is dropped at the header deadline.
            Err(_) if cut => {}
            Err(error) => fail(format!("no answer: {error}")),
        }
    };
    for delivery in &genuine {
        // A genuine delivery held up past the short body deadline (a loaded machine) is
        // sent again, as its provider would.
        let mut answer = send_raw(&inbox.url, &delivery.bytes());
        for _ in 0..3 {
            if !matches!(answer, Ok((408, _))) {
                break;
            }
            answer = send_raw(&inbox.url, &delivery.bytes());
        }
        judge("genuine", answer, false);
    }
    assert_eq!(
        acknowledged.lock().unwrap().len(),
        genuine.len(),
        "every genuine delivery is a webhook of its own: {:?}",
        failures.lock().unwrap()
    );
    let tried = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= count || std::time::Instant::now() > deadline {
                        return;
                    }
                    let mut rng = fastrand::Rng::with_seed(
                        seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                    );
                    let delivery = &genuine[rng.usize(..genuine.len())];
                    let mutant = mutate(delivery, &mut rng);
                    let what = format!("#{i} {}", mutant.what.join(", "));
                    judge(
                        &what,
                        send_raw(&inbox.url, &mutant.request),
                        mutant.cut_on_the_wire,
                    );
                    tried.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
    });
    let tried = tried.into_inner();
    let failures = failures.into_inner().unwrap();
    let acknowledged = acknowledged.into_inner().unwrap();
    println!(
        "fuzz: {tried} mutants of {} genuine deliveries (seed {seed:#x}) in {:.1} s: {} failures, {} webhooks acknowledged",
        genuine.len(),
        started.elapsed().as_secs_f64(),
        failures.len(),
        acknowledged.len()
    );
    let log = inbox.log();
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
    assert!(
        failures.is_empty(),
        "{} of {tried} mutants misbehaved (INBOX_FUZZ_SEED={seed}):\n{}\nthe host's errors:\n{}",
        failures.len(),
        failures[..failures.len().min(30)].join("\n"),
        errors[errors.len().saturating_sub(20)..].join("\n")
    );
    assert!(
        tried >= count.min(500),
        "only {tried} mutants in {seconds} s"
    );

    // Still serving (a genuine delivery again is its duplicate); and stored exactly what
    // it acknowledged.
    let (code, _) = send_raw(&inbox.url, &genuine[0].bytes()).unwrap();
    assert_eq!(code, 200);
    let stored: std::collections::BTreeSet<String> =
        inbox.states().into_iter().map(|(id, _, _)| id).collect();
    assert_eq!(stored, acknowledged, "stored exactly what was acknowledged");
}
