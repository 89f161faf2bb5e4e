//! The bridge on AWS Lambda: one binary is the `bootstrap` of every function, and tells
//! the events apart by their shape.
//!
//! - API Gateway HTTP API (payload v2) -> the capture component, as `inbox serve` runs it;
//! - DynamoDB Stream: the `INSERT` of a `WEBHOOK` item (a new webhook, carried in the
//!   image), or a `MODIFY` of a `STATUS` item back to `received` (a replay or a requeue)
//!   -> processing;
//! - SQS, the Failed Webhooks Queue -> processing again;
//! - an EventBridge schedule -> the wake and the sweep: a retry due within the look-ahead
//!   whose wait was too long for the failed queue gets its delayed message; webhooks long
//!   past due that nothing will wake (the stream mapping or the failed queue gave up on
//!   them) are requeued.
//!
//! Processing is the attempt every host runs (`crate::attempt`), with the queues as what
//! follows a failed attempt: its message is sent *before* the outcome is recorded, so a
//! recorded `failed` always has its retry message and a recorded `operator_required` its
//! dead-queue message; a message that finds nothing to do is dropped. Infrastructure errors
//! are reported per record (`batchItemFailures`) for Lambda to retry; failed attempts go
//! through the failed queue, never through Lambda's retries.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use aws_lambda_events::event::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::event::dynamodb;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use inbox_core::clock::{now_ms, until};
use inbox_core::config::{Config, ConfigError, describe};
use inbox_core::item::dynamodb::StoredWebhook;
use inbox_core::store::{StoreError, release_held};
use inbox_core::{State, Webhook};
use inbox_stores::dynamodb::PayloadBucket;
use inbox_stores::{Waits, WebhookStore};
use inbox_wasm_host::CaptureHost;
use inbox_wasm_host::capture::internal_error;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::attempt::{Attempted, Attempter, Processor};
use crate::aws::sqs::{self, Message, Queues};
use crate::aws::stream::{self, Work};
use crate::metrics::{self, Metrics};
use crate::settings::Settings;

pub mod apigw;

pub struct Handler {
    /// What this function runs (`FunctionComponents`): the others are not loaded.
    capture: Option<Arc<CaptureHost>>,
    processor: Option<Arc<dyn Processor>>,
    store: Arc<dyn WebhookStore>,
    queues: Queues,
    settings: Settings,
    /// The records of a batch are processed side by side, this many at a time.
    permits: Arc<Semaphore>,
    metrics: Arc<dyn Metrics>,
    /// Where the store keeps payloads too large for their item (`INBOX_PAYLOAD_BUCKET`).
    payloads: Option<PayloadBucket>,
}

/// The components a function loads at start (`INBOX_LAMBDA_COMPONENTS`, comma separated:
/// `capture`, `processor`, or `none`; both by default): each function of the template only
/// the one it runs, so a capture function's cold start never loads the processor, while
/// plain `inbox lambda` serves every event shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FunctionComponents {
    pub capture: bool,
    pub processor: bool,
}

impl FunctionComponents {
    pub fn from_config(config: &dyn Config) -> Result<FunctionComponents, ConfigError> {
        let Some(listed) = config.get("lambda_components") else {
            return Ok(FunctionComponents {
                capture: true,
                processor: true,
            });
        };
        let mut components = FunctionComponents {
            capture: false,
            processor: false,
        };
        for name in listed.split(',').map(str::trim) {
            match name {
                "capture" => components.capture = true,
                "processor" => components.processor = true,
                "none" => {}
                other => {
                    return Err(ConfigError(format!(
                        "{} = {listed:?}: {other:?} is not capture, processor or none",
                        describe("lambda_components")
                    )));
                }
            }
        }
        Ok(components)
    }
}

/// What an event is, judged by its shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Http,
    Stream,
    Queue,
    Schedule,
}

pub fn shape(event: &Value) -> Result<Shape> {
    if event.pointer("/requestContext/http").is_some() {
        return Ok(Shape::Http);
    }
    if event["source"] == "aws.events" && event["detail-type"] == "Scheduled Event" {
        return Ok(Shape::Schedule);
    }
    match event
        .pointer("/Records/0/eventSource")
        .and_then(Value::as_str)
    {
        Some("aws:dynamodb") => Ok(Shape::Stream),
        Some("aws:sqs") => Ok(Shape::Queue),
        _ if event.get("Records").is_some_and(|r| r == &json!([])) => Ok(Shape::Queue),
        _ => bail!(
            "not an event this function serves: expected an API Gateway HTTP API (v2), DynamoDB Stream, SQS or scheduled event"
        ),
    }
}

/// Serves Lambda invocations until the runtime stops.
/// How long an invocation waits for its alerts to be sent before it answers, at most, and
/// what it keeps of its time to answer.
const ALERT_GRACE: Duration = Duration::from_secs(20);
const ALERT_MARGIN: Duration = Duration::from_secs(2);

