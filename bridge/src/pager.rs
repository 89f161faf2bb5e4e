//! Lists longer than a page: the store's pages followed from cursor to cursor, for the
//! operator's commands and `tail` alike.

use anyhow::Result;
use inbox_core::listing::{MAX_LIMIT, Query};
use inbox_core::model::StatusView;
use inbox_stores::WebhookStore;

/// Every webhook `query` asks for, a page at a time from its cursor.
pub async fn every(store: &dyn WebhookStore, query: Query) -> Result<Vec<StatusView>> {
    first(store, query, usize::MAX).await
}

/// The first `limit` webhooks `query` asks for, as many pages as that takes.
pub async fn first(
    store: &dyn WebhookStore,
    mut query: Query,
    limit: usize,
) -> Result<Vec<StatusView>> {
    let mut all = Vec::new();
    while all.len() < limit {
        query.limit = (limit - all.len()).min(MAX_LIMIT as usize) as u32;
        let page = store.list(&query).await?;
        all.extend(page.webhooks);
        match page.next {
            Some(next) => query.after = Some(next),
            None => break,
        }
    }
    Ok(all)
}
