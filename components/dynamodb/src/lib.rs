//! The DynamoDB store, written once: the requests of `inbox_core::item::dynamodb` (the
//! items, conditions and meanings), handed to the AWS SDK's builders, and its errors handed
//! back to the core as [`Refusal`]s. Only the SDK client differs between hosts: the bridge
//! gives it hyper and tokio, Spin's store component `wasi:http` and its timers. Waits go
//! through the client's own sleep, so the store needs no runtime of its own.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::{AsyncSleep, Sleep};
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, Put, TransactWriteItem, Update};
use backon::{BackoffBuilder, Retryable};
use inbox_core::destination::{Destination, Held};
pub use inbox_core::item::Retention;
use inbox_core::item::dynamodb::{
    self, CaptureRefused, ItemUpdate, KeyQuery, Refusal, SwapRefused, counters, list_index,
};
use inbox_core::item::{self, STATUS_SK, StatusItem, WEBHOOK_SK};
use inbox_core::lifecycle::Transition;
use inbox_core::listing::{Counts, Filter, Page, Query};
use inbox_core::model::{Details, StatusView};
use inbox_core::store::{Captured, StoreError, Waits, WebhookStore};
use inbox_core::{Status, Webhook};

mod bucket;
mod destinations;
mod due;
mod payloads;
mod refusals;

pub use bucket::PayloadBucket;
use refusals::{cancellation_reasons, refusal};

type Item = HashMap<String, AttributeValue>;

/// An update's plan set on a builder: `UpdateItem`'s alone, or the `Update` of a
/// transaction. The SDK gives the two the same setters but no common trait.
macro_rules! item_update {
    ($builder:expr, $table:expr, $plan:expr) => {{
        let plan: ItemUpdate = $plan;
        $builder
            .table_name($table)
            .set_key(Some(plan.key.into()))
            .update_expression(plan.update)
            .set_condition_expression(plan.condition)
            .set_expression_attribute_names(Some(plan.names))
            .set_expression_attribute_values(
                Some(plan.values.into()).filter(|values: &Item| !values.is_empty()),
            )
    }};
}

/// A transaction holds at most this many actions.
const TRANSACTION_ACTIONS: usize = 100;

