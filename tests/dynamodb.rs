//! The DynamoDB store against moto in server mode: the capture transaction, duplicates,
//! compare-and-swap conflicts, lease expiry, dead letters, TTL and the item size limit.
//! Each test has its own table.
//!
//! No two transactions race here: moto's are not isolated (each copies the table and puts
//! the copy back when refused, with no lock), so a racing one's items can be left behind
//! or undone. DynamoDB's are serializable; races are tested on the SQLite stores.

mod moto;
mod support;

use aws_sdk_dynamodb::types::AttributeValue;
use inbox_core::lifecycle::{Outcome, RetryPolicy, Transition};
use inbox_core::listing::Query;
use inbox_core::{State, Status, Webhook};
use inbox_stores::dynamodb::{DynamoStore, Retention};
use inbox_stores::{Captured, StoreError, WebhookStore};
use moto::Moto;

const DAY_SECS: u64 = 86_400;

async fn store() -> (DynamoStore, aws_sdk_dynamodb::Client) {
    let moto = Moto::shared();
    let client = moto.dynamodb().await;
    let table = moto::unique("webhooks");
    moto::create_table(&client, &table).await;
    let retention = Retention {
        completed_secs: Some(30 * DAY_SECS),
        body_secs: Some(90 * DAY_SECS),
    };
    let store = DynamoStore::new(client.clone(), table, retention);
    (store, client)
}

fn webhook(key: &str, payload: Vec<u8>) -> Webhook {
    Webhook {
        id: inbox_core::id::webhook_id("stripe", key),
        origin: "stripe".into(),
        event_type: "charge.succeeded".into(),
        provider_timestamp: Some(1_795_000_000),
        received_at: 1_795_000_000_123,
        idempotency_key: key.into(),
        headers: vec![("stripe-signature".into(), "t=1,v1=00".into())],
        payload,
    }
}

