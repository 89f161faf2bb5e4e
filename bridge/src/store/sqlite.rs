//! The store on embedded SQLite, in the single-table layout of `inbox_core::item`.
//!
//! Writes go through one thread that commits whatever requests are waiting in one
//! transaction (group commit): each caller is answered only after that COMMIT, which with
//! `synchronous=FULL` is durable, so a burst costs one fsync instead of one per webhook.
//! Reads run on a small pool of connections, concurrently with the writer (WAL).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use async_trait::async_trait;
use inbox_core::config::CaptureLimits;
use inbox_core::item::{self, DEAD_LETTER_SK_PREFIX, STATUS_SK, WEBHOOK_SK, WebhookItem, sql};
use inbox_core::lifecycle::{DeadLetter, Transition};
use inbox_core::model::StatusView;
use inbox_core::{State, Status, Webhook};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};
use tokio::sync::{Notify, oneshot};

use super::{Captured, Store, StoreError};

/// The most writes one commit carries.
const MAX_BATCH: usize = 512;
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

pub struct SqliteStore {
    path: PathBuf,
    writer: mpsc::Sender<Write>,
    readers: Mutex<Vec<Connection>>,
    written: Arc<Notify>,
}

enum WriteOp {
    Capture(Webhook),
    Swap {
        id: String,
        expected_version: u64,
        transition: Transition,
    },
}

enum Written {
    Captured(Captured),
    Swapped(bool),
}

struct Write {
    op: WriteOp,
    reply: oneshot::Sender<Result<Written, StoreError>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> anyhow::Result<SqliteStore> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let conn = open_connection(path)?;
        conn.execute_batch(item::SQLITE_SCHEMA)?;
        let written = Arc::new(Notify::new());
        let (writer, queue) = mpsc::channel();
        let notify = written.clone();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run_writer(conn, queue, notify))?;
        Ok(SqliteStore {
            path: path.to_owned(),
            writer,
            readers: Mutex::new(Vec::new()),
            written,
        })
    }

    /// Notified after every commit that changed something a worker may want to look at.
    pub fn written(&self) -> Arc<Notify> {
        self.written.clone()
    }

    async fn write(&self, op: WriteOp) -> Result<Written, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.writer
            .send(Write { op, reply })
            .map_err(|_| StoreError::Unavailable("the SQLite writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the SQLite writer dropped a write".into()))?
    }

    async fn read<T: Send + 'static>(
        &self,
        query: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let pooled = self.readers.lock().expect("reader pool").pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => open_connection(&self.path).map_err(unavailable)?,
        };
        let (conn, result) = tokio::task::spawn_blocking(move || {
            let result = query(&conn);
            (conn, result)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("a read was abandoned: {e}")))?;
        self.readers.lock().expect("reader pool").push(conn);
        result.map_err(unavailable)
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn capture(&self, webhook: &Webhook) -> Result<Captured, StoreError> {
        if webhook.payload.len() > CaptureLimits::HARD_MAX_BODY_BYTES {
            return Err(StoreError::TooLarge(format!(
                "the payload is {} bytes; a webhook holds at most {}",
                webhook.payload.len(),
                CaptureLimits::HARD_MAX_BODY_BYTES
            )));
        }
        match self.write(WriteOp::Capture(webhook.clone())).await? {
            Written::Captured(captured) => Ok(captured),
            Written::Swapped(_) => unreachable!("a capture answers with a capture"),
        }
    }

    async fn webhook(&self, id: &str) -> Result<Option<Webhook>, StoreError> {
        let pk = item::pk(id);
        let row = self
            .read(move |conn| {
                conn.query_row(sql::SELECT_WEBHOOK, params![pk, WEBHOOK_SK], webhook_row)
                    .optional()
            })
            .await?;
        row.map(|item| {
            item.into_webhook()
                .map_err(|e| StoreError::Corrupt(e.to_string()))
        })
        .transpose()
    }

    async fn status(&self, id: &str) -> Result<Option<Status>, StoreError> {
        let pk = item::pk(id);
        let row = self
            .read(move |conn| {
                conn.query_row(sql::SELECT_STATUS, params![pk, STATUS_SK], status_row)
                    .optional()
            })
            .await?;
        row.map(StatusRow::decode).transpose()
    }

    async fn swap_status(
        &self,
        id: &str,
        expected_version: u64,
        transition: &Transition,
    ) -> Result<bool, StoreError> {
        let op = WriteOp::Swap {
            id: id.to_owned(),
            expected_version,
            transition: transition.clone(),
        };
        match self.write(op).await? {
            Written::Swapped(swapped) => Ok(swapped),
            Written::Captured(_) => unreachable!("a swap answers with a swap"),
        }
    }

    async fn due(&self, now: i64, limit: usize) -> Result<Vec<String>, StoreError> {
        self.read(move |conn| {
            // Two queries so each uses its partial index.
            let mut ids = Vec::new();
            for sql in [
                "SELECT id FROM items WHERE sk = 'STATUS' AND status IN ('received', 'failed')
                 AND next_attempt_at <= ?1 ORDER BY next_attempt_at LIMIT ?2",
                "SELECT id FROM items WHERE sk = 'STATUS' AND status = 'processing'
                 AND lease_until <= ?1 ORDER BY lease_until LIMIT ?2",
            ] {
                let mut statement = conn.prepare_cached(sql)?;
                let rows = statement.query_map(params![now, limit as i64], |row| row.get(0))?;
                for id in rows {
                    ids.push(id?);
                }
            }
            ids.truncate(limit);
            Ok(ids)
        })
        .await
    }

    async fn list(
        &self,
        state: Option<State>,
        limit: usize,
    ) -> Result<Vec<StatusView>, StoreError> {
        let rows = self
            .read(move |conn| {
                let mut statement = conn.prepare_cached(sql::LIST)?;
                let rows = statement.query_map(
                    params![state.map(State::as_str), limit as i64],
                    |row| {
                        Ok((
                            StatusView {
                                id: row.get(0)?,
                                origin: row.get(1)?,
                                event_type: row.get(2)?,
                                received_at: row.get(3)?,
                                status: State::Received,
                                retries: row.get(5)?,
                                last_error: row.get(6)?,
                                updated_at: row.get(7)?,
                                next_attempt_at: row.get(8)?,
                            },
                            row.get::<_, String>(4)?,
                        ))
                    },
                )?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        rows.into_iter()
            .map(|(view, state)| {
                Ok(StatusView {
                    status: state.parse().map_err(StoreError::Corrupt)?,
                    ..view
                })
            })
            .collect()
    }

    async fn dead_letters(&self, id: &str) -> Result<Vec<DeadLetter>, StoreError> {
        let pk = item::pk(id);
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(
                "SELECT updated_at, retries, last_error FROM items
                 WHERE pk = ?1 AND sk >= ?2 AND sk < ?3 ORDER BY sk",
            )?;
            // Every SK of a dead letter starts with the prefix; '~' sorts after its digits.
            let rows = statement.query_map(
                params![
                    pk,
                    DEAD_LETTER_SK_PREFIX,
                    format!("{DEAD_LETTER_SK_PREFIX}~")
                ],
                |row| {
                    Ok(DeadLetter {
                        at: row.get(0)?,
                        attempts: row.get(1)?,
                        reason: row.get(2)?,
                    })
                },
            )?;
            rows.collect()
        })
        .await
    }
}

