//! The `inbox` command line: its schema here, each command in a file of its own, the
//! argument groups they share in [`args`], the configuration read once ([`environment`]).

pub mod args;
pub mod check_processor;
pub mod compile;
pub mod destinations;
pub mod environment;
pub mod hosts;
pub mod lambda;
pub mod logging;
pub mod operator;
pub mod serve;
pub mod signal;
pub mod worker;

use anyhow::Result;
use clap::{CommandFactory, Parser, Subcommand};

use environment::Environment;

/// A webhook inbox: verify, store durably, process with retries and a dead-letter queue.
///
/// Configuration comes from `INBOX_*` environment variables (see docs/configuration.md); the
/// components read them as lower-case keys without the prefix.
#[derive(Parser)]
#[command(version)]
pub struct Cli {
    /// With none, `inbox` serves Lambda events when AWS_LAMBDA_RUNTIME_API is set.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Serve the capture endpoint over HTTP and process what arrives.
    Serve(serve::Serve),
    /// Process what another host (e.g. Spin) captured into the database, without HTTP.
    Worker(worker::Worker),
    /// Serve AWS Lambda events: API Gateway HTTP API (v2) requests through the capture
    /// component, DynamoDB Stream and SQS records through the processor. One binary is
    /// the bootstrap of every function; it tells the events apart by their shape.
    Lambda(lambda::Lambda),
    /// Check a processor component: run a fixed set of webhooks through it (every
    /// provider's shape, the largest payload, non-ASCII text, a destination answering 2xx,
    /// 429 with Retry-After, 410, 500, or not listening) and report each outcome, its time
    /// and memory. A component that does not fit the `processor` world is refused, with why.
    /// Its settings are the INBOX_PROCESSOR_* ones; forward_url is the kit's destination.
    CheckProcessor(check_processor::CheckProcessor),
    /// Precompile components into DIR/<name>.cwasm (wasmtime's form): a host given
    /// <name>.wasm loads <name>.cwasm beside it instead of compiling, when it is compatible.
    Compile(compile::Compile),
    /// Show a webhook's status and its dead-letter records.
    Status(operator::Status),
    /// List webhooks, newest first: a table on a terminal, JSON lines otherwise.
    List(operator::List),
    /// Follow what arrives and what becomes of it until interrupted: lines on a terminal,
    /// JSON lines (`"event": "arrived"` or `"changed"`) otherwise.
    Tail(operator::Tail),
    /// Send a dead webhook (operator_required) round again with a fresh retry budget.
    Replay(operator::Replay),
    /// Give the webhooks in flight of a DynamoDB table written before the `due` index
    /// existed their index keys, so the sweep, the worker and the list find them. Run once
    /// after deploying a template with the index over an older table.
    Reindex(operator::Reindex),
    /// Send stuck webhooks round again now, keeping the attempts they used: `received`,
    /// `failed`, or `processing` whose lease has expired (on AWS: what the stream mapping
    /// gave up on, or a retry redriven to the dead queue). A live attempt is left alone.
    Requeue(operator::Requeue),
    /// List the destinations processors deliver to: state (closed, open, paused),
    /// failures in a row, last error, webhooks held, when it opened.
    Destinations(destinations::Destinations),
    /// Pause a destination: capture goes on, delivery to it waits (held, spending no retry)
    /// until it is resumed.
    Pause(destinations::Switch),
    /// Resume a paused destination: what it held is released, a batch at a time.
    Resume(destinations::Switch),
}

impl Cli {
    /// The command to run: the one given, or `lambda` inside Lambda's runtime; with
    /// neither, the help, and exit status 2.
    pub fn parse_command() -> Result<Command> {
        let cli = Cli::parse();
        match cli.command {
            Some(command) => Ok(command),
            None if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() => {
                Ok(Cli::parse_from(["inbox", "lambda"])
                    .command
                    .expect("a command"))
            }
            None => {
                <Cli as CommandFactory>::command().print_help()?;
                std::process::exit(2);
            }
        }
    }
}

impl Command {
    /// Whether the command's output is a report, so that logs stay quiet by default.
    pub fn reports(&self) -> bool {
        matches!(self, Command::CheckProcessor(_) | Command::Compile(_))
    }

    pub async fn run(self) -> Result<()> {
        let env = Environment::read().await?;
        match self {
            Command::Serve(serve) => serve.run(&env).await,
            Command::Worker(worker) => worker.run(&env).await,
            Command::Lambda(lambda) => lambda.run(&env).await,
            Command::CheckProcessor(check) => check.run(&env).await,
            Command::Compile(compile) => compile.run(),
            Command::Status(status) => status.run(&env).await,
            Command::List(list) => list.run(&env).await,
            Command::Tail(tail) => tail.run(&env).await,
            Command::Replay(replay) => replay.run(&env).await,
            Command::Reindex(reindex) => reindex.run(&env).await,
            Command::Requeue(requeue) => requeue.run(&env).await,
            Command::Destinations(destinations) => destinations.run(&env).await,
            Command::Pause(pause) => pause.run(&env, true).await,
            Command::Resume(resume) => resume.run(&env, false).await,
        }
    }
}
