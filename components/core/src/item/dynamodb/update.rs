//! A status change: the conditional update of the `STATUS` item, and the records
//! written with it.

use std::collections::HashMap;

use serde_dynamo::{AttributeValue, Item};

use super::items::*;
use crate::item::{AttemptItem, DeadLetterItem, STATUS_SK, StatusItem};
use crate::model::Status;

/// The conditional update that writes `status` over the one at `expected_version`
/// (compare-and-swap), leaving the other attributes (the TTL) as they are.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusUpdate {
    pub key: Item,
    pub update: String,
    pub condition: String,
    pub names: HashMap<String, String>,
    pub values: Item,
}

pub fn status_update(id: &str, expected_version: u64, status: &Status) -> StatusUpdate {
    let mut fields: Vec<_> = to_item(&StatusItem::new(id, status, None))
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
    StatusUpdate {
        key: key(id, STATUS_SK),
        update,
        condition: "#expected = :expected".into(),
        names,
        values: Item::from(values),
    }
}

/// The records a status change writes besides the status (its attempt, its dead letter),
/// in one transaction with it: the update of [`status_update`], then these items, each
/// under [`NOT_EXISTS`]. Empty for most changes, which are then a single update.
pub fn transition_items(
    id: &str,
    transition: &crate::lifecycle::Transition,
    retention_secs: Option<u64>,
) -> Vec<Item> {
    let version = transition.status.version;
    let attempt = transition.attempt.as_ref().map(|attempt| {
        let expires = expires_at(attempt.ended_at, retention_secs);
        to_item(&AttemptItem::new(id, version, attempt, expires))
    });
    let letter = transition.dead_letter.as_ref().map(|letter| {
        to_item(&DeadLetterItem::new(
            id,
            letter,
            expires_at(letter.at, retention_secs),
        ))
    });
    attempt.into_iter().chain(letter).collect()
}
