//! What operators do from the command line: look at a webhook, replay dead ones, requeue
//! stuck ones, and on AWS work through the Dead Webhooks Queue, deleting a message only
//! once what it is about is resolved (completed, replayed or requeued).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use anyhow::{Result, bail};
use inbox_core::State;
use inbox_core::listing::Query;
use inbox_core::model::{Details, StatusView};

use inbox_core::clock::now_ms;
use inbox_stores::{StoreError, WebhookStore};

use crate::aws::sqs::{DeadNotice, Queues};
use crate::aws::stream::{self, BatchInfo, ReadBack, Work};
use crate::{pager, terminal};

pub async fn details_of(store: &dyn WebhookStore, id: &str) -> Result<Details> {
    match store.details(id).await? {
        Some(details) => Ok(details),
        None => bail!("no webhook has the id {id}"),
    }
}

pub async fn view_of(store: &dyn WebhookStore, id: &str) -> Result<StatusView> {
    Ok(details_of(store, id).await?.view)
}

pub async fn replay(store: &dyn WebhookStore, id: &str) -> Result<StatusView> {
    inbox_stores::replay(store, id, now_ms()).await?;
    view_of(store, id).await
}

pub async fn requeue(store: &dyn WebhookStore, id: &str) -> Result<StatusView> {
    inbox_stores::requeue(store, id, now_ms()).await?;
    view_of(store, id).await
}

/// The Dead Webhooks Queue, and what resolving its messages takes.
pub struct DeadQueue {
    pub queues: Queues,
    pub streams: aws_sdk_dynamodbstreams::Client,
    /// The DynamoDB table the store is, if it is one: a stream record names its table.
    pub table: Option<String>,
}

/// Replays every dead webhook, with a progress bar; then, on AWS, works through the dead
/// queue.
pub async fn replay_all_dead(
    store: &dyn WebhookStore,
    dead_queue: Option<DeadQueue>,
) -> Result<()> {
    let dead = Query {
        state: Some(State::OperatorRequired),
        ..Query::default()
    };
    let ids: Vec<String> = pager::every(store, dead)
        .await?
        .into_iter()
        .map(|view| view.id)
        .collect();
    let progress = terminal::progress(ids.len(), "replaying");
    let mut sent = HashSet::new();
    let mut failed = 0;
    for id in &ids {
        match replay(store, id).await {
            Ok(view) => {
                sent.insert(id.clone());
                progress
                    .suspend(|| println!("{}", serde_json::to_string(&view).unwrap_or_default()))
            }
            Err(error) => {
                failed += 1;
                progress.suspend(|| eprintln!("{id}: {error:#}"));
            }
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    eprintln!(
        "replayed {} of {} dead webhooks",
        ids.len() - failed,
        ids.len()
    );
    if let Some(dead) = dead_queue {
        let mut pass = DeadQueuePass {
            store,
            dead: &dead,
            sent,
            due: None,
            requeued: 0,
            replayed: 0,
        };
        let (cleared, left) = pass.run().await?;
        eprintln!("requeued {} stuck webhooks", pass.requeued);
        if pass.replayed > 0 {
            eprintln!("replayed {} more from the dead queue", pass.replayed);
        }
        eprintln!("cleared {cleared} messages from the dead queue ({left} left)");
    }
    if failed > 0 {
        bail!("{failed} webhooks could not be replayed");
    }
    Ok(())
}

/// One pass over the dead queue.
struct DeadQueuePass<'a> {
    store: &'a dyn WebhookStore,
    dead: &'a DeadQueue,
    /// Webhooks this run has sent round again already.
    sent: HashSet<String>,
    /// What the table holds as due, read once a pass when a stream batch is gone.
    due: Option<Vec<String>>,
    requeued: usize,
    replayed: usize,
}

/// Where the pass learned of a webhook, which says what it still needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Notice {
    /// Our dead-queue message: it needed an operator. Dead no more, it was replayed (or the
    /// notice is stale): nothing is left to do.
    Dead,
    /// A retry the failed queue redrove: nothing will retry the webhook.
    Redriven,
    /// A record of a stream batch Lambda gave up on (with `ParallelizationFactor` above 1 a
    /// batch's sequence range also holds other batches' records: they resolve the same way).
    StreamRecord,
}

enum Resolution {
    Resolved,
    /// Still needs someone; says why.
    Left(String),
}

