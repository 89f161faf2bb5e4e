//! The webhooks the conformance kit runs a processor on: every provider's shape, the
//! largest payload a DynamoDB item holds inline and GitHub's largest, non-ASCII text, and
//! each kind of answer a destination gives. Tests run the same cases through the other hosts.

use inbox_core::Webhook;
use inbox_core::forward::classify_response;
use inbox_core::id::webhook_id;
use inbox_core::lifecycle::Outcome;
use serde_json::json;

use super::destination::Answer;

/// What a processor that forwards to `forward_url` should make of a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    Completed,
    /// Retry, no sooner than this many milliseconds (a `Retry-After`), if given.
    Retry {
        at_least_ms: Option<u64>,
    },
    Reject,
}

#[derive(Debug, Clone)]
pub struct Case {
    pub name: &'static str,
    pub webhook: Webhook,
    pub attempt: u32,
    /// What the destination answers; `None`: nothing listens there.
    pub answer: Option<Answer>,
}

impl Case {
    /// What the answer means, by the rule the default processor follows
    /// ([`classify_response`]); no answer at all is one to retry.
    pub fn expected(&self) -> Expected {
        let Some(answer) = self.answer else {
            return Expected::Retry { at_least_ms: None };
        };
        match classify_response(answer.status, answer.retry_after) {
            Outcome::Completed => Expected::Completed,
            Outcome::Retry { delay_ms, .. } => Expected::Retry {
                at_least_ms: delay_ms,
            },
            Outcome::Reject { .. } => Expected::Reject,
        }
    }
}

/// The cases, in the order they run: the one with nothing listening comes last, as the
/// destination stops for it.
pub fn all() -> Vec<Case> {
    let case = |name, webhook, attempt, answer: Option<(u16, Option<&'static str>)>| Case {
        name,
        webhook,
        attempt,
        answer: answer.map(|(status, retry_after)| Answer {
            status,
            retry_after,
        }),
    };
    const OK: Option<(u16, Option<&str>)> = Some((200, None));
    vec![
        case("bigcommerce order created", bigcommerce(), 1, OK),
        case("stripe payment succeeded", stripe(), 1, OK),
        case("github push", github(), 1, Some((204, None))),
        case("shopify order created", shopify(&order_json()), 1, OK),
        case(
            "standard webhooks invoice paid",
            standard(),
            1,
            Some((202, None)),
        ),
        case("largest payload a DynamoDB item holds", large(), 1, OK),
        case("github push of 24 MB", largest_github(), 1, OK),
        case("non-ASCII text", shopify(&non_ascii_order()), 1, OK),
        case(
            "destination 429, Retry-After 120",
            bigcommerce_with("rate-limited"),
            2,
            Some((429, Some("120"))),
        ),
        case(
            "destination 410 Gone",
            bigcommerce_with("gone"),
            1,
            Some((410, None)),
        ),
        case(
            "destination 500",
            bigcommerce_with("server-error"),
            3,
            Some((500, None)),
        ),
        case(
            "destination not listening",
            bigcommerce_with("unreachable"),
            1,
            None,
        ),
    ]
}

/// A webhook as capture stores it; `received_at` is fixed so that runs compare.
fn webhook(
    origin: &str,
    event_type: &str,
    key: &str,
    headers: &[(&str, &str)],
    payload: Vec<u8>,
) -> Webhook {
    Webhook {
        id: webhook_id(origin, key),
        origin: origin.to_owned(),
        event_type: event_type.to_owned(),
        provider_timestamp: Some(1_764_000_000),
        received_at: 1_764_000_001_000,
        idempotency_key: key.to_owned(),
        headers: headers
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect(),
        payload,
    }
}

const JSON: (&str, &str) = ("content-type", "application/json");

fn bigcommerce() -> Webhook {
    bigcommerce_with("order-250")
}

fn bigcommerce_with(hash: &str) -> Webhook {
    let body = json!({
        "scope": "store/order/created",
        "store_id": "1025646",
        "data": { "type": "order", "id": 250 },
        "hash": hash,
        "created_at": 1_764_000_000,
        "producer": "stores/abc123",
    });
    webhook(
        "bigcommerce",
        "store/order/created",
        hash,
        &[JSON],
        body.to_string().into_bytes(),
    )
}

fn stripe() -> Webhook {
    let body = json!({
        "id": "evt_3QkConformance",
        "object": "event",
        "type": "payment_intent.succeeded",
        "created": 1_764_000_000,
        "livemode": false,
        "data": { "object": {
            "id": "pi_3QkConformance", "object": "payment_intent",
            "amount": 2000, "currency": "usd", "status": "succeeded",
        } },
    });
    webhook(
        "stripe",
        "payment_intent.succeeded",
        "evt_3QkConformance",
        &[("content-type", "application/json; charset=utf-8")],
        body.to_string().into_bytes(),
    )
}

fn github() -> Webhook {
    let body = json!({
        "ref": "refs/heads/main",
        "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
        "after": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
        "repository": { "id": 1_296_269, "full_name": "octocat/Hello-World" },
        "pusher": { "name": "octocat" },
        "commits": [],
    });
    webhook(
        "github",
        "push",
        "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        &[
            JSON,
            ("x-github-event", "push"),
            ("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
            ("x-github-hook-id", "292430182"),
        ],
        body.to_string().into_bytes(),
    )
}

