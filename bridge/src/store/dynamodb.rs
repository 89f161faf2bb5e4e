//! The store on DynamoDB, in the seed's single-table layout (`inbox_core::item`), with
//! the same state rules as every store: capture is one transaction of the `WEBHOOK` and
//! `STATUS` items guarded by `attribute_not_exists(PK)`, and every status change is a
//! conditional write on the status version (compare-and-swap).

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, KeysAndAttributes, Put, TransactWriteItem, Update,
};
use inbox_core::config::{Config, ConfigError};
use inbox_core::item::{
    self, DEAD_LETTER_SK_PREFIX, DeadLetterItem, STATUS_SK, StatusItem, WEBHOOK_SK, WebhookItem,
    dynamodb,
};
use inbox_core::lifecycle::{DeadLetter, Transition};
use inbox_core::model::StatusView;
use inbox_core::{State, Status, Webhook};
use serde::Deserialize;

use super::{Captured, Store, StoreError};

type Item = HashMap<String, AttributeValue>;

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

    /// A client from the AWS SDK's own configuration: `AWS_REGION`, credentials,
    /// `AWS_ENDPOINT_URL` (which is how tests point it at moto).
    pub async fn client() -> Client {
        Client::new(&aws_config::load_from_env().await)
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// The TTL of items written at `at_ms`, in unix seconds as DynamoDB wants it.
    fn expires_at(&self, at_ms: i64) -> Option<i64> {
        dynamodb::expires_at(at_ms, self.retention.map(|keep| keep.as_secs()))
    }

    fn key(id: &str, sk: &str) -> Item {
        dynamodb::key(id, sk).into()
    }

    fn put(&self, item: Item, condition: &str) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// The conditional update that writes `status` over the one at `expected_version`.
    fn status_update(
        &self,
        id: &str,
        expected_version: u64,
        status: &Status,
    ) -> Result<Update, StoreError> {
        let update = dynamodb::status_update(id, expected_version, status);
        Update::builder()
            .table_name(&self.table)
            .set_key(Some(update.key.into()))
            .update_expression(update.update)
            .condition_expression(update.condition)
            .set_expression_attribute_names(Some(update.names))
            .set_expression_attribute_values(Some(update.values.into()))
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    async fn get<T: for<'de> Deserialize<'de>>(
        &self,
        id: &str,
        sk: &str,
        consistent: bool,
    ) -> Result<Option<T>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(id, sk)))
            .consistent_read(consistent)
            .send()
            .await
            .map_err(unavailable)?;
        output.item.map(from_item).transpose()
    }

    /// Every item whose `SK` is one of `sks`, without the payloads (an operator's scan).
    async fn scan_without_payloads(&self, sks: &[&str]) -> Result<Vec<Item>, StoreError> {
        let mut names = HashMap::from([("#sk".to_owned(), "SK".to_owned())]);
        let mut projected = Vec::new();
        for (i, name) in dynamodb::SUMMARY_ATTRIBUTES.iter().enumerate() {
            names.insert(format!("#p{i}"), (*name).to_owned());
            projected.push(format!("#p{i}"));
        }
        let values: HashMap<_, _> = sks
            .iter()
            .enumerate()
            .map(|(i, sk)| (format!(":sk{i}"), AttributeValue::S((*sk).to_owned())))
            .collect();
        let filter = format!(
            "#sk IN ({})",
            (0..sks.len())
                .map(|i| format!(":sk{i}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression(&filter)
                .projection_expression(projected.join(", "))
                .set_expression_attribute_names(Some(names.clone()))
                .set_expression_attribute_values(Some(values.clone()))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(unavailable)?;
            items.extend(page.items.unwrap_or_default());
            start = page.last_evaluated_key;
            if start.is_none() {
                return Ok(items);
            }
        }
    }

    /// Why a transaction was cancelled, if it was.
    fn cancellation<R>(
        error: &SdkError<TransactWriteItemsError, R>,
    ) -> Option<&[CancellationReason]> {
        match error.as_service_error()? {
            TransactWriteItemsError::TransactionCanceledException(e) => {
                Some(e.cancellation_reasons())
            }
            _ => None,
        }
    }
}

#[async_trait]
impl Store for DynamoStore {
    async fn capture(&self, webhook: &Webhook) -> Result<Captured, StoreError> {
        let expires_at = self.expires_at(webhook.received_at);
        let webhook_item = dynamodb::to_item(&WebhookItem::new(webhook, expires_at));
        let size = dynamodb::item_size(&webhook_item);
        if size > dynamodb::MAX_ITEM_BYTES {
            return Err(StoreError::TooLarge(format!(
                "the webhook is {size} bytes as a DynamoDB item; an item holds at most {}",
                dynamodb::MAX_ITEM_BYTES
            )));
        }
        let webhook_item: Item = webhook_item.into();
        let status = Status::received(webhook.received_at);
        let status_item = to_item(&StatusItem::new(&webhook.id, &status, expires_at))?;
        let guard = dynamodb::NOT_EXISTS;
        // Two captures of one id at once can cancel each other (TransactionConflict):
        // try again, and the loser then finds the winner's items.
        for attempt in 0..3 {
            let result = self
                .client
                .transact_write_items()
                .transact_items(self.put(webhook_item.clone(), guard)?)
                .transact_items(self.put(status_item.clone(), guard)?)
                .send()
                .await;
            let error = match result {
                Ok(_) => return Ok(Captured::Stored(status)),
                Err(error) => error,
            };
            let codes: Vec<_> = Self::cancellation(&error)
                .unwrap_or_default()
                .iter()
                .filter_map(|reason| reason.code())
                .collect();
            if codes.contains(&"ConditionalCheckFailed") {
                let existing = self.status(&webhook.id).await?.ok_or_else(|| {
                    StoreError::Unavailable(format!(
                        "{} exists but its status cannot be read yet",
                        webhook.id
                    ))
                })?;
                return Ok(Captured::Duplicate(existing));
            }
            if codes.contains(&"TransactionConflict") && attempt < 2 {
                tokio::time::sleep(Duration::from_millis(20 << attempt)).await;
                continue;
            }
            if error.code() == Some("ValidationException")
                && error.message().is_some_and(|m| m.contains("size"))
            {
                return Err(StoreError::TooLarge(
                    error.message().unwrap_or_default().to_owned(),
                ));
            }
            return Err(unavailable(error));
        }
        unreachable!("the last attempt returns")
    }

    async fn webhook(&self, id: &str) -> Result<Option<Webhook>, StoreError> {
        // Immutable once written, so an eventually consistent read is enough.
        let item: Option<WebhookItem> = self.get(id, WEBHOOK_SK, false).await?;
        item.map(|item| {
            item.into_webhook()
                .map_err(|e| StoreError::Corrupt(e.to_string()))
        })
        .transpose()
    }

    async fn status(&self, id: &str) -> Result<Option<Status>, StoreError> {
        let item: Option<StatusItem> = self.get(id, STATUS_SK, true).await?;
        Ok(item.map(StatusItem::into_status))
    }

    async fn swap_status(
        &self,
        id: &str,
        expected_version: u64,
        transition: &Transition,
    ) -> Result<bool, StoreError> {
        let update = self.status_update(id, expected_version, &transition.status)?;
        let Some(letter) = &transition.dead_letter else {
            let result = self
                .client
                .update_item()
                .table_name(update.table_name())
                .set_key(Some(update.key().clone()))
                .update_expression(update.update_expression())
                .set_condition_expression(update.condition_expression().map(str::to_owned))
                .set_expression_attribute_names(update.expression_attribute_names().cloned())
                .set_expression_attribute_values(update.expression_attribute_values().cloned())
                .send()
                .await;
            return match result {
                Ok(_) => Ok(true),
                Err(error)
                    if error
                        .as_service_error()
                        .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
                {
                    Ok(false)
                }
                Err(error) => Err(unavailable(error)),
            };
        };
        // The status and its dead-letter record are written together or not at all.
        let letter = to_item(&DeadLetterItem::new(id, letter, self.expires_at(letter.at)))?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(update).build())
            .transact_items(self.put(letter, dynamodb::NOT_EXISTS)?)
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error) => {
                let lost = Self::cancellation(&error)
                    .and_then(|reasons| reasons.first())
                    .and_then(|reason| reason.code())
                    == Some("ConditionalCheckFailed");
                if lost {
                    Ok(false)
                } else {
                    Err(unavailable(error))
                }
            }
        }
    }

    async fn due(&self, now: i64, limit: usize) -> Result<Vec<String>, StoreError> {
        let mut ids: Vec<(i64, String)> = self
            .scan_without_payloads(&[STATUS_SK])
            .await?
            .into_iter()
            .map(from_item::<StatusItem>)
            .filter_map(|item| match item {
                Ok(item) => {
                    let status = item.clone().into_status();
                    status.is_claimable(now).then(|| {
                        let since = status.next_attempt_at.or(status.lease_until);
                        (since.unwrap_or(status.updated_at), item.id)
                    })
                }
                Err(error) => {
                    tracing::warn!(%error, "skipping an unreadable status item");
                    None
                }
            })
            .collect();
        ids.sort();
        Ok(ids.into_iter().take(limit).map(|(_, id)| id).collect())
    }

    async fn list(
        &self,
        state: Option<State>,
        limit: usize,
    ) -> Result<Vec<StatusView>, StoreError> {
        let items = self.scan_without_payloads(&[WEBHOOK_SK, STATUS_SK]).await?;
        dynamodb::summaries(
            items.into_iter().map(serde_dynamo::Item::from),
            state,
            limit,
        )
        .map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    async fn dead_letters(&self, id: &str) -> Result<Vec<DeadLetter>, StoreError> {
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("PK = :pk AND begins_with(SK, :dead)")
            .expression_attribute_values(":pk", AttributeValue::S(item::pk(id)))
            .expression_attribute_values(
                ":dead",
                AttributeValue::S(DEAD_LETTER_SK_PREFIX.to_owned()),
            )
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        output
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|item| from_item::<DeadLetterItem>(item).map(DeadLetterItem::into_dead_letter))
            .collect()
    }
}

