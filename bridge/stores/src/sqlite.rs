//! The store on embedded SQLite: the SQLite store of `inbox_core::item::sqlite` (the
//! statements every SQLite store runs, Spin's component included) over rusqlite.
//!
//! Writes go through one thread that commits whatever requests are waiting in one
//! transaction (group commit): each caller is answered only after that COMMIT, which with
//! `synchronous=FULL` is durable, so a burst costs one fsync instead of one per webhook.
//! Reads run on a small pool of connections, concurrently with the writer (WAL).

use std::path::Path;
use std::sync::{Arc, mpsc};

use async_trait::async_trait;
use inbox_core::destination::{Destination, Held};
use inbox_core::item::Retention;
use inbox_core::item::sqlite::{self, Answer, Swept, Value};
use inbox_core::lifecycle::Transition;
use inbox_core::listing::{Counts, Filter, Page, Query};
use inbox_core::model::Details;
use inbox_core::{State, Status, Webhook};
use rusqlite::Connection;
use rusqlite::types::ValueRef;
use tokio::sync::{Notify, oneshot};

use super::{Captured, StoreError, Waits, WebhookStore};
use crate::pool::{ConnectionPool, open_connection};

/// The most writes one commit carries.
const MAX_BATCH: usize = 512;
/// Writes waiting for the writer, at most: past it, a write is refused at once (the store
/// is busy, and capture answers 503) rather than queued without end.
pub const DEFAULT_MAX_QUEUED_WRITES: usize = 4_096;
/// Reader connections kept open while idle; reads beyond them at once open their own and
/// close them after.
const MAX_IDLE_READERS: usize = 64;

pub struct SqliteStore {
    writer: mpsc::SyncSender<Write>,
    readers: ConnectionPool,
    written: Arc<Notify>,
}

enum WriteOp {
    Capture {
        webhook: Webhook,
        refuse_replayed_body: bool,
    },
    Swap {
        id: String,
        expected_version: u64,
        transition: Transition,
    },
    Sweep {
        completed_before: Option<i64>,
        bodies_before: Option<i64>,
    },
    SwapDestination {
        expected_version: u64,
        destination: Destination,
    },
    Unhold {
        name: String,
        held: Held,
    },
}

enum WriteAnswer {
    Captured(Captured),
    Swapped(bool),
    Swept(Swept),
    Unheld,
}

struct Write {
    op: WriteOp,
    reply: oneshot::Sender<Result<WriteAnswer, StoreError>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> anyhow::Result<SqliteStore> {
        SqliteStore::open_bounded(path, DEFAULT_MAX_QUEUED_WRITES)
    }

    /// Opens the database at `path`, refusing writes while `max_queued_writes` wait.
    pub fn open_bounded(path: &Path, max_queued_writes: usize) -> anyhow::Result<SqliteStore> {
        SqliteStore::open_with(path, max_queued_writes, MAX_BATCH)
    }

    /// Opens the database at `path` committing each write on its own, as a store reached
    /// statement by statement (Spin's `spin:sqlite`) must: the benchmarks' baseline for the
    /// store component.
    pub fn open_committing_each(path: &Path) -> anyhow::Result<SqliteStore> {
        SqliteStore::open_with(path, DEFAULT_MAX_QUEUED_WRITES, 1)
    }

