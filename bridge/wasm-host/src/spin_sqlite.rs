//! Spin's `spin:sqlite@3.0.0`, over a SQLite file: what the store component that Spin
//! composes with the capture component imports. With it, `inbox serve --store-component`
//! runs the same two `.wasm` files Spin runs (spin.toml), writing to the database the
//! worker processes. Statements run through the native SQLite store's driver, on
//! connections kept open between instances (`inbox_stores::pool`), as Spin keeps its own;
//! a transaction runs on the database's one writer, in its turn ([`SpinDatabase`]).

use inbox_core::item::sqlite::Value;
use inbox_stores::pool::wait_in_short_sleeps;
use inbox_stores::sqlite::Rusqlite;
use wasmtime::component::{HasSelf, Linker, Resource};

use crate::bindings::spin::sqlite::sqlite::{
    self, Error, QueryResult, RowResult, Value as WitValue,
};
#[cfg(doc)]
use crate::sqlite_connection::SpinDatabase;
use crate::sqlite_connection::SqliteConnection;
use crate::state::HostState;

/// Spin's database names; `default` is the app's database.
const DEFAULT_DATABASE: &str = "default";

fn to_value(value: WitValue) -> Value {
    match value {
        WitValue::Integer(n) => Value::Integer(n),
        WitValue::Real(x) => Value::Real(x),
        WitValue::Text(text) => Value::Text(text),
        WitValue::Blob(bytes) => Value::Blob(bytes),
        WitValue::Null => Value::Null,
    }
}

fn to_wit(value: Value) -> WitValue {
    match value {
        Value::Integer(n) => WitValue::Integer(n),
        Value::Real(x) => WitValue::Real(x),
        Value::Text(text) => WitValue::Text(text),
        Value::Blob(bytes) => WitValue::Blob(bytes),
        Value::Null => WitValue::Null,
    }
}

fn io(error: impl std::fmt::Display) -> Error {
    Error::Io(error.to_string())
}

impl sqlite::Host for HostState {}

impl sqlite::HostConnection for HostState {
    async fn open(&mut self, database: String) -> Result<Resource<SqliteConnection>, Error> {
        if database != DEFAULT_DATABASE {
            return Err(Error::NoSuchDatabase);
        }
        let database = self.sqlite_database().ok_or(Error::AccessDenied)?;
        let connection = database.pool.take().map_err(io)?;
        wait_in_short_sleeps(&connection).map_err(io)?;
        self.table()
            .push(SqliteConnection::new(connection))
            .map_err(io)
    }

    async fn execute(
        &mut self,
        connection: Resource<SqliteConnection>,
        statement: String,
        parameters: Vec<WitValue>,
    ) -> Result<QueryResult, Error> {
        let waits = begins_a_transaction(&statement)
            && self
                .table()
                .get(&connection)
                .is_ok_and(|connection| !connection.is_writing());
        if waits && self.holds_the_writer {
            // It would wait for itself until its deadline, every other writer behind it.
            return Err(Error::Io(
                "a transaction is open on another connection of this instance; SQLite writes one at a time".into(),
            ));
        }
        if waits {
            let writer = self
                .sqlite_database()
                .ok_or(Error::AccessDenied)?
                .writer
                .clone();
            let writer = writer.lock_owned().await;
            self.table()
                .get_mut(&connection)
                .map_err(|_| Error::InvalidConnection)?
                .begin_writing(writer);
            self.holds_the_writer = true;
        }
        let connection = self
            .table()
            .get_mut(&connection)
            .map_err(|_| Error::InvalidConnection)?;
        let parameters = parameters.into_iter().map(to_value).collect();
        let answer = connection.run(|connection| Rusqlite(connection).run(&statement, parameters));
        let was_writing = connection.is_writing();
        connection.end_writing_if_done();
        if was_writing && !connection.is_writing() {
            self.holds_the_writer = false;
            // The next transaction's instance, woken by the writer's release, runs before
            // the rest of this one's request: the writer is what every capture waits for.
            tokio::task::yield_now().await;
        }
        let answer = answer.map_err(io)?;
        Ok(QueryResult {
            columns: answer.columns,
            rows: answer
                .rows
                .into_iter()
                .map(|row| RowResult {
                    values: row.into_iter().map(to_wit).collect(),
                })
                .collect(),
        })
    }

    async fn last_insert_rowid(&mut self, connection: Resource<SqliteConnection>) -> i64 {
        self.table()
            .get(&connection)
            .map_or(0, SqliteConnection::last_insert_rowid)
    }

    async fn changes(&mut self, connection: Resource<SqliteConnection>) -> u64 {
        self.table()
            .get(&connection)
            .map_or(0, SqliteConnection::changes)
    }

    async fn drop(&mut self, connection: Resource<SqliteConnection>) -> wasmtime::Result<()> {
        let connection = self.table().delete(connection)?;
        if connection.is_writing() {
            self.holds_the_writer = false;
        }
        let connection = connection.into_connection();
        if let Some(database) = self.sqlite_database() {
            database.pool.give_back(connection);
        }
        Ok(())
    }
}

/// Whether `statement` begins a transaction, which may write (`BEGIN`, `BEGIN IMMEDIATE`...).
fn begins_a_transaction(statement: &str) -> bool {
    let statement = statement.trim_start().as_bytes();
    statement.len() >= 5 && statement[..5].eq_ignore_ascii_case(b"BEGIN")
}

/// Connections kept open at most: as many as capture instances run at once, by default.
pub const MAX_IDLE: usize = 64;

/// Adds Spin's SQLite, for a capture component composed with the SQLite store component
/// (and only then, as Spin gives a database only to what inherits it).
pub fn add_to_linker(linker: &mut Linker<HostState>) -> anyhow::Result<()> {
    sqlite::add_to_linker::<_, HasSelf<HostState>>(linker, |state| state)?;
    Ok(())
}
