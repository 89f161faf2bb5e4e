//! What operators read: the items a search finds joined into views, a webhook's details,
//! and the projections that fetch them.

use std::collections::HashMap;

use serde_dynamo::{AttributeValue, Item};

use super::items::*;
use crate::item::{
    ATTEMPT_SK_PREFIX, AttemptItem, DEAD_LETTER_SK_PREFIX, STATUS_SK, StatusItem, WEBHOOK_SK,
};
use crate::model::{Attempt, DeadLetter, Details, StatusView};
use crate::store::StoreError;

/// A `STATUS` item's attributes besides its keys, the TTL and the `due` index keys.
pub const STATUS_ATTRIBUTES: [&str; 8] = [
    "id",
    "status",
    "retries",
    "version",
    "updated_at",
    "lease_until",
    "next_attempt_at",
    "last_error",
];

/// What a summary shows of a `WEBHOOK` item besides its keys and id (the idempotency key
/// for a search).
const WEBHOOK_SUMMARY_ATTRIBUTES: [&str; 4] = ["origin", "type", "received_at", "idempotency_key"];

/// The `WEBHOOK` and `STATUS` items of a batch read (what a search finds), joined: each
/// webhook's summary and idempotency key. A status without its webhook item is left out;
/// of a status read twice, the latest version counts.
pub fn joined(
    items: impl IntoIterator<Item = Item>,
) -> Result<Vec<(StatusView, String)>, crate::item::ItemError> {
    #[derive(serde::Deserialize)]
    struct Summary {
        id: String,
        origin: String,
        #[serde(rename = "type")]
        event_type: String,
        received_at: i64,
        idempotency_key: String,
    }
    let malformed = |e: serde_dynamo::Error| crate::item::ItemError(e.to_string());
    let mut webhooks = HashMap::new();
    let mut statuses: HashMap<String, StatusItem> = HashMap::new();
    for item in items {
        if item.get("SK") == Some(&AttributeValue::S(WEBHOOK_SK.to_owned())) {
            let summary: Summary = serde_dynamo::from_item(item).map_err(malformed)?;
            webhooks.insert(summary.id.clone(), summary);
        } else {
            let status: StatusItem = serde_dynamo::from_item(item).map_err(malformed)?;
            if statuses
                .get(&status.id)
                .is_none_or(|seen| seen.version < status.version)
            {
                statuses.insert(status.id.clone(), status);
            }
        }
    }
    Ok(statuses
        .into_values()
        .filter_map(|status| {
            let webhook = webhooks.remove(&status.id)?;
            let view = StatusView {
                id: status.id,
                origin: webhook.origin,
                event_type: webhook.event_type,
                status: status.status,
                attempts: status.retries,
                last_error: status.last_error,
                received_at: webhook.received_at,
                updated_at: status.updated_at,
                next_attempt_at: status.next_attempt_at,
            };
            Some((view, webhook.idempotency_key))
        })
        .collect())
}

/// How far a worker's clock may run behind the capturing host's for a webhook's details.
const CLOCK_SLACK_MS: i64 = 60_000;

/// What a query of one webhook's items reads: everything but its payload.
pub fn details_projection() -> Projection {
    let names: Vec<&str> = ["PK", "SK", "created", "headers"]
        .into_iter()
        .chain(WEBHOOK_SUMMARY_ATTRIBUTES)
        .chain(STATUS_ATTRIBUTES)
        .collect();
    projection(names)
}

