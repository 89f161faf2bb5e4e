//! The seed's single-table layout, written once for every store.
//!
//! | item           | PK        | SK                 | holds                                   |
//! | -------------- | --------- | ------------------ | --------------------------------------- |
//! | Webhook        | `WH#<id>` | `WEBHOOK`          | the immutable delivery                  |
//! | Webhook Status | `WH#<id>` | `STATUS`           | state, retries, version, lease, due time |
//! | Dead letter    | `WH#<id>` | `DEAD#<unix ms>`   | why it needed an operator, kept forever |
//!
//! The records below are the items as attributes: DynamoDB stores them as they are (the
//! `PK`/`SK` names of the seed), and SQLite stores (the native one and Spin's) use
//! [`SQLITE_SCHEMA`], one table whose columns carry the same names (SQLite compares column
//! names without case), so a database file can be shared by both and a DynamoDB stream image
//! decodes into the same record a store wrote.

use serde::{Deserialize, Serialize};

use crate::lifecycle::DeadLetter;
use crate::model::{State, Status, Webhook};

pub const WEBHOOK_SK: &str = "WEBHOOK";
pub const STATUS_SK: &str = "STATUS";
pub const DEAD_LETTER_SK_PREFIX: &str = "DEAD#";

pub fn pk(id: &str) -> String {
    format!("WH#{id}")
}

pub fn dead_letter_sk(at: i64) -> String {
    format!("{DEAD_LETTER_SK_PREFIX}{at:013}")
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
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
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
}

