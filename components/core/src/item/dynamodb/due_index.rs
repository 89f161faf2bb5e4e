//! The sparse global secondary index of the webhooks in flight: a `STATUS` item carries
//! its keys (`due_shard`, `due_at`) only while the webhook waits for an attempt or an
//! attempt holds it, so what is due is found by reading the webhooks in flight, not the
//! table, however many finished ones it keeps.

use std::collections::HashMap;

use serde_dynamo::{AttributeValue, Item};

use super::items::read;
use crate::item::{DUE_SHARDS, ItemError, STATUS_SK, StatusItem, due_shard_key};
use crate::model::{State, Status};
use crate::store::{StoreError, Waits};

pub const NAME: &str = "due";
pub const PARTITION_KEY: &str = "due_shard";
pub const SORT_KEY: &str = "due_at";
/// What it projects besides the keys: the whole status, so neither what is due nor
/// the list of the webhooks in flight reads the table for it.
pub const ATTRIBUTES: [&str; 8] = super::list::STATUS_ATTRIBUTES;

pub use super::items::KeyQuery as Query;

/// One query per partition: the webhooks due by `up_to` (all in flight, with
/// `None`), the longest waiting first.
pub fn queries(up_to: Option<i64>) -> Vec<Query> {
    shards(|names, values| {
        let up_to = up_to?;
        names.insert("#at".into(), SORT_KEY.into());
        values.insert(":up_to".into(), AttributeValue::N(up_to.to_string()));
        Some("#at <= :up_to")
    })
}

/// One query per partition: the webhooks due from `from` to `to` (both included), the
/// soonest first.
pub fn queries_between(from: i64, to: i64) -> Vec<Query> {
    shards(|names, values| {
        names.insert("#at".into(), SORT_KEY.into());
        values.insert(":from".into(), AttributeValue::N(from.to_string()));
        values.insert(":to".into(), AttributeValue::N(to.to_string()));
        Some("#at BETWEEN :from AND :to")
    })
}

/// A query of each partition, narrowed by what `sort` adds to its key condition.
fn shards(
    sort: impl Fn(
        &mut HashMap<String, String>,
        &mut HashMap<String, AttributeValue>,
    ) -> Option<&'static str>,
) -> Vec<Query> {
    (0..DUE_SHARDS)
        .map(|shard| {
            let mut names = HashMap::from([("#shard".to_owned(), PARTITION_KEY.to_owned())]);
            let mut values =
                HashMap::from([(":shard".to_owned(), AttributeValue::S(due_shard_key(shard)))]);
            let mut key_condition = "#shard = :shard".to_owned();
            if let Some(condition) = sort(&mut names, &mut values) {
                key_condition.push_str(" AND ");
                key_condition.push_str(condition);
            }
            Query {
                key_condition,
                names,
                values: Item::from(values),
            }
        })
        .collect()
}

/// The `STATUS` items of webhooks in flight without their index keys: written before
/// the index existed (see [`backfill`]).
pub fn unindexed_scan() -> super::list::Scan {
    let mut projection = super::list::projection(["PK", "SK"].into_iter().chain(ATTRIBUTES));
    for (placeholder, name) in [
        ("#sk", "SK"),
        ("#shard", PARTITION_KEY),
        ("#state", "status"),
    ] {
        projection.names.insert(placeholder.into(), name.into());
    }
    let in_flight = [State::Received, State::Processing, State::Failed];
    let mut values: HashMap<String, AttributeValue> =
        HashMap::from([(":sk".to_owned(), AttributeValue::S(STATUS_SK.to_owned()))]);
    for (i, state) in in_flight.iter().enumerate() {
        values.insert(
            format!(":s{i}"),
            AttributeValue::S(state.as_str().to_owned()),
        );
    }
    super::list::Scan {
        filter: "#sk = :sk AND attribute_not_exists(#shard) AND #state IN (:s0, :s1, :s2)".into(),
        projection,
        values: Item::from(values),
    }
}

/// A status item of [`unindexed_scan`]: its id and status, to write back as it is
/// over its own version (which it must still have: a status changed since has its
/// keys from that change). The write gives it its index keys.
pub fn backfill(item: Item) -> Result<(String, crate::model::Status), ItemError> {
    let status: StatusItem = read(item).map_err(|e| ItemError(e.to_string()))?;
    Ok((status.id.clone(), status.into_status()))
}

/// The webhooks waiting for an attempt that `waits` matches, with their statuses, from the
/// `STATUS` items of the [`due_index`], the soonest due first; and the items that cannot be
/// read.
pub fn waiting(
    items: impl IntoIterator<Item = Item>,
    waits: Waits,
    limit: usize,
) -> (Vec<(String, Status)>, Vec<StoreError>) {
    let mut waiting = Vec::new();
    let mut unreadable = Vec::new();
    for item in items {
        match read::<StatusItem>(item) {
            Ok(item) => {
                let id = item.id.clone();
                let status = item.into_status();
                if let (true, Some(due)) = (waits.matches(&status), status.due_at()) {
                    waiting.push((due, id, status));
                }
            }
            Err(error) => unreadable.push(error),
        }
    }
    waiting.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let waiting = waiting
        .into_iter()
        .take(limit)
        .map(|(_, id, status)| (id, status))
        .collect();
    (waiting, unreadable)
}

/// The ids whose next attempt is due at `now`, or whose lease has expired, from the
/// `STATUS` items of the [`due_index`], the longest waiting first; and the items that cannot be read,
/// which are passed over (one bad item must not stop the rest from being processed).
pub fn due(
    items: impl IntoIterator<Item = Item>,
    now: i64,
    limit: usize,
) -> (Vec<String>, Vec<StoreError>) {
    let mut due = Vec::new();
    let mut unreadable = Vec::new();
    for item in items {
        let item: StatusItem = match read(item) {
            Ok(item) => item,
            Err(error) => {
                unreadable.push(error);
                continue;
            }
        };
        let id = item.id.clone();
        let status = item.into_status();
        if let (true, Some(since)) = (status.is_claimable(now), status.due_at()) {
            due.push((since, id));
        }
    }
    due.sort();
    let ids = due.into_iter().take(limit).map(|(_, id)| id).collect();
    (ids, unreadable)
}