impl DeadQueuePass<'_> {
    /// Resolves what each message is about and deletes it if that worked; the others stay
    /// for the operator, each with its reason printed, visible again once the pass is over
    /// (so the alarm goes on counting them). Returns (cleared, left).
    async fn run(&mut self) -> Result<(usize, usize)> {
        let mut cleared = 0;
        // Kept messages by id, with their latest receipt handle: a pass longer than the
        // hiding time sees them again.
        let mut kept: HashMap<String, String> = HashMap::new();
        loop {
            // Hidden long enough that this pass does not see a kept message twice.
            let batch = self
                .dead
                .queues
                .receive_dead(Duration::from_secs(300))
                .await?;
            if batch.is_empty() {
                break;
            }
            for received in batch {
                if let Some(receipt) = kept.get_mut(&received.message_id) {
                    *receipt = received.receipt_handle;
                    continue;
                }
                let resolution = match received.notice {
                    Ok(DeadNotice::Webhook(message)) => {
                        let notice = match message.reason {
                            Some(_) => Notice::Dead,
                            None => Notice::Redriven,
                        };
                        self.resolve(&message.id, notice).await?
                    }
                    Ok(DeadNotice::StreamBatch(batch)) => self.resolve_batch(&batch).await?,
                    Err(error) => Resolution::Left(format!("{error:#}")),
                };
                match resolution {
                    Resolution::Resolved => {
                        self.dead
                            .queues
                            .delete_dead(&received.receipt_handle)
                            .await?;
                        cleared += 1;
                    }
                    Resolution::Left(why) => {
                        eprintln!("left on the dead queue: {why}");
                        kept.insert(received.message_id, received.receipt_handle);
                    }
                }
            }
        }
        for receipt_handle in kept.values() {
            if let Err(error) = self.dead.queues.release_dead(receipt_handle).await {
                eprintln!("{error:#} (it shows again once hidden no more)");
            }
        }
        Ok((cleared, kept.len()))
    }

    /// A batch the stream mapping gave up on: the webhooks in its records, read back from
    /// the stream; once the stream no longer has them, every webhook the table holds as
    /// due (the compare-and-swap makes a needless requeue harmless).
    async fn resolve_batch(&mut self, batch: &BatchInfo) -> Result<Resolution> {
        let table = batch.table().unwrap_or("?");
        let ours = self.dead.table.as_deref().map(table_name);
        if ours != Some(table) {
            return Ok(Resolution::Left(format!(
                "a stream batch of the table {table}: run with --table {table}"
            )));
        }
        let range = format!(
            "the stream batch {}..{}",
            batch.start_sequence_number, batch.end_sequence_number
        );
        let (ids, notice) = match stream::read_back(&self.dead.streams, batch, now_ms()).await {
            Ok(ReadBack::Found(work)) => {
                // An upload's removal is not a webhook to send round.
                for gone in &work {
                    if let Work::UploadGone(upload) = gone {
                        eprintln!(
                            "{range}: the payload object {} outlived its item; delete it from the bucket",
                            upload.object()
                        );
                    }
                }
                let ids = work
                    .iter()
                    .filter(|w| !matches!(w, Work::UploadGone(_)))
                    .map(|w| w.id().to_owned())
                    .collect();
                (ids, Notice::StreamRecord)
            }
            Ok(ReadBack::Gone(why)) => {
                eprintln!(
                    "{range} cannot be read back ({why}); requeuing what the table holds as due"
                );
                (self.due().await?, Notice::Redriven)
            }
            Err(error) => return Ok(Resolution::Left(format!("{range}: {error:#}"))),
        };
        let mut left = Vec::new();
        for id in ids {
            if let Resolution::Left(why) = self.resolve(&id, notice).await? {
                left.push(why);
            }
        }
        Ok(if left.is_empty() {
            Resolution::Resolved
        } else {
            Resolution::Left(left.join("; "))
        })
    }

    async fn due(&mut self) -> Result<Vec<String>> {
        if self.due.is_none() {
            self.due = Some(self.store.due(now_ms(), usize::MAX >> 1).await?);
        }
        Ok(self.due.clone().unwrap_or_default())
    }

    /// Sends the webhook round again if it still needs it: replayed if dead, requeued if
    /// stuck. A live attempt is left alone, and so is its message.
    async fn resolve(&mut self, id: &str, notice: Notice) -> Result<Resolution> {
        if self.sent.contains(id) {
            return Ok(Resolution::Resolved);
        }
        let now = now_ms();
        let Some(status) = self.store.status(id).await? else {
            eprintln!("{id} is no longer stored (its retention ran out?): nothing to resolve");
            return Ok(Resolution::Resolved);
        };
        // A failed webhook that is not due has its retry on the failed queue.
        let retry_scheduled =
            status.state == State::Failed && status.next_attempt_at.is_some_and(|due| due > now);
        let sent = match (status.state, notice) {
            (State::Completed, _) => return Ok(Resolution::Resolved),
            (State::OperatorRequired, _) => inbox_stores::replay(self.store, id, now).await,
            (_, Notice::Dead) => return Ok(Resolution::Resolved),
            (State::Failed, Notice::StreamRecord) if retry_scheduled => {
                return Ok(Resolution::Resolved);
            }
            _ => inbox_stores::requeue(self.store, id, now).await,
        };
        match sent {
            Ok(_) if status.state == State::OperatorRequired => self.replayed += 1,
            Ok(_) => self.requeued += 1,
            Err(StoreError::Conflict(why)) => return Ok(Resolution::Left(format!("{id}: {why}"))),
            Err(StoreError::NotFound(_)) => return Ok(Resolution::Resolved),
            Err(error) => return Err(error.into()),
        }
        self.sent.insert(id.to_owned());
        match view_of(self.store, id).await {
            Ok(view) => println!("{}", serde_json::to_string(&view)?),
            Err(error) => eprintln!("{id}: {error:#}"),
        }
        Ok(Resolution::Resolved)
    }
}

/// A table's name, also when given as its ARN (`arn:...:table/<name>`).
fn table_name(table: &str) -> &str {
    table.rsplit_once(":table/").map_or(table, |(_, name)| name)
}