pub struct DynamoStore {
    client: Client,
    table: String,
    /// How long items are kept (DynamoDB's TTL on `expires_at`) once they may go.
    retention: Retention,
    /// Where payloads too large for their item go; without it they are refused.
    payloads: Option<PayloadBucket>,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>, retention: Retention) -> Self {
        DynamoStore {
            client,
            table: table.into(),
            retention,
            payloads: None,
        }
    }

    /// Keeps payloads too large for their item in `bucket`.
    pub fn with_payloads(self, bucket: PayloadBucket) -> Self {
        DynamoStore {
            payloads: Some(bucket),
            ..self
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    pub fn payloads(&self) -> Option<&PayloadBucket> {
        self.payloads.as_ref()
    }

    /// The client's own sleep, to back off with: tokio's natively, `wasi:clocks` in a
    /// component.
    fn sleeper(&self) -> Result<impl Fn(Duration) -> Sleep + Send + Sync + use<>, StoreError> {
        let sleep = self.client.config().sleep_impl().ok_or_else(|| {
            StoreError::Unavailable("the DynamoDB client has no sleep to back off with".into())
        })?;
        Ok(move |wait: Duration| sleep.sleep(wait))
    }

    fn put(&self, item: Item) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(dynamodb::NOT_EXISTS)
            .build()
            .map_err(unavailable)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn update(&self, plan: ItemUpdate) -> Result<TransactWriteItem, StoreError> {
        let update = item_update!(Update::builder(), &self.table, plan)
            .build()
            .map_err(unavailable)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    async fn get(
        &self,
        id: &str,
        sk: &str,
        consistent: bool,
    ) -> Result<Option<serde_dynamo::Item>, StoreError> {
        self.get_key(dynamodb::key(id, sk), consistent).await
    }

    async fn get_key(
        &self,
        key: serde_dynamo::Item,
        consistent: bool,
    ) -> Result<Option<serde_dynamo::Item>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key.into()))
            .consistent_read(consistent)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(output.item.map(Into::into))
    }

    /// Every item of the scan, page after page.
    async fn scan(&self, scan: &dynamodb::Scan) -> Result<Vec<serde_dynamo::Item>, StoreError> {
        pages(usize::MAX, |start, _| async move {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression(&scan.filter)
                .projection_expression(&scan.projection.expression)
                .set_expression_attribute_names(Some(scan.projection.names.clone()))
                .set_expression_attribute_values(Some(scan.values.clone().into()))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(unavailable)?;
            Ok((page.items, page.last_evaluated_key))
        })
        .await
    }

    /// The items of one partition (of `index`, or of the table), page after page; at most
    /// `limit`, with `projection` if given (else what the index holds, or all).
    async fn query(
        &self,
        index: Option<&str>,
        query: &KeyQuery,
        projection: Option<&dynamodb::Projection>,
        limit: usize,
    ) -> Result<Vec<serde_dynamo::Item>, StoreError> {
        pages(limit, |start, left| async move {
            let mut names = query.names.clone();
            names.extend(projection.iter().flat_map(|p| p.names.clone()));
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .set_index_name(index.map(str::to_owned))
                // The table's own partitions read what was just written; an index cannot.
                .consistent_read(index.is_none())
                .key_condition_expression(&query.key_condition)
                .set_projection_expression(projection.map(|p| p.expression.clone()))
                .set_expression_attribute_names(Some(names))
                .set_expression_attribute_values(Some(query.values.clone().into()))
                .limit(i32::try_from(left).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(unavailable)?;
            Ok((page.items, page.last_evaluated_key))
        })
        .await
    }

    /// The items at `keys`, [`dynamodb::BATCH_GET_KEYS`] a call; a key not stored is left out.
    async fn batch_get(
        &self,
        keys: Vec<serde_dynamo::Item>,
        projection: &dynamodb::Projection,
    ) -> Result<Vec<serde_dynamo::Item>, StoreError> {
        let mut items = Vec::new();
        let sleeper = self.sleeper()?;
        let mut backoff = dynamodb::batch_get_backoff().build();
        let mut left: Vec<Item> = keys.into_iter().map(Into::into).collect();
        while !left.is_empty() {
            let rest = left.split_off(left.len().min(dynamodb::BATCH_GET_KEYS));
            let batch = KeysAndAttributes::builder()
                .set_keys(Some(left))
                .projection_expression(&projection.expression)
                .set_expression_attribute_names(Some(projection.names.clone()))
                .consistent_read(true)
                .build()
                .map_err(unavailable)?;
            let output = self
                .client
                .batch_get_item()
                .request_items(&self.table, batch)
                .send()
                .await
                .map_err(unavailable)?;
            let mut responses = output.responses.unwrap_or_default();
            let got = responses.remove(&self.table).unwrap_or_default();
            if !got.is_empty() {
                backoff = dynamodb::batch_get_backoff().build();
            }
            items.extend(got.into_iter().map(Into::into));
            // Keys DynamoDB had no capacity for come back unprocessed: read them again, after a pause.
            left = output
                .unprocessed_keys
                .unwrap_or_default()
                .remove(&self.table)
                .map(|unprocessed| unprocessed.keys)
                .unwrap_or_default();
            if !left.is_empty() {
                let wait = backoff.next().ok_or_else(|| {
                    StoreError::Unavailable(
                        "DynamoDB keeps leaving keys of a batch read unprocessed".into(),
                    )
                })?;
                sleeper(wait).await;
            }
            left.extend(rest);
        }
        Ok(items)
    }

    /// A capture's answer when the webhook `id` is already stored.
    async fn existing(&self, id: &str) -> Result<Captured, StoreError> {
        let status = self.status(id).await?.ok_or_else(|| {
            StoreError::Unavailable(format!("{id} exists but its status cannot be read yet"))
        })?;
        Ok(Captured::Duplicate {
            id: id.to_owned(),
            status,
        })
    }

    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<(), Refusal> {
        self.client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map(|_| ())
            .map_err(|error| refusal(&error, cancellation_reasons(&error)))
    }
}

#[async_trait]
impl WebhookStore for DynamoStore {
    async fn capture(
        &self,
        mut webhook: Webhook,
        refuse_replayed_body: bool,
    ) -> Result<Captured, StoreError> {
        let plan = dynamodb::capture(
            &webhook,
            &self.retention,
            refuse_replayed_body,
            self.payloads.is_some(),
        )?;
        let mut items = plan
            .items
            .iter()
            .map(|item| self.put(item.clone().into()))
            .collect::<Result<Vec<_>, _>>()?;
        for counter in &plan.counters {
            items.push(self.update(counter.clone())?);
        }
        if let Some(upload) = plan.upload {
            let payload = std::mem::take(&mut webhook.payload);
            items.push(self.upload(&webhook.id, upload, payload).await?);
        }
        let refused = match (|| self.transact(items.clone()))
            .retry(dynamodb::conflict_backoff())
            .sleep(self.sleeper()?)
            .when(dynamodb::conflicted)
            .await
        {
            Ok(()) => return Ok(Captured::Stored(plan.status)),
            Err(refused) => refused,
        };
        match dynamodb::capture_refused(&refused) {
            CaptureRefused::Duplicate => self.existing(&webhook.id).await,
            CaptureRefused::BodySeen => {
                let key = plan.body.expect("only a guarded capture sees a body");
                let body = self.get_key(key, true).await?.ok_or_else(|| {
                    StoreError::Unavailable("a body digest cannot be read yet".into())
                })?;
                let id = dynamodb::read_body(body)?;
                // Its items gone (it completed and its retention ran out), the digest
                // still refuses the body for the rest of the replay guard.
                let status = self.status(&id).await?.unwrap_or_else(Status::forgotten);
                Ok(Captured::Duplicate { id, status })
            }
            CaptureRefused::Failed(error) => Err(error),
        }
    }

