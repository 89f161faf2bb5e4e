//! Properties of signature parsing and verification and of request parsing, over arbitrary
//! input. CI runs the default number of cases; for a longer run:
//! `PROPTEST_CASES=100000 cargo test --release -p inbox-core --test properties`.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use inbox_core::capture::{accept, route};
use inbox_core::provider::Headers;
use proptest::prelude::*;
use sha2::Sha256;

const NOW_S: i64 = 1_800_000_000;
const STD_SECRET: &[u8] = b"standard webhooks property secret";

fn config() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("bigcommerce_secret".into(), "bc".into()),
        ("stripe_secret".into(), "whsec_stripe".into()),
        ("github_secret".into(), "gh".into()),
        ("shopify_secret".into(), "shop".into()),
        (
            "standard_webhooks_secret".into(),
            format!("whsec_{}", STANDARD.encode(STD_SECRET)),
        ),
        ("max_body_bytes".into(), "65536".into()),
    ])
}

fn mac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

/// Headers that sign `body` correctly for `origin`, computed here, not by the code under test.
fn signed_headers(origin: &str, body: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut headers = vec![("content-type".to_string(), b"application/json".to_vec())];
    let mut add = |name: &str, value: String| headers.push((name.to_string(), value.into_bytes()));
    match origin {
        "bigcommerce" => add("signature", URL_SAFE_NO_PAD.encode(mac(b"bc", &[body]))),
        "stripe" => add(
            "stripe-signature",
            format!(
                "t={NOW_S},v1={}",
                hex::encode(mac(
                    b"whsec_stripe",
                    &[format!("{NOW_S}.").as_bytes(), body]
                ))
            ),
        ),
        "github" => {
            add(
                "x-hub-signature-256",
                format!("sha256={}", hex::encode(mac(b"gh", &[body]))),
            );
            add("x-github-event", "push".into());
            add("x-github-delivery", "d-1".into());
        }
        "shopify" => {
            add(
                "x-shopify-hmac-sha256",
                STANDARD.encode(mac(b"shop", &[body])),
            );
            add("x-shopify-topic", "orders/create".into());
        }
        "standard-webhooks" => {
            add("webhook-id", "msg_1".into());
            add("webhook-timestamp", NOW_S.to_string());
            let signature = mac(STD_SECRET, &[format!("msg_1.{NOW_S}.").as_bytes(), body]);
            add(
                "webhook-signature",
                format!("v1,{}", STANDARD.encode(signature)),
            );
        }
        _ => unreachable!(),
    }
    headers
}

const ORIGINS: [&str; 5] = [
    "bigcommerce",
    "stripe",
    "github",
    "shopify",
    "standard-webhooks",
];

fn verification_status(origin: &str, headers: Vec<(String, Vec<u8>)>, body: &[u8]) -> u16 {
    match accept(
        origin,
        &Headers::new(headers),
        body,
        &config(),
        NOW_S * 1000,
    ) {
        Ok(_) => 202,
        Err(problem) => problem.status,
    }
}

proptest! {
    #[test]
    fn routing_never_panics(method in "[A-Z]{0,8}", path in "\\PC{0,200}") {
        let _ = route(&method, &path);
    }

    #[test]
    fn arbitrary_deliveries_never_panic_and_are_never_accepted(
        origin in prop::sample::select(ORIGINS.to_vec()),
        headers in prop::collection::vec(("[a-zA-Z-]{1,24}", prop::collection::vec(any::<u8>(), 0..80)), 0..8),
        body in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        let status = verification_status(origin, headers, &body);
        prop_assert!((400..500).contains(&status), "{origin}: {status}");
    }

    #[test]
    fn signature_headers_of_any_shape_never_panic(
        origin in prop::sample::select(ORIGINS.to_vec()),
        value in "\\PC{0,120}",
    ) {
        let body = br#"{"scope":"a","id":"evt_1","type":"t"}"#;
        for name in ["signature", "stripe-signature", "x-hub-signature-256", "x-shopify-hmac-sha256", "webhook-signature"] {
            let mut headers = signed_headers(origin, body);
            headers.retain(|(n, _)| n != name);
            headers.push((name.to_string(), value.clone().into_bytes()));
            let _ = verification_status(origin, headers, body);
        }
    }

    #[test]
    fn a_genuine_signature_verifies_and_any_changed_byte_breaks_it(
        origin in prop::sample::select(ORIGINS.to_vec()),
        key in "[a-z0-9]{1,16}",
        filler in "[a-z ]{0,64}",
        flip in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let body = format!(r#"{{"scope":"s","hash":"{key}","id":"evt_{key}","type":"t","note":"{filler}"}}"#).into_bytes();
        prop_assert_eq!(verification_status(origin, signed_headers(origin, &body), &body), 202);

        let mut tampered = body.clone();
        let at = flip.index(tampered.len());
        tampered[at] ^= 1 << bit;
        prop_assert_eq!(verification_status(origin, signed_headers(origin, &body), &tampered), 401);
    }
}