pub async fn run(handler: Handler) -> Result<(), lambda_runtime::Error> {
    let handler = Arc::new(handler);
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<Value>| {
            let handler = handler.clone();
            async move {
                let deadline = event.context.deadline();
                let answer = handler.handle(event.payload).await;
                // A frozen environment sends nothing: the invocation's alerts go first, in
                // what is left of its time.
                let left = deadline
                    .duration_since(std::time::SystemTime::now())
                    .unwrap_or_default()
                    .saturating_sub(ALERT_MARGIN);
                handler.metrics.flush(left.min(ALERT_GRACE)).await;
                answer
            }
        },
    ))
    .await
}

impl Handler {
    pub fn new(
        capture: Option<Arc<CaptureHost>>,
        processor: Option<Arc<dyn Processor>>,
        store: Arc<dyn WebhookStore>,
        queues: Queues,
        settings: Settings,
        metrics: Arc<dyn Metrics>,
    ) -> Handler {
        let permits = Arc::new(Semaphore::new(settings.concurrency));
        Handler {
            capture,
            processor,
            store,
            queues,
            settings,
            permits,
            metrics,
            payloads: None,
        }
    }

    /// Reads offloaded payloads from `bucket` and deletes their objects when their items go.
    pub fn with_payloads(self, bucket: Option<PayloadBucket>) -> Handler {
        Handler {
            payloads: bucket,
            ..self
        }
    }

    pub async fn handle(self: &Arc<Self>, event: Value) -> Result<Value, lambda_runtime::Error> {
        let shape = shape(&event)?;
        // An event for a component this function does not run fails the whole invocation,
        // visible in the function's errors, and Lambda keeps the records.
        if matches!(shape, Shape::Stream | Shape::Queue) && self.processor.is_none() {
            return Err(
                "this function does not run the processor component (INBOX_LAMBDA_COMPONENTS)"
                    .into(),
            );
        }
        Ok(match shape {
            Shape::Http => serde_json::to_value(self.http(serde_json::from_value(event)?).await)?,
            Shape::Stream => {
                serde_json::to_value(self.stream(serde_json::from_value(event)?).await?)?
            }
            Shape::Queue => {
                serde_json::to_value(self.queue(serde_json::from_value(event)?).await?)?
            }
            Shape::Schedule => {
                // Each runs whatever happens to the other; a failure fails the invocation.
                let (swept, woken, released) =
                    (self.sweep().await, self.wake().await, self.release().await);
                let mut answer = swept?;
                answer["woken"] = woken?.into();
                answer["released"] = released?.into();
                answer
            }
        })
    }

    /// Sends round again the webhooks due for longer than the grace period: a webhook in
    /// flight is always due at some time (its next attempt, or the end of its lease), and
    /// the stream or the failed queue takes it then; one still due well after that has
    /// nothing left to wake it. The `due` index finds them without reading the table; each
    /// is requeued (back to `received`, due now, its attempts kept: a compare-and-swap, so
    /// an attempt that takes it meanwhile wins), and the stream delivers that change to the
    /// processing function, as for `inbox requeue`. Requeued, it is due now, so the next
    /// sweeps leave it to the stream for a grace period again.
    async fn sweep(&self) -> Result<Value> {
        let now = now_ms();
        let grace = i64::try_from(self.settings.sweep_grace.as_millis()).unwrap_or(i64::MAX);
        let due = self
            .store
            .due(now.saturating_sub(grace), self.settings.sweep_limit)
            .await?;
        let (mut requeued, mut failed) = (0, 0);
        for id in &due {
            match inbox_stores::requeue(self.store.as_ref(), id, now).await {
                Ok(_) => requeued += 1,
                Err(StoreError::Unavailable(error)) => {
                    tracing::error!(id, %error, "cannot requeue; the next sweep tries again");
                    failed += 1;
                }
                // Taken by an attempt, finished or gone since the index said it was due.
                Err(other) => tracing::info!(id, reason = %other, "no longer stuck"),
            }
        }
        if requeued > 0 {
            tracing::warn!(
                requeued,
                "webhooks past due with nothing to wake them; sent round again"
            );
        }
        Ok(json!({ "found": due.len(), "requeued": requeued, "failed": failed }))
    }

