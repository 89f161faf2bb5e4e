//! A capture's plan: its items in one transaction, each under [`NOT_EXISTS`], and the
//! counter it adds to.

use serde_dynamo::Item;

use super::counters::{self, Counter};
use super::items::*;
use crate::item::Retention;
use crate::item::{BodyItem, StatusItem, WebhookItem};
use crate::model::{State, Status, Webhook};
use crate::store::StoreError;

/// A capture: the `WEBHOOK` and `STATUS` items (and with the replay guard the `BODY` item),
/// each put under [`NOT_EXISTS`] in one transaction with the update of its counter, and
/// the status it stores. Nothing expires while the webhook needs work; only the body's
/// digest, at the end of the replay guard.
#[derive(Debug, Clone, PartialEq)]
pub struct CapturePlan {
    pub items: Vec<Item>,
    /// After the puts, so a refusal's reasons read in [`capture_refused`]'s order.
    pub counters: Vec<ItemUpdate>,
    pub status: Status,
    /// The key of the body's digest, when replayed bodies are refused.
    pub body: Option<Item>,
}

/// Plans the capture of `webhook`, refusing an item DynamoDB would refuse (never truncated).
pub fn capture(
    webhook: &Webhook,
    retention: &Retention,
    refuse_replayed_body: bool,
) -> Result<CapturePlan, StoreError> {
    let webhook_item = to_item(&WebhookItem::new(webhook, None));
    let size = item_size(&webhook_item);
    if size > MAX_ITEM_BYTES {
        return Err(StoreError::TooLarge(format!(
            "the webhook is {size} bytes as a DynamoDB item; an item holds at most {MAX_ITEM_BYTES}"
        )));
    }
    let status = Status::received(webhook.received_at);
    let status_item = to_item(&StatusItem::captured(webhook, &status));
    let mut items = vec![webhook_item, status_item];
    let mut body = None;
    if refuse_replayed_body {
        let expires = expires_at(webhook.received_at, retention.body_secs);
        let item = BodyItem::new(webhook, expires);
        body = Some(key_of(&item.pk, &item.sk));
        items.push(to_item(&item));
    }
    let counter = Counter::of(
        &webhook.id,
        status.version,
        &webhook.origin,
        &webhook.event_type,
        State::Received,
        None,
    );
    Ok(CapturePlan {
        items,
        counters: counters::changes(None, (&counter, State::Received)),
        status,
        body,
    })
}

/// The first webhook a `BODY` item (read back by [`CapturePlan::body`]) was captured as.
pub fn read_body(item: Item) -> Result<String, StoreError> {
    read::<BodyItem>(item).map(|body| body.id)
}
