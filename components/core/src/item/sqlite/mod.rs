//! Every SQLite store, written once: the table, the statements with their bound values,
//! the order they run in and how their rows read back. A store is a [`Connection`] that
//! runs a statement (rusqlite in the native host, `spin:sqlite` in Spin's store component)
//! and wraps the writes in its own transaction; the rules are the functions here.
//!
//! The table carries the items of the layout as columns of the same names (SQLite compares
//! column names without case), so one database file is shared by every SQLite store.

use crate::config::CaptureLimits;
use crate::item::{
    ATTEMPT_SK_PREFIX, AttemptItem, BODY_SK, BodyItem, DEAD_LETTER_SK_PREFIX, STATUS_SK,
    WEBHOOK_SK, WebhookItem, dead_letter_sk, pk,
};
use crate::lifecycle::Transition;
use crate::listing::{Counts, Filter, Page, Query};
use crate::model::{Attempt, DeadLetter, Details, Status, StatusView, Webhook};
use crate::store::{Captured, StoreError, Waits};

mod connection;
mod destinations;
mod schema;

pub use connection::{Answer, Connection, Value};
pub use destinations::{
    destination, destination_views, destinations, held, held_count, set_paused, swap_destination,
    unhold,
};
pub use schema::{SCHEMA, SCHEMA_VERSION, ensure_schema, schema_statements};

use connection::{
    Row, limit_of, optional, optional_text, read_rows, rows, status_values, text, version,
};

const INSERT_WEBHOOK: &str = "INSERT INTO items
    (pk, sk, id, origin, type, created, received_at, idempotency_key, headers)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (pk, sk) DO NOTHING";
const INSERT_PAYLOAD: &str = "INSERT INTO payloads (id, payload) VALUES (?1, ?2)";
const INSERT_STATUS: &str = "INSERT INTO items
    (pk, sk, id, status, retries, version, updated_at, lease_until, next_attempt_at, last_error)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";
/// A body seen before keeps its first webhook; only a body not seen is inserted, with when
/// (`received_at`), so the sweep knows when the replay guard lets it go.
const INSERT_BODY: &str = "INSERT INTO items (pk, sk, id, received_at) VALUES (?1, ?2, ?3, ?4)
    ON CONFLICT (pk, sk) DO NOTHING";
const SELECT_BODY: &str = "SELECT id FROM items WHERE pk = ?1 AND sk = ?2";
const SELECT_WEBHOOK: &str = "SELECT i.pk AS pk, i.sk AS sk, i.id AS id, origin, type,
    created, received_at, idempotency_key, headers, COALESCE(p.payload, i.payload) AS payload
    FROM items i LEFT JOIN payloads p ON p.id = i.id WHERE i.pk = ?1 AND i.sk = ?2";
const SELECT_STATUS: &str = "SELECT status, retries, version, updated_at, lease_until,
    next_attempt_at, last_error FROM items WHERE pk = ?1 AND sk = ?2";
/// The compare-and-swap: one row changed, or none if another writer got there first.
const SWAP_STATUS: &str = "UPDATE items SET status = ?1, retries = ?2, version = ?3,
    updated_at = ?4, lease_until = ?5, next_attempt_at = ?6, last_error = ?7
    WHERE pk = ?8 AND sk = ?9 AND version = ?10";
const INSERT_DEAD_LETTER: &str = "INSERT INTO items (pk, sk, id, retries, updated_at,
    last_error) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
const INSERT_ATTEMPT: &str = "INSERT INTO items (pk, sk, id, retries, received_at,
    updated_at, status, last_error) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
