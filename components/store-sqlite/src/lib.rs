//! `webhooks:inbox/store` over Spin's SQLite (`spin:sqlite@3.0.0`): the component Spin
//! composes with the capture component (`[component.capture.dependencies]` in spin.toml).
//!
//! It runs the SQLite store of `inbox_core::item::sqlite` (the table, the statements and
//! the rules the native SQLite store runs too), so `inbox worker --db .spin/sqlite_db.db`
//! processes what Spin captured. This file only carries values to `spin:sqlite` and back.

mod bindings {
    wit_bindgen::generate!({
        world: "sqlite-store",
        path: "../../wit",
        generate_all,
    });
}

use bindings::exports::webhooks::inbox::store::{
    CaptureOutcome, Destination as WitDestination, Existing, Guest, StoreError as WitError,
};
use bindings::spin::sqlite::sqlite::{self as spin, Value as SpinValue};
use bindings::webhooks::inbox::types as wit;
use inbox_core::clock::now_ms;
use inbox_core::item::sqlite::{self, Answer, Value};
use inbox_core::store::{Captured, Resend, StoreError};

inbox_core::wit_conversions!(bindings::webhooks::inbox::types);
inbox_core::store_error_conversion!(bindings::exports::webhooks::inbox::store);
inbox_core::destination_conversions!(bindings::exports::webhooks::inbox::store);

struct SqliteStore;

bindings::export!(SqliteStore with_types_in bindings);

impl Guest for SqliteStore {
    fn capture(
        webhook: wit::Webhook,
        refuse_replayed_body: bool,
    ) -> Result<CaptureOutcome, WitError> {
        let webhook = webhook_from_wit(webhook);
        sqlite::check_size(&webhook).map_err(store_error_to_wit)?;
        let mut db = Db::open()?;
        let captured = db.transaction(|db| sqlite::capture(db, webhook, refuse_replayed_body))?;
        Ok(match captured {
            Captured::Stored(status) => CaptureOutcome::Stored(status_to_wit(&status)),
            Captured::Duplicate { id, status } => CaptureOutcome::Duplicate(Existing {
                id,
                status: status_to_wit(&status),
            }),
        })
    }

    fn get_webhook(id: String) -> Result<Option<wit::Webhook>, WitError> {
        let webhook = sqlite::webhook(&mut Db::open()?, &id).map_err(store_error_to_wit)?;
        Ok(webhook.map(webhook_to_wit))
    }

    fn get_details(id: String) -> Result<Option<wit::Details>, WitError> {
        let details = sqlite::details(&mut Db::open()?, &id).map_err(store_error_to_wit)?;
        Ok(details.map(details_to_wit))
    }

    fn list_webhooks(query: wit::ListQuery) -> Result<wit::Page, WitError> {
        let page =
            sqlite::list(&mut Db::open()?, &query_from_wit(query)).map_err(store_error_to_wit)?;
        Ok(page_to_wit(page))
    }

    fn count_webhooks(filter: wit::Filter) -> Result<Vec<wit::Count>, WitError> {
        let counts = sqlite::counts(&mut Db::open()?, &filter_from_wit(filter))
            .map_err(store_error_to_wit)?;
        Ok(counts_to_wit(counts))
    }

    fn replay(id: String) -> Result<wit::Status, WitError> {
        let mut db = Db::open()?;
        let current = sqlite::status(&mut db, &id).map_err(store_error_to_wit)?;
        let resend = Resend::replay(&id, current, now_ms()).map_err(store_error_to_wit)?;
        let swapped =
            sqlite::swap_status(&mut db, &id, resend.expected_version, &resend.transition)
                .map_err(store_error_to_wit)?;
        resend
            .outcome(&id, swapped)
            .map(|status| status_to_wit(&status))
            .map_err(store_error_to_wit)
    }

    fn list_destinations() -> Result<Vec<WitDestination>, WitError> {
        let views = sqlite::destination_views(&mut Db::open()?).map_err(store_error_to_wit)?;
        Ok(views.into_iter().map(destination_to_wit).collect())
    }

    fn pause_destination(name: String, paused: bool) -> Result<WitDestination, WitError> {
        let mut db = Db::open()?;
        let view = db.transaction(|db| sqlite::set_paused(db, &name, paused, now_ms()))?;
        Ok(destination_to_wit(view))
    }
}

/// The app's default database, with the table in place.
struct Db(spin::Connection);

impl Db {
    fn open() -> Result<Db, WitError> {
        let connection =
            spin::Connection::open("default").map_err(|e| store_error_to_wit(unavailable(e)))?;
        let mut db = Db(connection);
        sqlite::ensure_schema(&mut db).map_err(store_error_to_wit)?;
        Ok(db)
    }

    /// Runs `work` in one write transaction: committed if it succeeds, else rolled back.
    fn transaction<T>(
        &mut self,
        work: impl FnOnce(&mut Db) -> Result<T, StoreError>,
    ) -> Result<T, WitError> {
        self.run("BEGIN IMMEDIATE")?;
        match work(self) {
            Ok(value) => {
                self.run("COMMIT")?;
                Ok(value)
            }
            Err(error) => {
                let _ = self.run("ROLLBACK");
                Err(store_error_to_wit(error))
            }
        }
    }

    fn run(&mut self, sql: &str) -> Result<(), WitError> {
        sqlite::Connection::execute(self, sql, Vec::new()).map_err(store_error_to_wit)?;
        Ok(())
    }
}

impl sqlite::Connection for Db {
    fn execute(&mut self, sql: &str, params: Vec<Value>) -> Result<Answer, StoreError> {
        let params: Vec<SpinValue> = params.into_iter().map(to_spin).collect();
        let result = self.0.execute(sql, &params).map_err(unavailable)?;
        Ok(Answer {
            columns: result.columns,
            rows: result
                .rows
                .into_iter()
                .map(|row| row.values.into_iter().map(from_spin).collect())
                .collect(),
            changes: self.0.changes(),
        })
    }
}

fn to_spin(value: Value) -> SpinValue {
    match value {
        Value::Integer(n) => SpinValue::Integer(n),
        Value::Real(x) => SpinValue::Real(x),
        Value::Text(text) => SpinValue::Text(text),
        Value::Blob(bytes) => SpinValue::Blob(bytes),
        Value::Null => SpinValue::Null,
    }
}

fn from_spin(value: SpinValue) -> Value {
    match value {
        SpinValue::Integer(n) => Value::Integer(n),
        SpinValue::Real(x) => Value::Real(x),
        SpinValue::Text(text) => Value::Text(text),
        SpinValue::Blob(bytes) => Value::Blob(bytes),
        SpinValue::Null => Value::Null,
    }
}

fn unavailable(error: spin::Error) -> StoreError {
    StoreError::Unavailable(format!("SQLite: {error:?}"))
}