fn open_connection(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // WAL lets readers run beside the writer; FULL makes every COMMIT durable on return.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

fn run_writer(mut conn: Connection, queue: mpsc::Receiver<Write>, written: Arc<Notify>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(write) => batch.push(write),
                Err(_) => break,
            }
        }
        let (ops, replies): (Vec<_>, Vec<_>) = batch.into_iter().map(|w| (w.op, w.reply)).unzip();
        match commit(&mut conn, &ops) {
            Ok(results) => {
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(result);
                }
                written.notify_waiters();
            }
            Err(error) => {
                tracing::error!(%error, writes = ops.len(), "SQLite commit failed");
                for reply in replies {
                    let _ = reply.send(Err(unavailable(&error)));
                }
            }
        }
    }
}

/// Applies every write in one transaction; each write is atomic on its own (a savepoint),
/// so one failing write does not take the others down with it.
fn commit(
    conn: &mut Connection,
    ops: &[WriteOp],
) -> rusqlite::Result<Vec<Result<Written, StoreError>>> {
    let mut tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut results = Vec::with_capacity(ops.len());
    for op in ops {
        let savepoint = tx.savepoint()?;
        let result = apply(&savepoint, op);
        if result.is_ok() {
            savepoint.commit()?;
        }
        results.push(result.map_err(unavailable));
    }
    tx.commit()?;
    Ok(results)
}