/// The filter of [`Filter::matches`] on the `WEBHOOK` row `w`, from parameter `?{n}`.
macro_rules! filter_on_webhook {
    ($origin:literal, $type:literal, $search:literal) => {
        concat!(
            "(",
            $origin,
            " IS NULL OR w.origin = ",
            $origin,
            ") AND (",
            $type,
            " IS NULL OR w.type = ",
            $type,
            ") AND (",
            $search,
            " IS NULL OR w.id = ",
            $search,
            " OR w.idempotency_key = ",
            $search,
            ")"
        )
    };
}
/// [`Query`]'s order and cursor: newest received first, then by id.
const LIST: &str = concat!(
    "SELECT w.id AS id, w.origin AS origin, w.type AS type, w.received_at AS received_at,
    s.status AS status, s.retries AS retries, s.last_error AS last_error,
    s.updated_at AS updated_at, s.next_attempt_at AS next_attempt_at
    FROM items w JOIN items s ON s.pk = w.pk AND s.sk = 'STATUS'
    WHERE w.sk = 'WEBHOOK' AND (?1 IS NULL OR s.status = ?1) AND ",
    filter_on_webhook!("?2", "?3", "?4"),
    " AND (?5 IS NULL OR w.received_at < ?5 OR (w.received_at = ?5 AND w.id < ?6))
    ORDER BY w.received_at DESC, w.id DESC LIMIT ?7"
);
const COUNTS: &str = concat!(
    "SELECT s.status AS status, COUNT(*) AS n FROM items s JOIN items w ON w.pk = s.pk AND w.sk = 'WEBHOOK'
    WHERE s.sk = 'STATUS' AND ",
    filter_on_webhook!("?1", "?2", "?3"),
    " GROUP BY s.status"
);
/// The counts of every webhook: the status index alone, without a join (what the console
/// and each metrics scrape ask for; 100,000 webhooks counted with the join took 140 ms).
/// A status whose webhook item is gone (never written so by a store) would count here only.
const COUNTS_ALL: &str = "SELECT status, COUNT(*) AS n FROM items INDEXED BY items_by_status
    WHERE sk = 'STATUS' GROUP BY status";
/// Every item of a webhook but its payload, in the order of their keys: attempts, dead
/// letters, the status, the webhook.
const DETAILS: &str = "SELECT sk, origin, type, created, received_at, idempotency_key,
    headers, status, retries, updated_at, next_attempt_at, last_error
    FROM items WHERE pk = ?1 ORDER BY sk";
// Two queries for what is due, so each uses its partial index.
// The partial indexes, named: left to itself (no statistics) the planner takes
// `items_by_status` and sorts every webhook waiting, so each look at a backlog of n cost O(n).
const DUE: &str = "SELECT id FROM items INDEXED BY items_due
    WHERE sk = 'STATUS' AND status IN ('received', 'failed')
    AND next_attempt_at <= ?1 ORDER BY next_attempt_at LIMIT ?2";
const WAITING: &str = "SELECT id, status, retries, version, updated_at, lease_until,
    next_attempt_at, last_error FROM items INDEXED BY items_due
    WHERE sk = 'STATUS' AND status IN ('received', 'failed')
    AND next_attempt_at BETWEEN ?1 AND ?2 AND next_attempt_at - updated_at > ?3
    ORDER BY next_attempt_at, id LIMIT ?4";
const LEASE_EXPIRED: &str = "SELECT id FROM items INDEXED BY items_leased
    WHERE sk = 'STATUS' AND status = 'processing'
    AND lease_until <= ?1 ORDER BY lease_until LIMIT ?2";

/// Refuses a webhook no SQLite store keeps (never truncated): before anything is opened
/// or queued, so a busy database does not turn the answer into a wait.
pub fn check_size(webhook: &Webhook) -> Result<(), StoreError> {
    if webhook.payload.len() > CaptureLimits::HARD_MAX_BODY_BYTES {
        return Err(StoreError::TooLarge(format!(
            "the payload is {} bytes; a webhook holds at most {}",
            webhook.payload.len(),
            CaptureLimits::HARD_MAX_BODY_BYTES
        )));
    }
    Ok(())
}

