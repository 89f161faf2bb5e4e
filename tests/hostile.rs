//! A hostile-input suite against the running host: every request gets a 4xx, none is
//! stored, secrets are never echoed, and the host keeps serving.

mod support;

use support::*;

struct Case {
    name: String,
    request: Vec<u8>,
}

fn signed(body: &[u8]) -> String {
    sign_bigcommerce(BIGCOMMERCE_SECRET, body)
}

fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let mut add = |name: String, request: Vec<u8>| cases.push(Case { name, request });
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
    add("400 KB chunked body".into(), chunked);
    add(
        "Content-Length that is not a number".into(),
        b"POST /api/webhooks/bigcommerce HTTP/1.1\r\nHost: x\r\nContent-Length: lots\r\nConnection: close\r\n\r\n{}".to_vec(),
    );
    add(
        "Content-Length and Transfer-Encoding both".into(),
        b"POST /api/webhooks/bigcommerce HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\n{}\r\n0\r\n\r\n".to_vec(),
    );

    // Headers: duplicated, too many, too large, malformed.
    let body = bigcommerce_event("hostile-headers");
    let sig = signed(&body);
    add(
        "Signature twice".into(),
        http(
            "POST",
            "/api/webhooks/bigcommerce",
            &[json, ("Signature", &sig), ("Signature", &sig)],
            &body,
        ),
    );
    add(
        "Content-Type twice".into(),
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
        http("POST", "/api/webhooks/bigcommerce", &headers, &body),
    );
    let big_value = "v".repeat(10 * 1024);
    add(
        "a 10 KB header".into(),
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
        http("POST", "/api/webhooks/bigcommerce", &headers, &body),
    );
    add(
        "header without a colon".into(),
        b"POST /api/webhooks/bigcommerce HTTP/1.1\r\nHost: x\r\nNoColonHere\r\nContent-Length: 2\r\n\r\n{}".to_vec(),
    );
    add(
        "header name with a space".into(),
        b"POST /api/webhooks/bigcommerce HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\nContent-Length: 2\r\n\r\n{}".to_vec(),
    );
    add(
        "Signature with a control character".into(),
        http(
            "POST",
            "/api/webhooks/bigcommerce",
            &[json, ("Signature", "ab\x01cd")],
            &body,
        ),
    );
    add(
        "Signature that is not UTF-8".into(),
        [&b"POST /api/webhooks/bigcommerce HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nSignature: \xff\xfe\r\nContent-Length: 2\r\n\r\n{}"[..]].concat(),
    );

    // Wrong methods.
    for method in ["PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "FOO"] {
        add(
            format!("{method} on an origin"),
            http(method, "/api/webhooks/bigcommerce", &[json], b"{}"),
        );
    }
    add(
        "GET on an origin".into(),
        http("GET", "/api/webhooks/bigcommerce", &[], b""),
    );
    add(
        "DELETE on the list".into(),
        http("DELETE", "/api/webhooks", &[], b""),
    );
    let id = inbox_core_like_id();
    add(
        "GET on replay".into(),
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
            http("GET", "/api/webhooks", &headers, b""),
        );
        add(
            format!("replay with {auth:?}"),
            http("POST", &format!("/api/webhooks/{id}/replay"), &headers, b""),
        );
    }
    add(
        "token in the query".into(),
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
                http("POST", &format!("/api/webhooks/{origin}"), &headers, &body),
            );
        }
    }
    // A request line that is not HTTP.
    add("not HTTP at all".into(), b"HELLO\r\n\r\n".to_vec());
    cases
}

/// A well-formed id that names no webhook.
fn inbox_core_like_id() -> &'static str {
    "6f1ed002-ab5d-5b2c-9b4e-3a1d2c3b4a59"
}

#[test]
fn hostile_requests_get_a_4xx_store_nothing_and_leave_the_host_serving() {
    let inbox = Inbox::start(&[
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
                if !(400..500).contains(&code) {
                    failures.push(format!(
                        "{}: {code}\n{}",
                        case.name,
                        &text[..text.len().min(300)]
                    ));
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