fn order_json() -> serde_json::Value {
    json!({
        "id": 820_982_911_946_154_508_u64,
        "email": "jon@example.com",
        "total_price": "598.94",
        "currency": "USD",
        "customer": { "first_name": "Jon", "last_name": "Snow" },
        "line_items": [{ "title": "IPod Nano - 8gb", "quantity": 1 }],
    })
}

fn non_ascii_order() -> serde_json::Value {
    json!({
        "id": 820_982_911_946_154_509_u64,
        "email": "zoe@example.com",
        "total_price": "12.00",
        "currency": "EUR",
        "customer": { "first_name": "Zoë", "last_name": "Ångström-Øster" },
        "note": "東京へ配送 — «fragile» ✓ 🚀",
        "line_items": [{ "title": "Café crème, 1 kg", "quantity": 2 }],
    })
}

fn shopify(order: &serde_json::Value) -> Webhook {
    let event_id = format!("shopify-{}", order["id"]);
    webhook(
        "shopify",
        "orders/create",
        &event_id,
        &[
            JSON,
            ("x-shopify-topic", "orders/create"),
            ("x-shopify-event-id", &event_id),
            ("x-shopify-shop-domain", "example.myshopify.com"),
            ("x-shopify-triggered-at", "2025-11-24T16:00:00.000Z"),
        ],
        order.to_string().into_bytes(),
    )
}

fn standard() -> Webhook {
    let body = json!({
        "type": "invoice.paid",
        "timestamp": "2025-11-24T16:00:00Z",
        "data": { "invoice": "in_1042", "amount": 4200 },
    });
    webhook(
        "acme",
        "invoice.paid",
        "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
        &[
            JSON,
            ("webhook-id", "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"),
            ("webhook-timestamp", "1764000000"),
        ],
        body.to_string().into_bytes(),
    )
}

/// The most a DynamoDB item holds inline.
const LARGE_PAYLOAD_BYTES: usize = 350 * 1024;

/// A BigCommerce-shaped body padded to exactly the most a DynamoDB item holds inline.
fn large() -> Webhook {
    let mut body = json!({
        "scope": "store/product/updated",
        "store_id": "1025646",
        "data": { "type": "product", "id": 77, "description": "" },
        "hash": "large-product",
        "created_at": 1_764_000_000,
        "producer": "stores/abc123",
    });
    let room = LARGE_PAYLOAD_BYTES - body.to_string().len();
    body["data"]["description"] = json!("x".repeat(room));
    let payload = body.to_string().into_bytes();
    debug_assert_eq!(payload.len(), LARGE_PAYLOAD_BYTES);
    webhook(
        "bigcommerce",
        "store/product/updated",
        "large-product",
        &[JSON],
        payload,
    )
}

/// GitHub's largest deliveries are 25 MB.
pub const LARGEST_GITHUB_BYTES: usize = 24_000_000;

/// A GitHub push of many commits, some of the text not ASCII, exactly
/// [`LARGEST_GITHUB_BYTES`] long.
fn largest_github() -> Webhook {
    let commit = |i: usize| {
        json!({
            "id": format!("{i:040x}"),
            "message": format!("commit {i}: {} — é", "change ".repeat(120)),
            "author": { "name": "Octo Cat", "email": "octo@example.com" },
            "added": [format!("src/file_{i}.rs")],
        })
    };
    let longest = commit(usize::MAX).to_string().len() + 1;
    let mut body = json!({
        "ref": "refs/heads/main",
        "after": "9f2b6c0e",
        "repository": { "full_name": "octo/large" },
        "commits": [],
        "padding": "",
    });
    let commits: Vec<_> = (0..(LARGEST_GITHUB_BYTES - 1_000) / longest)
        .map(commit)
        .collect();
    body["commits"] = commits.into();
    let room = LARGEST_GITHUB_BYTES - body.to_string().len();
    body["padding"] = "p".repeat(room).into();
    let payload = body.to_string().into_bytes();
    debug_assert_eq!(payload.len(), LARGEST_GITHUB_BYTES);
    webhook(
        "github",
        "push",
        "9a1c5e40-d1f2-11f0-8a4b-7d3e5f2a1b90",
        &[
            JSON,
            ("x-github-event", "push"),
            ("x-github-delivery", "9a1c5e40-d1f2-11f0-8a4b-7d3e5f2a1b90"),
        ],
        payload,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cases_differ_and_the_unreachable_one_is_last() {
        let cases = all();
        let mut ids: Vec<&str> = cases.iter().map(|c| c.webhook.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), cases.len());
        assert!(cases.last().unwrap().answer.is_none());
        assert!(cases[..cases.len() - 1].iter().all(|c| c.answer.is_some()));
        assert_eq!(large().payload.len(), LARGE_PAYLOAD_BYTES);
        assert_eq!(largest_github().payload.len(), LARGEST_GITHUB_BYTES);
        assert!(std::str::from_utf8(&non_ascii_order().to_string().into_bytes()).is_ok());
        let expected: Vec<Expected> = cases.iter().map(Case::expected).collect();
        assert_eq!(
            expected
                .iter()
                .filter(|e| **e == Expected::Completed)
                .count(),
            8
        );
        assert_eq!(
            expected[8..],
            [
                Expected::Retry {
                    at_least_ms: Some(120_000)
                },
                Expected::Reject,
                Expected::Retry { at_least_ms: None },
                Expected::Retry { at_least_ms: None },
            ]
        );
    }
}
