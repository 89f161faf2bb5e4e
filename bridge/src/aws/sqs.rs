//! The seed's two SQS queues: the Failed Webhooks Queue names webhooks to try again
//! (delayed by the backoff), the Dead Webhooks Queue tells an operator which ones need
//! them (and receives what the failed queue and the stream mapping give up on). A message
//! carries the webhook's id only: a retry processes the stored webhook, so whoever can send
//! to a queue cannot have a payload of theirs forwarded under a verified webhook's id.

use std::time::Duration;

use anyhow::{Context, Result};
use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use inbox_core::Webhook;
use inbox_core::clock::now_ms;
use inbox_core::lifecycle::Transition;
use inbox_core::{State, Status};
use serde::{Deserialize, Serialize};

use super::stream::BatchInfo;
use crate::attempt::FollowUp;

/// SQS delays a message by at most 15 minutes: a longer wait is the schedule's.
pub const MAX_DELAY: Duration = Duration::from_secs(900);

/// Whether the failed queue carries a waiting webhook to its next attempt: a wait SQS can
/// delay a message by. A longer one (hours, with the default schedule) gets no message
/// when it starts: the scheduled function sends it once the attempt falls due within its
/// look-ahead (the webhooks `Waits { longer_than: MAX_DELAY, .. }` finds), so a wait of
/// ten hours is a message or two, on time, not forty in a chain.
pub fn queue_carries(status: &Status) -> bool {
    status
        .wait_ms()
        .is_none_or(|wait| wait <= MAX_DELAY.as_millis() as i64)
}

/// A message's `DelaySeconds` for `delay`: never sooner, at most [`MAX_DELAY`].
fn delay_seconds(delay: Duration) -> i32 {
    delay.min(MAX_DELAY).as_secs_f64().ceil() as i32
}

/// A queue message: which webhook, and on the dead queue why it needs an operator. A
/// message that also carries a webhook (as they once did) is read for its id alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Message {
    pub fn new(id: &str, reason: Option<String>) -> Message {
        Message {
            id: id.to_owned(),
            reason,
        }
    }

    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("a message serialises")
    }

    pub fn decode(body: &str) -> Result<Message> {
        serde_json::from_str(body).context("not a webhook inbox message")
    }
}

/// What a message on the Dead Webhooks Queue says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeadNotice {
    /// Ours: a webhook that needs an operator (with the reason), or, without a reason, a
    /// retry the failed queue redrove here after it failed to be handled five times.
    Webhook(Message),
    /// The stream mapping's on-failure record: not the webhooks, only where the batch it
    /// gave up on is in the stream.
    StreamBatch(BatchInfo),
}

impl DeadNotice {
    pub fn decode(body: &str) -> Result<DeadNotice> {
        #[derive(Deserialize)]
        struct OnFailure {
            #[serde(rename = "DDBStreamBatchInfo")]
            batch: BatchInfo,
        }
        if let Ok(record) = serde_json::from_str::<OnFailure>(body) {
            return Ok(DeadNotice::StreamBatch(record.batch));
        }
        Message::decode(body)
            .map(DeadNotice::Webhook)
            .context("neither an inbox message nor a stream on-failure record")
    }
}

#[derive(Clone)]
pub struct Queues {
    client: Client,
    pub failed_url: String,
    pub dead_url: String,
}

/// A message received from the dead queue, to delete once resolved.
pub struct Received {
    pub notice: Result<DeadNotice>,
    pub message_id: String,
    pub receipt_handle: String,
}

impl Queues {
    pub fn new(client: Client, failed_url: String, dead_url: String) -> Queues {
        Queues {
            client,
            failed_url,
            dead_url,
        }
    }

    pub async fn client() -> Client {
        Client::new(&aws_config::load_from_env().await)
    }

