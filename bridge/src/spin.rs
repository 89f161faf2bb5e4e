//! Spin's `spin:sqlite@3.0.0`, over a SQLite file: what the store component that Spin
//! composes with the capture component imports. With it, `inbox serve --store-component`
//! runs the same two `.wasm` files Spin runs (spin.toml), writing to the database the
//! worker processes.

use std::path::Path;
use std::time::Duration;

use rusqlite::types::ValueRef;
use wasmtime::component::Resource;

use crate::bindings::spin::sqlite::sqlite::{self, Error, QueryResult, RowResult, Value};
use crate::host::HostState;

/// An open connection, owned by the instance that opened it.
pub struct SqliteConnection(rusqlite::Connection);

/// Spin's database names; `default` is the app's database.
const DEFAULT_DATABASE: &str = "default";

impl SqliteConnection {
    fn open(path: &Path) -> rusqlite::Result<SqliteConnection> {
        let connection = rusqlite::Connection::open(path)?;
        // Beside the native store's writer: wait for its commits rather than fail.
        connection.busy_timeout(Duration::from_secs(5))?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.pragma_update(None, "synchronous", "FULL")?;
        Ok(SqliteConnection(connection))
    }

    fn execute(&self, statement: &str, parameters: Vec<Value>) -> rusqlite::Result<QueryResult> {
        let mut prepared = self.0.prepare(statement)?;
        let columns: Vec<String> = prepared
            .column_names()
            .into_iter()
            .map(str::to_owned)
            .collect();
        let parameters: Vec<rusqlite::types::Value> =
            parameters.into_iter().map(to_sqlite).collect();
        let mut rows = prepared.query(rusqlite::params_from_iter(parameters))?;
        let mut results = Vec::new();
        while let Some(row) = rows.next()? {
            let values = (0..columns.len())
                .map(|i| row.get_ref(i).map(from_sqlite))
                .collect::<rusqlite::Result<_>>()?;
            results.push(RowResult { values });
        }
        Ok(QueryResult {
            columns,
            rows: results,
        })
    }
}

fn to_sqlite(value: Value) -> rusqlite::types::Value {
    use rusqlite::types::Value as Sql;
    match value {
        Value::Integer(n) => Sql::Integer(n),
        Value::Real(x) => Sql::Real(x),
        Value::Text(text) => Sql::Text(text),
        Value::Blob(bytes) => Sql::Blob(bytes),
        Value::Null => Sql::Null,
    }
}

fn from_sqlite(value: ValueRef<'_>) -> Value {
    match value {
        ValueRef::Integer(n) => Value::Integer(n),
        ValueRef::Real(x) => Value::Real(x),
        ValueRef::Text(text) => Value::Text(String::from_utf8_lossy(text).into_owned()),
        ValueRef::Blob(bytes) => Value::Blob(bytes.to_vec()),
        ValueRef::Null => Value::Null,
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
        let path = self.sqlite_database().ok_or(Error::AccessDenied)?;
        let connection = SqliteConnection::open(path).map_err(io)?;
        self.table().push(connection).map_err(io)
    }

    async fn execute(
        &mut self,
        connection: Resource<SqliteConnection>,
        statement: String,
        parameters: Vec<Value>,
    ) -> Result<QueryResult, Error> {
        let connection = self
            .table()
            .get(&connection)
            .map_err(|_| Error::InvalidConnection)?;
        connection.execute(&statement, parameters).map_err(io)
    }

    async fn last_insert_rowid(&mut self, connection: Resource<SqliteConnection>) -> i64 {
        self.table()
            .get(&connection)
            .map_or(0, |c| c.0.last_insert_rowid())
    }

    async fn changes(&mut self, connection: Resource<SqliteConnection>) -> u64 {
        self.table().get(&connection).map_or(0, |c| c.0.changes())
    }

    async fn drop(&mut self, connection: Resource<SqliteConnection>) -> wasmtime::Result<()> {
        self.table().delete(connection)?;
        Ok(())
    }
}
