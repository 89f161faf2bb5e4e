//! Every DynamoDB store, written once: the items as attribute values, the requests with
//! their conditions (a capture's transaction, the status compare-and-swap, the operator's
//! scan), what DynamoDB's refusals mean, and how items read back. The native store hands
//! these to the AWS SDK; Spin's store component sends them as the JSON API's bodies
//! ([`json`]) over `wasi:http`.

use std::collections::HashMap;
use std::time::Duration;

use serde_dynamo::{AttributeValue, Item};

use super::{
    ATTEMPT_SK_PREFIX, AttemptItem, BodyItem, DEAD_LETTER_SK_PREFIX, DeadLetterItem, STATUS_SK,
    StatusItem, WEBHOOK_SK, WebhookItem, pk,
};
use crate::listing::{Counts, Filter, Page, Query};
use crate::model::{Attempt, DeadLetter, Details, Status, StatusView, Webhook};
use crate::store::StoreError;

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
const OPTIONAL_STATUS_ATTRIBUTES: [&str; 5] = [
    "lease_until",
    "next_attempt_at",
    "last_error",
    "due_shard",
    "due_at",
];

pub fn to_item(value: &impl serde::Serialize) -> Item {
    serde_dynamo::to_item(value).expect("the item records serialise")
}

pub fn key(id: &str, sk: &str) -> Item {
    key_of(&pk(id), sk)
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

/// The `WEBHOOK` and `STATUS` items of a scan (or of the `due` index and a batch read),
/// joined: each webhook's summary and idempotency key. A status whose webhook item the
/// scan has not seen yet is left for next time; of a status read twice (it changed while
/// the index was read), the latest version counts.
fn joined(
    items: impl IntoIterator<Item = Item>,
) -> Result<Vec<(StatusView, String)>, super::ItemError> {
    #[derive(serde::Deserialize)]
    struct Summary {
        id: String,
        origin: String,
        #[serde(rename = "type")]
        event_type: String,
        received_at: i64,
        idempotency_key: String,
    }
    let malformed = |e: serde_dynamo::Error| super::ItemError(e.to_string());
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
                retries: status.retries,
                last_error: status.last_error,
                received_at: webhook.received_at,
                updated_at: status.updated_at,
                next_attempt_at: status.next_attempt_at,
            };
            Some((view, webhook.idempotency_key))
        })
        .collect())
}

/// The page `query` asks for, of the webhooks in `items` ([`joined`]).
pub fn page(
    items: impl IntoIterator<Item = Item>,
    query: &Query,
) -> Result<Page, super::ItemError> {
    Ok(query.page(joined(items)?))
}

