//! A capture's plan: its items in one transaction, each under [`NOT_EXISTS`], and the
//! counter it adds to; and, for a payload too large for its item, the upload that comes
//! first.

use serde_dynamo::{AttributeValue, Item};

use super::counters::{self, Counter};
use super::items::*;
use crate::item::upload::{UNCLAIMED_UPLOAD_SECS, Upload};
use crate::item::{BodyItem, Retention, StatusItem, WebhookItem};
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
    /// When the payload goes to the bucket: before the transaction.
    pub upload: Option<UploadPlan>,
}

/// A payload's way into the bucket: its `UPLOAD#` item put (with an expiry) before the
/// object is, then put again without it (`claim`, unconditionally: it is the same upload)
/// in the capture's transaction, after the counters. A put, not an update: the capture
/// may update nothing but counters.
#[derive(Debug, Clone, PartialEq)]
pub struct UploadPlan {
    pub upload: Upload,
    pub item: Item,
    pub claim: Item,
}

/// Plans the capture of `webhook`. A payload too large for its item goes to the bucket
/// when there is one (`offload`); without one such a webhook is refused, never truncated.
pub fn capture(
    webhook: &Webhook,
    retention: &Retention,
    refuse_replayed_body: bool,
    offload: bool,
) -> Result<CapturePlan, StoreError> {
    // The item without its payload first: the payload is copied once, into the item or
    // not at all.
    let head = Webhook {
        id: webhook.id.clone(),
        origin: webhook.origin.clone(),
        event_type: webhook.event_type.clone(),
        provider_timestamp: webhook.provider_timestamp,
        received_at: webhook.received_at,
        idempotency_key: webhook.idempotency_key.clone(),
        headers: webhook.headers.clone(),
        payload: Vec::new(),
    };
    let mut webhook_item = to_item(&WebhookItem::owning(head, None));
    let size = item_size(&webhook_item) + "payload".len() + webhook.payload.len();
    let status = Status::received(webhook.received_at);
    let mut status_item = StatusItem::captured(webhook, &status);
    let mut upload = None;
    if size <= MAX_ITEM_BYTES {
        webhook_item.insert(
            "payload".to_owned(),
            AttributeValue::B(webhook.payload.clone()),
        );
    } else if offload {
        let planned = Upload::of(webhook);
        webhook_item.insert(
            "payload_object".to_owned(),
            AttributeValue::S(planned.object()),
        );
        webhook_item.insert(
            "payload_sha256".to_owned(),
            AttributeValue::S(planned.sha256().to_owned()),
        );
        status_item.upload = Some(planned.sk());
        let unclaimed = webhook.received_at / 1_000 + UNCLAIMED_UPLOAD_SECS;
        upload = Some(UploadPlan {
            item: to_item(&planned.item(Some(unclaimed))),
            claim: to_item(&planned.item(None)),
            upload: planned,
        });
    } else {
        return Err(StoreError::TooLarge(format!(
            "the webhook is {size} bytes as a DynamoDB item; an item holds at most \
             {MAX_ITEM_BYTES}, and no payload bucket is set for larger ones"
        )));
    }
    let mut items = vec![webhook_item, to_item(&status_item)];
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
        upload,
    })
}

/// The first webhook a `BODY` item (read back by [`CapturePlan::body`]) was captured as.
pub fn read_body(item: Item) -> Result<String, StoreError> {
    read::<BodyItem>(item).map(|body| body.id)
}