/// Writes the webhook and its `received` status, unless the id exists: then nothing is
/// written and the stored status is the answer. With `refuse_replayed_body`, a body the
/// origin already delivered is a duplicate of that first webhook. Run it inside a write
/// transaction (which makes the check and the writes one step).
pub fn capture(
    db: &mut impl Connection,
    webhook: Webhook,
    refuse_replayed_body: bool,
) -> Result<Captured, StoreError> {
    check_size(&webhook)?;
    let body = BodyItem::new(&webhook, None);
    if refuse_replayed_body {
        let mut seen = db.execute(SELECT_BODY, vec![text(&body.pk), text(BODY_SK)])?;
        if let Some(mut row) = rows(&mut seen).next() {
            let first = row.text("id")?;
            match status(db, &first)? {
                Some(status) if first != webhook.id => {
                    return Ok(Captured::Duplicate { id: first, status });
                }
                // The same id: the insert below finds it.
                Some(_) => {}
                // Its items are gone (completed, past the retention), its digest is not:
                // refused for the rest of the replay guard, whatever the id.
                None => {
                    return Ok(Captured::Duplicate {
                        id: first,
                        status: Status::forgotten(),
                    });
                }
            }
        }
    }
    // The payload moves into its statement: a capture copies it no further.
    let (id, received_at) = (webhook.id.clone(), webhook.received_at);
    let mut item = WebhookItem::owning(webhook, None);
    let payload = std::mem::take(&mut item.payload);
    let inserted = db.execute(
        INSERT_WEBHOOK,
        vec![
            text(&item.pk),
            text(&item.sk),
            text(&item.id),
            text(&item.origin),
            text(&item.event_type),
            optional(item.created),
            Value::Integer(item.received_at),
            text(&item.idempotency_key),
            Value::Text(item.headers),
        ],
    )?;
    if inserted.changes == 0 {
        let existing = status(db, &id)?
            .ok_or_else(|| StoreError::Corrupt(format!("{id} is stored without a status")))?;
        return Ok(Captured::Duplicate {
            id,
            status: existing,
        });
    }
    db.execute(INSERT_PAYLOAD, vec![text(&id), Value::Blob(payload)])?;
    let status = Status::received(received_at);
    let keys = [text(&pk(&id)), text(STATUS_SK), text(&id)];
    db.execute(
        INSERT_STATUS,
        keys.into_iter().chain(status_values(&status)).collect(),
    )?;
    if refuse_replayed_body {
        db.execute(
            INSERT_BODY,
            vec![
                text(&body.pk),
                text(BODY_SK),
                text(&body.id),
                Value::Integer(received_at),
            ],
        )?;
    }
    Ok(Captured::Stored(status))
}

/// The webhooks a sweep looks at, at most, in one write ([`sweep`]).
pub const SWEEP_BATCH: usize = 200;

const EXPIRED_WEBHOOKS: &str = "SELECT pk, id FROM items INDEXED BY items_by_status
    WHERE sk = 'STATUS' AND status = 'completed' AND updated_at < ?1 LIMIT ?2";
const DELETE_WEBHOOK: &str = "DELETE FROM items WHERE pk = ?1";
const DELETE_PAYLOAD: &str = "DELETE FROM payloads WHERE id = ?1";
const DELETE_BODIES: &str = "DELETE FROM items WHERE rowid IN (SELECT rowid FROM items
    INDEXED BY items_bodies WHERE sk = 'BODY' AND received_at < ?1 LIMIT ?2)";

/// What one [`sweep`] deleted: webhooks (each with every item of it) and body digests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    pub webhooks: u64,
    pub bodies: u64,
}

/// Deletes up to `limit` webhooks completed before `completed_before` (unix ms), every
/// item of each, and up to `limit` body digests received before `bodies_before`; `None`
/// keeps them. Only completed webhooks go: one that still needs work stays, however old.
/// A store runs it a batch at a time, so captures wait for one batch at most.
pub fn sweep(
    db: &mut impl Connection,
    completed_before: Option<i64>,
    bodies_before: Option<i64>,
    limit: usize,
) -> Result<Swept, StoreError> {
    let mut swept = Swept::default();
    let limit = Value::Integer(i64::try_from(limit).unwrap_or(i64::MAX));
    if let Some(before) = completed_before {
        let answer = db.execute(
            EXPIRED_WEBHOOKS,
            vec![Value::Integer(before), limit.clone()],
        )?;
        for (pk, id) in read_rows(answer, |row| Ok((row.text("pk")?, row.text("id")?)))? {
            db.execute(DELETE_WEBHOOK, vec![Value::Text(pk)])?;
            db.execute(DELETE_PAYLOAD, vec![Value::Text(id)])?;
            swept.webhooks += 1;
        }
    }
    if let Some(before) = bodies_before {
        swept.bodies = db
            .execute(DELETE_BODIES, vec![Value::Integer(before), limit])?
            .changes;
    }
    Ok(swept)
}

