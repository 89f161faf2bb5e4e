//! The table's DynamoDB Stream: which records mean work, decided once for the Lambda
//! handler and for an operator reading back a batch Lambda gave up on; and reading the
//! records of a sequence range, as the stream mapping's on-failure record names them.
//!
//! The mapping's filter (template.yaml) lets the same records through: the `WEBHOOK` item
//! as written (it is immutable, so only its insert has a new image), a `STATUS` item
//! set back to `received` past its first version (a replay or a requeue, not a capture),
//! and the removal of an `UPLOAD#` item (its object goes with it).

use std::cmp::Ordering;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use aws_sdk_dynamodbstreams::Client;
use aws_sdk_dynamodbstreams::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodbstreams::primitives::{DateTime, DateTimeFormat};
use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use inbox_core::State;
use inbox_core::item::dynamodb::{self, StoredWebhook};
use inbox_core::item::upload::{UPLOAD_SK_PREFIX, Upload};
use inbox_core::item::{STATUS_SK, WEBHOOK_SK};
use serde::Deserialize;
use serde_dynamo::{AttributeValue, Item};

/// What a stream record asks of the processing function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Work {
    /// A new webhook, carried in the record's image (whole, or but for a payload in the
    /// bucket).
    Captured(StoredWebhook),
    /// A webhook sent round again (replayed or requeued): its item is read.
    SentRoundAgain(String),
    /// An upload's item is gone (expired with its webhook, or never claimed by a capture):
    /// its object is deleted.
    UploadGone(Upload),
}

impl Work {
    /// The webhook the work is for.
    pub fn id(&self) -> &str {
        match self {
            Work::Captured(StoredWebhook::Whole(webhook)) => &webhook.id,
            Work::Captured(StoredWebhook::Offloaded(offloaded)) => offloaded.id(),
            Work::SentRoundAgain(id) => id,
            Work::UploadGone(upload) => upload.id(),
        }
    }
}

/// The work a record carries, if any. An error is a record that claims to be ours but
/// cannot be read.
pub fn work_of(event_name: &str, keys: &Item, new_image: Item) -> Result<Option<Work>> {
    let sk = match keys.get("SK") {
        Some(AttributeValue::S(sk)) => sk.as_str(),
        _ => bail!("a stream record without an SK"),
    };
    if event_name == "REMOVE" && sk.starts_with(UPLOAD_SK_PREFIX) {
        let upload = match keys.get("PK") {
            Some(AttributeValue::S(pk)) => Upload::from_keys(pk, sk),
            _ => None,
        };
        return upload
            .map(|upload| Some(Work::UploadGone(upload)))
            .with_context(|| format!("{sk} is not the key of an upload"));
    }
    match (event_name, sk) {
        ("INSERT", WEBHOOK_SK) => {
            let webhook = dynamodb::read_webhook(new_image)
                .context("the stream image is not a webhook item")?;
            Ok(Some(Work::Captured(webhook)))
        }
        ("MODIFY", STATUS_SK) => {
            let received = State::Received.as_str();
            if !matches!(new_image.get("status"), Some(AttributeValue::S(s)) if s == received) {
                return Ok(None);
            }
            match new_image.get("id") {
                Some(AttributeValue::S(id)) => Ok(Some(Work::SentRoundAgain(id.clone()))),
                _ => bail!("a status image without an id"),
            }
        }
        _ => Ok(None),
    }
}

/// Where the stream mapping's on-failure record says the batch it gave up on is
/// (`DDBStreamBatchInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchInfo {
    pub shard_id: String,
    pub start_sequence_number: String,
    pub end_sequence_number: String,
    pub stream_arn: String,
    /// When the first record reached the stream (ISO 8601, UTC).
    #[serde(default)]
    pub approximate_arrival_of_first_record: Option<String>,
}

impl BatchInfo {
    /// The table whose stream it is (`arn:...:table/<name>/stream/<label>`).
    pub fn table(&self) -> Option<&str> {
        let (_, rest) = self.stream_arn.split_once(":table/")?;
        rest.split('/').next()
    }

    /// Whether the stream can no longer hold the records, going by their age.
    fn past_retention(&self, now_ms: i64) -> bool {
        let Some(arrived) = &self.approximate_arrival_of_first_record else {
            return false;
        };
        DateTime::from_str(arrived, DateTimeFormat::DateTime)
            .is_ok_and(|at| now_ms / 1_000 - at.secs() > STREAM_RETENTION_SECS)
    }
}

/// DynamoDB Streams keep a record for 24 hours.
const STREAM_RETENTION_SECS: i64 = 24 * 3_600;

/// Sequence numbers are decimal strings of any length; compare them as numbers.
pub fn compare_sequence(a: &str, b: &str) -> Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// What reading a batch back from the stream found.
#[derive(Debug)]
pub enum ReadBack {
    /// The work in the batch's records.
    Found(Vec<Work>),
    /// The stream no longer has them (trimmed after 24 hours, or the stream is gone); says why.
    Gone(String),
}

/// Empty pages in a row after which the range is taken as read to its end: on an open
/// shard, GetRecords may answer empty pages before the next records.
const EMPTY_PAGES: usize = 5;
/// GetRecords takes at most 5 calls a second per shard.
const PAGE_PAUSE: Duration = Duration::from_millis(250);