    /// Sends the failed queue's message for each retry falling due before the next runs of
    /// the schedule whose wait was longer than the queue can delay ([`sqs::queue_carries`]),
    /// delayed to its due time; one past due (up to the sweep's grace) goes at once. A
    /// retry is seen by each run whose window holds it (the look-aheads overlap, and one
    /// not yet taken is seen again looking back): it is attempted once, and the other
    /// messages find nothing to do. The number sent.
    async fn wake(&self) -> Result<usize> {
        let now = now_ms();
        let grace = i64::try_from(self.settings.sweep_grace.as_millis()).unwrap_or(i64::MAX);
        let ahead = i64::try_from(self.settings.wake_ahead.as_millis()).unwrap_or(i64::MAX);
        let waits = Waits {
            from: now.saturating_sub(grace),
            to: now.saturating_add(ahead),
            longer_than: sqs::MAX_DELAY.as_millis() as i64,
        };
        let waiting = self.store.waiting(waits, self.settings.sweep_limit).await?;
        let due: Vec<(String, Duration)> = waiting
            .into_iter()
            .map(|(id, status)| (id, until(status.due_at().unwrap_or(now), now)))
            .collect();
        let unsent = self.queues.retry_all(&due).await?;
        let woken = due.len() - unsent.len();
        if woken > 0 {
            tracing::info!(woken, "retries falling due sent to the failed queue");
        }
        Ok(woken)
    }

    /// Releases what the destinations let go ([`release_held`]): a received webhook's
    /// release reaches the processing function through the stream (a status set back to
    /// `received`), a failed one's through a message to the failed queue, due now. The
    /// number released.
    async fn release(&self) -> Result<usize> {
        let released =
            release_held(self.store.as_ref(), now_ms(), self.settings.release_batch).await?;
        let failed: Vec<(String, Duration)> = released
            .iter()
            .filter(|(_, status)| status.state == State::Failed)
            .map(|(id, _)| (id.clone(), Duration::ZERO))
            .collect();
        let unsent = self.queues.retry_all(&failed).await?;
        if !unsent.is_empty() {
            tracing::warn!(
                unsent = unsent.len(),
                "released retries without a message; the sweep sends them round again"
            );
        }
        if !released.is_empty() {
            tracing::info!(released = released.len(), "held webhooks released");
        }
        Ok(released.len())
    }

    /// An API Gateway request, through the capture component.
    async fn http(&self, event: ApiGatewayV2httpRequest) -> ApiGatewayV2httpResponse {
        let method = event.request_context.http.method.to_string();
        let path = event.raw_path.clone().unwrap_or_default();
        let response = match (apigw::request_of(event), &self.capture) {
            (Ok(request), Some(capture)) => capture.handle(request).await,
            (Ok(_), None) => Err(anyhow::anyhow!(
                "this function does not run the capture component (INBOX_LAMBDA_COMPONENTS)"
            )),
            (Err(error), _) => Err(error),
        };
        let response = response.unwrap_or_else(|error| {
            tracing::error!(error = format!("{error:#}"), "request failed");
            internal_error()
        });
        let (status, answer) = apigw::answer(response).await;
        if let Some(event) = metrics::of_delivery(&method, &path, status) {
            self.metrics.record(&event);
        }
        answer
    }

    /// DynamoDB Stream records; a record that hits an infrastructure error is reported by
    /// its sequence number, and Lambda retries from there.
    async fn stream(self: &Arc<Self>, event: dynamodb::Event) -> Result<DynamoDbEventResponse> {
        let mut work = JoinSet::new();
        for record in event.records {
            let handler = self.clone();
            work.spawn(async move {
                let _permit = handler.permits.clone().acquire_owned().await;
                let sequence = record.change.sequence_number.clone().unwrap_or_default();
                (sequence, handler.stream_record(record).await)
            });
        }
        let mut response = DynamoDbEventResponse::default();
        for identifier in collect_failures(work).await? {
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = Some(identifier);
            response.batch_item_failures.push(failure);
        }
        Ok(response)
    }

    async fn stream_record(&self, record: dynamodb::EventRecord) -> Result<()> {
        let change = record.change;
        let work = stream::work_of(&record.event_name, &change.keys, change.new_image)?;
        let webhook = match work {
            Some(Work::Captured(StoredWebhook::Whole(webhook))) => webhook,
            Some(Work::Captured(StoredWebhook::Offloaded(offloaded))) => {
                self.payloads()?.load(offloaded).await?
            }
            Some(Work::SentRoundAgain(id)) => self
                .store
                .webhook(&id)
                .await?
                .with_context(|| format!("{id} has a status but no webhook item"))?,
            Some(Work::UploadGone(upload)) => {
                let object = upload.object();
                self.payloads()?.delete(&object).await?;
                tracing::info!(
                    id = upload.id(),
                    object,
                    "payload object deleted with its item"
                );
                return Ok(());
            }
            // Anything else is filtered out by the event source mapping.
            None => return Ok(()),
        };
        self.deliver(&webhook).await
    }

    fn payloads(&self) -> Result<&PayloadBucket> {
        self.payloads
            .as_ref()
            .context("a payload is in a bucket and INBOX_PAYLOAD_BUCKET is not set")
    }

