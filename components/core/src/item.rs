//! The seed's single-table layout, written once for every store.
//!
//! | item           | PK        | SK                 | holds                                   |
//! | -------------- | --------- | ------------------ | --------------------------------------- |
//! | Webhook        | `WH#<id>` | `WEBHOOK`          | the immutable delivery                  |
//! | Webhook Status | `WH#<id>` | `STATUS`           | state, retries, version, lease, due time |
//! | Dead letter    | `WH#<id>` | `DEAD#<unix ms>`   | why it needed an operator, kept forever |
//!
//! SQLite stores (the native one and Spin's) use [`SQLITE_SCHEMA`]: one table whose columns
//! are the attribute names, so a database file can be shared by both.

pub const WEBHOOK_SK: &str = "WEBHOOK";
pub const STATUS_SK: &str = "STATUS";
pub const DEAD_LETTER_SK_PREFIX: &str = "DEAD#";

pub fn pk(id: &str) -> String {
    format!("WH#{id}")
}

pub fn dead_letter_sk(at: i64) -> String {
    format!("{DEAD_LETTER_SK_PREFIX}{at:013}")
}

pub const SQLITE_SCHEMA: &str = "
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
    payload         BLOB,
    -- STATUS
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
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_seed() {
        assert_eq!(pk("57f0"), "WH#57f0");
        assert_eq!(dead_letter_sk(42), "DEAD#0000000000042");
        // Zero-padded so the dead letters of a webhook sort by time.
        assert!(dead_letter_sk(999) < dead_letter_sk(1_000));
    }
}
