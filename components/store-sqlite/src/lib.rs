//! `webhooks:inbox/store` over Spin's SQLite (`spin:sqlite@3.0.0`): the component Spin
//! composes with the capture component (`[component.capture.dependencies]` in spin.toml).
//!
//! It runs the statements of `inbox_core::item::sql` on the table of
//! `inbox_core::item::SQLITE_SCHEMA`, as the native SQLite store does, so `inbox worker
//! --db .spin/sqlite_db.db` processes what Spin captured, with the same state rules.

mod bindings {
    wit_bindgen::generate!({
        world: "sqlite-store",
        path: "../../wit",
        generate_all,
    });
}

use bindings::exports::webhooks::inbox::store::{CaptureOutcome, Guest, StoreError};
use bindings::spin::sqlite::sqlite::{Connection, Error as SqlError, QueryResult, Value};
use bindings::webhooks::inbox::types as wit;
use inbox_core::config::CaptureLimits;
use inbox_core::item::{self, STATUS_SK, WEBHOOK_SK, WebhookItem, sql};
use inbox_core::{State, Status};

inbox_core::wit_conversions!(bindings::webhooks::inbox::types);

struct SqliteStore;

bindings::export!(SqliteStore with_types_in bindings);

impl Guest for SqliteStore {
    fn capture(webhook: wit::Webhook) -> Result<CaptureOutcome, StoreError> {
        let webhook = webhook_from_wit(webhook);
        if webhook.payload.len() > CaptureLimits::HARD_MAX_BODY_BYTES {
            return Err(StoreError::TooLarge(format!(
                "the payload is {} bytes; a webhook holds at most {}",
                webhook.payload.len(),
                CaptureLimits::HARD_MAX_BODY_BYTES
            )));
        }
        let db = Db::open()?;
        let item = WebhookItem::new(&webhook, None);
        db.transaction(|db| {
            db.execute(
                sql::INSERT_WEBHOOK,
                vec![
                    text(&item.pk),
                    text(&item.sk),
                    text(&item.id),
                    text(&item.origin),
                    text(&item.event_type),
                    optional(item.created),
                    Value::Integer(item.received_at),
                    text(&item.idempotency_key),
                    text(&item.headers),
                    Value::Blob(item.payload.clone()),
                ],
            )?;
            if db.connection.changes() == 0 {
                let existing = db
                    .status(&webhook.id)?
                    .ok_or_else(|| StoreError::Unavailable("a webhook without a status".into()))?;
                return Ok(CaptureOutcome::Duplicate(status_to_wit(&existing)));
            }
            let status = Status::received(webhook.received_at);
            db.execute(
                sql::INSERT_STATUS,
                vec![
                    text(&item.pk),
                    text(STATUS_SK),
                    text(&item.id),
                    text(status.state.as_str()),
                    Value::Integer(status.retries.into()),
                    Value::Integer(status.version as i64),
                    Value::Integer(status.updated_at),
                    optional(status.lease_until),
                    optional(status.next_attempt_at),
                    Value::Null,
                ],
            )?;
            Ok(CaptureOutcome::Stored(status_to_wit(&status)))
        })
    }

    fn get_webhook(id: String) -> Result<Option<wit::Webhook>, StoreError> {
        let db = Db::open()?;
        let result = db.execute(
            sql::SELECT_WEBHOOK,
            vec![text(&item::pk(&id)), text(WEBHOOK_SK)],
        )?;
        let Some(row) = result.rows.into_iter().next() else {
            return Ok(None);
        };
        let mut columns = Columns(row.values.into_iter());
        let item = WebhookItem {
            pk: columns.text()?,
            sk: columns.text()?,
            id: columns.text()?,
            origin: columns.text()?,
            event_type: columns.text()?,
            created: columns.optional_integer()?,
            received_at: columns.integer()?,
            idempotency_key: columns.text()?,
            headers: columns.text()?,
            payload: columns.blob()?,
            expires_at: None,
        };
        let webhook = item
            .into_webhook()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(Some(webhook_to_wit(webhook)))
    }

    fn get_status(id: String) -> Result<Option<wit::Status>, StoreError> {
        Ok(Db::open()?.status(&id)?.as_ref().map(status_to_wit))
    }

    fn list_webhooks(
        state: Option<wit::State>,
        limit: u32,
    ) -> Result<Vec<wit::Summary>, StoreError> {
        let state = state.map(|s| text(state_from_wit(s).as_str()));
        let limit = limit.min(inbox_core::capture::MAX_LIST);
        let result = Db::open()?.execute(
            sql::LIST,
            vec![state.unwrap_or(Value::Null), Value::Integer(limit.into())],
        )?;
        result
            .rows
            .into_iter()
            .map(|row| {
                let mut columns = Columns(row.values.into_iter());
                let (id, origin, event_type, received_at) = (
                    columns.text()?,
                    columns.text()?,
                    columns.text()?,
                    columns.integer()?,
                );
                let view = inbox_core::model::StatusView {
                    id,
                    origin,
                    event_type,
                    received_at,
                    status: columns.state()?,
                    retries: columns.integer()? as u32,
                    last_error: columns.optional_text()?,
                    updated_at: columns.integer()?,
                    next_attempt_at: columns.optional_integer()?,
                };
                Ok(view_to_summary(view))
            })
            .collect()
    }

