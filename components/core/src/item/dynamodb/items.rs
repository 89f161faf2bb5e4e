//! The items of a webhook as DynamoDB attribute values: keys, sizes, expiry, and
//! reading them back.

use std::collections::HashMap;

use serde_dynamo::{AttributeValue, Item};
use sha2::{Digest, Sha256};

use crate::item::{DeadLetterItem, StatusItem, WebhookItem, pk};
use crate::model::{DeadLetter, Status, Webhook};
use crate::store::StoreError;

/// DynamoDB refuses items over 400 KB, names and values counted; read as 400,000
/// bytes, the stricter reading (and moto's).
pub const MAX_ITEM_BYTES: usize = 400_000;

/// The condition on both puts of a capture, and on a dead letter: never overwrite.
pub const NOT_EXISTS: &str = "attribute_not_exists(PK)";

/// The condition on an update that must not make an item of one that is gone.
pub const EXISTS: &str = "attribute_exists(PK)";

/// The attributes of the status item that are absent when they do not apply. Expiry is
/// one: a status written before retention started at completion loses its expiry at its
/// next change, unless that change completes it.
pub(crate) const OPTIONAL_STATUS_ATTRIBUTES: [&str; 6] = [
    "lease_until",
    "next_attempt_at",
    "last_error",
    "due_shard",
    "due_at",
    "expires_at",
];

/// An `UpdateItem` (alone, or in a transaction): its key, expression and, for a
/// compare-and-swap, its condition.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemUpdate {
    pub key: Item,
    pub update: String,
    pub condition: Option<String>,
    pub names: HashMap<String, String>,
    pub values: Item,
}

/// A `Query` of one partition (of the table or an index).
#[derive(Debug, Clone, PartialEq)]
pub struct KeyQuery {
    pub key_condition: String,
    pub names: HashMap<String, String>,
    pub values: Item,
}

pub fn to_item(value: &impl serde::Serialize) -> Item {
    serde_dynamo::to_item(value).expect("the item records serialise")
}

pub fn key(id: &str, sk: &str) -> Item {
    key_of(&pk(id), sk)
}

/// When an item kept from `at_ms` may go (DynamoDB's TTL wants unix seconds).
pub fn expires_at(at_ms: i64, retention_secs: Option<u64>) -> Option<i64> {
    retention_secs.map(|keep| at_ms / 1_000 + keep as i64)
}

/// An item's size as DynamoDB counts it: attribute names plus values (numbers at their
/// longest, so this never underestimates).
pub fn item_size(item: &HashMap<String, AttributeValue>) -> usize {
    item.iter()
        .map(|(name, value)| name.len() + value_size(value))
        .sum()
}

pub(crate) fn value_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => 21.max(n.len()),
        AttributeValue::B(b) => b.len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::L(list) => 3 + list.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        AttributeValue::M(map) => 3 + item_size(map) + map.len(),
        AttributeValue::Ss(set) => set.iter().map(String::len).sum(),
        AttributeValue::Ns(set) => set.iter().map(|n| 21.max(n.len())).sum(),
        AttributeValue::Bs(set) => set.iter().map(Vec::len).sum(),
    }
}

/// A `WEBHOOK` item read back (from a table, or a stream image).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredWebhook {
    Whole(Webhook),
    /// Its payload is in a bucket ([`crate::item::upload`]).
    Offloaded(Offloaded),
}

/// A webhook whose payload is in a bucket: it is had whole only with a payload that has
/// the digest its item keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offloaded {
    webhook: Webhook,
    object: String,
    sha256: String,
}

impl Offloaded {
    pub fn id(&self) -> &str {
        &self.webhook.id
    }

    /// The payload's object in the bucket.
    pub fn object(&self) -> &str {
        &self.object
    }

    pub fn with_payload(mut self, payload: Vec<u8>) -> Result<Webhook, StoreError> {
        let digest = hex::encode(Sha256::digest(&payload));
        if digest != self.sha256 {
            return Err(StoreError::Corrupt(format!(
                "the object {} is not the payload of {}: its SHA-256 is {digest}, the webhook's {}",
                self.object, self.webhook.id, self.sha256
            )));
        }
        self.webhook.payload = payload;
        Ok(self.webhook)
    }
}

pub fn read_webhook(item: Item) -> Result<StoredWebhook, StoreError> {
    let mut item: WebhookItem = read(item)?;
    let object = item.payload_object.take();
    let sha256 = item.payload_sha256.take();
    let webhook = item
        .into_webhook()
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    match (object, sha256) {
        (None, _) => Ok(StoredWebhook::Whole(webhook)),
        (Some(object), Some(sha256)) => Ok(StoredWebhook::Offloaded(Offloaded {
            webhook,
            object,
            sha256,
        })),
        (Some(object), None) => Err(StoreError::Corrupt(format!(
            "the payload of {} is in {object}, but its item keeps no digest",
            webhook.id
        ))),
    }
}

/// A `STATUS` item read back.
pub fn read_status(item: Item) -> Result<Status, StoreError> {
    read::<StatusItem>(item).map(StatusItem::into_status)
}

/// A `DEAD#` item read back.
pub fn read_dead_letter(item: Item) -> Result<DeadLetter, StoreError> {
    read::<DeadLetterItem>(item).map(DeadLetterItem::into_dead_letter)
}

pub(crate) fn read<T: serde::de::DeserializeOwned>(item: Item) -> Result<T, StoreError> {
    serde_dynamo::from_item(item).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// The key of an item, from its `PK` and `SK`.
pub fn key_of(pk: &str, sk: &str) -> Item {
    Item::from(HashMap::from([
        ("PK".to_owned(), AttributeValue::S(pk.to_owned())),
        ("SK".to_owned(), AttributeValue::S(sk.to_owned())),
    ]))
}
