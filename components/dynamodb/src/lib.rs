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
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, Put, TransactWriteItem, Update};
use backon::{BackoffBuilder, Retryable};
use inbox_core::config::{Config, ConfigError};
use inbox_core::item::dynamodb::{
    self, CaptureRefused, Refusal, StatusUpdate, SwapRefused, due_index,
};
use inbox_core::item::{self, STATUS_SK, WEBHOOK_SK};
use inbox_core::lifecycle::Transition;
use inbox_core::listing::{Counts, Filter, Page, Query};
use inbox_core::model::Details;
use inbox_core::store::{Captured, StoreError, WebhookStore};
use inbox_core::{State, Status, Webhook};

type Item = HashMap<String, AttributeValue>;

/// A status update's plan set on a builder: `UpdateItem`'s alone, or the `Update` of a
/// transaction. The SDK gives the two the same setters but no common trait.
macro_rules! status_update {
    ($builder:expr, $table:expr, $plan:expr) => {{
        let plan: StatusUpdate = $plan;
        $builder
            .table_name($table)
            .set_key(Some(plan.key.into()))
            .update_expression(plan.update)
            .condition_expression(plan.condition)
            .set_expression_attribute_names(Some(plan.names))
            .set_expression_attribute_values(Some(plan.values.into()))
    }};
}

pub struct DynamoStore {
    client: Client,
    table: String,
    /// How long items are kept (DynamoDB's TTL on `expires_at`); `None` keeps them.
    retention: Option<Duration>,
}

pub fn retention_from_config(config: &dyn Config) -> Result<Option<Duration>, ConfigError> {
    Ok(dynamodb::settings::retention_secs(config)?.map(Duration::from_secs))
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>, retention: Option<Duration>) -> Self {
        DynamoStore {
            client,
            table: table.into(),
            retention,
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn retention_secs(&self) -> Option<u64> {
        self.retention.map(|keep| keep.as_secs())
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

    fn update(&self, plan: StatusUpdate) -> Result<TransactWriteItem, StoreError> {
        let update = status_update!(Update::builder(), &self.table, plan)
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

    /// The status items of one partition of the `due` index, page after page, the longest
    /// waiting first; at most `limit`.
    async fn query_due(
        &self,
        query: &due_index::Query,
        limit: usize,
    ) -> Result<Vec<serde_dynamo::Item>, StoreError> {
        pages(limit, |start, left| async move {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(due_index::NAME)
                .key_condition_expression(&query.key_condition)
                .set_expression_attribute_names(Some(query.names.clone()))
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

    /// Every partition of the `due` index, at most `limit` items from each: together they
    /// hold the `limit` longest waiting.
    async fn in_flight(
        &self,
        up_to: Option<i64>,
        limit: usize,
    ) -> Result<Vec<serde_dynamo::Item>, StoreError> {
        let mut items = Vec::new();
        for query in due_index::queries(up_to) {
            items.extend(self.query_due(&query, limit).await?);
        }
        Ok(items)
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
        webhook: Webhook,
        refuse_replayed_body: bool,
    ) -> Result<Captured, StoreError> {
        let plan = dynamodb::capture(&webhook, self.retention_secs(), refuse_replayed_body)?;
        let items = plan
            .items
            .iter()
            .map(|item| self.put(item.clone().into()))
            .collect::<Result<Vec<_>, _>>()?;
        let refused = match (|| self.transact(items.clone()))
            .retry(dynamodb::capture_backoff())
            .sleep(self.sleeper()?)
            .when(dynamodb::capture_conflicted)
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
                self.existing(&dynamodb::read_body(body)?).await
            }
            CaptureRefused::Failed(error) => Err(error),
        }
    }

    async fn webhook(&self, id: &str) -> Result<Option<Webhook>, StoreError> {
        // Immutable once written, so an eventually consistent read is enough.
        let item = self.get(id, WEBHOOK_SK, false).await?;
        item.map(dynamodb::read_webhook).transpose()
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
        let plan = dynamodb::status_update(id, expected_version, &transition.status);
        let records = dynamodb::transition_items(id, transition, self.retention_secs());
        let result = if records.is_empty() {
            status_update!(self.client.update_item(), &self.table, plan)
                .send()
                .await
                .map(|_| ())
                .map_err(|error| refusal(&error, Vec::new()))
        } else {
            // The status and its records are written together or not at all.
            let mut items = vec![self.update(plan)?];
            for record in records {
                items.push(self.put(record.into())?);
            }
            self.transact(items).await
        };
        match result.map_err(|refused| dynamodb::swap_refused(&refused)) {
            Ok(()) => Ok(true),
            Err(SwapRefused::Lost) => Ok(false),
            Err(SwapRefused::Failed(error)) => Err(error),
        }
    }

    async fn due(&self, now: i64, limit: usize) -> Result<Vec<String>, StoreError> {
        let items = self.in_flight(Some(now), limit).await?;
        let (ids, unreadable) = dynamodb::due(items, now, limit);
        for error in unreadable {
            tracing::warn!(%error, "skipping an unreadable status item");
        }
        Ok(ids)
    }

    async fn list(&self, query: &Query) -> Result<Page, StoreError> {
        let items = self.summary_items(query.state).await?;
        dynamodb::page(items, query).map_err(corrupt)
    }

    async fn counts(&self, filter: &Filter) -> Result<Counts, StoreError> {
        let items = self.summary_items(None).await?;
        dynamodb::counts(items, filter).map_err(corrupt)
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
}

impl DynamoStore {
    /// The `WEBHOOK` and `STATUS` items a list reads (without payloads): for a state in
    /// flight, the few the `due` index holds and their webhook items; else a scan.
    async fn summary_items(
        &self,
        state: Option<State>,
    ) -> Result<Vec<serde_dynamo::Item>, StoreError> {
        match state {
            Some(state) if state.in_flight() => {
                let statuses = self.in_flight(None, usize::MAX).await?;
                let (mut items, keys) = due_index::latest(statuses, state).map_err(corrupt)?;
                items.extend(
                    self.batch_get(keys, &dynamodb::summary_projection())
                        .await?,
                );
                Ok(items)
            }
            _ => {
                self.scan(&dynamodb::summary_scan(&[WEBHOOK_SK, STATUS_SK]))
                    .await
            }
        }
    }
}

fn corrupt(error: item::ItemError) -> StoreError {
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

/// A cancelled transaction's reason code per item.
fn cancellation_reasons<R>(error: &SdkError<TransactWriteItemsError, R>) -> Vec<String> {
    match error.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(e)) => e
            .cancellation_reasons()
            .iter()
            .map(|reason| reason.code().unwrap_or("None").to_owned())
            .collect(),
        _ => Vec::new(),
    }
}

/// An SDK error as the core reads DynamoDB's refusals.
fn refusal<E, R>(error: &SdkError<E, R>, reasons: Vec<String>) -> Refusal
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let detail = DisplayErrorContext(error).to_string();
    match error.code() {
        Some(kind) => Refusal {
            kind: kind.to_owned(),
            message: error.message().unwrap_or_default().to_owned(),
            reasons,
            detail,
        },
        // Not an answer from DynamoDB: it could not be reached.
        None => Refusal {
            kind: "RequestFailed".into(),
            message: detail,
            reasons,
            detail: String::new(),
        },
    }
}

fn unavailable<E: std::error::Error + 'static>(error: E) -> StoreError {
    StoreError::Unavailable(DisplayErrorContext(&error).to_string())
}