/// A webhook's details, from the items of a query of its partition
/// ([`details_projection`]); `None` without its webhook and status items.
pub fn details(items: impl IntoIterator<Item = Item>) -> Result<Option<Details>, StoreError> {
    #[derive(serde::Deserialize)]
    struct Head {
        origin: String,
        #[serde(rename = "type")]
        event_type: String,
        #[serde(default)]
        created: Option<i64>,
        received_at: i64,
        idempotency_key: String,
        headers: String,
    }
    let mut head = None;
    let mut status = None;
    let mut attempts: Vec<(String, Attempt)> = Vec::new();
    let mut dead_letters: Vec<(String, DeadLetter)> = Vec::new();
    for item in items {
        let sk = match item.get("SK") {
            Some(AttributeValue::S(sk)) => sk.clone(),
            _ => return Err(StoreError::Corrupt("an item without a sort key".into())),
        };
        if sk == WEBHOOK_SK {
            head = Some(read::<Head>(item)?);
        } else if sk == STATUS_SK {
            status = Some(read::<StatusItem>(item)?);
        } else if sk.starts_with(ATTEMPT_SK_PREFIX) {
            attempts.push((sk, read::<AttemptItem>(item)?.into_attempt()));
        } else if sk.starts_with(DEAD_LETTER_SK_PREFIX) {
            dead_letters.push((sk, read_dead_letter(item)?));
        }
    }
    let (Some(head), Some(status)) = (head, status) else {
        return Ok(None);
    };
    // Records of an earlier life of the same id (redelivered after its items expired; TTL
    // deletes items independently) are not this webhook's: they are older than the
    // retention. A minute of slack lets a worker's clock run behind the capturing host's.
    let since = head.received_at - CLOCK_SLACK_MS;
    attempts.retain(|(_, attempt)| attempt.started_at >= since);
    dead_letters.retain(|(_, letter)| letter.at >= since);
    attempts.sort_by(|a, b| a.0.cmp(&b.0));
    dead_letters.sort_by(|a, b| a.0.cmp(&b.0));
    let headers = serde_json::from_str(&head.headers)
        .map_err(|e| StoreError::Corrupt(format!("headers of {}: {e}", status.id)))?;
    Ok(Some(Details {
        view: StatusView {
            id: status.id,
            origin: head.origin,
            event_type: head.event_type,
            status: status.status,
            attempts: status.retries,
            last_error: status.last_error,
            received_at: head.received_at,
            updated_at: status.updated_at,
            next_attempt_at: status.next_attempt_at,
        },
        idempotency_key: head.idempotency_key,
        provider_timestamp: head.created,
        headers,
        attempts: attempts.into_iter().map(|(_, a)| a).collect(),
        dead_letters: dead_letters.into_iter().map(|(_, d)| d).collect(),
    }))
}

/// A scan: its filter, what it reads, and the values of its filter.
#[derive(Debug, Clone, PartialEq)]
pub struct Scan {
    pub filter: String,
    pub projection: Projection,
    pub values: Item,
}

/// A `ProjectionExpression` with the attribute names it stands for.
#[derive(Debug, Clone, PartialEq)]
pub struct Projection {
    pub expression: String,
    pub names: HashMap<String, String>,
}

/// What a search reads of the `WEBHOOK` and `STATUS` items: everything but the payload
/// and headers.
pub fn summary_projection() -> Projection {
    projection(
        ["PK", "SK"]
            .into_iter()
            .chain(WEBHOOK_SUMMARY_ATTRIBUTES)
            .chain(STATUS_ATTRIBUTES),
    )
}

/// The attributes `names`, as a projection (`#p0, #p1, ...`).
pub fn projection<'a>(names: impl IntoIterator<Item = &'a str>) -> Projection {
    let mut projection = Projection {
        expression: String::new(),
        names: HashMap::new(),
    };
    let mut placeholders = Vec::new();
    for (i, name) in names.into_iter().enumerate() {
        projection.names.insert(format!("#p{i}"), name.to_owned());
        placeholders.push(format!("#p{i}"));
    }
    projection.expression = placeholders.join(", ");
    projection
}

/// `BatchGetItem` reads at most this many keys a call.
pub const BATCH_GET_KEYS: usize = 100;

/// How many times in a row a batch read asks again for the keys DynamoDB left unprocessed
/// (for want of capacity) without getting any item before it gives up as unavailable.
pub const BATCH_GET_ROUNDS: usize = 8;

/// The waits before a batch read asks again for keys left unprocessed: from 50 ms,
/// doubling to 2 s, with jitter; started afresh whenever a read gets items.
pub fn batch_get_backoff() -> backon::ExponentialBuilder {
    backon::ExponentialBuilder::default()
        .with_min_delay(std::time::Duration::from_millis(50))
        .with_max_delay(std::time::Duration::from_secs(2))
        .with_max_times(BATCH_GET_ROUNDS)
        .with_jitter()
}
