//! A capture's plan: its items in one transaction, each under [`NOT_EXISTS`].

use serde_dynamo::Item;

use super::items::*;
use crate::item::{BodyItem, StatusItem, WebhookItem};
use crate::model::{Status, Webhook};
use crate::store::StoreError;

/// A capture: the `WEBHOOK` and `STATUS` items (and with the replay guard the `BODY` item),
/// each put under [`NOT_EXISTS`] in one transaction, and the status it stores.
#[derive(Debug, Clone, PartialEq)]
pub struct CapturePlan {
    pub items: Vec<Item>,
    pub status: Status,
    /// The key of the body's digest, when replayed bodies are refused.
    pub body: Option<Item>,
}

/// Plans the capture of `webhook`, refusing an item DynamoDB would refuse (never truncated).
pub fn capture(
    webhook: &Webhook,
    retention_secs: Option<u64>,
    refuse_replayed_body: bool,
) -> Result<CapturePlan, StoreError> {
    let expires_at = expires_at(webhook.received_at, retention_secs);
    let webhook_item = to_item(&WebhookItem::new(webhook, expires_at));
    let size = item_size(&webhook_item);
    if size > MAX_ITEM_BYTES {
        return Err(StoreError::TooLarge(format!(
            "the webhook is {size} bytes as a DynamoDB item; an item holds at most {MAX_ITEM_BYTES}"
        )));
    }
    let status = Status::received(webhook.received_at);
    let status_item = to_item(&StatusItem::new(&webhook.id, &status, expires_at));
    let mut items = vec![webhook_item, status_item];
    let mut body = None;
    if refuse_replayed_body {
        let item = BodyItem::new(webhook, expires_at);
        body = Some(key_of(&item.pk, &item.sk));
        items.push(to_item(&item));
    }
    Ok(CapturePlan {
        items,
        status,
        body,
    })
}

/// The first webhook a `BODY` item (read back by [`CapturePlan::body`]) was captured as.
pub fn read_body(item: Item) -> Result<String, StoreError> {
    read::<BodyItem>(item).map(|body| body.id)
}
