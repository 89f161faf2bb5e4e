//! The bucket of payloads too large for their item ([`inbox_core::item::upload`]), on the
//! same kind of client as the table: hyper natively, `wasi:http` in Spin's component.

use aws_sdk_s3::Client;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_s3::primitives::ByteStream;
use inbox_core::Webhook;
use inbox_core::item::dynamodb::Offloaded;
use inbox_core::store::StoreError;

#[derive(Debug, Clone)]
pub struct PayloadBucket {
    client: Client,
    bucket: String,
}

impl PayloadBucket {
    pub fn new(client: Client, bucket: impl Into<String>) -> PayloadBucket {
        PayloadBucket {
            client,
            bucket: bucket.into(),
        }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Writes `payload` as `object`; an object of that name is the same payload (the
    /// name holds its digest), so writing it again changes nothing.
    pub async fn put(&self, object: &str, payload: Vec<u8>) -> Result<(), StoreError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(object)
            .content_type("application/octet-stream")
            .body(ByteStream::from(payload))
            .send()
            .await
            .map_err(|e| unavailable("write", object, &e))?;
        Ok(())
    }

    /// The webhook whole, its payload read from the bucket and checked against its digest.
    pub async fn load(&self, offloaded: Offloaded) -> Result<Webhook, StoreError> {
        let object = offloaded.object().to_owned();
        let output = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&object)
            .send()
            .await
            .map_err(|error| match error.code() {
                // Retrying does not bring it back: the webhook cannot be had whole.
                Some("NoSuchKey") => StoreError::Corrupt(format!(
                    "the payload of {} is missing from the bucket {} ({object})",
                    offloaded.id(),
                    self.bucket
                )),
                _ => unavailable("read", &object, &error),
            })?;
        let payload = output
            .body
            .collect()
            .await
            .map_err(|e| unavailable("read", &object, &e))?
            .to_vec();
        offloaded.with_payload(payload)
    }

    /// Deletes `object`; one already gone is no error.
    pub async fn delete(&self, object: &str) -> Result<(), StoreError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(object)
            .send()
            .await
            .map_err(|e| unavailable("delete", object, &e))?;
        Ok(())
    }
}

fn unavailable(doing: &str, object: &str, error: &(dyn std::error::Error + 'static)) -> StoreError {
    StoreError::Unavailable(format!(
        "cannot {doing} the payload object {object}: {}",
        DisplayErrorContext(error)
    ))
}
