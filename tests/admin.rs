//! The admin list at its documented maximum (1,000 webhooks, long event types with
//! non-ASCII text: a response of several hundred KiB) through the capture component on
//! every store: the native SQLite store, Spin's SQLite store component, the native
//! DynamoDB store (Lambda behind API Gateway) and Spin's DynamoDB store component.
//! A response written in one call larger than a WASI output stream takes (4 KiB) used to
//! close the connection without an answer.

mod moto;
mod support;

use std::collections::BTreeSet;

use inbox_core::Webhook;
use inbox_core::capture::MAX_LIST;
use inbox_stores::WebhookStore;
use inbox_stores::sqlite::SqliteStore;
use serde_json::Value;
use support::{ADMIN_TOKEN, Inbox, component, request};

const PATH: &str = "/api/webhooks?limit=1000";

/// The `n`th of the webhooks listed: its event type long, and not ASCII.
fn webhook(n: usize) -> Webhook {
    Webhook {
        id: inbox_core::id::webhook_id("bigcommerce", &format!("list-{n}")),
        origin: "bigcommerce".into(),
        event_type: format!("store/order/créé/{n}/{}", "ü€".repeat(60)),
        provider_timestamp: None,
        received_at: 1_795_000_000_000 + n as i64,
        idempotency_key: format!("list-{n}"),
        headers: Vec::new(),
        payload: b"{}".to_vec(),
    }
}

fn all() -> Vec<Webhook> {
    (0..MAX_LIST as usize).map(webhook).collect()
}

/// Every webhook is listed once, its event type intact, and the body is as long as it says.
fn assert_listed(code: u16, list: &Value) {
    assert_eq!(code, 200);
    let listed: BTreeSet<&str> = list
        .as_array()
        .expect("a list")
        .iter()
        .map(|view| view["type"].as_str().unwrap())
        .collect();
    let stored: Vec<Webhook> = all();
    let expected: BTreeSet<&str> = stored.iter().map(|w| w.event_type.as_str()).collect();
    assert_eq!(listed, expected);
}

async fn fill_sqlite(inbox: &Inbox) {
    let store = std::sync::Arc::new(SqliteStore::open(&inbox.db()).unwrap());
    let writes: Vec<_> = all()
        .into_iter()
        .map(|webhook| {
            let store = store.clone();
            tokio::spawn(async move { store.capture(&webhook, false).await.unwrap() })
        })
        .collect();
    for write in writes {
        write.await.unwrap();
    }
}

fn list(inbox: &Inbox) -> (u16, Value) {
    list_at(inbox, PATH)
}

fn list_at(inbox: &Inbox, path: &str) -> (u16, Value) {
    let auth = format!("Bearer {ADMIN_TOKEN}");
    request(&inbox.url, "GET", path, &[("Authorization", &auth)], b"")
}

/// The webhooks in flight: on DynamoDB, read through the `due` index and batch reads.
const IN_FLIGHT_PATH: &str = "/api/webhooks?status=received&limit=1000";

#[tokio::test(flavor = "multi_thread")]
async fn the_native_sqlite_store_lists_a_thousand() {
    let inbox = Inbox::start(&[("INBOX_WORKER_POLL_MS", "3600000")]);
    fill_sqlite(&inbox).await;
    let (code, list) = list(&inbox);
    assert_listed(code, &list);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sqlite_store_component_lists_a_thousand() {
    let store = component("inbox_store_sqlite");
    let inbox = Inbox::start(&[
        ("INBOX_STORE_WASM", store.to_str().unwrap()),
        ("INBOX_WORKER_POLL_MS", "3600000"),
    ]);
    fill_sqlite(&inbox).await;
    let (code, list) = list(&inbox);
    assert_listed(code, &list);
}

/// The items of every webhook, written straight into the table (batches of 25).
async fn fill_dynamodb(client: &aws_sdk_dynamodb::Client, table: &str) {
    use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
    let items: Vec<_> = all()
        .iter()
        .flat_map(|webhook| {
            inbox_core::item::dynamodb::capture(webhook, None, false)
                .unwrap()
                .items
        })
        .collect();
    for batch in items.chunks(25) {
        let writes = batch
            .iter()
            .map(|item| {
                let put = PutRequest::builder()
                    .set_item(Some(item.clone().into()))
                    .build()
                    .unwrap();
                WriteRequest::builder().put_request(put).build()
            })
            .collect();
        client
            .batch_write_item()
            .request_items(table, writes)
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dynamodb_store_component_lists_a_thousand() {
    let moto = moto::Moto::shared();
    let client = moto.dynamodb().await;
    let table = moto::unique("list");
    moto::create_table(&client, &table).await;
    fill_dynamodb(&client, &table).await;
    let store_wasm = component("inbox_store_dynamodb");
    let mut env = vec![("INBOX_STORE_WASM", store_wasm.to_str().unwrap())];
    env.extend(moto::store_component_env(moto, &table));
    let inbox = Inbox::start(&env);
    let (code, list) = list(&inbox);
    assert_listed(code, &list);
    let (code, list) = list_at(&inbox, IN_FLIGHT_PATH);
    assert_listed(code, &list);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_native_dynamodb_store_lists_a_thousand_through_api_gateway() {
    let moto = moto::Moto::shared();
    let client = moto.dynamodb().await;
    let table = moto::unique("list");
    moto::create_table(&client, &table).await;
    fill_dynamodb(&client, &table).await;
    let sqs = moto.sqs().await;
    let queues = moto::create_queues(&sqs, &moto::unique("list")).await;
    let mut env = moto::aws_env(moto);
    for (k, v) in [
        ("INBOX_TABLE", table.as_str()),
        ("INBOX_FAILED_QUEUE_URL", queues.failed_url.as_str()),
        ("INBOX_DEAD_QUEUE_URL", queues.dead_url.as_str()),
        ("INBOX_ADMIN_TOKEN", ADMIN_TOKEN),
    ] {
        env.push((k.to_owned(), v.to_owned()));
    }
    let function = moto::LambdaFunction::start(&["lambda"], &env);
    let auth = format!("Bearer {ADMIN_TOKEN}");
    for path in [PATH, IN_FLIGHT_PATH] {
        let event = moto::http_event("GET", path, &[("authorization", &auth)], b"");
        let response = function.invoke(&event);
        let code = response["statusCode"].as_u64().unwrap() as u16;
        let list: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
        assert_listed(code, &list);
    }
}