    fn open_with(
        path: &Path,
        max_queued_writes: usize,
        max_batch: usize,
    ) -> anyhow::Result<SqliteStore> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let conn = open_connection(path)?;
        // Nothing written when the schema is there: a read-only database still opens.
        sqlite::ensure_schema(&mut Rusqlite(&conn))?;
        let written = Arc::new(Notify::new());
        let (writer, queue) = mpsc::sync_channel(max_queued_writes);
        let notify = written.clone();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                let run =
                    std::panic::AssertUnwindSafe(|| run_writer(conn, queue, notify, max_batch));
                if std::panic::catch_unwind(run).is_err() {
                    // Without its writer the store could only answer 503 from now on while
                    // the process looks alive: stop, so a supervisor starts a working one
                    // (every acknowledged write is committed already).
                    tracing::error!("the SQLite writer panicked; stopping the process");
                    std::process::abort();
                }
            })?;
        Ok(SqliteStore {
            writer,
            readers: ConnectionPool::new(path, MAX_IDLE_READERS),
            written,
        })
    }

    /// Notified after a commit that brought a worker something to do (see [`brings_work`]).
    pub fn written(&self) -> Arc<Notify> {
        self.written.clone()
    }

    async fn write(&self, op: WriteOp) -> Result<WriteAnswer, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.writer
            .try_send(Write { op, reply })
            .map_err(|error| match error {
                mpsc::TrySendError::Full(_) => StoreError::Unavailable(
                    "the store is busy: too many writes are waiting (INBOX_MAX_QUEUED_WRITES)"
                        .into(),
                ),
                mpsc::TrySendError::Disconnected(_) => {
                    StoreError::Unavailable("the SQLite writer has stopped".into())
                }
            })?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the SQLite writer dropped a write".into()))?
    }

    /// Deletes what `retention` no longer keeps at `now_ms`: webhooks completed longer
    /// ago, with every item of each, and body digests past the replay guard. A batch of
    /// [`sqlite::SWEEP_BATCH`] a write, so captures queued meanwhile wait for one batch at
    /// most, never for the whole sweep.
    pub async fn sweep(&self, now_ms: i64, retention: &Retention) -> Result<Swept, StoreError> {
        let before = |keep: Option<u64>| {
            keep.map(|secs| {
                now_ms.saturating_sub(
                    i64::try_from(secs)
                        .unwrap_or(i64::MAX)
                        .saturating_mul(1_000),
                )
            })
        };
        let op = || WriteOp::Sweep {
            completed_before: before(retention.completed_secs),
            bodies_before: before(retention.body_secs),
        };
        let mut total = Swept::default();
        loop {
            let WriteAnswer::Swept(swept) = self.write(op()).await? else {
                unreachable!("a sweep answers with a sweep");
            };
            total.webhooks += swept.webhooks;
            total.bodies += swept.bodies;
            let full = sqlite::SWEEP_BATCH as u64;
            if swept.webhooks < full && swept.bodies < full {
                return Ok(total);
            }
        }
    }

    /// Runs `query` on a pooled reader connection, off the async threads.
    async fn read<T: Send + 'static>(
        &self,
        query: impl FnOnce(&mut Rusqlite<'_>) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.readers.take().map_err(unavailable)?;
        let (conn, result) = tokio::task::spawn_blocking(move || {
            let result = query(&mut Rusqlite(&conn));
            (conn, result)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("a read was abandoned: {e}")))?;
        self.readers.give_back(conn);
        result
    }
}

#[async_trait]
impl WebhookStore for SqliteStore {
    async fn capture(
        &self,
        webhook: Webhook,
        refuse_replayed_body: bool,
    ) -> Result<Captured, StoreError> {
        sqlite::check_size(&webhook)?;
        let op = WriteOp::Capture {
            webhook,
            refuse_replayed_body,
        };
        match self.write(op).await? {
            WriteAnswer::Captured(captured) => Ok(captured),
            _ => unreachable!("a capture answers with a capture"),
        }
    }

    async fn webhook(&self, id: &str) -> Result<Option<Webhook>, StoreError> {
        let id = id.to_owned();
        self.read(move |db| sqlite::webhook(db, &id)).await
    }

