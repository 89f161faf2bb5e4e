//! The `due` index read: what is due, what waits, and the backfill of statuses written
//! before the index existed.

use inbox_core::Status;
use inbox_core::item::dynamodb::{self, due_index};
use inbox_core::lifecycle::Transition;
use inbox_core::store::{StoreError, Waits, WebhookStore};

use crate::DynamoStore;

impl DynamoStore {
    /// Gives every webhook in flight whose status was written before the `due` index
    /// existed its index keys, so the sweep and the worker find it. How many it gave them.
    pub async fn backfill_due_index(&self) -> Result<usize, StoreError> {
        let mut indexed = 0;
        for item in self.scan(&due_index::unindexed_scan()).await? {
            let (id, status) =
                due_index::backfill(item).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let rewrite = Transition::to(status.clone());
            // Not swapped: changed since the scan, and that change wrote its keys.
            if self.swap_status(&id, status.version, &rewrite).await? {
                indexed += 1;
            }
        }
        Ok(indexed)
    }

    /// Every partition of the `due` index, at most `limit` items from each: together they
    /// hold the `limit` longest waiting.
    async fn in_flight(
        &self,
        up_to: Option<i64>,
        limit: usize,
    ) -> Result<Vec<serde_dynamo::Item>, StoreError> {
        let mut items = Vec::new();
        for query in due_index::queries(up_to) {
            items.extend(
                self.query(Some(due_index::NAME), &query, None, limit)
                    .await?,
            );
        }
        Ok(items)
    }

    /// The ids due at `now` ([`WebhookStore::due`]).
    pub(crate) async fn due_ids(&self, now: i64, limit: usize) -> Result<Vec<String>, StoreError> {
        let items = self.in_flight(Some(now), limit).await?;
        let (ids, unreadable) = dynamodb::due(items, now, limit);
        for error in unreadable {
            tracing::warn!(%error, "skipping an unreadable status item");
        }
        Ok(ids)
    }

    /// What waits for an attempt as `waits` says ([`WebhookStore::waiting`]). The window's
    /// every item is read before the limit is applied (the index cannot filter on the
    /// length of a wait), so that what the limit keeps is the soonest of those that match.
    pub(crate) async fn waiting_for(
        &self,
        waits: Waits,
        limit: usize,
    ) -> Result<Vec<(String, Status)>, StoreError> {
        let queries = due_index::queries_between(waits.from, waits.to)
            .into_iter()
            .map(|query| async move {
                self.query(Some(due_index::NAME), &query, None, usize::MAX)
                    .await
            });
        let items = futures::future::try_join_all(queries).await?;
        let (waiting, unreadable) = due_index::waiting(items.into_iter().flatten(), waits, limit);
        for error in unreadable {
            tracing::warn!(%error, "skipping an unreadable status item");
        }
        Ok(waiting)
    }
}