/// A `DEAD#<ms>` item: one time the webhook needed an operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterItem {
    #[serde(rename = "PK")]
    pub pk: String,
    #[serde(rename = "SK")]
    pub sk: String,
    pub id: String,
    /// Attempts made before it was dead-lettered.
    pub retries: u32,
    pub updated_at: i64,
    pub last_error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
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
        WebhookItem {
            pk: pk(&webhook.id),
            sk: WEBHOOK_SK.to_owned(),
            id: webhook.id.clone(),
            origin: webhook.origin.clone(),
            event_type: webhook.event_type.clone(),
            created: webhook.provider_timestamp,
            received_at: webhook.received_at,
            idempotency_key: webhook.idempotency_key.clone(),
            headers: serde_json::to_string(&webhook.headers).expect("string pairs serialise"),
            payload: webhook.payload.clone(),
            expires_at,
        }
    }

    pub fn into_webhook(self) -> Result<Webhook, ItemError> {
        if self.sk != WEBHOOK_SK || id_of_pk(&self.pk) != Some(self.id.as_str()) {
            return Err(ItemError(format!(
                "{}/{} is not the webhook item of {}",
                self.pk, self.sk, self.id
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
            retries: status.retries,
            version: status.version,
            updated_at: status.updated_at,
            lease_until: status.lease_until,
            next_attempt_at: status.next_attempt_at,
            last_error: status.last_error.clone(),
            expires_at,
        }
    }

    pub fn into_status(self) -> Status {
        Status {
            state: self.status,
            retries: self.retries,
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

pub const SQLITE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS items (
    pk              TEXT NOT NULL,
    sk              TEXT NOT NULL,
    id              TEXT NOT NULL,
    -- WEBHOOK
    origin          TEXT,
    type            TEXT,
    created         INTEGER,
    received_at     INTEGER,
    idempotency_key TEXT,
    headers         TEXT,
    payload         BLOB,
    -- STATUS
    status          TEXT,
    retries         INTEGER,
    version         INTEGER,
    updated_at      INTEGER,
    lease_until     INTEGER,
    next_attempt_at INTEGER,
    last_error      TEXT,
    PRIMARY KEY (pk, sk)
);
-- The local retry queue: what is due, and which leases have expired.
CREATE INDEX IF NOT EXISTS items_due ON items (next_attempt_at)
    WHERE sk = 'STATUS' AND status IN ('received', 'failed');
CREATE INDEX IF NOT EXISTS items_leased ON items (lease_until)
    WHERE sk = 'STATUS' AND status = 'processing';
CREATE INDEX IF NOT EXISTS items_by_status ON items (status, updated_at)
    WHERE sk = 'STATUS';
";

/// The statements every SQLite store runs on [`SQLITE_SCHEMA`], with their parameters in
/// order: the native store and Spin's store component share them, and so the rules of the
/// layout (a capture never overwrites, a status changes only from the version read).
pub mod sql {
    /// `pk, sk, id, origin, type, created, received_at, idempotency_key, headers, payload`
    /// (a [`super::WebhookItem`]); changes no row when the webhook is already there.
    pub const INSERT_WEBHOOK: &str = "INSERT INTO items
        (pk, sk, id, origin, type, created, received_at, idempotency_key, headers, payload)
        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT (pk, sk) DO NOTHING";
    /// `pk, sk, id, status, retries, version, updated_at, lease_until, next_attempt_at,
    /// last_error` (a [`super::StatusItem`]).
    pub const INSERT_STATUS: &str = "INSERT INTO items
        (pk, sk, id, status, retries, version, updated_at, lease_until, next_attempt_at, last_error)
        VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";
    /// `pk, sk` -> the webhook item's columns, in [`INSERT_WEBHOOK`]'s order.
    pub const SELECT_WEBHOOK: &str = "SELECT pk, sk, id, origin, type, created, received_at,
        idempotency_key, headers, payload FROM items WHERE pk = ?1 AND sk = ?2";
    /// `pk, sk` -> `status, retries, version, updated_at, lease_until, next_attempt_at,
    /// last_error`.
    pub const SELECT_STATUS: &str = "SELECT status, retries, version, updated_at, lease_until,
        next_attempt_at, last_error FROM items WHERE pk = ?1 AND sk = ?2";
    /// `status, retries, version, updated_at, lease_until, next_attempt_at, last_error, pk,
    /// sk, expected version`: the compare-and-swap; one row changed, or none if another
    /// writer got there first.
    pub const SWAP_STATUS: &str = "UPDATE items SET status = ?1, retries = ?2, version = ?3,
        updated_at = ?4, lease_until = ?5, next_attempt_at = ?6, last_error = ?7
        WHERE pk = ?8 AND sk = ?9 AND version = ?10";
    /// `pk, sk, id, retries, updated_at, last_error` (a [`super::DeadLetterItem`]).
    pub const INSERT_DEAD_LETTER: &str = "INSERT INTO items (pk, sk, id, retries, updated_at,
        last_error) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
    /// `state or NULL, limit` -> `id, origin, type, received_at, status, retries,
    /// last_error, updated_at, next_attempt_at`, the most recently changed first.
    pub const LIST: &str = "SELECT w.id, w.origin, w.type, w.received_at, s.status, s.retries,
        s.last_error, s.updated_at, s.next_attempt_at
        FROM items s JOIN items w ON w.pk = s.pk AND w.sk = 'WEBHOOK'
        WHERE s.sk = 'STATUS' AND (?1 IS NULL OR s.status = ?1)
        ORDER BY s.updated_at DESC LIMIT ?2";
}

/// What every DynamoDB store writes (the native one, and Spin's component over HTTP): the
/// items as attribute values, the conditions and the status update, built once here.
pub mod dynamodb {
    use std::collections::HashMap;

    use serde_dynamo::{AttributeValue, Item};

    use super::{STATUS_SK, StatusItem, pk};
    use crate::model::Status;

    /// DynamoDB refuses items over 400 KB, names and values counted; read as 400,000
    /// bytes, the stricter reading (and moto's).
    pub const MAX_ITEM_BYTES: usize = 400_000;

    /// The condition on both puts of a capture, and on a dead letter: never overwrite.
    pub const NOT_EXISTS: &str = "attribute_not_exists(PK)";

    /// The settings of a DynamoDB store that reaches AWS by itself (Spin's component):
    /// the configuration keys it reads, so hosts can declare them.
    pub mod settings {
        pub const TABLE: &str = "dynamodb_table";
        pub const REGION: &str = "aws_region";
        pub const ACCESS_KEY_ID: &str = "aws_access_key_id";
        pub const SECRET_ACCESS_KEY: &str = "aws_secret_access_key";
        pub const SESSION_TOKEN: &str = "aws_session_token";
        pub const ENDPOINT_URL: &str = "aws_endpoint_url";
        pub const RETENTION_DAYS: &str = "retention_days";
        pub const ALL: [&str; 7] = [
            TABLE,
            REGION,
            ACCESS_KEY_ID,
            SECRET_ACCESS_KEY,
            SESSION_TOKEN,
            ENDPOINT_URL,
            RETENTION_DAYS,
        ];
        /// Those to keep out of logs.
        pub const SECRET: [&str; 3] = [ACCESS_KEY_ID, SECRET_ACCESS_KEY, SESSION_TOKEN];

        /// How long items are kept (the TTL): `retention_days`, 30 unless set; 0 is forever.
        pub fn retention_secs(
            config: &dyn crate::config::Config,
        ) -> Result<Option<u64>, crate::config::ConfigError> {
            let days: u64 = crate::config::parsed(config, RETENTION_DAYS, 30)?;
            Ok((days > 0).then_some(days * 86_400))
        }
    }

    /// The attributes of the status item that are absent when they do not apply.
    const OPTIONAL_STATUS_ATTRIBUTES: [&str; 3] = ["lease_until", "next_attempt_at", "last_error"];

    pub fn to_item(value: &impl serde::Serialize) -> Item {
        serde_dynamo::to_item(value).expect("the item records serialise")
    }

    pub fn key(id: &str, sk: &str) -> Item {
        Item::from(HashMap::from([
            ("PK".to_owned(), AttributeValue::S(pk(id))),
            ("SK".to_owned(), AttributeValue::S(sk.to_owned())),
        ]))
    }

    /// When an item written at `at_ms` may go (DynamoDB's TTL wants unix seconds).
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

    fn value_size(value: &AttributeValue) -> usize {
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

    /// What a scan for operators reads of the `WEBHOOK` and `STATUS` items: everything but
    /// the payload and headers.
    pub const SUMMARY_ATTRIBUTES: [&str; 13] = [
        "PK",
        "SK",
        "id",
        "origin",
        "type",
        "received_at",
        "status",
        "retries",
        "version",
        "updated_at",
        "lease_until",
        "next_attempt_at",
        "last_error",
    ];

    /// The most recently changed webhooks (only those in `state`, if given), from the
    /// `WEBHOOK` and `STATUS` items of a scan. A status whose webhook item the scan has not
    /// seen yet is left for next time.
    pub fn summaries(
        items: impl IntoIterator<Item = Item>,
        state: Option<crate::State>,
        limit: usize,
    ) -> Result<Vec<crate::model::StatusView>, super::ItemError> {
        #[derive(serde::Deserialize)]
        struct Summary {
            id: String,
            origin: String,
            #[serde(rename = "type")]
            event_type: String,
            received_at: i64,
        }
        let malformed = |e: serde_dynamo::Error| super::ItemError(e.to_string());
        let mut webhooks = HashMap::new();
        let mut statuses = Vec::new();
        for item in items {
            if item.get("SK") == Some(&AttributeValue::S(super::WEBHOOK_SK.to_owned())) {
                let summary: Summary = serde_dynamo::from_item(item).map_err(malformed)?;
                webhooks.insert(summary.id.clone(), summary);
            } else {
                let status: StatusItem = serde_dynamo::from_item(item).map_err(malformed)?;
                if state.is_none_or(|s| s == status.status) {
                    statuses.push(status);
                }
            }
        }
        statuses.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then(a.id.cmp(&b.id)));
        Ok(statuses
            .into_iter()
            .filter_map(|status| {
                let webhook = webhooks.get(&status.id)?;
                Some(crate::model::StatusView {
                    id: status.id,
                    origin: webhook.origin.clone(),
                    event_type: webhook.event_type.clone(),
                    status: status.status,
                    retries: status.retries,
                    last_error: status.last_error,
                    received_at: webhook.received_at,
                    updated_at: status.updated_at,
                    next_attempt_at: status.next_attempt_at,
                })
            })
            .take(limit)
            .collect())
    }

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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_seed() {
        assert_eq!(pk("57f0"), "WH#57f0");
        assert_eq!(dead_letter_sk(42), "DEAD#0000000000042");
        // Zero-padded so the dead letters of a webhook sort by time.
        assert!(dead_letter_sk(999) < dead_letter_sk(1_000));
        assert_eq!(id_of_pk("WH#57f0"), Some("57f0"));
        assert_eq!(id_of_pk("57f0"), None);
    }

    fn webhook() -> Webhook {
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
        let status = Status::received(7).claim(8, 1_000).unwrap();
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
    }

    #[test]
    fn a_status_update_sets_what_is_there_removes_what_is_not_and_checks_the_version() {
        let claimed = Status::received(7).claim(8, 1_000).unwrap();
        let update = dynamodb::status_update("57f0", 1, &claimed);
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
            ["lease_until", "retries", "status", "updated_at", "version"]
        );
        let removed: Vec<String> = remove.split(", ").map(name_of).collect();
        assert_eq!(removed, ["next_attempt_at", "last_error"]);
        assert!(dynamodb::item_size(&dynamodb::to_item(&WebhookItem::new(&webhook(), None))) > 14);
    }

    #[test]
    fn summaries_join_the_items_of_a_scan_most_recent_first() {
        let mut other = webhook();
        other.id = "9abc".into();
        let older = Status::received(10);
        let newer = Status::received(20).claim(30, 1_000).unwrap();
        let items = vec![
            dynamodb::to_item(&StatusItem::new("57f0", &older, None)),
            dynamodb::to_item(&WebhookItem::new(&webhook(), None)),
            dynamodb::to_item(&StatusItem::new("9abc", &newer, None)),
            dynamodb::to_item(&WebhookItem::new(&other, None)),
            // A status whose webhook the scan has not reached yet.
            dynamodb::to_item(&StatusItem::new("dead", &older, None)),
        ];
        let all = dynamodb::summaries(items.clone(), None, 10).unwrap();
        let ids: Vec<_> = all.iter().map(|v| v.id.as_str()).collect();
        assert_eq!(ids, ["9abc", "57f0"]);
        assert_eq!(all[1].event_type, "charge.succeeded");
        let received = dynamodb::summaries(items.clone(), Some(State::Received), 10).unwrap();
        assert_eq!(received.len(), 1);
        assert_eq!(dynamodb::summaries(items, None, 1).unwrap().len(), 1);
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