    async fn status(&self, id: &str) -> Result<Option<Status>, StoreError> {
        let id = id.to_owned();
        self.read(move |db| sqlite::status(db, &id)).await
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
            WriteAnswer::Swapped(swapped) => Ok(swapped),
            _ => unreachable!("a swap answers with a swap"),
        }
    }

    async fn due(&self, now: i64, limit: usize) -> Result<Vec<String>, StoreError> {
        self.read(move |db| sqlite::due(db, now, limit)).await
    }

    async fn waiting(
        &self,
        waits: Waits,
        limit: usize,
    ) -> Result<Vec<(String, Status)>, StoreError> {
        self.read(move |db| sqlite::waiting(db, waits, limit)).await
    }

    async fn list(&self, query: &Query) -> Result<Page, StoreError> {
        let query = query.clone();
        self.read(move |db| sqlite::list(db, &query)).await
    }

    async fn counts(&self, filter: &Filter) -> Result<Counts, StoreError> {
        let filter = filter.clone();
        self.read(move |db| sqlite::counts(db, &filter)).await
    }

    async fn details(&self, id: &str) -> Result<Option<Details>, StoreError> {
        let id = id.to_owned();
        self.read(move |db| sqlite::details(db, &id)).await
    }

    async fn destinations(&self) -> Result<Vec<Destination>, StoreError> {
        self.read(|db| sqlite::destinations(db)).await
    }

    async fn destination(&self, name: &str) -> Result<Option<Destination>, StoreError> {
        let name = name.to_owned();
        self.read(move |db| sqlite::destination(db, &name)).await
    }

    async fn swap_destination(
        &self,
        expected_version: u64,
        destination: &Destination,
    ) -> Result<bool, StoreError> {
        let op = WriteOp::SwapDestination {
            expected_version,
            destination: destination.clone(),
        };
        match self.write(op).await? {
            WriteAnswer::Swapped(swapped) => Ok(swapped),
            _ => unreachable!("a swap answers with a swap"),
        }
    }

    async fn held(&self, name: &str, limit: usize) -> Result<Vec<Held>, StoreError> {
        let name = name.to_owned();
        self.read(move |db| sqlite::held(db, &name, limit)).await
    }

    async fn held_count(&self, name: &str) -> Result<u64, StoreError> {
        let name = name.to_owned();
        self.read(move |db| sqlite::held_count(db, &name)).await
    }

    async fn unhold(&self, name: &str, held: &Held) -> Result<(), StoreError> {
        let op = WriteOp::Unhold {
            name: name.to_owned(),
            held: held.clone(),
        };
        self.write(op).await.map(|_| ())
    }
}

/// rusqlite as the core's [`sqlite::Connection`]: it runs a statement and carries the
/// values both ways. (Spin's `spin:sqlite`, served by the wasm host, runs through it too.)
pub struct Rusqlite<'a>(pub &'a Connection);

impl Rusqlite<'_> {
    pub fn run(&self, sql: &str, params: Vec<Value>) -> rusqlite::Result<Answer> {
        let mut statement = self.0.prepare_cached(sql)?;
        let columns: Vec<String> = statement
            .column_names()
            .into_iter()
            .map(str::to_owned)
            .collect();
        let params = params.into_iter().map(to_sqlite);
        let mut rows = statement.query(rusqlite::params_from_iter(params))?;
        let mut values = Vec::new();
        while let Some(row) = rows.next()? {
            let row = (0..columns.len())
                .map(|i| row.get_ref(i).map(from_sqlite))
                .collect::<rusqlite::Result<_>>()?;
            values.push(row);
        }
        drop(rows);
        Ok(Answer {
            columns,
            rows: values,
            changes: self.0.changes(),
        })
    }
}

impl sqlite::Connection for Rusqlite<'_> {
    fn execute(&mut self, sql: &str, params: Vec<Value>) -> Result<Answer, StoreError> {
        self.run(sql, params).map_err(unavailable)
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

fn run_writer(
    mut conn: Connection,
    queue: mpsc::Receiver<Write>,
    written: Arc<Notify>,
    max_batch: usize,
) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match queue.try_recv() {
                Ok(write) => batch.push(write),
                Err(_) => break,
            }
        }
        let (ops, replies): (Vec<_>, Vec<_>) = batch.into_iter().map(|w| (w.op, w.reply)).unzip();
        let wakes: Vec<bool> = ops.iter().map(wakes_a_worker).collect();
        let writes = ops.len();
        match commit(&mut conn, ops) {
            Ok(results) => {
                let new_work = wakes.into_iter().zip(&results).any(brings_work);
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(result);
                }
                if new_work {
                    written.notify_waiters();
                }
            }
            Err(error) => {
                tracing::error!(%error, writes, "SQLite commit failed");
                for reply in replies {
                    let _ = reply.send(Err(unavailable(&error)));
                }
            }
        }
    }
}

