//! A `spin:sqlite` connection: the resource a store component's handle points at, owned
//! by the instance that opened it (`crate::spin_sqlite`), and the database it comes from. A
//! leaf, so the bindings and the instance's state can name them.

use std::path::Path;
use std::sync::Arc;

use inbox_stores::pool::{ConnectionPool, open_connection, wait_in_short_sleeps};
use rusqlite::Connection;
use tokio::sync::{Mutex, OwnedMutexGuard};

pub struct SqliteConnection {
    connection: Connection,
    /// The database's writer, held from this connection's `BEGIN` until the transaction
    /// ends.
    writing: Option<Writing>,
    /// What the last statement left, read where it ran (the writer, for one that ended a
    /// transaction).
    last_insert_rowid: i64,
    changes: u64,
}

impl SqliteConnection {
    pub(crate) fn new(connection: Connection) -> SqliteConnection {
        SqliteConnection {
            connection,
            writing: None,
            last_insert_rowid: 0,
            changes: 0,
        }
    }

    /// Runs `statement` where it belongs, keeping what it left to be asked after.
    pub(crate) fn run<T>(&mut self, statement: impl FnOnce(&Connection) -> T) -> T {
        let answer = statement(self.current());
        self.last_insert_rowid = self.current().last_insert_rowid();
        self.changes = self.current().changes();
        answer
    }

    pub(crate) fn last_insert_rowid(&self) -> i64 {
        self.last_insert_rowid
    }

    pub(crate) fn changes(&self) -> u64 {
        self.changes
    }

    /// Where its statements run: in a transaction, on the database's writer.
    fn current(&self) -> &Connection {
        self.writing
            .as_ref()
            .map_or(&self.connection, |writing| &writing.0)
    }

    pub(crate) fn is_writing(&self) -> bool {
        self.writing.is_some()
    }

    pub(crate) fn begin_writing(&mut self, writer: OwnedMutexGuard<Connection>) {
        self.writing = Some(Writing(writer));
    }

    /// Gives the writer back once its transaction has ended (committed, rolled back, or
    /// never begun).
    pub(crate) fn end_writing_if_done(&mut self) {
        if self
            .writing
            .as_ref()
            .is_some_and(|writing| writing.0.is_autocommit())
        {
            self.writing = None;
        }
    }

    pub(crate) fn into_connection(self) -> Connection {
        self.connection
    }
}

/// The writer, in the hands of one connection's transaction. A transaction its instance
/// left unfinished (a trap, a deadline) is rolled back before the next may write.
struct Writing(OwnedMutexGuard<Connection>);

impl Drop for Writing {
    fn drop(&mut self) {
        if !self.0.is_autocommit() {
            let _ = self.0.execute_batch("ROLLBACK");
        }
    }
}

/// Spin's `default` database: connections kept open between instances, and one writer.
/// SQLite lets one connection write at a time and makes the others retry, and a connection
/// reads again whatever it had cached once another has written. So every transaction runs
/// on the one writer connection, each waiting its turn in order: no busy retries among
/// them, and a cache that stays warm. Only the native store's writer and the statements
/// outside a transaction still meet them in SQLite's busy handler. Each transaction still
/// commits on its own, as Spin's does.
pub struct SpinDatabase {
    pub(crate) pool: ConnectionPool,
    pub(crate) writer: Arc<Mutex<Connection>>,
}

impl SpinDatabase {
    pub fn open(path: &Path, max_idle: usize) -> rusqlite::Result<SpinDatabase> {
        let writer = open_connection(path)?;
        // It waits only for the native store's writer, whose commits are short.
        wait_in_short_sleeps(&writer)?;
        Ok(SpinDatabase {
            pool: ConnectionPool::new(path, max_idle),
            writer: Arc::new(Mutex::new(writer)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(connection: &Connection) -> i64 {
        connection
            .query_row("SELECT COUNT(*) FROM t", [], |row| row.get(0))
            .unwrap()
    }

    #[tokio::test]
    async fn a_transaction_left_unfinished_is_rolled_back_before_the_next_may_write() {
        let dir = tempfile::tempdir().unwrap();
        let database = SpinDatabase::open(&dir.path().join("spin.db"), 4).unwrap();
        let setup = database.pool.take().unwrap();
        setup.execute_batch("CREATE TABLE t (n INTEGER)").unwrap();

        let mut first = SqliteConnection::new(database.pool.take().unwrap());
        first.begin_writing(database.writer.clone().lock_owned().await);
        first.current().execute_batch("BEGIN IMMEDIATE").unwrap();
        first
            .current()
            .execute("INSERT INTO t VALUES (1)", [])
            .unwrap();
        first.end_writing_if_done();
        assert!(first.is_writing(), "mid-transaction, it keeps the writer");
        assert!(
            database.writer.clone().try_lock_owned().is_err(),
            "no other transaction begins meanwhile"
        );
        // Its instance trapped: the connection goes with it.
        drop(first);

        let mut next = SqliteConnection::new(database.pool.take().unwrap());
        next.begin_writing(database.writer.clone().lock_owned().await);
        assert_eq!(rows(next.current()), 0, "the unfinished insert is gone");
        next.current().execute_batch("BEGIN IMMEDIATE").unwrap();
        next.current()
            .execute("INSERT INTO t VALUES (2)", [])
            .unwrap();
        next.current().execute_batch("COMMIT").unwrap();
        next.end_writing_if_done();
        assert!(!next.is_writing(), "committed, it gives the writer back");
        assert_eq!(rows(&setup), 1);
    }
}
