//! SQLite connections, opened as every user of the file needs them, and kept open for the
//! next use: opening one (and setting it up) cost more than a request's statements. The
//! native store's writer and readers and the connections Spin's `spin:sqlite` hands to
//! store components all come from here.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

/// How long a statement waits for another connection's write before it fails, about.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest of its sleeps while it waits.
const LONGEST_WAIT: Duration = Duration::from_micros(800);

/// A SQLite connection as every SQLite store opens it: waiting for other writers rather
/// than failing, WAL so readers run beside the writer, and FULL so every COMMIT is durable
/// on return.
pub fn open_connection(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

/// Makes `conn` wait for another connection's write in short sleeps (50 µs, doubling up to
/// 800 µs) for about [`BUSY_TIMEOUT`]. SQLite's own sleeps grow to 100 ms at a time, long
/// after the write waited for has ended: right for a writer that gathers writes meanwhile
/// (the native store's), the tail of one that holds a request up (Spin's `spin:sqlite`).
pub fn wait_in_short_sleeps(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_handler(Some(wait_for_the_writer))
}

fn wait_for_the_writer(attempts: i32) -> bool {
    let longest = LONGEST_WAIT.as_micros() as u32;
    let most = 4 + BUSY_TIMEOUT.as_micros() as u32 / longest;
    let attempts = u32::try_from(attempts).unwrap_or(0);
    if attempts >= most {
        return false;
    }
    std::thread::sleep(Duration::from_micros(u64::from(
        (50 << attempts.min(4)).min(longest),
    )));
    true
}

pub struct ConnectionPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    max_idle: usize,
}

impl ConnectionPool {
    /// A pool of connections to `path`, keeping at most `max_idle` of them open unused.
    pub fn new(path: &Path, max_idle: usize) -> ConnectionPool {
        ConnectionPool {
            path: path.to_owned(),
            idle: Mutex::new(Vec::new()),
            max_idle,
        }
    }

    /// An idle connection, or a new one.
    pub fn take(&self) -> rusqlite::Result<Connection> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match idle {
            Some(connection) => Ok(connection),
            None => open_connection(&self.path),
        }
    }

    /// Keeps `connection` for the next use, unless it was left inside a transaction (its
    /// user trapped mid-way): that one is closed, which rolls the transaction back.
    pub fn give_back(&self, connection: Connection) {
        if connection.is_autocommit() {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < self.max_idle {
                idle.push(connection);
            }
        }
    }
}
