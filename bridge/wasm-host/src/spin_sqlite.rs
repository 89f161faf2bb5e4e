//! Spin's `spin:sqlite@3.0.0`, over a SQLite file: what the store component that Spin
//! composes with the capture component imports. With it, `inbox serve --store-component`
//! runs the same two `.wasm` files Spin runs (spin.toml), writing to the database the
//! worker processes. Statements run through the native SQLite store's driver, on
//! connections kept open between instances (`inbox_stores::pool`), as Spin keeps its own.

use inbox_core::item::sqlite::Value;
use inbox_stores::sqlite::Rusqlite;
use wasmtime::component::{HasSelf, Linker, Resource};

use crate::bindings::spin::sqlite::sqlite::{
    self, Error, QueryResult, RowResult, Value as WitValue,
};
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
        let pool = self.sqlite_database().ok_or(Error::AccessDenied)?;
        let connection = pool.take().map_err(io)?;
        self.table().push(SqliteConnection(connection)).map_err(io)
    }

    async fn execute(
        &mut self,
        connection: Resource<SqliteConnection>,
        statement: String,
        parameters: Vec<WitValue>,
    ) -> Result<QueryResult, Error> {
        let connection = self
            .table()
            .get(&connection)
            .map_err(|_| Error::InvalidConnection)?;
        let parameters = parameters.into_iter().map(to_value).collect();
        let answer = Rusqlite(&connection.0)
            .run(&statement, parameters)
            .map_err(io)?;
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
            .map_or(0, |c| c.0.last_insert_rowid())
    }

    async fn changes(&mut self, connection: Resource<SqliteConnection>) -> u64 {
        self.table().get(&connection).map_or(0, |c| c.0.changes())
    }

    async fn drop(&mut self, connection: Resource<SqliteConnection>) -> wasmtime::Result<()> {
        let SqliteConnection(connection) = self.table().delete(connection)?;
        if let Some(pool) = self.sqlite_database() {
            pool.give_back(connection);
        }
        Ok(())
    }
}

/// Connections kept open at most: as many as capture instances run at once, by default.
pub const MAX_IDLE: usize = 64;

/// Adds Spin's SQLite, for a capture component composed with the SQLite store component
/// (and only then, as Spin gives a database only to what inherits it).
pub fn add_to_linker(linker: &mut Linker<HostState>) -> anyhow::Result<()> {
    sqlite::add_to_linker::<_, HasSelf<HostState>>(linker, |state| state)?;
    Ok(())
}
