//! The pure parts of a capture, natively: a provider's verification and the webhook it
//! makes (`capture::accept`: signature, id derivation, the allow-listed headers), the id
//! alone, and the DynamoDB items a capture writes.
//! `cargo bench -p inbox-core --bench pure`

use std::collections::BTreeMap;
use std::hint::black_box;

use base64::Engine;
use criterion::{Criterion, criterion_group, criterion_main};
use hmac::{Hmac, Mac};
use inbox_core::capture;
use inbox_core::id::webhook_id;
use inbox_core::item::dynamodb;
use inbox_core::provider::Headers;
use sha2::Sha256;

const NOW_MS: i64 = 1_764_000_000_000;

fn body() -> Vec<u8> {
    br#"{"scope":"store/order/created","store_id":"1025646","data":{"type":"order","id":250},"hash":"f1c2a3","created_at":1561479335,"producer":"stores/abc123"}"#.to_vec()
}

fn mac(secret: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

fn headers(pairs: &[(&str, String)]) -> Headers {
    Headers::new(
        pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.as_bytes().to_vec()))
            .collect(),
    )
}

fn pure(c: &mut Criterion) {
    let config: BTreeMap<String, String> = [
        ("bigcommerce_secret", "bc-secret"),
        ("stripe_secret", "whsec_bench"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let body = body();

    let signature =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac(b"bc-secret", &[&body]));
    let bigcommerce = headers(&[
        ("content-type", "application/json".into()),
        ("signature", signature),
    ]);
    c.bench_function(
        "accept a BigCommerce delivery (verify, derive the id)",
        |b| {
            b.iter(|| {
                capture::accept(
                    "bigcommerce",
                    &bigcommerce,
                    black_box(&body),
                    &config,
                    NOW_MS,
                )
                .unwrap()
            })
        },
    );

    let t = NOW_MS / 1000;
    let stripe_body = br#"{"id":"evt_1","object":"event","type":"payment_intent.succeeded","created":1764000000,"data":{"object":{"id":"pi_1"}}}"#;
    let v1 = hex::encode(mac(
        b"whsec_bench",
        &[format!("{t}.").as_bytes(), stripe_body],
    ));
    let stripe = headers(&[
        ("content-type", "application/json".into()),
        ("stripe-signature", format!("t={t},v1={v1}")),
    ]);
    c.bench_function("accept a Stripe delivery (verify, derive the id)", |b| {
        b.iter(|| {
            capture::accept("stripe", &stripe, black_box(stripe_body), &config, NOW_MS).unwrap()
        })
    });

    c.bench_function("derive a webhook id", |b| {
        b.iter(|| webhook_id(black_box("bigcommerce"), black_box("f1c2a3")))
    });

    let webhook = capture::accept("bigcommerce", &bigcommerce, &body, &config, NOW_MS).unwrap();
    let retention = inbox_core::item::Retention {
        completed_secs: Some(30 * 86_400),
        body_secs: Some(90 * 86_400),
    };
    c.bench_function("encode a capture's DynamoDB items", |b| {
        b.iter(|| dynamodb::capture(black_box(&webhook), &retention, true, false).unwrap())
    });
}

criterion_group!(benches, pure);
criterion_main!(benches);