    /// Messages of the Failed Webhooks Queue; one that hits an infrastructure error is
    /// reported by its message id and comes back after its visibility timeout.
    async fn queue(self: &Arc<Self>, event: SqsEvent) -> Result<SqsBatchResponse> {
        let mut work = JoinSet::new();
        for message in event.records {
            let handler = self.clone();
            work.spawn(async move {
                let _permit = handler.permits.clone().acquire_owned().await;
                let id = message.message_id.clone().unwrap_or_default();
                let body = message.body.unwrap_or_default();
                (id, handler.queue_message(&body).await)
            });
        }
        let mut response = SqsBatchResponse::default();
        response.set_failures(collect_failures(work).await?);
        Ok(response)
    }

    async fn queue_message(&self, body: &str) -> Result<()> {
        let message = Message::decode(body)?;
        // The stored webhook, never anything the message says of it.
        let Some(webhook) = self.store.webhook(&message.id).await? else {
            tracing::warn!(
                id = message.id,
                "a retry for a webhook that is no longer stored (expired?); dropped"
            );
            return Ok(());
        };
        self.deliver(&webhook).await
    }

    /// Processes `webhook` if it is due; otherwise makes sure it will be looked at again
    /// when it is. An error is an infrastructure error: the record is to be retried.
    pub async fn deliver(&self, webhook: &Webhook) -> Result<()> {
        let id = webhook.id.as_str();
        let processor = self.processor.as_deref().context(
            "this function does not run the processor component (INBOX_LAMBDA_COMPONENTS)",
        )?;
        let attempts = Attempter {
            store: self.store.as_ref(),
            processor,
            follow_up: &self.queues,
            settings: &self.settings,
            metrics: self.metrics.as_ref(),
        };
        match attempts.run(id, Some(webhook)).await? {
            Attempted::Missing => bail!("{id} has no status item"),
            Attempted::NotTaken(status)
                if matches!(status.state, State::Completed | State::OperatorRequired) =>
            {
                tracing::debug!(id, state = %status.state, "nothing to do");
            }
            Attempted::NotTaken(status) | Attempted::Deferred(status)
                if !sqs::queue_carries(&status) =>
            {
                tracing::info!(id, state = %status.state, next_attempt_at = status.next_attempt_at, "not due; the schedule sends its retry");
            }
            Attempted::NotTaken(status) | Attempted::Deferred(status) => {
                // Not due yet, or another attempt holds the lease (alive, or crashed: then
                // the lease expires). Look again then; a message too many finds nothing to do.
                let now = now_ms();
                let at = status.next_attempt_at.or(status.lease_until).unwrap_or(now);
                let wait = until(at, now);
                tracing::info!(id, state = %status.state, wait_ms = wait.as_millis() as u64, "not due; looking again later");
                self.queues.retry(id, wait).await?;
            }
            // A held webhook is released by the schedule, when its destination lets it.
            Attempted::Recorded(_)
            | Attempted::TakenByAnother
            | Attempted::Discarded
            | Attempted::Held => {}
        }
        Ok(())
    }
}

/// The records to report as failed, by identifier. A record whose task panicked cannot be
/// named, so the whole invocation fails and Lambda retries the batch.
async fn collect_failures(mut work: JoinSet<(String, Result<()>)>) -> Result<Vec<String>> {
    let mut failures = Vec::new();
    while let Some(joined) = work.join_next().await {
        let (identifier, result) = joined.context("a record's task panicked")?;
        if let Err(error) = result {
            tracing::error!(
                identifier,
                error = format!("{error:#}"),
                "record failed; Lambda will retry it"
            );
            failures.push(identifier);
        }
    }
    Ok(failures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_told_apart_by_their_shape() {
        let scheduled = json!({
            "version": "0", "id": "53dc4d37", "detail-type": "Scheduled Event",
            "source": "aws.events", "account": "123456789012", "time": "2026-11-29T00:00:00Z",
            "region": "us-east-1", "resources": ["arn:aws:events:us-east-1:123456789012:rule/sweep"],
            "detail": {}
        });
        assert_eq!(shape(&scheduled).unwrap(), Shape::Schedule);
        let sqs = json!({ "Records": [{ "eventSource": "aws:sqs", "body": "{}" }] });
        assert_eq!(shape(&sqs).unwrap(), Shape::Queue);
        let stream = json!({ "Records": [{ "eventSource": "aws:dynamodb" }] });
        assert_eq!(shape(&stream).unwrap(), Shape::Stream);
        let http = json!({ "requestContext": { "http": { "method": "POST" } } });
        assert_eq!(shape(&http).unwrap(), Shape::Http);
        let other = json!({ "source": "aws.s3", "detail-type": "Object Created" });
        assert!(shape(&other).is_err());
    }
}