pub fn webhook(db: &mut impl Connection, id: &str) -> Result<Option<Webhook>, StoreError> {
    let mut answer = db.execute(SELECT_WEBHOOK, vec![text(&pk(id)), text(WEBHOOK_SK)])?;
    let Some(mut row) = rows(&mut answer).next() else {
        return Ok(None);
    };
    let item = WebhookItem {
        pk: row.text("pk")?,
        sk: row.text("sk")?,
        id: row.text("id")?,
        origin: row.text("origin")?,
        event_type: row.text("type")?,
        created: row.optional_integer("created")?,
        received_at: row.integer("received_at")?,
        idempotency_key: row.text("idempotency_key")?,
        headers: row.text("headers")?,
        payload: row.blob("payload")?,
        payload_object: None,
        payload_sha256: None,
        expires_at: None,
    };
    item.into_webhook()
        .map(Some)
        .map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub fn status(db: &mut impl Connection, id: &str) -> Result<Option<Status>, StoreError> {
    let mut answer = db.execute(SELECT_STATUS, vec![text(&pk(id)), text(STATUS_SK)])?;
    let Some(mut row) = rows(&mut answer).next() else {
        return Ok(None);
    };
    status_of(&mut row).map(Some)
}

/// The webhooks waiting for an attempt that `waits` matches ([`Waits::matches`]), soonest
/// due first.
pub fn waiting(
    db: &mut impl Connection,
    waits: Waits,
    limit: usize,
) -> Result<Vec<(String, Status)>, StoreError> {
    let answer = db.execute(
        WAITING,
        vec![
            Value::Integer(waits.from),
            Value::Integer(waits.to),
            Value::Integer(waits.longer_than),
            Value::Integer(limit_of(limit)),
        ],
    )?;
    read_rows(answer, |row| Ok((row.text("id")?, status_of(row)?)))
}

fn status_of(row: &mut Row) -> Result<Status, StoreError> {
    Ok(Status {
        state: row.state("status")?,
        attempts: row.unsigned("retries")?,
        version: row.unsigned("version")?,
        updated_at: row.integer("updated_at")?,
        lease_until: row.optional_integer("lease_until")?,
        next_attempt_at: row.optional_integer("next_attempt_at")?,
        last_error: row.optional_text("last_error")?,
    })
}

/// Writes `transition` if the stored status still has `expected_version`, with its attempt
/// and dead letter; `false` if another writer got there first. With either, run it inside
/// a write transaction, so all are written or none.
pub fn swap_status(
    db: &mut impl Connection,
    id: &str,
    expected_version: u64,
    transition: &Transition,
) -> Result<bool, StoreError> {
    let expected = [text(&pk(id)), text(STATUS_SK), version(expected_version)];
    let swapped = db.execute(
        SWAP_STATUS,
        status_values(&transition.status)
            .into_iter()
            .chain(expected)
            .collect(),
    )?;
    if swapped.changes != 1 {
        return Ok(false);
    }
    if let Some(attempt) = &transition.attempt {
        let item = AttemptItem::new(id, transition.status.version, attempt, None);
        db.execute(
            INSERT_ATTEMPT,
            vec![
                text(&item.pk),
                text(&item.sk),
                text(id),
                Value::Integer(item.retries.into()),
                Value::Integer(item.received_at),
                Value::Integer(item.updated_at),
                text(item.status.as_str()),
                optional_text(item.last_error.as_deref()),
            ],
        )?;
    }
    if let Some(destination) = &transition.hold_for {
        destinations::insert_held(db, destination, id, transition.status.version)?;
    }
    if let Some(letter) = &transition.dead_letter {
        db.execute(
            INSERT_DEAD_LETTER,
            vec![
                text(&pk(id)),
                text(&dead_letter_sk(letter.at)),
                text(id),
                Value::Integer(letter.attempts.into()),
                Value::Integer(letter.at),
                text(&letter.reason),
            ],
        )?;
    }
    Ok(true)
}

/// A page of the webhooks `query` asks for ([`Query`]'s order, filter and cursor).
pub fn list(db: &mut impl Connection, query: &Query) -> Result<Page, StoreError> {
    let limit = query.limit();
    let (after_at, after_id) = match &query.after {
        Some(cursor) => (Value::Integer(cursor.received_at), text(&cursor.id)),
        None => (Value::Null, Value::Null),
    };
    let params = [query.state.map_or(Value::Null, |s| text(s.as_str()))]
        .into_iter()
        .chain(filter_values(&query.filter))
        .chain([after_at, after_id, Value::Integer(limit_of(limit + 1))])
        .collect();
    let answer = db.execute(LIST, params)?;
    let webhooks = read_rows(answer, |row| {
        Ok(StatusView {
            id: row.text("id")?,
            origin: row.text("origin")?,
            event_type: row.text("type")?,
            received_at: row.integer("received_at")?,
            status: row.state("status")?,
            attempts: row.unsigned("retries")?,
            last_error: row.optional_text("last_error")?,
            updated_at: row.integer("updated_at")?,
            next_attempt_at: row.optional_integer("next_attempt_at")?,
        })
    })?;
    Ok(Page::of(webhooks, limit))
}

/// How many webhooks passing `filter` are in each state.
pub fn counts(db: &mut impl Connection, filter: &Filter) -> Result<Counts, StoreError> {
    let answer = if *filter == Filter::default() {
        db.execute(COUNTS_ALL, Vec::new())?
    } else {
        db.execute(COUNTS, filter_values(filter).into_iter().collect())?
    };
    let mut counts = Counts::zero();
    for (state, n) in read_rows(answer, |row| Ok((row.state("status")?, row.unsigned("n")?)))? {
        counts.0.insert(state, n);
    }
    Ok(counts)
}

/// Everything about a webhook but its payload, in one read.
pub fn details(db: &mut impl Connection, id: &str) -> Result<Option<Details>, StoreError> {
    let mut answer = db.execute(DETAILS, vec![text(&pk(id))])?;
    let mut webhook = None;
    let mut status = None;
    let mut attempts = Vec::new();
    let mut dead_letters = Vec::new();
    // Each kind of item keeps its own columns (the schema's comment says which).
    for mut row in rows(&mut answer) {
        let sk = row.text("sk")?;
        if sk == WEBHOOK_SK {
            webhook = Some((
                row.text("origin")?,
                row.text("type")?,
                row.optional_integer("created")?,
                row.integer("received_at")?,
                row.text("idempotency_key")?,
                row.text("headers")?,
            ));
        } else if sk == STATUS_SK {
            status = Some((
                row.state("status")?,
                row.unsigned("retries")?,
                row.integer("updated_at")?,
                row.optional_integer("next_attempt_at")?,
                row.optional_text("last_error")?,
            ));
        } else if sk.starts_with(ATTEMPT_SK_PREFIX) {
            attempts.push(Attempt {
                number: row.unsigned("retries")?,
                started_at: row.integer("received_at")?,
                ended_at: row.integer("updated_at")?,
                state: row.state("status")?,
                error: row.optional_text("last_error")?,
            });
        } else if sk.starts_with(DEAD_LETTER_SK_PREFIX) {
            dead_letters.push(DeadLetter {
                at: row.integer("updated_at")?,
                attempts: row.unsigned("retries")?,
                reason: row.text("last_error")?,
            });
        }
    }
    let (Some(webhook), Some(status)) = (webhook, status) else {
        return Ok(None);
    };
    let (origin, event_type, provider_timestamp, received_at, idempotency_key, headers) = webhook;
    let (state, retries, updated_at, next_attempt_at, last_error) = status;
    let headers = serde_json::from_str(&headers)
        .map_err(|e| StoreError::Corrupt(format!("headers of {id}: {e}")))?;
    Ok(Some(Details {
        view: StatusView {
            id: id.to_owned(),
            origin,
            event_type,
            status: state,
            attempts: retries,
            last_error,
            received_at,
            updated_at,
            next_attempt_at,
        },
        idempotency_key,
        provider_timestamp,
        headers,
        attempts,
        dead_letters,
    }))
}

/// `origin, type, search`: the parameters of [`filter_on_webhook`].
fn filter_values(filter: &Filter) -> [Value; 3] {
    [&filter.origin, &filter.event_type, &filter.search]
        .map(|value| optional_text(value.as_deref()))
}

/// Ids whose next attempt is due at `now`, then those whose lease has expired.
pub fn due(db: &mut impl Connection, now: i64, limit: usize) -> Result<Vec<String>, StoreError> {
    let mut ids = Vec::new();
    for query in [DUE, LEASE_EXPIRED] {
        let answer = db.execute(
            query,
            vec![Value::Integer(now), Value::Integer(limit_of(limit))],
        )?;
        ids.extend(read_rows(answer, |row| row.text("id"))?);
    }
    ids.truncate(limit);
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The statements run on real SQLite in the native store's tests (inbox-stores), which
    // go through these functions; Spin's component runs them in tests/spin.rs.

    #[test]
    fn the_schema_runs_one_statement_at_a_time() {
        let statements: Vec<_> = schema_statements().collect();
        assert_eq!(statements.len(), 8);
        assert!(statements[0].contains("CREATE TABLE IF NOT EXISTS items"));
        assert!(statements.iter().all(|s| !s.trim().is_empty()));
        // The version it records is the one `ensure_schema` looks for.
        assert_eq!(
            statements[7].trim(),
            format!("PRAGMA user_version = {SCHEMA_VERSION}")
        );
    }
}
