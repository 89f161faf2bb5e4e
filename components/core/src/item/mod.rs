//! The seed's single-table layout, written once for every store.
//!
//! | item           | PK        | SK                 | holds                                    |
//! | -------------- | --------- | ------------------ | ---------------------------------------- |
//! | Webhook        | `WH#<id>` | `WEBHOOK`          | the immutable delivery                   |
//! | Webhook Status | `WH#<id>` | `STATUS`           | state, retries, version, lease, due time |
//! | Dead letter    | `WH#<id>` | `DEAD#<unix ms>`   | why it needed an operator                |
//! | Attempt        | `WH#<id>` | `ATTEMPT#<unix ms>#<version>` | how one processing attempt ended |
//! | Body digest    | `BODY#<origin>#<sha256>` | `BODY` | the first webhook with this body (replay guard) |
//! | Counter (DynamoDB) | `COUNT#<shard>` | origin, type (and expiry day) | how many are in each state |
//! | Destination, hold | `DESTINATIONS`, `HELD#<name>#<shard>` | see [`destinations`] | breakers, pauses, held webhooks |
//! | Upload (DynamoDB) | `WH#<id>` | `UPLOAD#<received_at>-<sha256>` | a payload kept in a bucket, see [`upload`] |
//!
//! Nothing of a webhook expires while it needs work: its retention (`retention_days`, the
//! TTL on `expires_at` on DynamoDB, a sweep on SQLite) starts when it completes. A body's
//! digest lives for `replay_guard_days` from when it was received. The records below are the items as attributes:
//! DynamoDB stores them as they are (the `PK`/`SK` names of the seed), and SQLite stores
//! (the native one and Spin's) use [`sqlite::SCHEMA`], one table whose columns carry the
//! same names, so a database file can be shared by both and a DynamoDB stream image decodes
//! into the same record a store wrote. How each kind of store reads and writes them is in
//! [`sqlite`] and [`dynamodb`].

pub mod destinations;
pub mod dynamodb;
pub mod retention;
pub mod sqlite;
pub mod upload;

pub use retention::Retention;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::{Attempt, DeadLetter, State, Status, Webhook};

pub const WEBHOOK_SK: &str = "WEBHOOK";
pub const STATUS_SK: &str = "STATUS";
pub const DEAD_LETTER_SK_PREFIX: &str = "DEAD#";
pub const BODY_SK: &str = "BODY";
pub const ATTEMPT_SK_PREFIX: &str = "ATTEMPT#";

pub fn pk(id: &str) -> String {
    format!("WH#{id}")
}

pub fn dead_letter_sk(at: i64) -> String {
    format!("{DEAD_LETTER_SK_PREFIX}{at:013}")
}

/// An attempt's record is keyed by when it ended and the status version its end wrote,
/// zero-padded so a webhook's attempts sort in the order they ended. The version alone is
/// unique only within one life of a webhook: on DynamoDB, a webhook redelivered after its
/// items expired starts again at version 1, while an attempt record of its first life may
/// not have been swept yet (TTL deletes items independently).
pub fn attempt_sk(ended_at: i64, version: u64) -> String {
    format!("{ATTEMPT_SK_PREFIX}{ended_at:013}#{version:010}")
}

/// The key of a body's digest on an origin, for the replay guard: the same signed body
/// on the same origin has the same key, whatever the delivery's id header says.
pub fn body_pk(origin: &str, payload: &[u8]) -> String {
    format!("BODY#{origin}#{}", hex::encode(Sha256::digest(payload)))
}

/// How many partitions the `due` index spreads the webhooks in flight over, so a burst of
/// captures does not write one hot partition; a query for what is due reads each.
pub const DUE_SHARDS: u32 = 8;

/// The `due` index partition of a webhook, from its id.
pub fn due_shard(id: &str) -> String {
    due_shard_key(shard_of(id, DUE_SHARDS))
}

/// Which of `shards` partitions an item of webhook `id` goes to.
pub(crate) fn shard_of(id: &str, shards: u32) -> u32 {
    u32::from(Sha256::digest(id.as_bytes())[0]) % shards
}

/// `DUE#<shard>`, for a shard in `0..DUE_SHARDS`.
pub fn due_shard_key(shard: u32) -> String {
    format!("DUE#{shard}")
}

/// How many partitions the `received` index spreads each state over, for the same reason.
pub const LIST_SHARDS: u32 = 4;