/// How many of the webhooks in `items` ([`joined`]) pass `filter`, by state.
pub fn counts(
    items: impl IntoIterator<Item = Item>,
    filter: &Filter,
) -> Result<Counts, super::ItemError> {
    let webhooks = joined(items)?;
    Ok(Counts::tally(webhooks.into_iter().filter_map(
        |(view, key)| {
            filter
                .matches(&view.id, &view.origin, &view.event_type, &key)
                .then_some(view.status)
        },
    )))
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
            retries: status.retries,
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

/// A `WEBHOOK` item read back (from a table, or a stream image).
pub fn read_webhook(item: Item) -> Result<Webhook, StoreError> {
    let item: WebhookItem = read(item)?;
    item.into_webhook()
        .map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// A `STATUS` item read back.
pub fn read_status(item: Item) -> Result<Status, StoreError> {
    read::<StatusItem>(item).map(StatusItem::into_status)
}

/// A `DEAD#` item read back.
pub fn read_dead_letter(item: Item) -> Result<DeadLetter, StoreError> {
    read::<DeadLetterItem>(item).map(DeadLetterItem::into_dead_letter)
}

fn read<T: serde::de::DeserializeOwned>(item: Item) -> Result<T, StoreError> {
    serde_dynamo::from_item(item).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// A capture: the `WEBHOOK` and `STATUS` items (and with the replay guard the `BODY` item),
/// each put under [`NOT_EXISTS`] in one transaction, and the status it stores.
#[derive(Debug, Clone, PartialEq)]
pub struct Capture {
    pub items: Vec<Item>,
    pub status: Status,
    /// The key of the body's digest, when replayed bodies are refused.
    pub body: Option<Item>,
}

/// Plans the capture of `webhook`, refusing an item DynamoDB would refuse (never truncated).
pub fn capture(
    webhook: &Webhook,
    retention_secs: Option<u64>,
    refuse_replayed_body: bool,
) -> Result<Capture, StoreError> {
    let expires_at = expires_at(webhook.received_at, retention_secs);
    let webhook_item = to_item(&WebhookItem::new(webhook, expires_at));
    let size = item_size(&webhook_item);
    if size > MAX_ITEM_BYTES {
        return Err(StoreError::TooLarge(format!(
            "the webhook is {size} bytes as a DynamoDB item; an item holds at most {MAX_ITEM_BYTES}"
        )));
    }
    let status = Status::received(webhook.received_at);
    let status_item = to_item(&StatusItem::new(&webhook.id, &status, expires_at));
    let mut items = vec![webhook_item, status_item];
    let mut body = None;
    if refuse_replayed_body {
        let item = BodyItem::new(webhook, expires_at);
        body = Some(key_of(&item.pk, &item.sk));
        items.push(to_item(&item));
    }
    Ok(Capture {
        items,
        status,
        body,
    })
}

/// The key of an item, from its `PK` and `SK`.
pub fn key_of(pk: &str, sk: &str) -> Item {
    Item::from(HashMap::from([
        ("PK".to_owned(), AttributeValue::S(pk.to_owned())),
        ("SK".to_owned(), AttributeValue::S(sk.to_owned())),
    ]))
}

/// The first webhook a `BODY` item (read back by [`Capture::body`]) was captured as.
pub fn read_body(item: Item) -> Result<String, StoreError> {
    read::<BodyItem>(item).map(|body| body.id)
}

/// How many times a capture's transaction is sent before its refusal is the answer.
pub const CAPTURE_ATTEMPTS: u32 = 3;

/// A request DynamoDB refused: the error's kind (`ConditionalCheckFailedException`, ...),
/// its message, and for a cancelled transaction each item's reason code (`None`,
/// `ConditionalCheckFailed`, `TransactionConflict`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Refusal {
    pub kind: String,
    pub message: String,
    pub reasons: Vec<String>,
    /// What the client knows besides (request id, HTTP status), for the logs; may be empty.
    pub detail: String,
}

impl Refusal {
    pub fn unavailable(&self) -> StoreError {
        let mut described = format!("DynamoDB: {}: {}", self.kind, self.message);
        if !self.detail.is_empty() {
            described.push_str(&format!(" ({})", self.detail));
        }
        StoreError::Unavailable(described)
    }
}

/// What a refused capture (attempt `attempt`, from 0) means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptureRefused {
    /// The id exists: nothing was written; the stored status is the answer.
    Duplicate,
    /// The origin delivered this body before: nothing was written; the first webhook (its
    /// `BODY` item names it) is the answer.
    BodySeen,
    /// Two captures at once cancelled each other: send it again after this long, and the
    /// loser then finds the winner's items.
    TryAgainAfter(Duration),
    Failed(StoreError),
}

/// Reads the cancellation reasons in the order of [`Capture::items`]: the webhook's, the
/// status's, the body's.
pub fn capture_refused(refusal: &Refusal, attempt: u32) -> CaptureRefused {
    let reason = |i: usize| refusal.reasons.get(i).map(String::as_str);
    let any = |code: &str| refusal.reasons.iter().any(|r| r == code);
    if reason(0) == Some("ConditionalCheckFailed") || reason(1) == Some("ConditionalCheckFailed") {
        CaptureRefused::Duplicate
    } else if reason(2) == Some("ConditionalCheckFailed") {
        CaptureRefused::BodySeen
    } else if any("TransactionConflict") && attempt + 1 < CAPTURE_ATTEMPTS {
        CaptureRefused::TryAgainAfter(Duration::from_millis(20 << attempt))
    } else if refusal.kind == "ValidationException" && refusal.message.contains("size") {
        CaptureRefused::Failed(StoreError::TooLarge(refusal.message.clone()))
    } else {
        CaptureRefused::Failed(refusal.unavailable())
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

/// What a refused status change means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SwapRefused {
    /// Another writer changed the status first: the compare-and-swap is lost.
    Lost,
    Failed(StoreError),
}

/// Reads every cancellation reason of a status change (the update's own condition, alone
/// or as the first item of the transaction with its records, then the records').
pub fn swap_refused(refusal: &Refusal) -> SwapRefused {
    let reason = |i: usize| refusal.reasons.get(i).map(String::as_str);
    if refusal.kind == "ConditionalCheckFailedException"
        || reason(0) == Some("ConditionalCheckFailed")
    {
        return SwapRefused::Lost;
    }
    if refusal
        .reasons
        .iter()
        .skip(1)
        .any(|r| r == "ConditionalCheckFailed")
    {
        return SwapRefused::Failed(StoreError::Corrupt(format!(
            "an attempt or dead letter is already recorded under this key: {}",
            refusal.message
        )));
    }
    let transient = [
        "TransactionConflict",
        "ThrottlingError",
        "ProvisionedThroughputExceeded",
    ];
    if let Some(code) = refusal
        .reasons
        .iter()
        .find(|r| transient.contains(&r.as_str()))
    {
        return SwapRefused::Failed(StoreError::Unavailable(format!(
            "DynamoDB: the status change met {code}; it can be tried again"
        )));
    }
    SwapRefused::Failed(refusal.unavailable())
}

/// A scan of the items whose `SK` is one of a few, reading [`summary_projection`] only
/// (no payloads): what operators list.
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

/// What a scan for operators reads of the `WEBHOOK` and `STATUS` items: everything but
/// the payload and headers.
pub fn summary_projection() -> Projection {
    projection(
        ["PK", "SK"]
            .into_iter()
            .chain(WEBHOOK_SUMMARY_ATTRIBUTES)
            .chain(STATUS_ATTRIBUTES),
    )
}

/// The attributes `names`, as a projection (`#p0, #p1, ...`).
fn projection<'a>(names: impl IntoIterator<Item = &'a str>) -> Projection {
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

pub fn summary_scan(sks: &[&str]) -> Scan {
    let mut projection = summary_projection();
    projection.names.insert("#sk".to_owned(), "SK".to_owned());
    let values: HashMap<_, _> = sks
        .iter()
        .enumerate()
        .map(|(i, sk)| (format!(":sk{i}"), AttributeValue::S((*sk).to_owned())))
        .collect();
    let placeholders: Vec<_> = (0..sks.len()).map(|i| format!(":sk{i}")).collect();
    Scan {
        filter: format!("#sk IN ({})", placeholders.join(", ")),
        projection,
        values: Item::from(values),
    }
}

/// `BatchGetItem` reads at most this many keys a call.
pub const BATCH_GET_KEYS: usize = 100;

/// How many times in a row a batch read asks again for the keys DynamoDB left unprocessed
/// (for want of capacity) without getting any item before it gives up as unavailable.
pub const BATCH_GET_ROUNDS: u32 = 8;

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

/// The sparse global secondary index of the webhooks in flight: a `STATUS` item carries
/// its keys (`due_shard`, `due_at`) only while the webhook waits for an attempt or an
/// attempt holds it, so what is due is found by reading the webhooks in flight, not the
/// table, however many finished ones it keeps.
pub mod due_index {
    use std::collections::HashMap;

    use serde_dynamo::{AttributeValue, Item};

    use super::{StatusItem, key, read};
    use crate::item::{DUE_SHARDS, ItemError, STATUS_SK, WEBHOOK_SK, due_shard_key};
    use crate::model::State;

    pub const NAME: &str = "due";
    pub const PARTITION_KEY: &str = "due_shard";
    pub const SORT_KEY: &str = "due_at";
    /// What it projects besides the keys: the whole status, so neither what is due nor
    /// the list of the webhooks in flight reads the table for it.
    pub const ATTRIBUTES: [&str; 8] = super::STATUS_ATTRIBUTES;

    /// A `Query` of one partition of the index.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Query {
        pub key_condition: String,
        pub names: HashMap<String, String>,
        pub values: Item,
    }

    /// One query per partition: the webhooks due by `up_to` (all in flight, with
    /// `None`), the longest waiting first.
    pub fn queries(up_to: Option<i64>) -> Vec<Query> {
        (0..DUE_SHARDS)
            .map(|shard| {
                let mut names = HashMap::from([("#shard".to_owned(), PARTITION_KEY.to_owned())]);
                let mut values =
                    HashMap::from([(":shard".to_owned(), AttributeValue::S(due_shard_key(shard)))]);
                let mut key_condition = "#shard = :shard".to_owned();
                if let Some(up_to) = up_to {
                    names.insert("#at".into(), SORT_KEY.into());
                    values.insert(":up_to".into(), AttributeValue::N(up_to.to_string()));
                    key_condition.push_str(" AND #at <= :up_to");
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
    pub fn unindexed_scan() -> super::Scan {
        let mut projection = super::projection(["PK", "SK"].into_iter().chain(ATTRIBUTES));
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
        super::Scan {
            filter: "#sk = :sk AND attribute_not_exists(#shard) AND #state IN (:s0, :s1, :s2)"
                .into(),
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

    /// Of the status items the index holds, those in `state`, and the keys of their
    /// `WEBHOOK` items, to read for a list ([`super::page`]). A webhook whose status
    /// changed while the index was read may be there twice (under its old and new due
    /// time): its latest version counts.
    pub fn latest(
        items: impl IntoIterator<Item = Item>,
        state: State,
    ) -> Result<(Vec<Item>, Vec<Item>), ItemError> {
        let mut newest: HashMap<String, (StatusItem, Item)> = HashMap::new();
        for item in items {
            let status: StatusItem = read(item.clone()).map_err(|e| ItemError(e.to_string()))?;
            match newest.get(&status.id) {
                Some((seen, _)) if seen.version >= status.version => {}
                _ => {
                    newest.insert(status.id.clone(), (status, item));
                }
            }
        }
        let mut kept: Vec<_> = newest
            .into_values()
            .filter(|(status, _)| status.status == state)
            .map(|(status, item)| (status.updated_at, status.id, item))
            .collect();
        kept.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let keys = kept.iter().map(|(_, id, _)| key(id, WEBHOOK_SK)).collect();
        Ok((kept.into_iter().map(|(_, _, item)| item).collect(), keys))
    }
}

/// The requests as bodies of DynamoDB's JSON API (`X-Amz-Target: DynamoDB_20120810.<op>`),
/// and its answers read back: for a store that speaks HTTP itself.
pub mod json {
    use serde_json::{Value, json};

    use super::{Capture, Item, NOT_EXISTS, Projection, Refusal, Scan, StatusUpdate, due_index};
    use crate::store::StoreError;

    /// `TransactWriteItems`.
    pub fn capture(table: &str, capture: &Capture) -> Value {
        let put = |item: &Item| json!({ "Put": { "TableName": table, "Item": item, "ConditionExpression": NOT_EXISTS } });
        json!({ "TransactItems": capture.items.iter().map(put).collect::<Vec<_>>() })
    }

    /// `GetItem`.
    pub fn get(table: &str, key: &Item, consistent: bool) -> Value {
        json!({ "TableName": table, "Key": key, "ConsistentRead": consistent })
    }

    /// `UpdateItem`.
    pub fn update(table: &str, update: &StatusUpdate) -> Value {
        json!({
            "TableName": table,
            "Key": update.key,
            "UpdateExpression": update.update,
            "ConditionExpression": update.condition,
            "ExpressionAttributeNames": update.names,
            "ExpressionAttributeValues": update.values,
        })
    }

    /// `Scan`, from `start` (a page's `LastEvaluatedKey`).
    pub fn scan(table: &str, scan: &Scan, start: Option<Value>) -> Value {
        let mut request = json!({
            "TableName": table,
            "FilterExpression": scan.filter,
            "ProjectionExpression": scan.projection.expression,
            "ExpressionAttributeNames": scan.projection.names,
            "ExpressionAttributeValues": scan.values,
        });
        if let Some(start) = start {
            request["ExclusiveStartKey"] = start;
        }
        request
    }

    /// `Query` of the `due` index, from `start`, at most `limit` items a page.
    pub fn due_query(
        table: &str,
        query: &due_index::Query,
        limit: Option<usize>,
        start: Option<Value>,
    ) -> Value {
        let mut request = json!({
            "TableName": table,
            "IndexName": due_index::NAME,
            "KeyConditionExpression": query.key_condition,
            "ExpressionAttributeNames": query.names,
            "ExpressionAttributeValues": query.values,
        });
        if let Some(limit) = limit {
            request["Limit"] = json!(limit);
        }
        if let Some(start) = start {
            request["ExclusiveStartKey"] = start;
        }
        request
    }

    /// `Query` of one partition (`PK = pk`), strongly consistent, from `start`.
    pub fn partition(
        table: &str,
        pk: &str,
        projection: &Projection,
        start: Option<Value>,
    ) -> Value {
        let mut names = projection.names.clone();
        names.insert("#pk".to_owned(), "PK".to_owned());
        let mut request = json!({
            "TableName": table,
            "KeyConditionExpression": "#pk = :pk",
            "ProjectionExpression": projection.expression,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": { ":pk": { "S": pk } },
            "ConsistentRead": true,
        });
        if let Some(start) = start {
            request["ExclusiveStartKey"] = start;
        }
        request
    }

    /// `BatchGetItem` of up to [`super::BATCH_GET_KEYS`] keys, strongly consistent.
    pub fn batch_get(table: &str, keys: &[Value], projection: &Projection) -> Value {
        json!({
            "RequestItems": { table: {
                "Keys": keys,
                "ProjectionExpression": projection.expression,
                "ExpressionAttributeNames": projection.names,
                "ConsistentRead": true,
            }}
        })
    }

    /// The items of a `BatchGetItem` answer, and the keys it left for another call.
    pub fn batch_got(table: &str, answer: Value) -> Result<(Vec<Item>, Vec<Value>), StoreError> {
        let items = answer["Responses"][table]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(read_item)
            .collect::<Result<_, _>>()?;
        let left = answer["UnprocessedKeys"][table]["Keys"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        Ok((items, left))
    }

    /// The item of a `GetItem` answer.
    pub fn item(answer: Value) -> Result<Option<Item>, StoreError> {
        match answer.get("Item") {
            Some(item) if !item.is_null() => Ok(Some(read_item(item.clone())?)),
            _ => Ok(None),
        }
    }

    /// The items of a `Scan` page, and where the next page starts.
    pub fn page(answer: Value) -> Result<(Vec<Item>, Option<Value>), StoreError> {
        let items = answer["Items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(read_item)
            .collect::<Result<_, _>>()?;
        let next = answer
            .get("LastEvaluatedKey")
            .filter(|key| !key.is_null())
            .cloned();
        Ok((items, next))
    }

    /// An error answer (`{"__type": "...#Kind", "message": ..., "CancellationReasons": ...}`).
    pub fn refusal(answer: &Value) -> Refusal {
        let kind = answer["__type"].as_str().unwrap_or("UnknownError");
        Refusal {
            kind: kind.rsplit('#').next().unwrap_or(kind).to_owned(),
            message: answer["message"]
                .as_str()
                .or(answer["Message"].as_str())
                .unwrap_or_default()
                .to_owned(),
            reasons: answer["CancellationReasons"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| r["Code"].as_str().unwrap_or("None").to_owned())
                .collect(),
            detail: String::new(),
        }
    }

    fn read_item(item: Value) -> Result<Item, StoreError> {
        serde_json::from_value(item)
            .map_err(|e| StoreError::Corrupt(format!("an item DynamoDB sent: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::item::WEBHOOK_SK;
    use crate::item::tests::webhook;
    use crate::lifecycle::RetryPolicy;
    use crate::model::State;

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
        assert!(item_size(&to_item(&WebhookItem::new(&webhook(), None))) > 14);
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
        let body = json::capture("t", &plan);
        assert_eq!(
            body["TransactItems"][1]["Put"]["ConditionExpression"],
            NOT_EXISTS
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
        assert_eq!(capture_refused(&duplicate, 0), CaptureRefused::Duplicate);
        let replayed = cancelled(&["None", "None", "ConditionalCheckFailed"]);
        assert_eq!(capture_refused(&replayed, 0), CaptureRefused::BodySeen);
        let race = cancelled(&["TransactionConflict", "None"]);
        assert_eq!(
            capture_refused(&race, 1),
            CaptureRefused::TryAgainAfter(Duration::from_millis(40))
        );
        assert!(matches!(
            capture_refused(&race, CAPTURE_ATTEMPTS - 1),
            CaptureRefused::Failed(StoreError::Unavailable(_))
        ));
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
        let answer = serde_json::json!({
            "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
            "Message": "Transaction cancelled",
            "CancellationReasons": [{ "Code": "ConditionalCheckFailed" }, { "Code": "None" }],
        });
        assert_eq!(json::refusal(&answer), {
            let mut r = duplicate.clone();
            r.message = "Transaction cancelled".into();
            r
        });
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
        let request = json::due_query("t", &queries[0], Some(5), None);
        assert_eq!(request["IndexName"], "due");
        assert_eq!(request["Limit"], 5);
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