    async fn webhook(&self, id: &str) -> Result<Option<Webhook>, StoreError> {
        // Immutable once written, so an eventually consistent read is enough.
        let Some(item) = self.get(id, WEBHOOK_SK, false).await? else {
            return Ok(None);
        };
        self.whole(dynamodb::read_webhook(item)?).await.map(Some)
    }

    async fn status(&self, id: &str) -> Result<Option<Status>, StoreError> {
        let item = self.get(id, STATUS_SK, true).await?;
        item.map(dynamodb::read_status).transpose()
    }

    async fn swap_status(
        &self,
        id: &str,
        expected_version: u64,
        transition: &Transition,
    ) -> Result<bool, StoreError> {
        // The counters move from the state it is in: read it (a lost race needs no write).
        let Some(stored) = self.get(id, STATUS_SK, true).await? else {
            return Ok(false);
        };
        let stored: StatusItem = serde_dynamo::from_item(stored).map_err(|e| corrupt_item(&e))?;
        if stored.version != expected_version {
            return Ok(false);
        }
        let plan = dynamodb::swap(id, &stored, transition, &self.retention);
        let result = if plan.is_single() {
            item_update!(self.client.update_item(), &self.table, plan.status)
                .send()
                .await
                .map(|_| ())
                .map_err(|error| refusal(&error, Vec::new()))
        } else {
            // The status, its records and counters are written together or not at all.
            let mut items = vec![self.update(plan.status)?];
            for record in plan.records {
                items.push(self.put(record.into())?);
            }
            for update in plan.updates {
                items.push(self.update(update)?);
            }
            let mut later = Vec::new();
            if let Some(expires_at) = plan.expires_at {
                let records = self
                    .query(
                        None,
                        &dynamodb::records_query(id),
                        Some(&dynamodb::projection(["PK", "SK"])),
                        usize::MAX,
                    )
                    .await?;
                for record in records {
                    let update = dynamodb::expiry_update(record, Some(expires_at));
                    if items.len() < TRANSACTION_ACTIONS {
                        items.push(self.update(update)?);
                    } else {
                        later.push(update);
                    }
                }
            }
            let written = (|| self.transact(items.clone()))
                .retry(dynamodb::conflict_backoff())
                .sleep(self.sleeper()?)
                .when(dynamodb::conflicted)
                .await;
            if written.is_ok() {
                // Records past what one transaction holds (a webhook replayed many
                // times): the change is made; one that fails here is kept for good,
                // which a warning says.
                for update in later {
                    if let Err(error) = item_update!(self.client.update_item(), &self.table, update)
                        .send()
                        .await
                    {
                        tracing::warn!(
                            id,
                            error = %DisplayErrorContext(&error),
                            "a record of a completed webhook was not given its expiry"
                        );
                    }
                }
            }
            written
        };
        match result.map_err(|refused| dynamodb::swap_refused(&refused)) {
            Ok(()) => Ok(true),
            Err(SwapRefused::Lost) => Ok(false),
            Err(SwapRefused::Failed(error)) => Err(error),
        }
    }

    async fn due(&self, now: i64, limit: usize) -> Result<Vec<String>, StoreError> {
        self.due_ids(now, limit).await
    }

    async fn waiting(
        &self,
        waits: Waits,
        limit: usize,
    ) -> Result<Vec<(String, Status)>, StoreError> {
        self.waiting_for(waits, limit).await
    }