/// Whether a write, once it has done what it asks, gives a worker something to do now: a
/// webhook captured, or one sent round again (replayed or requeued, back to `received`).
/// An attempt's own writes do not (the worker looks again when an attempt ends), nor do
/// retries, which come due later and are polled for.
fn wakes_a_worker(op: &WriteOp) -> bool {
    match op {
        WriteOp::Capture { .. } => true,
        WriteOp::Swap { transition, .. } => transition.status.state == State::Received,
        WriteOp::Sweep { .. } | WriteOp::SwapDestination { .. } | WriteOp::Unhold { .. } => false,
    }
}

/// Whether a committed write brought a worker something to do: one that wakes a worker
/// ([`wakes_a_worker`]) and did it (stored, or swapped).
fn brings_work((wakes, result): (bool, &Result<WriteAnswer, StoreError>)) -> bool {
    wakes
        && matches!(
            result,
            Ok(WriteAnswer::Captured(Captured::Stored(_)) | WriteAnswer::Swapped(true))
        )
}

/// Applies every write in one transaction; each write is atomic on its own (a savepoint),
/// so one failing write does not take the others down with it.
fn commit(
    conn: &mut Connection,
    ops: Vec<WriteOp>,
) -> rusqlite::Result<Vec<Result<WriteAnswer, StoreError>>> {
    let mut tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut results = Vec::with_capacity(ops.len());
    for op in ops {
        let savepoint = tx.savepoint()?;
        let result = apply(&mut Rusqlite(&savepoint), op);
        if result.is_ok() {
            savepoint.commit()?;
        }
        results.push(result);
    }
    tx.commit()?;
    Ok(results)
}

/// Carries out one write; a capture's payload moves into its statement.
fn apply(db: &mut Rusqlite<'_>, op: WriteOp) -> Result<WriteAnswer, StoreError> {
    match op {
        WriteOp::Capture {
            webhook,
            refuse_replayed_body,
        } => sqlite::capture(db, webhook, refuse_replayed_body).map(WriteAnswer::Captured),
        WriteOp::Swap {
            id,
            expected_version,
            transition,
        } => sqlite::swap_status(db, &id, expected_version, &transition).map(WriteAnswer::Swapped),
        WriteOp::Sweep {
            completed_before,
            bodies_before,
        } => sqlite::sweep(db, completed_before, bodies_before, sqlite::SWEEP_BATCH)
            .map(WriteAnswer::Swept),
        WriteOp::SwapDestination {
            expected_version,
            destination,
        } => sqlite::swap_destination(db, expected_version, &destination).map(WriteAnswer::Swapped),
        WriteOp::Unhold { name, held } => {
            sqlite::unhold(db, &name, &held).map(|()| WriteAnswer::Unheld)
        }
    }
}