/// The `received` index partition of a webhook in `state`: a list of one state reads only
/// its partitions, however many webhooks are in the others.
pub fn list_part(state: State, id: &str) -> String {
    let digest = Sha256::digest(id.as_bytes());
    list_part_key(state, u32::from(digest[1]) % LIST_SHARDS)
}

/// `LIST#<state>#<shard>`, for a shard in `0..LIST_SHARDS`.
pub fn list_part_key(state: State, shard: u32) -> String {
    format!("LIST#{}#{shard}", state.as_str())
}

/// The `received` index's sort key: newest first is descending, ties broken by id as the
/// list's [`Cursor`](crate::listing::Cursor) breaks them.
pub fn list_at(received_at: i64, id: &str) -> String {
    format!("{received_at:016}#{id}")
}

/// The id inside a `PK`, if it is one of ours.
pub fn id_of_pk(pk: &str) -> Option<&str> {
    pk.strip_prefix("WH#")
}

/// The immutable `WEBHOOK` item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookItem {
    #[serde(rename = "PK")]
    pub pk: String,
    #[serde(rename = "SK")]
    pub sk: String,
    pub id: String,
    pub origin: String,
    #[serde(rename = "type")]
    pub event_type: String,
    /// The provider's own event time (unix seconds), when it gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<i64>,
    pub received_at: i64,
    pub idempotency_key: String,
    /// The allow-listed headers as a JSON array of `[name, value]` pairs.
    pub headers: String,
    /// Empty when the payload is in a bucket ([`upload`]).
    #[serde(with = "serde_bytes", default, skip_serializing_if = "Vec::is_empty")]
    pub payload: Vec<u8>,
    /// The payload's object in the bucket, and its SHA-256 (hex), when it is kept there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_object: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_sha256: Option<String>,
    /// When the store may forget it (unix seconds; DynamoDB's TTL attribute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

/// The mutable `STATUS` item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusItem {
    #[serde(rename = "PK")]
    pub pk: String,
    #[serde(rename = "SK")]
    pub sk: String,
    pub id: String,
    pub status: State,
    pub retries: u32,
    pub version: u64,
    pub updated_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_until: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// The keys of the sparse index of what is due (DynamoDB's `due` index): set while the
    /// webhook waits for an attempt or an attempt holds it, absent once it is finished, so
    /// the index holds only the webhooks in flight, however many the table keeps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_shard: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_at: Option<i64>,
    /// What a list shows of the webhook, copied at capture so that a list and the counters
    /// need only the status (DynamoDB); absent on statuses written before they existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_at: Option<i64>,
    /// The keys of DynamoDB's `received` index, newest first per state ([`list_part`],
    /// [`list_at`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_part: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_at: Option<String>,
    /// The sort key of the webhook's `UPLOAD#` item, when its payload is in a bucket: it
    /// gets the webhook item's expiry whenever that changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload: Option<String>,
}

/// A `DEAD#<ms>` item: one time the webhook needed an operator. It reuses the status
/// item's attribute names (so SQLite keeps every item in one table's columns): `retries`
/// holds the attempts made, `updated_at` when it was dead-lettered, `last_error` why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterItem {
    #[serde(rename = "PK")]
    pub pk: String,
    #[serde(rename = "SK")]
    pub sk: String,
    pub id: String,
    /// The attempts made before it was dead-lettered ([`DeadLetter::attempts`]).
    pub retries: u32,
    /// When it was dead-lettered ([`DeadLetter::at`]).
    pub updated_at: i64,
    /// Why ([`DeadLetter::reason`]).
    pub last_error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

/// An `ATTEMPT#<ended_at>#<version>` item: how one processing attempt ended. Like a dead letter it
/// reuses the other items' attribute names: `retries` holds the attempt's number,
/// `received_at` when it took the webhook, `updated_at` when it ended, `status` the state
/// it left the webhook in and `last_error` why it did not complete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptItem {
    #[serde(rename = "PK")]
    pub pk: String,
    #[serde(rename = "SK")]
    pub sk: String,
    pub id: String,
    pub retries: u32,
    pub received_at: i64,
    pub updated_at: i64,
    pub status: State,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

impl AttemptItem {
    /// The record of `attempt`, whose end wrote status `version`.
    pub fn new(id: &str, version: u64, attempt: &Attempt, expires_at: Option<i64>) -> AttemptItem {
        AttemptItem {
            pk: pk(id),
            sk: attempt_sk(attempt.ended_at, version),
            id: id.to_owned(),
            retries: attempt.number,
            received_at: attempt.started_at,
            updated_at: attempt.ended_at,
            status: attempt.state,
            last_error: attempt.error.clone(),
            expires_at,
        }
    }

