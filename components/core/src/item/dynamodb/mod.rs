//! The DynamoDB layout: the items as attribute values, the requests with their conditions
//! (a capture's transaction, the status compare-and-swap, the counters, the operators'
//! index queries), what
//! DynamoDB's refusals mean, and how items read back. The one DynamoDB store
//! (`components/dynamodb`, run natively and in Spin's store component) hands these to the
//! AWS SDK.

mod capture;
pub mod counters;
pub mod destinations;
pub mod due_index;
mod items;
mod list;
pub mod list_index;
mod refusal;
pub mod settings;
mod update;

pub use capture::*;
pub use due_index::due;
pub use items::*;
pub use list::*;
pub use refusal::*;
pub use update::*;

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use serde_dynamo::{AttributeValue, Item};

    use super::*;
    use crate::item::tests::webhook;
    use crate::item::{StatusItem, WebhookItem};
    use crate::lifecycle::{RetryPolicy, Transition};
    use crate::model::{State, Status};
    use crate::store::StoreError;

    #[test]
    fn a_status_update_sets_what_is_there_removes_what_is_not_and_checks_the_version() {
        let claimed = Status::received(7)
            .claim(8, 1_000, &RetryPolicy::default())
            .unwrap();
        let update = status_update("57f0", 1, &claimed, None);
        assert_eq!(update.condition.as_deref(), Some("#expected = :expected"));
        assert_eq!(
            update.values[":expected"],
            serde_dynamo::AttributeValue::N("1".into())
        );
        assert_eq!(
            update.key["PK"],
            serde_dynamo::AttributeValue::S("WH#57f0".into())
        );
        let name_of = |placeholder: &str| update.names[placeholder].clone();
        let (set, remove) = update.update.split_once(" REMOVE ").unwrap();
        let set: Vec<String> = set
            .trim_start_matches("SET ")
            .split(", ")
            .map(|a| name_of(a.split(" = ").next().unwrap()))
            .collect();
        assert_eq!(
            set,
            [
                "due_at",
                "due_shard",
                "lease_until",
                "list_part",
                "retries",
                "status",
                "updated_at",
                "version"
            ]
        );
        let removed: Vec<String> = remove.split(", ").map(name_of).collect();
        assert_eq!(removed, ["next_attempt_at", "last_error", "expires_at"]);
    }

    #[test]
    fn an_item_is_sized_as_dynamodb_counts_it() {
        let item: HashMap<String, AttributeValue> = HashMap::from([
            ("PK".to_owned(), AttributeValue::S("WH#abc".to_owned())),
            ("n".to_owned(), AttributeValue::N("7".to_owned())),
            ("ok".to_owned(), AttributeValue::Bool(true)),
            (
                "l".to_owned(),
                AttributeValue::L(vec![AttributeValue::S("xy".to_owned())]),
            ),
            (
                "m".to_owned(),
                AttributeValue::M(HashMap::from([(
                    "k".to_owned(),
                    AttributeValue::B(vec![0; 5]),
                )])),
            ),
        ]);
        // Names, then values: a string its bytes, a number at its longest (21), a boolean 1,
        // a list 3 plus 1 and the size of each element, a map 3 plus 1 and the size of
        // each entry.
        let expected = (2 + 6) + (1 + 21) + (2 + 1) + (1 + 3 + 1 + 2) + (1 + 3 + 1 + (1 + 5));
        assert_eq!(item_size(&item), expected);
    }

    #[test]
    fn a_search_joins_the_items_it_reads_the_latest_status_counting() {
        let mut other = webhook();
        other.id = "9abc".into();
        let older = Status::received(10);
        let newer = Status::received(20)
            .claim(30, 1_000, &RetryPolicy::default())
            .unwrap();
        let items = vec![
            to_item(&StatusItem::new("57f0", &older, None)),
            to_item(&WebhookItem::new(&webhook(), None)),
            to_item(&StatusItem::new("9abc", &older, None)),
            // Read twice: the later version counts.
            to_item(&StatusItem::new("9abc", &newer, None)),
            to_item(&WebhookItem::new(&other, None)),
            // A status without its webhook item.
            to_item(&StatusItem::new("dead", &older, None)),
        ];
        let mut joined = joined(items).unwrap();
        joined.sort_by(|a, b| a.0.id.cmp(&b.0.id));
        let ids: Vec<_> = joined.iter().map(|(v, _)| v.id.as_str()).collect();
        assert_eq!(ids, ["57f0", "9abc"]);
        assert_eq!(joined[1].0.status, State::Processing);
        assert_eq!(joined[0].0.event_type, "charge.succeeded");
        assert_eq!(joined[0].1, "evt_1");
    }

    #[test]
    fn details_read_every_item_of_a_webhook_but_its_payload() {
        let policy = RetryPolicy::default();
        let at = webhook().received_at;
        let reject = crate::lifecycle::Outcome::Reject {
            reason: "410".into(),
        };
        let taken = Status::received(at).claim(at + 10, 1_000, &policy).unwrap();
        let failed = taken.finish("w", &reject, &policy, at + 20).unwrap();
        // A record left from an earlier life of the same id, a day before this one.
        let day = 86_400_000;
        let earlier = Status::received(at - day)
            .claim(at - day + 10, 1_000, &policy)
            .unwrap();
        let stale = earlier
            .finish("w", &reject, &policy, at - day + 20)
            .unwrap();
        let mut items = vec![
            to_item(&StatusItem::new("57f0", &failed.status, None)),
            to_item(&WebhookItem::new(&webhook(), None)),
        ];
        items.extend(transition_items("57f0", &failed, None));
        items.extend(transition_items("57f0", &stale, None));
        let details = details(items).unwrap().unwrap();
        assert_eq!(details.view.status, State::OperatorRequired);
        assert_eq!(details.idempotency_key, "evt_1");
        assert_eq!(details.headers.len(), 1);
        assert_eq!(details.attempts.len(), 1);
        assert_eq!(details.attempts[0].started_at, at + 10);
        assert_eq!(details.dead_letters.len(), 1);
        assert_eq!(details.dead_letters[0].reason, "rejected: 410");
        assert_eq!(super::details(Vec::new()).unwrap(), None);
        let projected = details_projection();
        assert!(!projected.names.values().any(|n| n == "payload"));
    }

    #[test]
    fn a_capture_is_guarded_puts_that_do_not_expire_but_the_body_digest() {
        let retention = crate::item::Retention {
            completed_secs: Some(86_400),
            body_secs: Some(2 * 86_400),
        };
        let plan = capture(&webhook(), &retention, true, true).unwrap();
        assert_eq!(plan.upload, None);
        assert!(plan.items[0].contains_key("payload"));
        assert_eq!(plan.status, Status::received(1_700_000_000_123));
        assert_eq!(plan.items[0]["SK"], AttributeValue::S("WEBHOOK".into()));
        assert_eq!(plan.items[1]["SK"], AttributeValue::S("STATUS".into()));
        assert!(!plan.items[0].contains_key("expires_at"));
        assert!(!plan.items[1].contains_key("expires_at"));
        assert_eq!(
            plan.items[2]["expires_at"],
            AttributeValue::N("1700172800".into())
        );
        assert_eq!(plan.counters.len(), 1);
        assert!(plan.counters[0].update.starts_with("ADD "));
        let mut big = webhook();
        big.payload = vec![b'x'; MAX_ITEM_BYTES];
        assert!(matches!(
            capture(&big, &retention, false, false),
            Err(StoreError::TooLarge(_))
        ));
    }

    #[test]
    fn a_payload_too_large_for_its_item_goes_to_the_bucket_named_by_the_item_and_status() {
        let retention = crate::item::Retention::default();
        let mut big = webhook();
        big.payload = vec![b'x'; MAX_ITEM_BYTES];
        let plan = capture(&big, &retention, true, true).unwrap();
        let upload = plan.upload.clone().unwrap();
        let webhook_item = &plan.items[0];
        assert!(!webhook_item.contains_key("payload"));
        assert!(item_size(webhook_item) < 1_000);
        assert_eq!(
            webhook_item["payload_object"],
            AttributeValue::S(upload.upload.object())
        );
        let StoredWebhook::Offloaded(offloaded) = read_webhook(webhook_item.clone()).unwrap()
        else {
            panic!("read back whole without its payload");
        };
        assert_eq!(offloaded.object(), upload.upload.object());
        // Had whole only with the bytes it was captured with.
        assert!(matches!(
            offloaded.clone().with_payload(vec![b'y'; MAX_ITEM_BYTES]),
            Err(StoreError::Corrupt(_))
        ));
        assert_eq!(offloaded.with_payload(big.payload.clone()).unwrap(), big);
        // The upload item is put first, expiring a day after the capture unless the
        // transaction's claim takes its expiry away.
        assert_eq!(upload.item["SK"], AttributeValue::S(upload.upload.sk()));
        assert_eq!(
            upload.item["expires_at"],
            AttributeValue::N((big.received_at / 1_000 + 86_400).to_string())
        );
        assert_eq!(upload.claim["SK"], upload.item["SK"]);
        assert!(!upload.claim.contains_key("expires_at"));
        assert_eq!(
            plan.items[1]["upload"],
            AttributeValue::S(upload.upload.sk())
        );
        // A completion gives it the webhook item's expiry; a replay takes both away.
        let stored: StatusItem = serde_dynamo::from_item(plan.items[1].clone()).unwrap();
        let completed_retention = crate::item::Retention {
            completed_secs: Some(86_400),
            body_secs: None,
        };
        let done = Status {
            state: State::Completed,
            version: 3,
            updated_at: big.received_at + 2,
            ..Status::received(big.received_at)
        };
        let plan = swap(
            &big.id,
            &stored,
            &Transition::to(done.clone()),
            &completed_retention,
        );
        let expiring: Vec<_> = plan
            .updates
            .iter()
            .filter(|u| u.update.starts_with("SET"))
            .map(|u| u.key["SK"].clone())
            .collect();
        assert!(expiring.contains(&AttributeValue::S("WEBHOOK".into())));
        assert!(expiring.contains(&AttributeValue::S(upload.upload.sk())));
        // A replay keeps both again, but only while they are there: one the TTL already
        // deleted refuses the replay rather than coming back empty.
        let completed = StatusItem {
            expires_at: plan.expires_at,
            ..StatusItem::new(&big.id, &done, plan.expires_at)
        };
        let completed = StatusItem {
            upload: stored.upload.clone(),
            ..completed
        };
        let replayed = Status {
            state: State::Received,
            version: 4,
            ..done.clone()
        };
        let replay = swap(
            &big.id,
            &completed,
            &Transition::to(replayed),
            &completed_retention,
        );
        let kept: Vec<_> = replay
            .updates
            .iter()
            .filter(|u| u.update.starts_with("REMOVE"))
            .map(|u| (u.key["SK"].clone(), u.condition.clone()))
            .collect();
        let exists = Some(EXISTS.to_owned());
        assert_eq!(
            kept,
            vec![
                (AttributeValue::S("WEBHOOK".into()), exists.clone()),
                (AttributeValue::S(upload.upload.sk()), exists),
            ]
        );
    }

    #[test]
    fn only_a_completion_starts_the_retention_of_every_item_of_a_webhook() {
        let policy = RetryPolicy::default();
        let retention = crate::item::Retention {
            completed_secs: Some(86_400),
            body_secs: None,
        };
        let hook = webhook();
        let at = hook.received_at;
        let stored = StatusItem::captured(&hook, &Status::received(at));
        let claimed = Status::received(at).claim(at + 10, 1_000, &policy).unwrap();
        let claim = swap(
            &hook.id,
            &stored,
            &Transition::to(claimed.clone()),
            &retention,
        );
        assert_eq!(claim.expires_at, None);
        assert!(
            claim.status.update.contains("REMOVE")
                && claim.status.names.values().any(|n| n == "expires_at")
        );
        // The counter moves from received to processing: within one shard's item, or
        // between two.
        assert!((1..=2).contains(&claim.updates.len()));
        let stored = StatusItem {
            status: State::Processing,
            version: claimed.version,
            ..stored
        };
        let done = claimed
            .finish("w", &crate::lifecycle::Outcome::Completed, &policy, at + 20)
            .unwrap();
        let complete = swap(&hook.id, &stored, &done, &retention);
        let expires = (at + 20) / 1_000 + 86_400;
        assert_eq!(complete.expires_at, Some(expires));
        assert_eq!(
            complete
                .status
                .values
                .clone()
                .into_inner()
                .values()
                .filter(|v| **v == AttributeValue::N(expires.to_string()))
                .count(),
            1
        );
        assert!(
            complete
                .records
                .iter()
                .all(|r| r["expires_at"] == AttributeValue::N(expires.to_string()))
        );
        // Two counters (processing down, the completed day up) and the webhook item's expiry.
        assert_eq!(complete.updates.len(), 3);
        assert!(complete.updates.iter().any(|u| u.key["SK"]
            == AttributeValue::S("WEBHOOK".into())
            && u.update == "SET #e = :e"));
        let failed = claimed
            .finish(
                "w",
                &crate::lifecycle::Outcome::Reject {
                    reason: "410".into(),
                },
                &policy,
                at + 20,
            )
            .unwrap();
        let dead = swap(&hook.id, &stored, &failed, &retention);
        assert_eq!(dead.expires_at, None);
        assert!(dead.records.iter().all(|r| !r.contains_key("expires_at")));
    }

    #[test]
    fn refusals_mean_a_duplicate_a_race_to_try_again_or_a_failure() {
        let cancelled = |reasons: &[&str]| Refusal {
            kind: "TransactionCanceledException".into(),
            message: "cancelled".into(),
            reasons: reasons.iter().map(|r| r.to_string()).collect(),
            detail: String::new(),
        };
        let duplicate = cancelled(&["ConditionalCheckFailed", "None"]);
        assert_eq!(capture_refused(&duplicate), CaptureRefused::Duplicate);
        assert!(!conflicted(&duplicate));
        let replayed = cancelled(&["None", "None", "ConditionalCheckFailed"]);
        assert_eq!(capture_refused(&replayed), CaptureRefused::BodySeen);
        let race = cancelled(&["TransactionConflict", "None"]);
        assert!(conflicted(&race));
        assert!(!conflicted(&cancelled(&[
            "TransactionConflict",
            "ConditionalCheckFailed"
        ])));
        // A race that lasts past the retries is the store being unavailable.
        assert!(matches!(
            capture_refused(&race),
            CaptureRefused::Failed(StoreError::Unavailable(_))
        ));
        let waits: Vec<Duration> = backon::BackoffBuilder::build(conflict_backoff()).collect();
        assert_eq!(waits.len(), CONFLICT_ATTEMPTS - 1);
        assert!(waits[0] >= Duration::from_millis(20) && waits[0] < Duration::from_millis(40));
        assert!(waits[1] >= Duration::from_millis(40) && waits[1] < Duration::from_millis(80));
        assert_eq!(
            swap_refused(&duplicate),
            SwapRefused::Lost,
            "the update's condition"
        );
        assert!(matches!(
            swap_refused(&cancelled(&["None", "ConditionalCheckFailed"])),
            SwapRefused::Failed(StoreError::Corrupt(_))
        ));
        let SwapRefused::Failed(StoreError::Unavailable(transient)) =
            swap_refused(&cancelled(&["None", "TransactionConflict"]))
        else {
            panic!("a conflict on the dead letter is transient");
        };
        assert!(transient.contains("TransactionConflict"), "{transient}");
    }

    #[test]
    fn due_is_what_is_claimable_longest_waiting_first() {
        let fresh = Status::received(50);
        let older = Status::received(10);
        let leased = Status::received(0)
            .claim(0, 1_000, &RetryPolicy::default())
            .unwrap();
        let items = vec![
            to_item(&StatusItem::new("fresh", &fresh, None)),
            to_item(&StatusItem::new("older", &older, None)),
            to_item(&StatusItem::new("leased", &leased, None)),
        ];
        assert_eq!(due(items.clone(), 60, 10).0, ["older", "fresh"]);
        let mut with_a_bad_one = items.clone();
        with_a_bad_one.insert(0, to_item(&serde_json::json!({ "id": "no status" })));
        let (ids, unreadable) = due(with_a_bad_one.clone(), 1_000, 2);
        assert_eq!(
            (ids, unreadable.len()),
            (vec!["older".to_owned(), "fresh".to_owned()], 1)
        );
        // What waits for an attempt, with its status; not what an attempt holds.
        let all = crate::store::Waits {
            from: 0,
            to: 1_000,
            longer_than: -1,
        };
        let (waiting, unreadable) = due_index::waiting(with_a_bad_one.clone(), all, 10);
        assert_eq!(
            (waiting, unreadable.len()),
            (
                vec![("older".to_owned(), older), ("fresh".to_owned(), fresh)],
                1
            )
        );
        // Only as long a wait as asked for, due within the window.
        let long = crate::store::Waits {
            longer_than: 0,
            ..all
        };
        assert!(
            due_index::waiting(with_a_bad_one.clone(), long, 10)
                .0
                .is_empty()
        );
        let early = crate::store::Waits { to: 49, ..all };
        assert_eq!(due_index::waiting(with_a_bad_one, early, 10).0.len(), 1);
    }

    #[test]
    fn only_a_webhook_in_flight_is_in_the_due_index() {
        let policy = RetryPolicy::default();
        let received = Status::received(10);
        let leased = received.claim(20, 1_000, &policy).unwrap();
        let retry = crate::lifecycle::Outcome::Retry {
            reason: "503".into(),
            delay_ms: None,
        };
        let failed = leased.finish("w", &retry, &policy, 30).unwrap().status;
        let completed = leased
            .finish("w", &crate::lifecycle::Outcome::Completed, &policy, 30)
            .unwrap()
            .status;
        let index_keys = |status: &Status| {
            let item = to_item(&StatusItem::new("57f0", status, None));
            (
                item.get(due_index::PARTITION_KEY).cloned(),
                item.get(due_index::SORT_KEY).cloned(),
            )
        };
        let shard = Some(AttributeValue::S(crate::item::due_shard("57f0")));
        let at = |ms: i64| Some(AttributeValue::N(ms.to_string()));
        assert_eq!(index_keys(&received), (shard.clone(), at(10)));
        assert_eq!(index_keys(&leased), (shard.clone(), at(1_020)));
        assert_eq!(
            index_keys(&failed),
            (shard, at(failed.next_attempt_at.unwrap()))
        );
        assert_eq!(index_keys(&completed), (None, None));
        let update = status_update("57f0", 2, &completed, None);
        let removed = update.update.split_once(" REMOVE ").unwrap().1;
        let removed: Vec<_> = removed
            .split(", ")
            .map(|r| update.names[r].as_str())
            .collect();
        assert!(removed.contains(&"due_shard") && removed.contains(&"due_at"));
    }

    #[test]
    fn a_status_written_before_the_index_gets_its_keys_and_stays_as_it_was() {
        let status = Status::received(10)
            .claim(20, 1_000, &RetryPolicy::default())
            .unwrap();
        let mut item = to_item(&StatusItem::new("57f0", &status, None)).into_inner();
        item.remove(due_index::PARTITION_KEY);
        item.remove(due_index::SORT_KEY);
        let (id, read) = due_index::backfill(Item::from(item)).unwrap();
        let update = status_update(&id, read.version, &read, None);
        assert_eq!(update, status_update("57f0", status.version, &status, None));
        let set: Vec<&str> = update.names.values().map(String::as_str).collect();
        assert!(
            set.contains(&"due_shard") && set.contains(&"due_at"),
            "{set:?}"
        );
        let scan = due_index::unindexed_scan();
        assert!(scan.filter.contains("attribute_not_exists(#shard)"));
        assert_eq!(scan.projection.names["#shard"], "due_shard");
    }

    #[test]
    fn the_due_index_is_read_one_shard_at_a_time() {
        let queries = due_index::queries(Some(1_000));
        assert_eq!(queries.len(), crate::item::DUE_SHARDS as usize);
        assert_eq!(
            queries[3].key_condition,
            "#shard = :shard AND #at <= :up_to"
        );
        assert_eq!(
            queries[3].values[":shard"],
            AttributeValue::S("DUE#3".into())
        );
        assert_eq!(
            queries[3].values[":up_to"],
            AttributeValue::N("1000".into())
        );
        assert_eq!(due_index::queries(None)[0].key_condition, "#shard = :shard");
        let between = &due_index::queries_between(5, 9)[1];
        assert_eq!(
            between.key_condition,
            "#shard = :shard AND #at BETWEEN :from AND :to"
        );
        assert_eq!(
            (&between.values[":from"], &between.values[":to"]),
            (
                &AttributeValue::N("5".into()),
                &AttributeValue::N("9".into())
            )
        );
        let shards: std::collections::HashSet<_> = (0..200)
            .map(|i| crate::item::due_shard(&format!("id-{i}")))
            .collect();
        assert_eq!(
            shards.len(),
            crate::item::DUE_SHARDS as usize,
            "every shard used"
        );
    }
}