impl DynamoStore {
    /// The webhook items of `ids` (eventually consistent), in one round trip per 100.
    pub async fn webhooks(&self, ids: &[String]) -> Result<Vec<Webhook>, StoreError> {
        let mut found = Vec::new();
        for chunk in ids.chunks(100) {
            let keys = KeysAndAttributes::builder()
                .set_keys(Some(
                    chunk.iter().map(|id| Self::key(id, WEBHOOK_SK)).collect(),
                ))
                .build()
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            let mut request = HashMap::from([(self.table.clone(), keys)]);
            while !request.is_empty() {
                let output = self
                    .client
                    .batch_get_item()
                    .set_request_items(Some(request))
                    .send()
                    .await
                    .map_err(unavailable)?;
                for item in output
                    .responses
                    .unwrap_or_default()
                    .remove(&self.table)
                    .unwrap_or_default()
                {
                    let item: WebhookItem = from_item(item)?;
                    found.push(
                        item.into_webhook()
                            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    );
                }
                request = output.unprocessed_keys.unwrap_or_default();
            }
        }
        Ok(found)
    }
}

fn to_item<T: serde::Serialize>(value: &T) -> Result<Item, StoreError> {
    serde_dynamo::to_item(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn from_item<T: for<'de> Deserialize<'de>>(item: Item) -> Result<T, StoreError> {
    serde_dynamo::from_item(item).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn unavailable<E: std::error::Error + 'static>(error: E) -> StoreError {
    StoreError::Unavailable(DisplayErrorContext(&error).to_string())
}