fn unavailable(error: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use inbox_core::config::CaptureLimits;
    use inbox_core::lifecycle::{Outcome, RetryPolicy};
    use inbox_core::listing::Cursor;
    use inbox_core::model::{Attempt, DeadLetter};

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
        RetryPolicy::Backoff {
            max_retries: 2,
            base_delay_ms: 10,
            max_delay_ms: 1_000,
        }
    }

    #[tokio::test]
    async fn a_database_of_the_first_schema_is_brought_up_to_date_when_opened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("inbox.db");
        {
            // The first schema: no index by received_at, user_version 1, one webhook in it.
            let conn = open_connection(&path).unwrap();
            let first = sqlite::SCHEMA
                .split("-- What operators list")
                .next()
                .unwrap()
                .to_owned()
                + "PRAGMA user_version = 1;";
            conn.execute_batch(&first).unwrap();
            // A webhook stored then, its payload in its item.
            conn.execute(
                "INSERT INTO items (pk, sk, id, origin, type, received_at, idempotency_key,
                 headers, payload) VALUES ('WH#before', 'WEBHOOK', 'before', 'stripe', 'x', 1,
                 'evt_before', '[]', X'7B7D')",
                [],
            )
            .unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        store.capture(webhook("old"), false).await.unwrap();
        // The payload stored before schema 4 is still read, and one stored after it too.
        let before = store.webhook("before").await.unwrap().unwrap();
        assert_eq!(before.payload, b"{}");
        let after = webhook("old");
        let stored = store.webhook(&after.id).await.unwrap().unwrap();
        assert_eq!(stored.payload, after.payload);
        let conn = open_connection(&path).unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap();
        assert_eq!(version, sqlite::SCHEMA_VERSION);
        let indexed: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name = 'items_by_received'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(indexed, 1);
        assert_eq!(
            store.list(&Query::default()).await.unwrap().webhooks.len(),
            1
        );
    }

    /// Takes `hook` (stored, received) through one attempt ending in `outcome` at `at`.
    async fn finish(store: &SqliteStore, hook: &Webhook, outcome: Outcome, at: i64) {
        let status = store.status(&hook.id).await.unwrap().unwrap();
        let claimed = status.claim(at, 1_000, &policy()).unwrap();
        let claim = Transition::to(claimed.clone());
        assert!(
            store
                .swap_status(&hook.id, status.version, &claim)
                .await
                .unwrap()
        );
        let done = claimed.finish("w", &outcome, &policy(), at).unwrap();
        assert!(
            store
                .swap_status(&hook.id, claimed.version, &done)
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn the_sweep_deletes_completed_webhooks_past_retention_and_nothing_that_needs_work() {
        const DAY: i64 = 86_400_000;
        let (dir, store) = open();
        let retention = Retention {
            completed_secs: Some(30 * 86_400),
            body_secs: Some(90 * 86_400),
        };
        let reject = Outcome::Reject {
            reason: "410".into(),
        };
        // More old completed ones than a batch, one dead as long, one completed lately.
        let old: Vec<Webhook> = (0..sqlite::SWEEP_BATCH + 20)
            .map(|n| Webhook {
                payload: format!(r#"{{"hash":"{n}"}}"#).into_bytes(),
                ..webhook(&format!("old-{n}"))
            })
            .collect();
        for hook in &old {
            store.capture(hook.clone(), true).await.unwrap();
            finish(&store, hook, Outcome::Completed, 2_000).await;
        }
        let dead = webhook("dead");
        store.capture(dead.clone(), false).await.unwrap();
        finish(&store, &dead, reject, 2_000).await;
        let recent = webhook("recent");
        store.capture(recent.clone(), false).await.unwrap();
        finish(&store, &recent, Outcome::Completed, 10 * DAY).await;

        let swept = store.sweep(31 * DAY, &retention).await.unwrap();
        assert_eq!(
            swept,
            Swept {
                webhooks: old.len() as u64,
                bodies: 0
            }
        );
        assert_eq!(store.details(&old[0].id).await.unwrap(), None);
        assert_eq!(store.webhook(&old[7].id).await.unwrap(), None);
        // Each swept webhook's payload went with it.
        let payloads: i64 = open_connection(&dir.path().join("nested/inbox.db"))
            .unwrap()
            .query_row("SELECT COUNT(*) FROM payloads", [], |row| row.get(0))
            .unwrap();
        assert_eq!(payloads, 2);
        let dead_now = store.status(&dead.id).await.unwrap().unwrap();
        assert_eq!(dead_now.state, State::OperatorRequired);
        assert_eq!(
            store
                .details(&dead.id)
                .await
                .unwrap()
                .unwrap()
                .attempts
                .len(),
            1
        );
        assert!(store.webhook(&recent.id).await.unwrap().is_some());
        let counts = store.counts(&Filter::default()).await.unwrap();
        assert_eq!(counts.total(), 2);

        // The body of a swept webhook is still refused, as the duplicate of a completed one.
        let mut again = webhook("old-0-redelivered");
        again.payload = old[0].payload.clone();
        match store.capture(again.clone(), true).await.unwrap() {
            Captured::Duplicate { id, status } => {
                assert_eq!((id, status.state), (old[0].id.clone(), State::Completed));
            }
            stored => panic!("a body the guard still knows was stored: {stored:?}"),
        }
        // Under its own id too: the same delivery again is not a new webhook.
        assert!(matches!(
            store.capture(old[1].clone(), true).await.unwrap(),
            Captured::Duplicate { .. }
        ));
        assert_eq!(store.webhook(&old[1].id).await.unwrap(), None);
        // Past the replay guard the digests go too, and the body is new again.
        let swept = store.sweep(91 * DAY, &retention).await.unwrap();
        assert_eq!(swept.bodies, old.len() as u64);
        assert!(matches!(
            store.capture(again, true).await.unwrap(),
            Captured::Stored(_)
        ));
        assert_eq!(
            store.sweep(91 * DAY, &Retention::default()).await.unwrap(),
            Swept::default(),
            "kept forever"
        );
    }

    #[tokio::test]
    async fn capture_writes_both_items_and_a_duplicate_writes_nothing() {
        let (_dir, store) = open();
        let hook = webhook("a");
        assert_eq!(
            store.capture(hook.clone(), false).await.unwrap(),
            Captured::Stored(Status::received(1_000))
        );
        assert_eq!(store.webhook(&hook.id).await.unwrap(), Some(hook.clone()));

        let mut redelivery = hook.clone();
        redelivery.received_at = 2_000;
        redelivery.payload = b"{}".to_vec();
        assert_eq!(
            store.capture(redelivery.clone(), false).await.unwrap(),
            Captured::Duplicate {
                id: hook.id.clone(),
                status: Status::received(1_000)
            }
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
                tokio::spawn(async move {
                    store
                        .capture(webhook(&(i / 2).to_string()), false)
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut stored = 0;
        for task in tasks {
            if matches!(task.await.unwrap(), Captured::Stored(_)) {
                stored += 1;
            }
        }
        assert_eq!(stored, 100);
        // Paged 30 at a time from the cursor: every webhook once, newest first.
        let mut query = Query {
            limit: 30,
            ..Query::default()
        };
        let mut seen = Vec::new();
        loop {
            let page = store.list(&query).await.unwrap();
            seen.extend(page.webhooks);
            match page.next {
                Some(next) => query.after = Some(next),
                None => break,
            }
        }
        assert_eq!(seen.len(), 100);
        let order: Vec<_> = seen.iter().map(Cursor::of).collect();
        assert!(
            order.windows(2).all(|w| w[0] > w[1]),
            "newest first, no repeats"
        );
        let one = Query {
            filter: Filter {
                search: Some(seen[42].id.clone()),
                ..Filter::default()
            },
            ..Query::default()
        };
        assert_eq!(
            store.list(&one).await.unwrap().webhooks,
            vec![seen[42].clone()]
        );
        assert_eq!(
            store.counts(&Filter::default()).await.unwrap().0[&State::Received],
            100
        );
    }

    /// The replay guard's race, none stored before: of eight deliveries of one body under
    /// distinct ids at once, one is stored and the others are its duplicates.
    #[tokio::test]
    async fn racing_replays_of_one_body_store_it_once() {
        let (_dir, store) = open();
        let store = Arc::new(store);
        let tasks: Vec<_> = (0..8)
            .map(|n| {
                let (store, replay) = (store.clone(), webhook(&format!("delivery-{n}")));
                tokio::spawn(async move {
                    let id = replay.id.clone();
                    (id, store.capture(replay, true).await.unwrap())
                })
            })
            .collect();
        let mut stored = Vec::new();
        let mut duplicates = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                (id, Captured::Stored(_)) => stored.push(id),
                (id, Captured::Duplicate { id: first, .. }) => duplicates.push((id, first)),
            }
        }
        assert_eq!(stored.len(), 1, "{stored:?}");
        for (id, first) in duplicates {
            assert_eq!(first, stored[0]);
            assert_eq!(store.status(&id).await.unwrap(), None);
        }
        let listed = store.list(&Query::default()).await.unwrap().webhooks;
        assert_eq!(listed.len(), 1);
    }

    #[tokio::test]
    async fn status_changes_are_compare_and_swap() {
        let (_dir, store) = open();
        let hook = webhook("cas");
        store.capture(hook.clone(), false).await.unwrap();
        let received = store.status(&hook.id).await.unwrap().unwrap();

        let claim = |status: &Status| {
            Transition::to(
                status
                    .claim(1_000, 60_000, &RetryPolicy::default())
                    .unwrap(),
            )
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
                "w",
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
        let details = store.details(&hook.id).await.unwrap().unwrap();
        assert_eq!(
            details.dead_letters,
            vec![DeadLetter {
                at: 2_000,
                attempts: 1,
                reason: "rejected: no".into()
            }]
        );
        assert_eq!(
            details.attempts,
            vec![Attempt {
                number: 1,
                started_at: 1_000,
                ended_at: 2_000,
                state: State::OperatorRequired,
                error: Some("rejected: no".into()),
            }]
        );
        assert_eq!(details.headers, hook.headers);
        assert_eq!(details.view.status, State::OperatorRequired);
        let dead = Query {
            state: Some(State::OperatorRequired),
            ..Query::default()
        };
        let listed = store.list(&dead).await.unwrap();
        assert_eq!(listed.webhooks.len(), 1);
        assert_eq!(listed.webhooks[0].event_type, "store/order/created");
        let counts = store.counts(&Filter::default()).await.unwrap();
        assert_eq!(counts.0[&State::OperatorRequired], 1);
        assert_eq!(counts.total(), 1);
    }

    #[tokio::test]
    async fn due_follows_the_backoff() {
        let (_dir, store) = open();
        let hook = webhook("due");
        store.capture(hook.clone(), false).await.unwrap();
        assert_eq!(store.due(999, 10).await.unwrap(), Vec::<String>::new());
        assert_eq!(store.due(1_000, 10).await.unwrap(), vec![hook.id.clone()]);

        let received = store.status(&hook.id).await.unwrap().unwrap();
        let claimed = received
            .claim(1_000, 60_000, &RetryPolicy::default())
            .unwrap();
        let claim = Transition::to(claimed.clone());
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
        let failed = claimed.finish("w", &retry, &policy(), 1_100).unwrap();
        assert!(
            store
                .swap_status(&hook.id, claimed.version, &failed)
                .await
                .unwrap()
        );
        assert_eq!(store.due(1_109, 10).await.unwrap(), Vec::<String>::new());
        assert_eq!(store.due(1_110, 10).await.unwrap(), vec![hook.id.clone()]);
        // What waits for an attempt, by when it falls due and how long it waits, with its
        // status (it failed at 1,100 and waits 10 ms).
        let waits = |from, to, longer_than| Waits {
            from,
            to,
            longer_than,
        };
        assert!(
            store
                .waiting(waits(0, 1_109, 0), 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            store
                .waiting(waits(1_111, 9_999, 0), 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            store
                .waiting(waits(0, 9_999, 10), 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store.waiting(waits(1_110, 1_110, 9), 10).await.unwrap(),
            vec![(hook.id.clone(), failed.status.clone())]
        );
        // Not while an attempt holds it.
        let retaken = failed.status.claim(1_110, 60_000, &policy()).unwrap();
        let retake = Transition::to(retaken);
        assert!(
            store
                .swap_status(&hook.id, failed.status.version, &retake)
                .await
                .unwrap()
        );
        assert!(
            store
                .waiting(waits(0, i64::MAX, -1), 10)
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn oversized_payloads_are_refused_not_truncated() {
        let (_dir, store) = open();
        let mut hook = webhook("big");
        hook.payload = vec![b' '; CaptureLimits::HARD_MAX_BODY_BYTES + 1];
        assert!(matches!(
            store.capture(hook.clone(), false).await,
            Err(StoreError::TooLarge(_))
        ));
        assert_eq!(store.webhook(&hook.id).await.unwrap(), None);
    }
}
