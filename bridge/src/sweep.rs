//! The retention of a local store: SQLite has no TTL, so a process that processes (`inbox
//! serve`, `inbox worker`) deletes what the retention no longer keeps, at start and then
//! every [`EVERY`], a batch at a time so captures never wait for the whole of it.

use std::sync::Arc;
use std::time::Duration;

use inbox_core::clock::now_ms;
use inbox_core::item::Retention;
use inbox_core::item::sqlite::Swept;
use inbox_stores::sqlite::SqliteStore;

pub const EVERY: Duration = Duration::from_secs(15 * 60);

/// Sweeps `store` by `retention` for as long as the process runs; nothing with a
/// retention of forever.
pub async fn forever(store: Arc<SqliteStore>, retention: Retention) {
    if retention == Retention::default() {
        return;
    }
    let mut every = tokio::time::interval(EVERY);
    loop {
        every.tick().await;
        match store.sweep(now_ms(), &retention).await {
            Ok(swept) if swept == Swept::default() => {}
            Ok(swept) => tracing::info!(
                webhooks = swept.webhooks,
                body_digests = swept.bodies,
                "deleted what the retention no longer keeps"
            ),
            Err(error) => tracing::warn!(%error, "the retention sweep failed; it runs again later"),
        }
    }
}