    pub fn into_attempt(self) -> Attempt {
        Attempt {
            number: self.retries,
            started_at: self.received_at,
            ended_at: self.updated_at,
            state: self.status,
            error: self.last_error,
        }
    }
}

/// A `BODY` item: a body already captured on an origin, and the webhook it was captured as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BodyItem {
    #[serde(rename = "PK")]
    pub pk: String,
    #[serde(rename = "SK")]
    pub sk: String,
    /// The first webhook with this body.
    pub id: String,
    /// Kept for the replay guard's days from when that webhook was received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

impl BodyItem {
    pub fn new(webhook: &Webhook, expires_at: Option<i64>) -> BodyItem {
        BodyItem {
            pk: body_pk(&webhook.origin, &webhook.payload),
            sk: BODY_SK.to_owned(),
            id: webhook.id.clone(),
            expires_at,
        }
    }
}

/// An item that does not hold what its keys say it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemError(pub String);

impl std::fmt::Display for ItemError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed item: {}", self.0)
    }
}

impl std::error::Error for ItemError {}

impl WebhookItem {
    pub fn new(webhook: &Webhook, expires_at: Option<i64>) -> WebhookItem {
        WebhookItem::owning(webhook.clone(), expires_at)
    }

    /// The item of `webhook`, which keeps its payload rather than a copy of it.
    pub fn owning(webhook: Webhook, expires_at: Option<i64>) -> WebhookItem {
        WebhookItem {
            pk: pk(&webhook.id),
            sk: WEBHOOK_SK.to_owned(),
            headers: serde_json::to_string(&webhook.headers).expect("string pairs serialise"),
            id: webhook.id,
            origin: webhook.origin,
            event_type: webhook.event_type,
            created: webhook.provider_timestamp,
            received_at: webhook.received_at,
            idempotency_key: webhook.idempotency_key,
            payload: webhook.payload,
            payload_object: None,
            payload_sha256: None,
            expires_at,
        }
    }

    /// The webhook, when the item holds its payload (see [`dynamodb::read_webhook`] for
    /// one that is in a bucket).
    pub fn into_webhook(self) -> Result<Webhook, ItemError> {
        if self.sk != WEBHOOK_SK || id_of_pk(&self.pk) != Some(self.id.as_str()) {
            return Err(ItemError(format!(
                "{}/{} is not the webhook item of {}",
                self.pk, self.sk, self.id
            )));
        }
        if let Some(object) = &self.payload_object {
            return Err(ItemError(format!(
                "the payload of {} is in a bucket ({object}), not in its item",
                self.id
            )));
        }
        let headers = serde_json::from_str(&self.headers)
            .map_err(|e| ItemError(format!("headers of {}: {e}", self.id)))?;
        Ok(Webhook {
            id: self.id,
            origin: self.origin,
            event_type: self.event_type,
            provider_timestamp: self.created,
            received_at: self.received_at,
            idempotency_key: self.idempotency_key,
            headers,
            payload: self.payload,
        })
    }
}

impl StatusItem {
    pub fn new(id: &str, status: &Status, expires_at: Option<i64>) -> StatusItem {
        StatusItem {
            pk: pk(id),
            sk: STATUS_SK.to_owned(),
            id: id.to_owned(),
            status: status.state,
            retries: status.attempts,
            version: status.version,
            updated_at: status.updated_at,
            lease_until: status.lease_until,
            next_attempt_at: status.next_attempt_at,
            last_error: status.last_error.clone(),
            expires_at,
            due_shard: status.due_at().map(|_| due_shard(id)),
            due_at: status.due_at(),
            origin: None,
            event_type: None,
            received_at: None,
            list_part: Some(list_part(status.state, id)),
            list_at: None,
            upload: None,
        }
    }

    /// The status a capture writes: with what a list shows of `webhook`.
    pub fn captured(webhook: &Webhook, status: &Status) -> StatusItem {
        StatusItem {
            origin: Some(webhook.origin.clone()),
            event_type: Some(webhook.event_type.clone()),
            received_at: Some(webhook.received_at),
            list_at: Some(list_at(webhook.received_at, &webhook.id)),
            ..StatusItem::new(&webhook.id, status, None)
        }
    }

