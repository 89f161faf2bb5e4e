//! Payloads too large for their item: written to the bucket before a capture's
//! transaction, read back whole.

use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
use inbox_core::Webhook;
use inbox_core::item::dynamodb::{self, StoredWebhook, UploadPlan};
use inbox_core::store::StoreError;

use crate::{DynamoStore, unavailable as dynamodb_unavailable};

impl DynamoStore {
    /// The webhook an item holds, its payload read from the bucket if it is there.
    pub async fn whole(&self, stored: StoredWebhook) -> Result<Webhook, StoreError> {
        match stored {
            StoredWebhook::Whole(webhook) => Ok(webhook),
            StoredWebhook::Offloaded(offloaded) => match self.payloads() {
                Some(bucket) => bucket.load(offloaded).await,
                None => Err(StoreError::Unavailable(format!(
                    "the payload of {} is in a bucket ({}) and no payload bucket is set",
                    offloaded.id(),
                    offloaded.object()
                ))),
            },
        }
    }

    /// Writes a capture's payload to the bucket before anything acknowledges its webhook,
    /// and its `UPLOAD#` item before the object, so that nothing is in the bucket without
    /// a way out of it: the claim the capture's transaction then makes.
    pub(crate) async fn upload(
        &self,
        id: &str,
        upload: UploadPlan,
        payload: Vec<u8>,
    ) -> Result<TransactWriteItem, StoreError> {
        let bucket = self.payloads().ok_or_else(|| {
            StoreError::Unavailable("an upload is planned and no payload bucket is set".into())
        })?;
        let put = self
            .client
            .put_item()
            .table_name(self.table())
            .set_item(Some(upload.item.into()))
            .condition_expression(dynamodb::NOT_EXISTS)
            .send()
            .await;
        match put {
            Ok(_) => {}
            // The same upload (the same id, time and body) from a delivery at the same
            // moment: under way, or claimed, and never given its day's expiry back.
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) => {}
            Err(error) => return Err(dynamodb_unavailable(error)),
        }
        let object = upload.upload.object();
        bucket.put(&object, payload).await?;
        tracing::debug!(id, object, "payload written to the bucket");
        let claim = Put::builder()
            .table_name(self.table())
            .set_item(Some(upload.claim.into()))
            .build()
            .map_err(dynamodb_unavailable)?;
        Ok(TransactWriteItem::builder().put(claim).build())
    }
}