/// Reads the records of `batch` back from the stream. An error is one worth trying again
/// (throttled, denied, unreachable): the records may still be there.
pub async fn read_back(client: &Client, batch: &BatchInfo, now_ms: i64) -> Result<ReadBack> {
    if batch.past_retention(now_ms) {
        return Ok(ReadBack::Gone(
            "its records are older than the stream's 24 hours".into(),
        ));
    }
    let iterator = client
        .get_shard_iterator()
        .stream_arn(&batch.stream_arn)
        .shard_id(&batch.shard_id)
        .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
        .sequence_number(&batch.start_sequence_number)
        .send()
        .await;
    let mut iterator = match iterator {
        Ok(output) => output.shard_iterator,
        Err(error) => return gone_or_failed(error, "cannot find the batch in the stream"),
    };
    let mut work = Vec::new();
    let mut empty = 0;
    while let Some(current) = iterator {
        let page = match client.get_records().shard_iterator(current).send().await {
            Ok(page) => page,
            Err(error) => return gone_or_failed(error, "cannot read the batch from the stream"),
        };
        iterator = page.next_shard_iterator;
        let records = page.records.unwrap_or_default();
        empty = if records.is_empty() { empty + 1 } else { 0 };
        if empty == EMPTY_PAGES {
            bail!(
                "the stream gave no records up to sequence number {}",
                batch.end_sequence_number
            );
        }
        for record in records {
            let name = record.event_name.as_ref().map(|n| n.as_str().to_owned());
            let change = record
                .dynamodb
                .context("a stream record without its change")?;
            let sequence = change.sequence_number.clone().unwrap_or_default();
            let past_end = compare_sequence(&sequence, &batch.end_sequence_number);
            if past_end == Ordering::Greater {
                return Ok(ReadBack::Found(work));
            }
            let keys = Item::from(change.keys.unwrap_or_default());
            let image = Item::from(change.new_image.unwrap_or_default());
            if let Some(found) = work_of(name.as_deref().unwrap_or(""), &keys, image)? {
                work.push(found);
            }
            if past_end == Ordering::Equal {
                return Ok(ReadBack::Found(work));
            }
        }
        tokio::time::sleep(PAGE_PAUSE).await;
    }
    // The shard is closed and ended before the range did: its records are gone.
    Ok(ReadBack::Gone(format!(
        "the shard ends before sequence number {}",
        batch.end_sequence_number
    )))
}

/// A stream that no longer has the records (trimmed, or gone) is an answer: the batch is
/// gone. Any other error is one worth trying again.
fn gone_or_failed<E, R>(error: SdkError<E, R>, doing: &'static str) -> Result<ReadBack>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let gone = matches!(
        error.code(),
        Some("TrimmedDataAccessException" | "ResourceNotFoundException")
    );
    let described = DisplayErrorContext(error).to_string();
    if gone {
        Ok(ReadBack::Gone(described))
    } else {
        Err(anyhow::anyhow!(described)).context(doing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_image(status: &str) -> Item {
        serde_dynamo::to_item(serde_json::json!({
            "PK": "WH#7", "SK": "STATUS", "id": "7", "status": status, "version": 2
        }))
        .unwrap()
    }

    fn empty() -> Item {
        serde_dynamo::to_item(serde_json::json!({})).unwrap()
    }

    fn keys(sk: &str) -> Item {
        serde_dynamo::to_item(serde_json::json!({ "PK": "WH#7", "SK": sk })).unwrap()
    }

    #[test]
    fn a_status_back_to_received_is_sent_round_again_and_other_changes_are_not() {
        let work = work_of("MODIFY", &keys(STATUS_SK), status_image("received")).unwrap();
        assert_eq!(work, Some(Work::SentRoundAgain("7".into())));
        for status in ["processing", "failed", "completed", "operator_required"] {
            assert_eq!(
                work_of("MODIFY", &keys(STATUS_SK), status_image(status)).unwrap(),
                None
            );
        }
        assert_eq!(
            work_of("INSERT", &keys(STATUS_SK), status_image("received")).unwrap(),
            None,
            "a capture's status is processed through its webhook item"
        );
        assert_eq!(
            work_of("REMOVE", &keys(WEBHOOK_SK), empty()).unwrap(),
            None,
            "an item expiring is no work"
        );
        assert!(work_of("INSERT", &empty(), status_image("x")).is_err());
    }

    #[test]
    fn an_upload_item_removed_is_its_object_to_delete() {
        let sk = format!("UPLOAD#1700000000123-{}", "ab".repeat(32));
        let Some(Work::UploadGone(upload)) = work_of("REMOVE", &keys(&sk), empty()).unwrap() else {
            panic!("an upload's removal is work");
        };
        assert_eq!(
            upload.object(),
            format!("payloads/7/1700000000123-{}", "ab".repeat(32))
        );
        assert_eq!(work_of("INSERT", &keys(&sk), empty()).unwrap(), None);
        assert!(work_of("REMOVE", &keys("UPLOAD#junk"), empty()).is_err());
    }

    #[test]
    fn sequence_numbers_compare_as_numbers() {
        assert_eq!(compare_sequence("900", "1000"), Ordering::Less);
        assert_eq!(compare_sequence("0100", "100"), Ordering::Equal);
        assert_eq!(
            compare_sequence("1100000000017454423010", "1100000000017454423009"),
            Ordering::Greater
        );
    }

    #[test]
    fn an_on_failure_record_names_its_table() {
        let batch: BatchInfo = serde_json::from_value(serde_json::json!({
            "shardId": "shardId-1", "startSequenceNumber": "1", "endSequenceNumber": "2",
            "approximateArrivalOfFirstRecord": "2026-11-29T00:00:00Z", "batchSize": 1,
            "streamArn": "arn:aws:dynamodb:eu-west-1:123456789012:table/inbox-Webhooks/stream/2026-11-01T00:00:00.000"
        }))
        .unwrap();
        assert_eq!(batch.table(), Some("inbox-Webhooks"));
        let arrived = 1_795_910_400_000; // 2026-11-29T00:00:00Z
        assert!(!batch.past_retention(arrived + 3_600_000));
        assert!(batch.past_retention(arrived + 25 * 3_600_000));
    }
}