fn apply(conn: &Connection, op: &WriteOp) -> rusqlite::Result<Written> {
    match op {
        WriteOp::Capture(webhook) => {
            let item = WebhookItem::new(webhook, None);
            let pk = item.pk.clone();
            let inserted = conn.execute(
                sql::INSERT_WEBHOOK,
                params![
                    item.pk,
                    item.sk,
                    item.id,
                    item.origin,
                    item.event_type,
                    item.created,
                    item.received_at,
                    item.idempotency_key,
                    item.headers,
                    item.payload,
                ],
            )?;
            if inserted == 0 {
                let existing = conn
                    .query_row(sql::SELECT_STATUS, params![pk, STATUS_SK], status_row)?
                    .decode()
                    .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
                return Ok(Written::Captured(Captured::Duplicate(existing)));
            }
            let status = Status::received(webhook.received_at);
            conn.execute(
                sql::INSERT_STATUS,
                params![
                    pk,
                    STATUS_SK,
                    webhook.id,
                    status.state.as_str(),
                    status.retries,
                    status.version as i64,
                    status.updated_at,
                    status.lease_until,
                    status.next_attempt_at,
                    status.last_error,
                ],
            )?;
            Ok(Written::Captured(Captured::Stored(status)))
        }
        WriteOp::Swap {
            id,
            expected_version,
            transition,
        } => {
            let pk = item::pk(id);
            let status = &transition.status;
            let swapped = conn.execute(
                sql::SWAP_STATUS,
                params![
                    status.state.as_str(),
                    status.retries,
                    status.version as i64,
                    status.updated_at,
                    status.lease_until,
                    status.next_attempt_at,
                    status.last_error,
                    pk,
                    STATUS_SK,
                    *expected_version as i64,
                ],
            )? == 1;
            if swapped && let Some(letter) = &transition.dead_letter {
                conn.execute(
                    sql::INSERT_DEAD_LETTER,
                    params![
                        pk,
                        item::dead_letter_sk(letter.at),
                        id,
                        letter.attempts,
                        letter.at,
                        letter.reason
                    ],
                )?;
            }
            Ok(Written::Swapped(swapped))
        }
    }
}

struct StatusRow {
    state: String,
    retries: u32,
    version: i64,
    updated_at: i64,
    lease_until: Option<i64>,
    next_attempt_at: Option<i64>,
    last_error: Option<String>,
}

fn status_row(row: &Row<'_>) -> rusqlite::Result<StatusRow> {
    Ok(StatusRow {
        state: row.get(0)?,
        retries: row.get(1)?,
        version: row.get(2)?,
        updated_at: row.get(3)?,
        lease_until: row.get(4)?,
        next_attempt_at: row.get(5)?,
        last_error: row.get(6)?,
    })
}

impl StatusRow {
    fn decode(self) -> Result<Status, StoreError> {
        Ok(Status {
            state: self.state.parse().map_err(StoreError::Corrupt)?,
            retries: self.retries,
            version: u64::try_from(self.version)
                .map_err(|_| StoreError::Corrupt("negative version".into()))?,
            updated_at: self.updated_at,
            lease_until: self.lease_until,
            next_attempt_at: self.next_attempt_at,
            last_error: self.last_error,
        })
    }
}

fn webhook_row(row: &Row<'_>) -> rusqlite::Result<WebhookItem> {
    Ok(WebhookItem {
        pk: row.get(0)?,
        sk: row.get(1)?,
        id: row.get(2)?,
        origin: row.get(3)?,
        event_type: row.get(4)?,
        created: row.get(5)?,
        received_at: row.get(6)?,
        idempotency_key: row.get(7)?,
        headers: row.get(8)?,
        payload: row.get(9)?,
        expires_at: None,
    })
}