    /// Puts the webhook `id` on the failed queue, to be processed again after `delay` (at
    /// most 15 minutes).
    pub async fn retry(&self, id: &str, delay: Duration) -> Result<()> {
        self.client
            .send_message()
            .queue_url(&self.failed_url)
            .message_body(Message::new(id, None).encode())
            .delay_seconds(delay_seconds(delay))
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(e)))
            .with_context(|| format!("cannot send {id} to the failed queue"))?;
        Ok(())
    }

    /// Puts each webhook on the failed queue, to be processed after its delay (at most 15
    /// minutes), ten a request; the ids whose message was not sent.
    pub async fn retry_all(&self, due: &[(String, Duration)]) -> Result<Vec<String>> {
        let mut unsent = Vec::new();
        for batch in due.chunks(10) {
            let entries = batch
                .iter()
                .enumerate()
                .map(|(n, (id, delay))| {
                    SendMessageBatchRequestEntry::builder()
                        .id(n.to_string())
                        .message_body(Message::new(id, None).encode())
                        .delay_seconds(delay_seconds(*delay))
                        .build()
                        .context("a batch entry")
                })
                .collect::<Result<Vec<_>>>()?;
            let sent = self
                .client
                .send_message_batch()
                .queue_url(&self.failed_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(e)))
                .context("cannot send to the failed queue")?;
            for failed in sent.failed {
                let n: usize = failed.id.parse().context("an entry id of ours")?;
                tracing::warn!(
                    id = batch[n].0,
                    code = failed.code,
                    "not sent to the failed queue"
                );
                unsent.push(batch[n].0.clone());
            }
        }
        Ok(unsent)
    }

    /// Tells the operator, through the dead queue, that the webhook `id` needs them.
    pub async fn dead(&self, id: &str, reason: &str) -> Result<()> {
        let message = Message::new(id, Some(reason.to_owned()));
        self.client
            .send_message()
            .queue_url(&self.dead_url)
            .message_body(message.encode())
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(e)))
            .with_context(|| format!("cannot send {id} to the dead queue"))?;
        Ok(())
    }

    /// Up to ten messages from the dead queue, hidden from other readers for `hide`.
    pub async fn receive_dead(&self, hide: Duration) -> Result<Vec<Received>> {
        let output = self
            .client
            .receive_message()
            .queue_url(&self.dead_url)
            .max_number_of_messages(10)
            .visibility_timeout(hide.as_secs() as i32)
            // A short poll may answer empty while messages remain on other servers.
            .wait_time_seconds(1)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(e)))
            .context("cannot read the dead queue")?;
        Ok(output
            .messages
            .unwrap_or_default()
            .into_iter()
            .map(|m| Received {
                notice: DeadNotice::decode(m.body().unwrap_or_default()),
                message_id: m.message_id.unwrap_or_default(),
                receipt_handle: m.receipt_handle.unwrap_or_default(),
            })
            .collect())
    }

    /// Makes a received dead-queue message visible again at once, so it counts for the alarm.
    pub async fn release_dead(&self, receipt_handle: &str) -> Result<()> {
        self.client
            .change_message_visibility()
            .queue_url(&self.dead_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(0)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(e)))
            .context("cannot return a message to the dead queue")?;
        Ok(())
    }

    pub async fn delete_dead(&self, receipt_handle: &str) -> Result<()> {
        self.client
            .delete_message()
            .queue_url(&self.dead_url)
            .receipt_handle(receipt_handle)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(e)))
            .context("cannot delete from the dead queue")?;
        Ok(())
    }
}

/// What follows an attempt on Lambda: a failed one's retry on the failed queue (delayed
/// by the backoff), sent before the outcome is recorded; a dead one's notice on the dead
/// queue, sent once it is recorded, so the alarm fires only for a webhook that is dead.
/// (The window left: a host that dies between the record and the notice leaves a dead
/// webhook without its notice; `inbox list --status operator_required` still shows it.)
#[async_trait]
impl FollowUp for Queues {
    async fn before_recording(&self, webhook: &Webhook, transition: &Transition) -> Result<()> {
        let status = &transition.status;
        if status.state != State::Failed {
            return Ok(());
        }
        if !queue_carries(status) {
            tracing::info!(
                id = webhook.id,
                next_attempt_at = status.next_attempt_at,
                "waits longer than the failed queue can delay: the schedule sends its retry"
            );
            return Ok(());
        }
        let now = now_ms();
        let due = status.next_attempt_at.unwrap_or(now);
        let wait = inbox_core::clock::until(due, now);
        self.retry(&webhook.id, wait).await
    }

    async fn after_recording(&self, id: &str, transition: &Transition) -> Result<()> {
        let status = &transition.status;
        if status.state != State::OperatorRequired {
            return Ok(());
        }
        self.dead(id, status.last_error.as_deref().unwrap_or(""))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_carries_a_wait_of_up_to_fifteen_minutes() {
        let failed = |wait: i64| Status {
            state: State::Failed,
            attempts: 1,
            version: 3,
            updated_at: 1_000,
            lease_until: None,
            next_attempt_at: Some(1_000 + wait),
            last_error: None,
        };
        assert!(queue_carries(&failed(900_000)));
        assert!(!queue_carries(&failed(900_001)));
        // The schedule's wake finds exactly what the queue does not carry.
        let waits = inbox_core::store::Waits {
            from: 0,
            to: i64::MAX,
            longer_than: MAX_DELAY.as_millis() as i64,
        };
        assert!(!waits.matches(&failed(900_000)));
        assert!(waits.matches(&failed(900_001)));
    }

    #[test]
    fn a_message_names_the_webhook_and_never_carries_one() {
        let message = Message::new("57f0", None);
        assert_eq!(message.encode(), r#"{"id":"57f0"}"#);
        // A message as they once were, or forged with a payload: only its id is read.
        let forged = r#"{"id":"57f0","webhook":{"origin":"stripe","payload":"e30="}}"#;
        assert_eq!(Message::decode(forged).unwrap(), message);
    }

    #[test]
    fn the_dead_queue_holds_our_messages_and_the_stream_mappings_on_failure_records() {
        let ours = Message::new("57f0", Some("rejected".into()));
        assert_eq!(
            DeadNotice::decode(&ours.encode()).unwrap(),
            DeadNotice::Webhook(ours)
        );
        let record = serde_json::json!({
            "requestContext": { "condition": "RetryAttemptsExhausted", "approximateInvokeCount": 11 },
            "version": "1.0",
            "DDBStreamBatchInfo": {
                "shardId": "shardId-1", "startSequenceNumber": "100", "endSequenceNumber": "102",
                "batchSize": 2, "streamArn": "arn:aws:dynamodb:us-east-1:1:table/t/stream/x"
            }
        });
        let DeadNotice::StreamBatch(batch) = DeadNotice::decode(&record.to_string()).unwrap()
        else {
            panic!("not read as an on-failure record");
        };
        assert_eq!(
            (
                batch.start_sequence_number.as_str(),
                batch.end_sequence_number.as_str()
            ),
            ("100", "102")
        );
        assert!(DeadNotice::decode("{\"hello\": 1}").is_err());
        assert!(DeadNotice::decode("not json").is_err());
    }
}
