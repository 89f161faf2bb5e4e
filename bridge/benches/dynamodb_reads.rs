//! What the admin API reads on DynamoDB, in items (a `Query`'s or `Scan`'s `ScannedCount`,
//! which is what DynamoDB bills, and the items a `GetItem` or `BatchGetItem` returns), on a
//! table of N webhooks in moto: the first page of the list, a later page, a state's page,
//! the counts and a search, against the one scan of the whole table every page and every
//! count used to read before the `received` index and the counters.
//!
//! The table is seeded with the items and counters a capture writes (25 a request: a
//! capture's transaction on moto copies the table, which would take hours at this size);
//! one webhook in fifty needs an operator, one in fifty is retrying, the rest completed.
//!
//! `cargo bench --bench dynamodb_reads -- [WEBHOOKS]` (100000 by default), with the moto
//! server of `scripts/test`'s venv (`source scripts/env.sh; ensure_aws_tools` first).

#[path = "../../tests/moto/mod.rs"]
mod moto;
#[path = "../../tests/support/mod.rs"]
mod support;

use std::time::Instant;

use aws_sdk_dynamodb::types::AttributeValue;
use inbox_core::listing::{Filter, Query};
use inbox_core::{State, Webhook};
use inbox_stores::WebhookStore;
use inbox_stores::dynamodb::{DynamoStore, Retention};
use moto::{Moto, ReadMeter};

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench` too.
    let webhooks: usize = std::env::args()
        .skip(1)
        .find(|arg| !arg.starts_with("--"))
        .map_or(100_000, |n| n.parse().expect("WEBHOOKS is a number"));
    let moto = Moto::shared();
    let client = moto.dynamodb().await;
    let table = moto::unique("reads");
    moto::create_table(&client, &table).await;

    let started = Instant::now();
    let seeded: Vec<(Webhook, State)> = (0..webhooks).map(webhook).collect();
    for chunk in seeded.chunks(10_000) {
        moto::seed(&client, &table, chunk).await;
    }
    eprintln!("seeded {webhooks} webhooks in {:.0?}", started.elapsed());

    let meter = ReadMeter::default();
    let store = DynamoStore::new(meter.client(&client), &table, Retention::default());
    let mut rows = Vec::new();
    let mut measure = |what: &str, read: u64, answer: String| {
        rows.push(format!("| {what} | {read} | {answer} |"));
    };

    // Before: the scan of every WEBHOOK and STATUS item each page and each count read.
    let metered = meter.client(&client);
    meter.take();
    let mut start = None;
    loop {
        let page = metered
            .scan()
            .table_name(&table)
            .filter_expression("SK IN (:w, :s)")
            .expression_attribute_values(":w", AttributeValue::S("WEBHOOK".into()))
            .expression_attribute_values(":s", AttributeValue::S("STATUS".into()))
            .projection_expression("PK, SK, id, origin, #t, received_at, idempotency_key, #s")
            .expression_attribute_names("#t", "type")
            .expression_attribute_names("#s", "status")
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        start = page.last_evaluated_key;
        if start.is_none() {
            break;
        }
    }
    measure(
        "before: the scan under each count and each page not of an in-flight state",
        meter.take(),
        "the whole table".into(),
    );

    let query = Query::default();
    let first = store.list(&query).await.unwrap();
    measure(
        "first page (100, every state)",
        meter.take(),
        format!("{} webhooks", first.webhooks.len()),
    );
    let mut later = Query {
        after: first.next.clone(),
        ..query.clone()
    };
    later.after = store.list(&later).await.unwrap().next;
    meter.take();
    let third = store.list(&later).await.unwrap();
    measure(
        "third page (every state)",
        meter.take(),
        format!("{} webhooks", third.webhooks.len()),
    );
    let dead = Query {
        state: Some(State::OperatorRequired),
        ..Query::default()
    };
    let page = store.list(&dead).await.unwrap();
    measure(
        "first page of operator_required",
        meter.take(),
        format!("{} webhooks", page.webhooks.len()),
    );
    let counts = store.counts(&Filter::default()).await.unwrap();
    measure(
        "counts (every state)",
        meter.take(),
        format!("{} webhooks", counts.total()),
    );
    let github = Filter {
        origin: Some("github".into()),
        ..Filter::default()
    };
    let counts = store.counts(&github).await.unwrap();
    measure(
        "counts of one origin",
        meter.take(),
        format!("{} webhooks", counts.total()),
    );
    let search = Filter {
        search: Some(seeded[webhooks / 3].0.idempotency_key.clone()),
        ..Filter::default()
    };
    let found = store
        .list(&Query {
            filter: search,
            ..Query::default()
        })
        .await
        .unwrap();
    measure(
        "search by idempotency key",
        meter.take(),
        format!("{} webhook", found.webhooks.len()),
    );

    println!(
        "items read on a table of {webhooks} webhooks ({} items and the counters):\n",
        2 * webhooks
    );
    println!("| read | items read | answer |\n| --- | ---: | --- |");
    for row in rows {
        println!("{row}");
    }
}

/// The `n`th webhook: two origins, three types, one in fifty dead and one retrying.
fn webhook(n: usize) -> (Webhook, State) {
    let origin = ["stripe", "github"][n % 2];
    let key = format!("evt_{n}");
    let hook = Webhook {
        id: inbox_core::id::webhook_id(origin, &key),
        origin: origin.into(),
        event_type: ["a", "b", "c"][n % 3].into(),
        provider_timestamp: None,
        received_at: 1_795_000_000_000 + n as i64,
        idempotency_key: key,
        headers: Vec::new(),
        payload: br#"{"id":"evt","amount":100}"#.to_vec(),
    };
    let state = match n % 50 {
        0 => State::OperatorRequired,
        1 => State::Failed,
        _ => State::Completed,
    };
    (hook, state)
}