    fn replay(id: String) -> Result<wit::Status, StoreError> {
        let db = Db::open()?;
        let status = db.status(&id)?.ok_or(StoreError::NotFound)?;
        let replayed = status
            .replay(now_ms())
            .map_err(|e| StoreError::Conflict(e.to_string()))?;
        db.execute(
            sql::SWAP_STATUS,
            vec![
                text(replayed.state.as_str()),
                Value::Integer(replayed.retries.into()),
                Value::Integer(replayed.version as i64),
                Value::Integer(replayed.updated_at),
                optional(replayed.lease_until),
                optional(replayed.next_attempt_at),
                replayed.last_error.as_deref().map_or(Value::Null, text),
                text(&item::pk(&id)),
                text(STATUS_SK),
                Value::Integer(status.version as i64),
            ],
        )?;
        if db.connection.changes() == 1 {
            Ok(status_to_wit(&replayed))
        } else {
            Err(StoreError::Conflict(format!(
                "{id} changed while it was being replayed; try again"
            )))
        }
    }
}

struct Db {
    connection: Connection,
}

impl Db {
    /// The app's default database, with the shared table in place.
    fn open() -> Result<Db, StoreError> {
        let connection = Connection::open("default").map_err(unavailable)?;
        let db = Db { connection };
        for statement in item::SQLITE_SCHEMA.split(';') {
            if statement
                .lines()
                .any(|l| !l.trim().is_empty() && !l.trim().starts_with("--"))
            {
                db.execute(statement, Vec::new())?;
            }
        }
        Ok(db)
    }

    fn execute(&self, statement: &str, parameters: Vec<Value>) -> Result<QueryResult, StoreError> {
        self.connection
            .execute(statement, &parameters)
            .map_err(unavailable)
    }

    /// Runs `work` in one write transaction: committed if it succeeds, else rolled back.
    fn transaction<T>(
        &self,
        work: impl FnOnce(&Db) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.execute("BEGIN IMMEDIATE", Vec::new())?;
        match work(self) {
            Ok(value) => {
                self.execute("COMMIT", Vec::new())?;
                Ok(value)
            }
            Err(error) => {
                let _ = self.execute("ROLLBACK", Vec::new());
                Err(error)
            }
        }
    }

    fn status(&self, id: &str) -> Result<Option<Status>, StoreError> {
        let result = self.execute(
            sql::SELECT_STATUS,
            vec![text(&item::pk(id)), text(STATUS_SK)],
        )?;
        let Some(row) = result.rows.into_iter().next() else {
            return Ok(None);
        };
        let mut columns = Columns(row.values.into_iter());
        Ok(Some(Status {
            state: columns.state()?,
            retries: columns.integer()? as u32,
            version: columns.integer()? as u64,
            updated_at: columns.integer()?,
            lease_until: columns.optional_integer()?,
            next_attempt_at: columns.optional_integer()?,
            last_error: columns.optional_text()?,
        }))
    }
}

/// The values of one row, taken in column order.
struct Columns(std::vec::IntoIter<Value>);

impl Columns {
    fn next(&mut self) -> Result<Value, StoreError> {
        self.0
            .next()
            .ok_or_else(|| StoreError::Unavailable("a row is missing a column".into()))
    }

    fn text(&mut self) -> Result<String, StoreError> {
        match self.next()? {
            Value::Text(text) => Ok(text),
            other => Err(unexpected("text", &other)),
        }
    }

    fn optional_text(&mut self) -> Result<Option<String>, StoreError> {
        match self.next()? {
            Value::Text(text) => Ok(Some(text)),
            Value::Null => Ok(None),
            other => Err(unexpected("text or null", &other)),
        }
    }

    fn integer(&mut self) -> Result<i64, StoreError> {
        match self.next()? {
            Value::Integer(n) => Ok(n),
            other => Err(unexpected("integer", &other)),
        }
    }

    fn optional_integer(&mut self) -> Result<Option<i64>, StoreError> {
        match self.next()? {
            Value::Integer(n) => Ok(Some(n)),
            Value::Null => Ok(None),
            other => Err(unexpected("integer or null", &other)),
        }
    }

    fn blob(&mut self) -> Result<Vec<u8>, StoreError> {
        match self.next()? {
            Value::Blob(bytes) => Ok(bytes),
            other => Err(unexpected("blob", &other)),
        }
    }

    fn state(&mut self) -> Result<State, StoreError> {
        self.text()?.parse().map_err(StoreError::Unavailable)
    }
}

fn text(value: &str) -> Value {
    Value::Text(value.to_owned())
}

fn optional(value: Option<i64>) -> Value {
    value.map_or(Value::Null, Value::Integer)
}

fn unexpected(wanted: &str, got: &Value) -> StoreError {
    StoreError::Unavailable(format!(
        "stored data cannot be read: expected {wanted}, found {got:?}"
    ))
}

fn unavailable(error: SqlError) -> StoreError {
    StoreError::Unavailable(format!("SQLite: {error:?}"))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