    async fn list(&self, query: &Query) -> Result<Page, StoreError> {
        if let Some(search) = &query.filter.search {
            return Ok(query.page(self.search(search).await?));
        }
        let parts = list_index::queries(query)
            .into_iter()
            .map(|part| async move {
                let page = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name(list_index::NAME)
                    .key_condition_expression(part.key.key_condition)
                    .set_filter_expression(part.filter)
                    .set_expression_attribute_names(Some(part.key.names))
                    .set_expression_attribute_values(Some(part.key.values.into()))
                    .scan_index_forward(false)
                    .limit(i32::try_from(part.limit).unwrap_or(i32::MAX))
                    .send()
                    .await
                    .map_err(unavailable)?;
                let items = page
                    .items
                    .unwrap_or_default()
                    .into_iter()
                    .map(Into::into)
                    .collect();
                Ok::<_, StoreError>((items, page.last_evaluated_key.map(Into::into)))
            });
        let parts = futures::future::try_join_all(parts).await?;
        list_index::page(parts, query.limit()).map_err(corrupt)
    }

    async fn counts(&self, filter: &Filter) -> Result<Counts, StoreError> {
        if let Some(search) = &filter.search {
            let found = self.search(search).await?;
            return Ok(Counts::tally(found.into_iter().filter_map(
                |(view, key)| {
                    filter
                        .matches(&view.id, &view.origin, &view.event_type, &key)
                        .then_some(view.status)
                },
            )));
        }
        let mut items = Vec::new();
        for query in counters::queries(filter) {
            items.extend(self.query(None, &query, None, usize::MAX).await?);
        }
        let now_secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs() as i64);
        counters::tally(items, filter, now_secs).map_err(corrupt)
    }

    async fn details(&self, id: &str) -> Result<Option<Details>, StoreError> {
        let projection = dynamodb::details_projection();
        let pk = item::pk(id);
        let items = pages(usize::MAX, |start, _| {
            let mut names = projection.names.clone();
            names.insert("#pk".to_owned(), "PK".to_owned());
            let request = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk")
                .projection_expression(&projection.expression)
                .set_expression_attribute_names(Some(names))
                .expression_attribute_values(":pk", AttributeValue::S(pk.clone()))
                .consistent_read(true)
                .set_exclusive_start_key(start);
            async move {
                let page = request.send().await.map_err(unavailable)?;
                Ok((page.items, page.last_evaluated_key))
            }
        })
        .await?;
        dynamodb::details(items)
    }

    async fn destinations(&self) -> Result<Vec<Destination>, StoreError> {
        self.all_destinations().await
    }

    async fn destination(&self, name: &str) -> Result<Option<Destination>, StoreError> {
        self.one_destination(name).await
    }

    async fn swap_destination(
        &self,
        expected_version: u64,
        destination: &Destination,
    ) -> Result<bool, StoreError> {
        self.put_destination(expected_version, destination).await
    }

    async fn held(&self, name: &str, limit: usize) -> Result<Vec<Held>, StoreError> {
        self.held_items(name, limit).await
    }

    async fn held_count(&self, name: &str) -> Result<u64, StoreError> {
        self.count_held(name).await
    }

    async fn unhold(&self, name: &str, held: &Held) -> Result<(), StoreError> {
        self.delete_held(name, held).await
    }
}

impl DynamoStore {
    /// The webhooks a search finds, by id or by idempotency key, each with its key.
    async fn search(&self, search: &str) -> Result<Vec<(StatusView, String)>, StoreError> {
        let query = list_index::key_query(search);
        let by_key = self
            .query(Some(list_index::KEY_INDEX), &query, None, usize::MAX)
            .await?;
        let keys = list_index::found(search, by_key);
        let items = self
            .batch_get(keys, &dynamodb::summary_projection())
            .await?;
        dynamodb::joined(items).map_err(corrupt)
    }
}

fn corrupt(error: item::ItemError) -> StoreError {
    StoreError::Corrupt(error.to_string())
}

fn corrupt_item(error: &serde_dynamo::Error) -> StoreError {
    StoreError::Corrupt(error.to_string())
}

/// The items of a Scan or Query, page after page, each asked for from where the last one
/// ended (`page(start, how many are still wanted)`), until there are no more or `limit`.
async fn pages<F, Fut>(limit: usize, mut page: F) -> Result<Vec<serde_dynamo::Item>, StoreError>
where
    F: FnMut(Option<Item>, usize) -> Fut,
    Fut: std::future::Future<Output = Result<(Option<Vec<Item>>, Option<Item>), StoreError>>,
{
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let (found, next) = page(start, limit - items.len()).await?;
        items.extend(found.unwrap_or_default().into_iter().map(Into::into));
        start = next;
        if start.is_none() || items.len() >= limit {
            return Ok(items);
        }
    }
}

pub(crate) fn unavailable<E: std::error::Error + 'static>(error: E) -> StoreError {
    StoreError::Unavailable(DisplayErrorContext(&error).to_string())
}
