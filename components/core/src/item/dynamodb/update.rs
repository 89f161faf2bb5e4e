//! A status change: the conditional update of the `STATUS` item, the records written with
//! it, the counters it moves, and, when it completes the webhook, the expiry its items get.

use std::collections::HashMap;

use serde_dynamo::{AttributeValue, Item};

use super::counters::{self, Counter};
use super::items::*;
use crate::item::Retention;
use crate::item::{AttemptItem, DeadLetterItem, STATUS_SK, StatusItem, WEBHOOK_SK, pk};
use crate::lifecycle::Transition;
use crate::model::{State, Status};

/// The conditional update that writes `status` over the one at `expected_version`
/// (compare-and-swap), with its expiry (`None` removes one).
pub fn status_update(
    id: &str,
    expected_version: u64,
    status: &Status,
    expires_at: Option<i64>,
) -> ItemUpdate {
    let mut fields: Vec<_> = to_item(&StatusItem::new(id, status, expires_at))
        .into_inner()
        .into_iter()
        .filter(|(name, _)| !["PK", "SK", "id"].contains(&name.as_str()))
        .collect();
    fields.sort_by(|a, b| a.0.cmp(&b.0));
    let mut names = HashMap::new();
    let mut values = HashMap::new();
    let mut set = Vec::new();
    for (i, (name, value)) in fields.into_iter().enumerate() {
        set.push(format!("#a{i} = :a{i}"));
        names.insert(format!("#a{i}"), name);
        values.insert(format!(":a{i}"), value);
    }
    let absent: Vec<_> = OPTIONAL_STATUS_ATTRIBUTES
        .iter()
        .filter(|name| !names.values().any(|n| n == *name))
        .collect();
    let mut remove = Vec::new();
    for (i, name) in absent.into_iter().enumerate() {
        names.insert(format!("#r{i}"), (*name).to_owned());
        remove.push(format!("#r{i}"));
    }
    names.insert("#expected".into(), "version".into());
    values.insert(
        ":expected".into(),
        AttributeValue::N(expected_version.to_string()),
    );
    let mut update = format!("SET {}", set.join(", "));
    if !remove.is_empty() {
        update.push_str(&format!(" REMOVE {}", remove.join(", ")));
    }
    ItemUpdate {
        key: key(id, STATUS_SK),
        update,
        condition: Some("#expected = :expected".into()),
        names,
        values: Item::from(values),
    }
}

/// Sets an item's expiry, or removes it (`None`).
pub fn expiry_update(key: Item, expires_at: Option<i64>) -> ItemUpdate {
    let names = HashMap::from([("#e".to_owned(), "expires_at".to_owned())]);
    let (update, values) = match expires_at {
        Some(at) => (
            "SET #e = :e".to_owned(),
            HashMap::from([(":e".to_owned(), AttributeValue::N(at.to_string()))]),
        ),
        None => ("REMOVE #e".to_owned(), HashMap::new()),
    };
    ItemUpdate {
        key,
        update,
        condition: None,
        names,
        values: Item::from(values),
    }
}

/// The records a status change writes besides the status (its attempt, its dead letter,
/// its hold item),
/// each under [`NOT_EXISTS`], expiring at `expires_at` (only when the change completes the
/// webhook; a hold never does).
pub fn transition_items(id: &str, transition: &Transition, expires_at: Option<i64>) -> Vec<Item> {
    let version = transition.status.version;
    let attempt = transition
        .attempt
        .as_ref()
        .map(|attempt| to_item(&AttemptItem::new(id, version, attempt, expires_at)));
    let letter = transition
        .dead_letter
        .as_ref()
        .map(|letter| to_item(&DeadLetterItem::new(id, letter, expires_at)));
    let held = transition
        .hold_for
        .as_ref()
        .map(|destination| super::destinations::held_item(destination, id, version));
    attempt.into_iter().chain(letter).chain(held).collect()
}

/// Everything a status change writes, in one transaction (a single update when it is only
/// the status): built from the status item as it is stored, whose version the change
/// expects.
#[derive(Debug, Clone, PartialEq)]
pub struct SwapPlan {
    pub status: ItemUpdate,
    /// Its attempt and dead letter, each put under [`NOT_EXISTS`].
    pub records: Vec<Item>,
    /// The counters it moves and the webhook item's expiry, when that changes.
    pub updates: Vec<ItemUpdate>,
    /// Set when it completes the webhook: when its items expire. The webhook's earlier
    /// records (attempts, dead letters), which were kept while it needed work, get it too
    /// ([`records_query`]).
    pub expires_at: Option<i64>,
}

impl SwapPlan {
    /// Whether the change is one update of the status, with nothing else to write.
    pub fn is_single(&self) -> bool {
        self.records.is_empty() && self.updates.is_empty() && self.expires_at.is_none()
    }
}

pub fn swap(
    id: &str,
    stored: &StatusItem,
    transition: &Transition,
    retention: &Retention,
) -> SwapPlan {
    let status = &transition.status;
    let expires_at = (status.state == State::Completed)
        .then(|| super::items::expires_at(status.updated_at, retention.completed_secs))
        .flatten();
    let mut updates = Vec::new();
    // Counted since its capture (a status written before the counters were is not).
    if let (Some(origin), Some(event_type)) = (&stored.origin, &stored.event_type) {
        let (from, to) = (
            Counter::of(
                id,
                stored.version,
                origin,
                event_type,
                stored.status,
                stored.expires_at,
            ),
            Counter::of(
                id,
                status.version,
                origin,
                event_type,
                status.state,
                expires_at,
            ),
        );
        updates.extend(counters::changes(
            Some((&from, stored.status)),
            (&to, status.state),
        ));
    }
    // The webhook item expires with its status, and no sooner: one written when items
    // expired from their capture loses its expiry while it needs work.
    if expires_at.is_some() || stored.expires_at.is_some() {
        // And the object of its payload with it. Kept again (a replay) only while they
        // are there: DynamoDB's TTL deletes expired items late and one at a time, and an
        // update would make an empty item of one already gone.
        let items = std::iter::once(WEBHOOK_SK).chain(stored.upload.as_deref());
        for sk in items {
            let mut update = expiry_update(key(id, sk), expires_at);
            if expires_at.is_none() {
                update.condition = Some(EXISTS.into());
            }
            updates.push(update);
        }
    }
    SwapPlan {
        status: status_update(id, stored.version, status, expires_at),
        records: transition_items(id, transition, expires_at),
        updates,
        expires_at,
    }
}

/// The keys of a webhook's records (attempts and dead letters sort before `STATUS`), to
/// give them the expiry of its completion.
pub fn records_query(id: &str) -> KeyQuery {
    KeyQuery {
        key_condition: "#pk = :pk AND #sk < :status".into(),
        names: HashMap::from([
            ("#pk".to_owned(), "PK".to_owned()),
            ("#sk".to_owned(), "SK".to_owned()),
        ]),
        values: Item::from(HashMap::from([
            (":pk".to_owned(), AttributeValue::S(pk(id))),
            (
                ":status".to_owned(),
                AttributeValue::S(STATUS_SK.to_owned()),
            ),
        ])),
    }
}
