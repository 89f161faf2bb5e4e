//! The operator's commands: `status`, `list`, `tail`, `replay`, `requeue` and `reindex`.

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::Args;
use inbox_core::State;
use inbox_core::listing::{Filter, Query};

use super::args::{StoreArgs, dynamo_store};
use super::environment::Environment;
use crate::aws::sqs::Queues;
use crate::operator::{self, DeadQueue};
use crate::{pager, tail, terminal};

#[derive(Args)]
pub struct Status {
    id: String,
    #[command(flatten)]
    store: StoreArgs,
}

impl Status {
    pub async fn run(self, env: &Environment) -> Result<()> {
        let (store, _) = self.store.open(env).await?;
        let details = operator::details_of(store.as_ref(), &self.id).await?;
        println!("{}", serde_json::to_string_pretty(&details)?);
        Ok(())
    }
}

#[derive(Args)]
pub struct List {
    /// received, processing, completed, failed or operator_required.
    #[arg(long)]
    status: Option<State>,
    /// Only webhooks from this origin (e.g. stripe).
    #[arg(long)]
    origin: Option<String>,
    /// Only webhooks of this event type.
    #[arg(long = "type")]
    event_type: Option<String>,
    /// A webhook id or a provider's idempotency key.
    #[arg(long)]
    search: Option<String>,
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// JSON lines even on a terminal.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    store: StoreArgs,
}

impl List {
    pub async fn run(self, env: &Environment) -> Result<()> {
        let (store, _) = self.store.open(env).await?;
        let query = Query {
            filter: Filter {
                origin: self.origin,
                event_type: self.event_type,
                search: self.search,
            },
            state: self.status,
            ..Query::default()
        };
        let views = pager::first(store.as_ref(), query, self.limit).await?;
        let stdout = std::io::stdout();
        if !self.json && stdout.is_terminal() {
            print!("{}", terminal::table(&views, terminal::colour(&stdout)));
        } else {
            for view in views {
                println!("{}", serde_json::to_string(&view)?);
            }
        }
        Ok(())
    }
}

#[derive(Args)]
pub struct Tail {
    /// How often to look at the store, in milliseconds.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    every_ms: u64,
    /// JSON lines even on a terminal.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    store: StoreArgs,
}

impl Tail {
    pub async fn run(self, env: &Environment) -> Result<()> {
        let (store, _) = self.store.open(env).await?;
        let stdout = std::io::stdout();
        let table = !self.json && stdout.is_terminal();
        let colour = terminal::colour(&stdout);
        let every = Duration::from_millis(self.every_ms);
        tail::follow(store.as_ref(), every, |event| {
            if table {
                println!("{}", terminal::event_line(event, colour));
            } else if let Ok(line) = serde_json::to_string(event) {
                println!("{line}");
            }
        })
        .await
    }
}

#[derive(Args)]
pub struct Replay {
    /// The webhook to replay.
    #[arg(required_unless_present = "all_dead", conflicts_with = "all_dead")]
    id: Option<String>,
    /// Replay every webhook in `operator_required`; on AWS, then resolve every message
    /// of the dead queue (replay or requeue what it is about) and delete it once resolved.
    #[arg(long)]
    all_dead: bool,
    #[command(flatten)]
    store: StoreArgs,
    /// The Dead Webhooks Queue, to work through with --all-dead.
    #[arg(long, env = "INBOX_DEAD_QUEUE_URL")]
    dead_queue_url: Option<String>,
}

impl Replay {
    pub async fn run(self, env: &Environment) -> Result<()> {
        let (store, _) = self.store.open(env).await?;
        let store = store.as_ref();
        let Some(id) = self.id else {
            let dead_queue = match self.dead_queue_url {
                Some(url) => {
                    let aws = aws_config::load_from_env().await;
                    Some(DeadQueue {
                        queues: Queues::new(aws_sdk_sqs::Client::new(&aws), String::new(), url),
                        streams: aws_sdk_dynamodbstreams::Client::new(&aws),
                        table: self.store.table.clone(),
                    })
                }
                None => None,
            };
            return operator::replay_all_dead(store, dead_queue).await;
        };
        let view = operator::replay(store, &id).await?;
        println!("{}", serde_json::to_string(&view)?);
        Ok(())
    }
}

#[derive(Args)]
pub struct Requeue {
    #[arg(required = true)]
    ids: Vec<String>,
    #[command(flatten)]
    store: StoreArgs,
}

impl Requeue {
    pub async fn run(self, env: &Environment) -> Result<()> {
        let (store, _) = self.store.open(env).await?;
        let mut failed = 0;
        for id in &self.ids {
            match operator::requeue(store.as_ref(), id).await {
                Ok(view) => println!("{}", serde_json::to_string(&view)?),
                Err(error) => {
                    failed += 1;
                    eprintln!("{id}: {error:#}");
                }
            }
        }
        if failed > 0 {
            bail!(
                "{failed} of {} webhooks could not be requeued",
                self.ids.len()
            );
        }
        Ok(())
    }
}

#[derive(Args)]
pub struct Reindex {
    /// The DynamoDB table (the AWS SDK's AWS_REGION, credentials and AWS_ENDPOINT_URL apply).
    #[arg(long, env = "INBOX_TABLE")]
    table: String,
}

impl Reindex {
    pub async fn run(self, env: &Environment) -> Result<()> {
        let indexed = dynamo_store(env, &self.table)
            .await?
            .backfill_due_index()
            .await?;
        eprintln!("gave {indexed} webhooks in flight their due index keys");
        Ok(())
    }
}