/// Every item under the webhook's partition key, by SK.
async fn items(
    client: &aws_sdk_dynamodb::Client,
    store: &DynamoStore,
    id: &str,
) -> Vec<std::collections::HashMap<String, AttributeValue>> {
    client
        .query()
        .table_name(store.table())
        .key_condition_expression("PK = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(format!("WH#{id}")))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn capture_writes_both_items_in_one_transaction_and_a_duplicate_writes_nothing() {
    let (store, client) = store().await;
    let original = webhook("evt_1", br#"{"id":"evt_1","amount":100}"#.to_vec());

    let captured = store.capture(original.clone(), false).await.unwrap();
    assert_eq!(
        captured,
        Captured::Stored(Status::received(original.received_at))
    );
    let stored = items(&client, &store, &original.id).await;
    let sks: Vec<_> = stored
        .iter()
        .map(|i| i["SK"].as_s().unwrap().clone())
        .collect();
    assert_eq!(sks, ["STATUS", "WEBHOOK"]);
    // The payload is stored as binary, byte for byte; neither item expires while the
    // webhook needs work.
    let webhook_item = stored
        .iter()
        .find(|i| i["SK"].as_s().unwrap() == "WEBHOOK")
        .unwrap();
    assert_eq!(
        webhook_item["payload"].as_b().unwrap().as_ref(),
        original.payload.as_slice()
    );
    for item in &stored {
        assert!(!item.contains_key("expires_at"), "{item:?}");
    }
    assert_eq!(
        store.webhook(&original.id).await.unwrap(),
        Some(original.clone())
    );

    // A redelivery (even with other bytes) is acknowledged, never overwrites.
    let mut redelivery = original.clone();
    redelivery.payload = br#"{"id":"evt_1","amount":999}"#.to_vec();
    let again = store.capture(redelivery.clone(), false).await.unwrap();
    assert_eq!(
        again,
        Captured::Duplicate {
            id: original.id.clone(),
            status: Status::received(original.received_at)
        }
    );
    assert_eq!(items(&client, &store, &original.id).await.len(), 2);
    assert_eq!(store.webhook(&original.id).await.unwrap(), Some(original));
}

#[tokio::test(flavor = "multi_thread")]
async fn status_changes_are_compare_and_swap_and_dead_letters_are_kept() {
    let (store, client) = store().await;
    let delivery = webhook("evt_cas", b"{}".to_vec());
    store.capture(delivery.clone(), false).await.unwrap();
    let id = delivery.id.as_str();
    let received = store.status(id).await.unwrap().unwrap();

    let claimed = received
        .claim(received.updated_at, 60_000, &RetryPolicy::default())
        .unwrap();
    let claim = Transition::to(claimed.clone());
    assert!(
        store
            .swap_status(id, received.version, &claim)
            .await
            .unwrap()
    );
    // A second writer that read the same version loses.
    assert!(
        !store
            .swap_status(id, received.version, &claim)
            .await
            .unwrap()
    );
    let now = store.status(id).await.unwrap().unwrap();
    assert_eq!(now, claimed);
    assert_eq!((now.state, now.attempts), (State::Processing, 1));

    // A permanent rejection: the status and its dead letter, together.
    let policy = RetryPolicy::Backoff {
        max_retries: 2,
        base_delay_ms: 1_000,
        max_delay_ms: 60_000,
    };
    let rejected = claimed
        .finish(
            "w",
            &Outcome::Reject {
                reason: "410 Gone".into(),
            },
            &policy,
            claimed.updated_at + 5,
        )
        .unwrap();
    assert!(rejected.dead_letter.is_some());
    // A stale attempt cannot record it, and writes no dead letter either.
    assert!(
        !store
            .swap_status(id, received.version, &rejected)
            .await
            .unwrap()
    );
    let untouched = store.details(id).await.unwrap().unwrap();
    assert!(untouched.dead_letters.is_empty() && untouched.attempts.is_empty());
    assert!(
        store
            .swap_status(id, claimed.version, &rejected)
            .await
            .unwrap()
    );
    let dead = store.status(id).await.unwrap().unwrap();
    assert_eq!(dead.state, State::OperatorRequired);
    assert_eq!(dead.lease_until, None, "absent attributes are removed");
    let details = store.details(id).await.unwrap().unwrap();
    assert_eq!(
        details.dead_letters,
        vec![rejected.dead_letter.clone().unwrap()]
    );
    assert_eq!(details.attempts, vec![rejected.attempt.clone().unwrap()]);
    // The webhook, its status, the attempt and the dead letter.
    assert_eq!(items(&client, &store, id).await.len(), 4);

    // Replay: only from operator_required, once.
    let replayed = inbox_stores::replay(&store, id, dead.updated_at + 1)
        .await
        .unwrap();
    assert_eq!(replayed.state, State::Received);
    assert!(matches!(
        inbox_stores::replay(&store, id, dead.updated_at + 2).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        inbox_stores::replay(&store, "no-such-id", 0).await,
        Err(StoreError::NotFound(_))
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_lease_is_retaken_and_the_first_attempt_cannot_record() {
    let (store, _) = store().await;
    let delivery = webhook("evt_lease", b"{}".to_vec());
    store.capture(delivery.clone(), false).await.unwrap();
    let id = delivery.id.as_str();
    let received = store.status(id).await.unwrap().unwrap();
    let t0 = received.updated_at;

    let first = received.claim(t0, 1_000, &RetryPolicy::default()).unwrap();
    let swap = |status: &Status| Transition::to(status.clone());
    assert!(
        store
            .swap_status(id, received.version, &swap(&first))
            .await
            .unwrap()
    );
    // While the lease runs, nobody else may take it, and it is not due.
    assert!(
        first
            .claim(t0 + 500, 1_000, &RetryPolicy::default())
            .is_err()
    );
    assert!(store.due(t0 + 500, 10).await.unwrap().is_empty());
    // Once it has expired (the first attempt crashed), it is due and can be retaken.
    assert_eq!(
        store.due(t0 + 1_000, 10).await.unwrap(),
        vec![id.to_owned()]
    );
    let second = first
        .claim(t0 + 1_000, 1_000, &RetryPolicy::default())
        .unwrap();
    assert!(
        store
            .swap_status(id, first.version, &swap(&second))
            .await
            .unwrap()
    );
    assert_eq!(second.attempts, 2);

    // The first attempt comes back late: its outcome is refused.
    let policy = RetryPolicy::Backoff {
        max_retries: 2,
        base_delay_ms: 1_000,
        max_delay_ms: 60_000,
    };
    let late = first
        .finish("w", &Outcome::Completed, &policy, t0 + 1_500)
        .unwrap();
    assert!(!store.swap_status(id, first.version, &late).await.unwrap());
    let done = second
        .finish("w", &Outcome::Completed, &policy, t0 + 1_600)
        .unwrap();
    assert!(store.swap_status(id, second.version, &done).await.unwrap());
    assert_eq!(
        store.status(id).await.unwrap().unwrap().state,
        State::Completed
    );
    assert!(store.due(t0 + 10_000, 10).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_payload_over_the_item_limit_is_refused_and_nothing_is_written() {
    let (store, client) = store().await;
    // Refused by the store's own count, before any request: just over 400 KB.
    let huge = webhook("evt_huge", vec![b'x'; 399_800]);
    match store.capture(huge.clone(), false).await {
        Err(StoreError::TooLarge(message)) => assert!(message.contains("400000"), "{message}"),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(items(&client, &store, &huge.id).await.is_empty());
    // What fits is stored whole.
    let large = webhook("evt_large", vec![b'y'; 399_000]);
    assert!(matches!(
        store.capture(large.clone(), false).await.unwrap(),
        Captured::Stored(_)
    ));
    assert_eq!(
        store
            .webhook(&large.id)
            .await
            .unwrap()
            .unwrap()
            .payload
            .len(),
        399_000
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn list_shows_the_newest_first_and_filters_by_state_a_page_at_a_time() {
    let (store, _) = store().await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let mut delivery = webhook(&format!("evt_list_{n}"), b"{}".to_vec());
        delivery.received_at += n;
        store.capture(delivery.clone(), false).await.unwrap();
        ids.push(delivery.id);
    }
    let status = store.status(&ids[0]).await.unwrap().unwrap();
    let claimed = status
        .claim(status.updated_at + 10, 1_000, &RetryPolicy::default())
        .unwrap();
    let claim = Transition::to(claimed);
    assert!(
        store
            .swap_status(&ids[0], status.version, &claim)
            .await
            .unwrap()
    );

    let all = store.list(&Query::default()).await.unwrap().webhooks;
    let listed: Vec<_> = all.iter().map(|v| v.id.clone()).collect();
    assert_eq!(listed, [ids[2].clone(), ids[1].clone(), ids[0].clone()]);
    assert_eq!(all[2].status, State::Processing);
    assert_eq!(all[2].event_type, "charge.succeeded");
    let received = Query {
        state: Some(State::Received),
        limit: 1,
        ..Query::default()
    };
    let page = store.list(&received).await.unwrap();
    assert_eq!(page.webhooks.len(), 1);
    assert_eq!(page.webhooks[0].id, ids[2]);
    // The next page starts after it: the other one received.
    let rest = Query {
        after: page.next,
        ..received
    };
    let page = store.list(&rest).await.unwrap();
    assert_eq!(page.webhooks[0].id, ids[1]);
    assert_eq!(page.next, None);
}

/// The same body under other delivery ids (new webhook ids) is the duplicate of the first
/// webhook, and nothing is written under a replay's id; one replay after another (see the
/// module's note on races).
#[tokio::test(flavor = "multi_thread")]
async fn a_replayed_body_is_the_duplicate_of_the_first_webhook() {
    let (store, client) = store().await;
    let body = br#"{"action":"opened","issue":{"number":7}}"#.to_vec();
    let first = webhook("delivery-1", body.clone());
    assert!(matches!(
        store.capture(first.clone(), true).await.unwrap(),
        Captured::Stored(_)
    ));
    for n in 2..5 {
        let replay = webhook(&format!("delivery-{n}"), body.clone());
        match store.capture(replay.clone(), true).await.unwrap() {
            Captured::Duplicate { id, .. } => assert_eq!(id, first.id),
            stored => panic!("a replay was stored: {stored:?}"),
        }
        assert!(items(&client, &store, &replay.id).await.is_empty());
        assert_eq!(store.status(&replay.id).await.unwrap(), None);
    }
    // The digest lives under its own key, for the replay guard's days from the webhook's
    // receipt; the webhook itself does not expire while it needs work.
    let pk = inbox_core::item::body_pk(&first.origin, &body);
    let digest = client
        .get_item()
        .table_name(store.table())
        .key("PK", AttributeValue::S(pk))
        .key("SK", AttributeValue::S("BODY".into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(digest["id"].as_s().unwrap(), &first.id);
    let guard = (first.received_at / 1000 + 90 * DAY_SECS as i64).to_string();
    assert_eq!(digest["expires_at"].as_n().unwrap(), &guard);
    let webhook_item = &items(&client, &store, &first.id).await[1];
    assert!(!webhook_item.contains_key("expires_at"));
    // Without the guard the same body is a new webhook.
    let unguarded = webhook("delivery-99", body);
    assert!(matches!(
        store.capture(unguarded.clone(), false).await.unwrap(),
        Captured::Stored(_)
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn webhooks_stored_before_the_due_index_are_found_once_reindexed() {
    let (store, client) = store().await;
    let (old, taken) = (
        webhook("evt_old", b"{}".to_vec()),
        webhook("evt_taken", b"{}".to_vec()),
    );
    for hook in [&old, &taken] {
        store.capture(hook.clone(), false).await.unwrap();
    }
    let claimed = Status::received(1)
        .claim(2, 1_000, &RetryPolicy::default())
        .unwrap();
    let claim = Transition::to(claimed);
    assert!(store.swap_status(&taken.id, 1, &claim).await.unwrap());
    // As a status item written before the index: without its keys.
    client
        .update_item()
        .table_name(store.table())
        .key("PK", AttributeValue::S(format!("WH#{}", old.id)))
        .key("SK", AttributeValue::S("STATUS".into()))
        .update_expression("REMOVE due_shard, due_at")
        .send()
        .await
        .unwrap();
    let far_future = i64::MAX / 2;
    assert_eq!(
        store.due(far_future, 10).await.unwrap(),
        std::slice::from_ref(&taken.id)
    );

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_inbox"))
        .args(["reindex", "--table", store.table()])
        .env_clear()
        .envs(moto::aws_env(Moto::shared()))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{said}");
    assert!(said.contains("gave 1 webhooks"), "{said}");
    let mut due = store.due(far_future, 10).await.unwrap();
    due.sort();
    let mut expected = vec![old.id.clone(), taken.id.clone()];
    expected.sort();
    assert_eq!(due, expected);
    assert_eq!(
        store.status(&old.id).await.unwrap().unwrap(),
        Status::received(old.received_at),
        "the status as it was"
    );
}

/// Every item of a webhook, by SK, with its expiry (unix seconds) if it has one.
async fn expiries(
    client: &aws_sdk_dynamodb::Client,
    store: &DynamoStore,
    id: &str,
) -> Vec<(String, Option<i64>)> {
    items(client, store, id)
        .await
        .into_iter()
        .map(|item| {
            let sk = item["SK"].as_s().unwrap().clone();
            let expires = item
                .get("expires_at")
                .map(|n| n.as_n().unwrap().parse().unwrap());
            (sk, expires)
        })
        .collect()
}

/// One attempt at `at`: claimed, then ended with `outcome`; the status it ends in.
async fn attempt(store: &DynamoStore, id: &str, at: i64, outcome: Outcome) -> Status {
    let policy = RetryPolicy::Backoff {
        max_retries: 1,
        base_delay_ms: 1_000,
        max_delay_ms: 1_000,
    };
    let status = store.status(id).await.unwrap().unwrap();
    let claimed = status.claim(at, 60_000, &policy).unwrap();
    let claim = Transition::to(claimed.clone());
    assert!(store.swap_status(id, status.version, &claim).await.unwrap());
    let finished = claimed.finish("w", &outcome, &policy, at + 5).unwrap();
    assert!(
        store
            .swap_status(id, claimed.version, &finished)
            .await
            .unwrap()
    );
    finished.status
}

/// The counts hold the one webhook of the table, in `state`.
async fn counted(store: &DynamoStore, state: State) {
    let counts = store.counts(&Default::default()).await.unwrap();
    assert_eq!(counts.total(), 1, "{counts:?}");
    assert_eq!(counts.0[&state], 1, "{counts:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn nothing_expires_while_a_webhook_needs_work_and_all_of_it_once_it_completes() {
    let (store, client) = store().await;
    // Now, not a fixed time: a completed webhook counts until the day it expires.
    let delivery = Webhook {
        received_at: inbox_core::clock::now_ms(),
        ..webhook("evt_expiry", b"{}".to_vec())
    };
    store.capture(delivery.clone(), false).await.unwrap();
    let id = delivery.id.as_str();
    counted(&store, State::Received).await;
    let unexpiring = async |what: &str| {
        let all = expiries(&client, &store, id).await;
        assert!(all.iter().all(|(_, e)| e.is_none()), "{what}: {all:?}");
        all.len()
    };
    let retry = || Outcome::Retry {
        reason: "503".into(),
        delay_ms: Some(0),
    };
    let at = delivery.received_at;
    assert_eq!(
        attempt(&store, id, at + 10, retry()).await.state,
        State::Failed
    );
    counted(&store, State::Failed).await;
    assert_eq!(unexpiring("retrying").await, 3);
    let dead = attempt(&store, id, at + 5_000, retry()).await;
    assert_eq!(dead.state, State::OperatorRequired);
    counted(&store, State::OperatorRequired).await;
    // The webhook, its status, two attempts and a dead letter: none expires.
    assert_eq!(unexpiring("operator_required").await, 5);

    let replayed = inbox_stores::replay(&store, id, dead.updated_at + 100)
        .await
        .unwrap();
    counted(&store, State::Received).await;
    let done = attempt(&store, id, replayed.updated_at + 10, Outcome::Completed).await;
    assert_eq!(done.state, State::Completed);
    counted(&store, State::Completed).await;
    let expires = done.updated_at / 1000 + 30 * DAY_SECS as i64;
    let all = expiries(&client, &store, id).await;
    assert_eq!(all.len(), 6, "{all:?}");
    for (sk, at) in all {
        assert_eq!(at, Some(expires), "{sk}");
    }
}

/// What the admin API reads costs a page, not the table: a list's first and later pages,
/// a state's page, the counts and a search, each read in items (as DynamoDB bills them)
/// on a table of a few thousand webhooks, and each answer the right one.
#[tokio::test(flavor = "multi_thread")]
async fn admin_reads_cost_a_page_not_the_table() {
    const WEBHOOKS: usize = 2_000;
    const LIMIT: u32 = 20;
    let (_, client) = store().await;
    let meter = moto::ReadMeter::default();
    let table = moto::unique("reads");
    moto::create_table(&client, &table).await;
    let store = DynamoStore::new(meter.client(&client), &table, Retention::default());
    let mut webhooks = Vec::new();
    for n in 0..WEBHOOKS {
        let mut hook = webhook(&format!("evt_many_{n}"), b"{}".to_vec());
        hook.origin = ["stripe", "github"][n % 2].into();
        hook.event_type = ["a", "b", "c"][n % 3].into();
        hook.id = inbox_core::id::webhook_id(&hook.origin, &hook.idempotency_key);
        hook.received_at += (n / 2) as i64;
        let state = match n % 50 {
            0 => State::OperatorRequired,
            1 => State::Failed,
            _ => State::Completed,
        };
        webhooks.push((hook, state));
    }
    moto::seed(&client, &table, &webhooks).await;
    let table_items = 2 * WEBHOOKS as u64;
    let newest_first = |filter: &dyn Fn(&(Webhook, State)) -> bool| {
        let mut ids: Vec<_> = webhooks
            .iter()
            .filter(|w| filter(w))
            .map(|(hook, _)| (hook.received_at, hook.id.clone()))
            .collect();
        ids.sort_by(|a, b| b.cmp(a));
        ids.into_iter().map(|(_, id)| id).collect::<Vec<_>>()
    };
    let ids = |page: &inbox_core::listing::Page| -> Vec<String> {
        page.webhooks.iter().map(|v| v.id.clone()).collect()
    };

    meter.take();
    let mut query = Query {
        limit: LIMIT,
        ..Query::default()
    };
    let first = store.list(&query).await.unwrap();
    let first_read = meter.take();
    let all = newest_first(&|_| true);
    assert_eq!(ids(&first), all[..LIMIT as usize]);
    // Each partition of each state reads at most one more than the page.
    let page_bound = 5 * u64::from(inbox_core::item::LIST_SHARDS) * u64::from(LIMIT + 1);
    assert!(
        first_read <= page_bound,
        "the first page read {first_read} items"
    );
    // Two pages on: the same cost, the next webhooks.
    query.after = first.next.clone();
    let second = store.list(&query).await.unwrap();
    query.after = second.next.clone();
    meter.take();
    let third = store.list(&query).await.unwrap();
    let third_read = meter.take();
    assert_eq!(ids(&third), all[2 * LIMIT as usize..3 * LIMIT as usize]);
    assert!(
        third_read <= page_bound,
        "a later page read {third_read} items"
    );

    let dead = Query {
        state: Some(State::OperatorRequired),
        limit: LIMIT,
        ..Query::default()
    };
    let page = store.list(&dead).await.unwrap();
    let dead_read = meter.take();
    let expected = newest_first(&|(_, s)| *s == State::OperatorRequired);
    assert_eq!(ids(&page), expected[..LIMIT as usize]);
    let state_bound = u64::from(inbox_core::item::LIST_SHARDS) * u64::from(LIMIT + 1);
    assert!(
        dead_read <= state_bound,
        "a state's page read {dead_read} items"
    );

    let counts = store.counts(&Default::default()).await.unwrap();
    let counts_read = meter.take();
    assert_eq!(counts.total(), WEBHOOKS as u64);
    assert_eq!(counts.0[&State::OperatorRequired], (WEBHOOKS / 50) as u64);
    assert_eq!(counts.0[&State::Failed], (WEBHOOKS / 50) as u64);
    // Shards times origins times types times the states' items: tens, not thousands.
    assert!(
        counts_read <= u64::from(inbox_core::item::dynamodb::counters::SHARDS) * 2 * 3,
        "the counts read {counts_read} items"
    );
    let github_b = inbox_core::listing::Filter {
        origin: Some("github".into()),
        event_type: Some("b".into()),
        ..Default::default()
    };
    let counts = store.counts(&github_b).await.unwrap();
    let expected = webhooks
        .iter()
        .filter(|(h, _)| h.origin == "github" && h.event_type == "b")
        .count();
    assert_eq!(counts.total(), expected as u64);
    meter.take();

    let (wanted, _) = &webhooks[777];
    let by_key = inbox_core::listing::Filter {
        search: Some(wanted.idempotency_key.clone()),
        ..Default::default()
    };
    let found = store
        .list(&Query {
            filter: by_key.clone(),
            ..Query::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(&found), std::slice::from_ref(&wanted.id));
    assert_eq!(store.counts(&by_key).await.unwrap().total(), 1);
    let search_read = meter.take();
    assert!(search_read <= 6, "two searches read {search_read} items");
    eprintln!(
        "items read on {table_items} items: first page {first_read}, a later page {third_read}, \
         a state's page {dead_read}, counts {counts_read}, two searches {search_read}"
    );
}
