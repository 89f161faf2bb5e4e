//! The DynamoDB layout: the items as attribute values, the requests with their conditions
//! (a capture's transaction, the status compare-and-swap, the operator's scan), what
//! DynamoDB's refusals mean, and how items read back. The one DynamoDB store
//! (`components/dynamodb`, run natively and in Spin's store component) hands these to the
//! AWS SDK.

mod capture;
pub mod due_index;
mod items;
mod list;
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
    use crate::item::{STATUS_SK, StatusItem, WEBHOOK_SK, WebhookItem};
    use crate::lifecycle::RetryPolicy;
    use crate::listing::{Filter, Query};
    use crate::model::{State, Status};
    use crate::store::StoreError;

    #[test]
    fn a_status_update_sets_what_is_there_removes_what_is_not_and_checks_the_version() {
        let claimed = Status::received(7)
            .claim(8, 1_000, &RetryPolicy::default())
            .unwrap();
        let update = status_update("57f0", 1, &claimed);
        assert_eq!(update.condition, "#expected = :expected");
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
                "retries",
                "status",
                "updated_at",
                "version"
            ]
        );
        let removed: Vec<String> = remove.split(", ").map(name_of).collect();
        assert_eq!(removed, ["next_attempt_at", "last_error"]);
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
    fn lists_join_the_items_of_a_scan_newest_first() {
        let mut other = webhook();
        other.id = "9abc".into();
        other.received_at += 1;
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
            // A status whose webhook the scan has not reached yet.
            to_item(&StatusItem::new("dead", &older, None)),
        ];
        let all = page(items.clone(), &Query::default()).unwrap();
        let ids: Vec<_> = all.webhooks.iter().map(|v| v.id.as_str()).collect();
        assert_eq!(ids, ["9abc", "57f0"]);
        assert_eq!(all.webhooks[0].status, State::Processing);
        assert_eq!(all.webhooks[1].event_type, "charge.succeeded");
        let received = Query {
            state: Some(State::Received),
            ..Query::default()
        };
        assert_eq!(page(items.clone(), &received).unwrap().webhooks.len(), 1);
        let by_key = Filter {
            search: Some("evt_1".into()),
            ..Filter::default()
        };
        let counts = counts(items, &by_key).unwrap();
        assert_eq!(counts.total(), 2);
        assert_eq!(counts.0[&State::Processing], 1);
    }

    #[test]
    fn details_read_every_item_of_a_webhook_but_its_payload() {
        let policy = RetryPolicy::default();
        let at = webhook().received_at;
        let reject = crate::lifecycle::Outcome::Reject {
            reason: "410".into(),
        };
        let taken = Status::received(at).claim(at + 10, 1_000, &policy).unwrap();
        let failed = taken.finish(&reject, &policy, at + 20).unwrap();
        // A record left from an earlier life of the same id, a day before this one.
        let day = 86_400_000;
        let earlier = Status::received(at - day)
            .claim(at - day + 10, 1_000, &policy)
            .unwrap();
        let stale = earlier.finish(&reject, &policy, at - day + 20).unwrap();
        let mut items = vec![
            to_item(&StatusItem::new("57f0", &failed.status, None)),
            to_item(&WebhookItem::new(&webhook(), None)),
        ];
        items.extend(transition_items("57f0", &failed, Some(60)));
        items.extend(transition_items("57f0", &stale, Some(60)));
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
    fn a_capture_is_two_guarded_puts_and_an_item_too_large_is_refused() {
        let plan = capture(&webhook(), Some(86_400), true).unwrap();
        assert_eq!(plan.status, Status::received(1_700_000_000_123));
        assert_eq!(plan.items[0]["SK"], AttributeValue::S("WEBHOOK".into()));
        assert_eq!(plan.items[1]["SK"], AttributeValue::S("STATUS".into()));
        assert_eq!(
            plan.items[1]["expires_at"],
            AttributeValue::N("1700086400".into())
        );
        let mut big = webhook();
        big.payload = vec![b'x'; MAX_ITEM_BYTES];
        assert!(matches!(
            capture(&big, None, false),
            Err(StoreError::TooLarge(_))
        ));
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
        assert!(!capture_conflicted(&duplicate));
        let replayed = cancelled(&["None", "None", "ConditionalCheckFailed"]);
        assert_eq!(capture_refused(&replayed), CaptureRefused::BodySeen);
        let race = cancelled(&["TransactionConflict", "None"]);
        assert!(capture_conflicted(&race));
        assert!(!capture_conflicted(&cancelled(&[
            "TransactionConflict",
            "ConditionalCheckFailed"
        ])));
        // A race that lasts past the retries is the store being unavailable.
        assert!(matches!(
            capture_refused(&race),
            CaptureRefused::Failed(StoreError::Unavailable(_))
        ));
        let waits: Vec<Duration> = backon::BackoffBuilder::build(capture_backoff()).collect();
        assert_eq!(waits.len(), CAPTURE_ATTEMPTS - 1);
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
        let (ids, unreadable) = due(with_a_bad_one, 1_000, 2);
        assert_eq!(
            (ids, unreadable.len()),
            (vec!["older".to_owned(), "fresh".to_owned()], 1)
        );
        let scan = summary_scan(&[STATUS_SK]);
        assert_eq!(scan.filter, "#sk IN (:sk0)");
        assert_eq!(scan.projection.names["#sk"], "SK");
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
        let failed = leased.finish(&retry, &policy, 30).unwrap().status;
        let completed = leased
            .finish(&crate::lifecycle::Outcome::Completed, &policy, 30)
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
        let update = status_update("57f0", 2, &completed);
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
        let update = status_update(&id, read.version, &read);
        assert_eq!(update, status_update("57f0", status.version, &status));
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
        let shards: std::collections::HashSet<_> = (0..200)
            .map(|i| crate::item::due_shard(&format!("id-{i}")))
            .collect();
        assert_eq!(
            shards.len(),
            crate::item::DUE_SHARDS as usize,
            "every shard used"
        );
    }

    #[test]
    fn the_latest_in_flight_are_the_most_recently_changed_in_that_state() {
        let policy = RetryPolicy::default();
        let mut items = vec![
            to_item(&StatusItem::new("a", &Status::received(10), None)),
            to_item(&StatusItem::new("b", &Status::received(30), None)),
            to_item(&StatusItem::new(
                "c",
                &Status::received(40).claim(50, 1_000, &policy).unwrap(),
                None,
            )),
            to_item(&StatusItem::new("d", &Status::received(20), None)),
        ];
        // Read twice while it changed: once as received, once as taken.
        items.push(to_item(&StatusItem::new(
            "d",
            &Status::received(20).claim(60, 1_000, &policy).unwrap(),
            None,
        )));
        items.push(to_item(&StatusItem::new("b", &Status::received(30), None)));
        let (statuses, keys) = due_index::latest(items, State::Received).unwrap();
        let ids: Vec<_> = statuses.iter().map(|s| s["id"].clone()).collect();
        assert_eq!(
            ids,
            [AttributeValue::S("b".into()), AttributeValue::S("a".into())]
        );
        assert_eq!(keys, [key("b", WEBHOOK_SK), key("a", WEBHOOK_SK)]);
    }
}