    pub fn into_status(self) -> Status {
        Status {
            state: self.status,
            attempts: self.retries,
            version: self.version,
            updated_at: self.updated_at,
            lease_until: self.lease_until,
            next_attempt_at: self.next_attempt_at,
            last_error: self.last_error,
        }
    }
}

impl DeadLetterItem {
    pub fn new(id: &str, letter: &DeadLetter, expires_at: Option<i64>) -> DeadLetterItem {
        DeadLetterItem {
            pk: pk(id),
            sk: dead_letter_sk(letter.at),
            id: id.to_owned(),
            retries: letter.attempts,
            updated_at: letter.at,
            last_error: letter.reason.clone(),
            expires_at,
        }
    }

    pub fn into_dead_letter(self) -> DeadLetter {
        DeadLetter {
            at: self.updated_at,
            attempts: self.retries,
            reason: self.last_error,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::lifecycle::RetryPolicy;

    #[test]
    fn keys_follow_the_seed() {
        assert_eq!(pk("57f0"), "WH#57f0");
        assert_eq!(dead_letter_sk(42), "DEAD#0000000000042");
        // Zero-padded so the dead letters of a webhook sort by time.
        assert!(dead_letter_sk(999) < dead_letter_sk(1_000));
        assert_eq!(id_of_pk("WH#57f0"), Some("57f0"));
        assert_eq!(id_of_pk("57f0"), None);
    }

    /// A webhook for the layout's tests.
    pub(crate) fn webhook() -> Webhook {
        Webhook {
            id: "57f0".into(),
            origin: "stripe".into(),
            event_type: "charge.succeeded".into(),
            provider_timestamp: Some(1_700_000_000),
            received_at: 1_700_000_000_123,
            idempotency_key: "evt_1".into(),
            headers: vec![("stripe-signature".into(), "t=1,v1=ab".into())],
            payload: br#"{"id":"evt_1"}"#.to_vec(),
        }
    }

    #[test]
    fn items_carry_the_attribute_names_of_the_layout() {
        let item = serde_json::to_value(WebhookItem::new(&webhook(), Some(42))).unwrap();
        let mut names: Vec<_> = item.as_object().unwrap().keys().cloned().collect();
        names.sort();
        assert_eq!(
            names,
            [
                "PK",
                "SK",
                "created",
                "expires_at",
                "headers",
                "id",
                "idempotency_key",
                "origin",
                "payload",
                "received_at",
                "type"
            ]
        );
        // Absent optional attributes are left out, not written as nulls.
        let status = Status::received(5);
        let item = serde_json::to_value(StatusItem::new("57f0", &status, None)).unwrap();
        assert!(item.get("lease_until").is_none() && item.get("expires_at").is_none());
        assert_eq!(item["status"], "received");
        assert_eq!(item["PK"], "WH#57f0");
    }

    #[test]
    fn items_round_trip_to_the_model() {
        let webhook = webhook();
        assert_eq!(
            WebhookItem::new(&webhook, None).into_webhook().unwrap(),
            webhook
        );
        let status = Status::received(7)
            .claim(8, 1_000, &RetryPolicy::default())
            .unwrap();
        assert_eq!(
            StatusItem::new("57f0", &status, Some(1)).into_status(),
            status
        );
        let letter = DeadLetter {
            at: 9,
            attempts: 3,
            reason: "rejected: gone".into(),
        };
        let item = DeadLetterItem::new("57f0", &letter, None);
        assert_eq!(item.sk, "DEAD#0000000000009");
        assert_eq!(item.into_dead_letter(), letter);
        let attempt = Attempt {
            number: 2,
            started_at: 5,
            ended_at: 8,
            state: State::Failed,
            error: Some("503".into()),
        };
        let item = AttemptItem::new("57f0", 12, &attempt, None);
        assert_eq!(item.sk, "ATTEMPT#0000000000008#0000000012");
        assert!(attempt_sk(8, 99) < attempt_sk(8, 100));
        assert!(attempt_sk(999, 7) < attempt_sk(1_000, 6));
        assert_eq!(item.into_attempt(), attempt);
    }

    #[test]
    fn a_webhook_item_under_the_wrong_keys_is_refused() {
        let mut item = WebhookItem::new(&webhook(), None);
        item.pk = pk("other");
        assert!(item.into_webhook().is_err());
        let mut item = WebhookItem::new(&webhook(), None);
        item.headers = "{".into();
        assert!(item.into_webhook().unwrap_err().0.contains("headers"));
    }
}
