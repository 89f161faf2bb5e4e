//! A database as the stores reach it through their drivers, and values both ways:
//! bound to a statement, and read back from its rows in column order.

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

/// Every row of `answer`, each read by `read` in column order.
pub(crate) fn read_rows<T>(
    answer: Answer,
    read: impl Fn(&mut Columns) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    answer
        .rows
        .into_iter()
        .map(|row| read(&mut Columns(row.into_iter())))
        .collect()
}

/// The values of one row, taken in column order.
pub(crate) struct Columns(pub(crate) std::vec::IntoIter<Value>);

impl Columns {
    pub(crate) fn next(&mut self) -> Result<Value, StoreError> {
        self.0
            .next()
            .ok_or_else(|| StoreError::Corrupt("a row is missing a column".into()))
    }

    pub(crate) fn skip(&mut self, n: usize) -> Result<(), StoreError> {
        for _ in 0..n {
            self.next()?;
        }
        Ok(())
    }

    pub(crate) fn text(&mut self) -> Result<String, StoreError> {
        match self.next()? {
            Value::Text(text) => Ok(text),
            other => Err(unexpected("text", &other)),
        }
    }

    pub(crate) fn optional_text(&mut self) -> Result<Option<String>, StoreError> {
        match self.next()? {
            Value::Text(text) => Ok(Some(text)),
            Value::Null => Ok(None),
            other => Err(unexpected("text or null", &other)),
        }
    }

    pub(crate) fn integer(&mut self) -> Result<i64, StoreError> {
        match self.next()? {
            Value::Integer(n) => Ok(n),
            other => Err(unexpected("integer", &other)),
        }
    }

    pub(crate) fn unsigned<T: TryFrom<i64>>(&mut self) -> Result<T, StoreError> {
        let n = self.integer()?;
        T::try_from(n).map_err(|_| StoreError::Corrupt(format!("{n} is out of range")))
    }

    pub(crate) fn optional_integer(&mut self) -> Result<Option<i64>, StoreError> {
        match self.next()? {
            Value::Integer(n) => Ok(Some(n)),
            Value::Null => Ok(None),
            other => Err(unexpected("integer or null", &other)),
        }
    }

    pub(crate) fn blob(&mut self) -> Result<Vec<u8>, StoreError> {
        match self.next()? {
            Value::Blob(bytes) => Ok(bytes),
            other => Err(unexpected("blob", &other)),
        }
    }

    pub(crate) fn state(&mut self) -> Result<State, StoreError> {
        self.text()?.parse().map_err(StoreError::Corrupt)
    }
}

/// `status, retries, version, updated_at, lease_until, next_attempt_at, last_error`, the
/// order of [`SELECT_STATUS`].
pub(crate) fn status_values(status: &Status) -> [Value; 7] {
    [
        text(status.state.as_str()),
        Value::Integer(status.retries.into()),
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

pub(crate) fn unexpected(wanted: &str, got: &Value) -> StoreError {
    StoreError::Corrupt(format!("expected {wanted}, found {got:?}"))
}
