//! A database as the stores reach it through their drivers, and values both ways:
//! bound to a statement in parameter order, and read back from its rows by column name.

use crate::model::{State, Status};
use crate::store::StoreError;

/// A value bound to a statement or read from a row: SQLite's five types.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
    Null,
}

/// What a statement gave back: its columns' names, its rows, and the rows it changed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Answer {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
    pub changes: u64,
}

/// A SQLite database a store reaches through its driver.
pub trait Connection {
    /// Runs one statement with its parameters (`?1`, `?2`, ...). A failure is the driver's:
    /// [`StoreError::Unavailable`].
    fn execute(&mut self, sql: &str, params: Vec<Value>) -> Result<Answer, StoreError>;
}

/// Every row of `answer`, each read by `read`.
pub(crate) fn read_rows<T>(
    mut answer: Answer,
    read: impl Fn(&mut Row) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    rows(&mut answer).map(|mut row| read(&mut row)).collect()
}

/// The rows of `answer`, taken out of it, each with the names of its columns.
pub(crate) fn rows(answer: &mut Answer) -> impl Iterator<Item = Row<'_>> {
    let Answer { columns, rows, .. } = answer;
    let names: &[String] = columns;
    std::mem::take(rows)
        .into_iter()
        .map(move |values| Row { names, values })
}

/// The values of one row, each taken by its column's name (the statement's `AS`, or the
/// column's own name), so no reader depends on the order of a `SELECT`.
pub(crate) struct Row<'a> {
    names: &'a [String],
    values: Vec<Value>,
}

impl Row<'_> {
    fn take(&mut self, column: &str) -> Result<Value, StoreError> {
        let missing = || StoreError::Corrupt(format!("a row has no column {column}"));
        let i = self.names.iter().position(|name| name == column);
        let value = i.and_then(|i| self.values.get_mut(i)).ok_or_else(missing)?;
        Ok(std::mem::replace(value, Value::Null))
    }

    pub(crate) fn text(&mut self, column: &str) -> Result<String, StoreError> {
        match self.take(column)? {
            Value::Text(text) => Ok(text),
            other => Err(unexpected(column, "text", &other)),
        }
    }

    pub(crate) fn optional_text(&mut self, column: &str) -> Result<Option<String>, StoreError> {
        match self.take(column)? {
            Value::Text(text) => Ok(Some(text)),
            Value::Null => Ok(None),
            other => Err(unexpected(column, "text or null", &other)),
        }
    }

    pub(crate) fn integer(&mut self, column: &str) -> Result<i64, StoreError> {
        match self.take(column)? {
            Value::Integer(n) => Ok(n),
            other => Err(unexpected(column, "integer", &other)),
        }
    }

    pub(crate) fn unsigned<T: TryFrom<i64>>(&mut self, column: &str) -> Result<T, StoreError> {
        let n = self.integer(column)?;
        T::try_from(n).map_err(|_| StoreError::Corrupt(format!("{column} {n} is out of range")))
    }

    pub(crate) fn optional_integer(&mut self, column: &str) -> Result<Option<i64>, StoreError> {
        match self.take(column)? {
            Value::Integer(n) => Ok(Some(n)),
            Value::Null => Ok(None),
            other => Err(unexpected(column, "integer or null", &other)),
        }
    }

    pub(crate) fn blob(&mut self, column: &str) -> Result<Vec<u8>, StoreError> {
        match self.take(column)? {
            Value::Blob(bytes) => Ok(bytes),
            other => Err(unexpected(column, "blob", &other)),
        }
    }

    pub(crate) fn state(&mut self, column: &str) -> Result<State, StoreError> {
        self.text(column)?.parse().map_err(StoreError::Corrupt)
    }
}

/// `status, retries, version, updated_at, lease_until, next_attempt_at, last_error`, the
/// order of [`SELECT_STATUS`].
pub(crate) fn status_values(status: &Status) -> [Value; 7] {
    [
        text(status.state.as_str()),
        Value::Integer(status.attempts.into()),
        version(status.version),
        Value::Integer(status.updated_at),
        optional(status.lease_until),
        optional(status.next_attempt_at),
        optional_text(status.last_error.as_deref()),
    ]
}

pub(crate) fn text(value: &str) -> Value {
    Value::Text(value.to_owned())
}

pub(crate) fn optional(value: Option<i64>) -> Value {
    value.map_or(Value::Null, Value::Integer)
}

pub(crate) fn optional_text(value: Option<&str>) -> Value {
    value.map_or(Value::Null, text)
}

/// Versions are u64 in the model and INTEGER (i64) in SQLite; they never get near 2^63.
pub(crate) fn version(version: u64) -> Value {
    Value::Integer(version as i64)
}

pub(crate) fn limit_of(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

pub(crate) fn unexpected(column: &str, wanted: &str, got: &Value) -> StoreError {
    StoreError::Corrupt(format!("expected {wanted} in {column}, found {got:?}"))
}
