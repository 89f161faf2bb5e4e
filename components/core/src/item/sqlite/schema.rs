//! The table every SQLite store shares, and bringing a database up to it.

use super::connection::{Connection, read_rows};
use crate::store::StoreError;

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS items (
    pk              TEXT NOT NULL,
    sk              TEXT NOT NULL,
    id              TEXT NOT NULL,
    -- WEBHOOK
    origin          TEXT,
    type            TEXT,
    created         INTEGER,
    received_at     INTEGER,
    idempotency_key TEXT,
    headers         TEXT,
    -- a payload stored before schema 4 (later ones are in `payloads`)
    payload         BLOB,
    -- STATUS (and DEAD#: retries = attempts made, updated_at = when, last_error = why,
    -- ATTEMPT#<ended_at>#<version>: retries = the attempt's number, received_at = when it
    -- started, updated_at = when it ended, status = its outcome, last_error = why,
    -- BODY#: id = the first webhook with this body, received_at = when,
    -- DESTINATIONS: sk = DEST#<a destination's name>, version, headers = its state as JSON,
    -- and HELD#<name>#<shard>: id = a webhook held for it, version = its status's)
    status          TEXT,
    retries         INTEGER,
    version         INTEGER,
    updated_at      INTEGER,
    lease_until     INTEGER,
    next_attempt_at INTEGER,
    last_error      TEXT,
    PRIMARY KEY (pk, sk)
);
-- The local retry queue: what is due, and which leases have expired.
CREATE INDEX IF NOT EXISTS items_due ON items (next_attempt_at)
    WHERE sk = 'STATUS' AND status IN ('received', 'failed');
CREATE INDEX IF NOT EXISTS items_leased ON items (lease_until)
    WHERE sk = 'STATUS' AND status = 'processing';
CREATE INDEX IF NOT EXISTS items_by_status ON items (status, updated_at)
    WHERE sk = 'STATUS';
-- What operators list: newest first, a page at a time.
CREATE INDEX IF NOT EXISTS items_by_received ON items (received_at, id)
    WHERE sk = 'WEBHOOK';
-- The replay guard's body digests, by when they were received, for the retention sweep
-- (a digest written before it has no time and is kept).
CREATE INDEX IF NOT EXISTS items_bodies ON items (received_at)
    WHERE sk = 'BODY';
-- Payloads, apart from the items that lists, counts and the worker's scans read: a body
-- may be 25 MB, and none of it should share their pages.
CREATE TABLE IF NOT EXISTS payloads (
    id      TEXT PRIMARY KEY,
    payload BLOB NOT NULL
);
PRAGMA user_version = 4;
";

/// The `user_version` the last statement of [`SCHEMA`] sets: bump both with every change to
/// it. A database that has it needs none of the statements ([`ensure_schema`]); one with
/// an older version gets them all again, which every statement allows (`IF NOT EXISTS`).
pub const SCHEMA_VERSION: i64 = 4;

/// Creates what [`SCHEMA`] creates, unless the database has it already: one read, where a
/// store that opens the database for every request (Spin's component) would otherwise run
/// every statement every time.
pub fn ensure_schema(db: &mut impl Connection) -> Result<(), StoreError> {
    let answer = db.execute("PRAGMA user_version", Vec::new())?;
    let version = read_rows(answer, |row| row.integer("user_version"))?;
    if version
        .first()
        .is_some_and(|version| *version >= SCHEMA_VERSION)
    {
        return Ok(());
    }
    for statement in schema_statements() {
        db.execute(statement, Vec::new())?;
    }
    Ok(())
}

/// The statements of [`SCHEMA`], one at a time (for drivers that run one per call).
pub fn schema_statements() -> impl Iterator<Item = &'static str> {
    SCHEMA.split(';').filter(|statement| {
        statement
            .lines()
            .any(|l| !l.trim().is_empty() && !l.trim().starts_with("--"))
    })
}