fn unavailable(error: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use inbox_core::lifecycle::{Outcome, RetryPolicy};

    use super::*;

    fn webhook(key: &str) -> Webhook {
        Webhook {
            id: inbox_core::id::webhook_id("bigcommerce", key),
            origin: "bigcommerce".into(),
            event_type: "store/order/created".into(),
            provider_timestamp: Some(1_561_479_335),
            received_at: 1_000,
            idempotency_key: key.into(),
            headers: vec![("content-type".into(), "application/json".into())],
            payload: br#"{"hash":"x"}"#.to_vec(),
        }
    }

    fn open() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("nested/inbox.db")).unwrap();
        (dir, store)
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_retries: 2,
            base_delay_ms: 10,
            max_delay_ms: 1_000,
        }
    }

    #[tokio::test]
    async fn capture_writes_both_items_and_a_duplicate_writes_nothing() {
        let (_dir, store) = open();
        let hook = webhook("a");
        assert_eq!(
            store.capture(&hook).await.unwrap(),
            Captured::Stored(Status::received(1_000))
        );
        assert_eq!(store.webhook(&hook.id).await.unwrap(), Some(hook.clone()));

        let mut redelivery = hook.clone();
        redelivery.received_at = 2_000;
        redelivery.payload = b"{}".to_vec();
        assert_eq!(
            store.capture(&redelivery).await.unwrap(),
            Captured::Duplicate(Status::received(1_000))
        );
        assert_eq!(
            store.webhook(&hook.id).await.unwrap(),
            Some(hook),
            "never overwritten"
        );
        assert_eq!(store.status("missing").await.unwrap(), None);
    }

    #[tokio::test]
    async fn concurrent_writes_share_commits_and_each_gets_its_own_answer() {
        let (_dir, store) = open();
        let store = Arc::new(store);
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let store = store.clone();
                // Every key twice: one of each pair is stored, the other is a duplicate.
                tokio::spawn(
                    async move { store.capture(&webhook(&(i / 2).to_string())).await.unwrap() },
                )
            })
            .collect();
        let mut stored = 0;
        for task in tasks {
            if matches!(task.await.unwrap(), Captured::Stored(_)) {
                stored += 1;
            }
        }
        assert_eq!(stored, 100);
        assert_eq!(store.list(None, 1_000).await.unwrap().len(), 100);
    }

    #[tokio::test]
    async fn status_changes_are_compare_and_swap() {
        let (_dir, store) = open();
        let hook = webhook("cas");
        store.capture(&hook).await.unwrap();
        let received = store.status(&hook.id).await.unwrap().unwrap();

        let claim = |status: &Status| Transition {
            status: status.claim(1_000, 60_000).unwrap(),
            dead_letter: None,
        };
        assert!(
            store
                .swap_status(&hook.id, received.version, &claim(&received))
                .await
                .unwrap()
        );
        // A second worker that read the same `received` status loses.
        assert!(
            !store
                .swap_status(&hook.id, received.version, &claim(&received))
                .await
                .unwrap()
        );
        assert_eq!(
            store.due(1_000, 10).await.unwrap(),
            Vec::<String>::new(),
            "leased"
        );
        assert_eq!(
            store.due(61_000, 10).await.unwrap(),
            vec![hook.id.clone()],
            "lease expired"
        );

        let processing = store.status(&hook.id).await.unwrap().unwrap();
        let rejected = processing
            .finish(
                &Outcome::Reject {
                    reason: "no".into(),
                },
                &policy(),
                2_000,
            )
            .unwrap();
        assert!(
            store
                .swap_status(&hook.id, processing.version, &rejected)
                .await
                .unwrap()
        );
        let dead = store.status(&hook.id).await.unwrap().unwrap();
        assert_eq!(dead.state, State::OperatorRequired);
        assert_eq!(
            store.dead_letters(&hook.id).await.unwrap(),
            vec![DeadLetter {
                at: 2_000,
                attempts: 1,
                reason: "rejected: no".into()
            }]
        );
        let listed = store.list(Some(State::OperatorRequired), 10).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].event_type, "store/order/created");
    }

    #[tokio::test]
    async fn due_follows_the_backoff() {
        let (_dir, store) = open();
        let hook = webhook("due");
        store.capture(&hook).await.unwrap();
        assert_eq!(store.due(999, 10).await.unwrap(), Vec::<String>::new());
        assert_eq!(store.due(1_000, 10).await.unwrap(), vec![hook.id.clone()]);

        let received = store.status(&hook.id).await.unwrap().unwrap();
        let claimed = received.claim(1_000, 60_000).unwrap();
        let claim = Transition {
            status: claimed.clone(),
            dead_letter: None,
        };
        assert!(
            store
                .swap_status(&hook.id, received.version, &claim)
                .await
                .unwrap()
        );
        let retry = Outcome::Retry {
            reason: "503".into(),
            delay_ms: None,
        };
        let failed = claimed.finish(&retry, &policy(), 1_100).unwrap();
        assert!(
            store
                .swap_status(&hook.id, claimed.version, &failed)
                .await
                .unwrap()
        );
        assert_eq!(store.due(1_109, 10).await.unwrap(), Vec::<String>::new());
        assert_eq!(store.due(1_110, 10).await.unwrap(), vec![hook.id]);
    }

    #[tokio::test]
    async fn oversized_payloads_are_refused_not_truncated() {
        let (_dir, store) = open();
        let mut hook = webhook("big");
        hook.payload = vec![b' '; CaptureLimits::HARD_MAX_BODY_BYTES + 1];
        assert!(matches!(
            store.capture(&hook).await,
            Err(StoreError::TooLarge(_))
        ));
        assert_eq!(store.webhook(&hook.id).await.unwrap(), None);
    }
}
