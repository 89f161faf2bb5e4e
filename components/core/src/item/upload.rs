//! A payload too large for its DynamoDB item (400 KB) is kept in a bucket, as an object the
//! `WEBHOOK` item names with its SHA-256.
//!
//! The object's key is made of the webhook's id, when it was received and the payload's
//! digest: a delivery of the same id with another body, or the same id in a later life
//! (redelivered after its items expired), never overwrites the object an acknowledged
//! webhook reads. Its `UPLOAD#` item is what the object lives as long as. It is written
//! with a day's expiry *before* the object, so an upload whose capture never commits is
//! forgotten; the capture's transaction takes the expiry away, and from then on the item
//! expires with the webhook item (a completion gives both the same expiry, a replay takes
//! both away). When DynamoDB's TTL deletes it, the stream says so and the host deletes the
//! object.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{id_of_pk, pk};
use crate::model::Webhook;

/// Sorts after `STATUS`, so the upload is not one of the records a completion queries
/// (it gets its expiry beside the webhook item's instead).
pub const UPLOAD_SK_PREFIX: &str = "UPLOAD#";

/// Where the objects are in the bucket.
pub const OBJECT_PREFIX: &str = "payloads/";

/// How long an upload whose capture has not committed is kept: long past any capture's
/// deadline, short enough that what failed does not stay.
pub const UNCLAIMED_UPLOAD_SECS: i64 = 24 * 3_600;

/// One payload's object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    id: String,
    /// `<received_at, 13 digits>-<sha256, hex>`.
    name: String,
}

impl Upload {
    pub fn of(webhook: &Webhook) -> Upload {
        Upload {
            id: webhook.id.clone(),
            name: format!(
                "{:013}-{}",
                webhook.received_at,
                hex::encode(Sha256::digest(&webhook.payload))
            ),
        }
    }

    /// The upload an `UPLOAD#` item's keys name (a stream record of its deletion carries
    /// only its keys).
    pub fn from_keys(pk: &str, sk: &str) -> Option<Upload> {
        let id = id_of_pk(pk)?;
        let name = sk.strip_prefix(UPLOAD_SK_PREFIX)?;
        let (at, digest) = name.split_once('-')?;
        let well_formed = !at.is_empty()
            && at.bytes().all(|b| b.is_ascii_digit())
            && digest.len() == 64
            && digest.bytes().all(|b| b.is_ascii_hexdigit());
        well_formed.then(|| Upload {
            id: id.to_owned(),
            name: name.to_owned(),
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn sk(&self) -> String {
        format!("{UPLOAD_SK_PREFIX}{}", self.name)
    }

    /// The object's key in the bucket.
    pub fn object(&self) -> String {
        format!("{OBJECT_PREFIX}{}/{}", self.id, self.name)
    }

    /// The payload's SHA-256, hex.
    pub fn sha256(&self) -> &str {
        self.name.split_once('-').map_or("", |(_, digest)| digest)
    }

    /// Its item: until a capture claims it, kept until `expires_at` (unix seconds).
    pub fn item(&self, expires_at: Option<i64>) -> UploadItem {
        UploadItem {
            pk: pk(&self.id),
            sk: self.sk(),
            id: self.id.clone(),
            object: self.object(),
            expires_at,
        }
    }
}

/// An `UPLOAD#` item: the object a webhook's payload is in, which lives as long as it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadItem {
    #[serde(rename = "PK")]
    pub pk: String,
    #[serde(rename = "SK")]
    pub sk: String,
    pub id: String,
    pub object: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::item::tests::webhook;

    #[test]
    fn an_upload_is_named_by_its_webhook_time_and_digest_and_read_back_from_its_keys() {
        let webhook = webhook();
        let upload = Upload::of(&webhook);
        let digest = hex::encode(Sha256::digest(&webhook.payload));
        assert_eq!(upload.sha256(), digest);
        assert_eq!(upload.sk(), format!("UPLOAD#1700000000123-{digest}"));
        assert_eq!(
            upload.object(),
            format!("payloads/57f0/1700000000123-{digest}")
        );
        assert_eq!(Upload::from_keys("WH#57f0", &upload.sk()), Some(upload));
        // Sorts after the status: not one of the records a completion reads.
        assert!(format!("{UPLOAD_SK_PREFIX}0").as_str() > crate::item::STATUS_SK);
    }

    #[test]
    fn the_same_id_with_another_body_or_in_a_later_life_is_another_object() {
        let first = webhook();
        let mut other_body = first.clone();
        other_body.payload = br#"{"id":"evt_2"}"#.to_vec();
        let mut later = first.clone();
        later.received_at += 1;
        let object = Upload::of(&first).object();
        assert_ne!(Upload::of(&other_body).object(), object);
        assert_ne!(Upload::of(&later).object(), object);
    }

    #[test]
    fn keys_that_are_not_an_upload_name_none() {
        let digest = "ab".repeat(32);
        for (pk, sk) in [
            ("WH#57f0", "STATUS".to_owned()),
            ("BODY#x", format!("UPLOAD#1-{digest}")),
            ("WH#57f0", "UPLOAD#1".to_owned()),
            ("WH#57f0", format!("UPLOAD#x-{digest}")),
            ("WH#57f0", "UPLOAD#1-../../etc".to_owned()),
        ] {
            assert_eq!(Upload::from_keys(pk, &sk), None, "{pk} {sk}");
        }
    }
}
