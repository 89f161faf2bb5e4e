//! The real `inbox` binary as a Lambda function, driven through the Lambda Runtime API
//! of cargo-lambda, against moto. The test plays Lambda's event source pollers: it reads
//! the table's stream and the failed queue, builds the events and invokes the function.

mod moto;
mod sam;
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use inbox_core::State;
use inbox_core::clock::now_ms;
use inbox_core::lifecycle::{RetryPolicy, Transition};
use inbox_core::listing::Query;
use inbox_stores::WebhookStore;
use inbox_stores::dynamodb::{DynamoStore, Retention};
use moto::{LambdaFunction, Moto, StreamReader};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support::{BIGCOMMERCE_SECRET, bigcommerce_event, large, sign_bigcommerce};

struct Aws {
    table: String,
    queues: moto::Queues,
    sqs: aws_sdk_sqs::Client,
    store: DynamoStore,
}

async fn aws() -> Aws {
    let moto = Moto::shared();
    let dynamodb = moto.dynamodb().await;
    let table = moto::unique("webhooks");
    moto::create_table(&dynamodb, &table).await;
    let sqs = moto.sqs().await;
    let queues = moto::create_queues(&sqs, &moto::unique("inbox")).await;
    let store = DynamoStore::new(dynamodb, table.clone(), Retention::default());
    Aws {
        table,
        queues,
        sqs,
        store,
    }
}

/// The function's environment: `extra` over the tests' settings, which retry after a
/// second (the seed's backoff) unless `extra` gives a schedule.
fn function_env(aws: &Aws, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env = moto::aws_env(Moto::shared());
    let quick_retries = extra
        .iter()
        .all(|(name, _)| *name != "INBOX_RETRY_SCHEDULE")
        .then_some(("INBOX_RETRY_BASE_DELAY_MS", "1000"));
    for (k, v) in [
        ("INBOX_TABLE", aws.table.as_str()),
        ("INBOX_FAILED_QUEUE_URL", aws.queues.failed_url.as_str()),
        ("INBOX_DEAD_QUEUE_URL", aws.queues.dead_url.as_str()),
        ("INBOX_BIGCOMMERCE_SECRET", BIGCOMMERCE_SECRET),
        ("INBOX_ADMIN_TOKEN", support::ADMIN_TOKEN),
    ]
    .into_iter()
    .chain(quick_retries)
    .chain(extra.iter().copied())
    {
        env.push((k.to_owned(), v.to_owned()));
    }
    env
}

/// `inbox lambda` whose simulated work fails this fraction of attempts.
fn processing_function(aws: &Aws, failure_rate: &str) -> LambdaFunction {
    LambdaFunction::start(
        &["lambda"],
        &function_env(aws, &[("INBOX_DEMO_FAILURE_RATE", failure_rate)]),
    )
}

/// A signed BigCommerce delivery through API Gateway: (status code, JSON body).
fn capture(function: &LambdaFunction, hash: &str) -> (u16, Value) {
    let response = function.invoke(&moto::bigcommerce_http_event(hash));
    let status = response["statusCode"].as_u64().unwrap() as u16;
    assert_eq!(response["isBase64Encoded"], false);
    let body: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    (status, body)
}

/// Takes `id` for an attempt, leased for `lease_ms`, as a processing function does.
async fn take(aws: &Aws, id: &str, lease_ms: u64) {
    let status = aws.store.status(id).await.unwrap().unwrap();
    let claim = Transition::to(
        status
            .claim(now_ms(), lease_ms, &RetryPolicy::default())
            .unwrap(),
    );
    assert!(
        aws.store
            .swap_status(id, status.version, &claim)
            .await
            .unwrap()
    );
}

/// Invokes the function with `event` on a thread of its own, so that the test can act
/// while the invocation runs: its answer, or why there was none.
fn invoke_in_background(
    function: &LambdaFunction,
    event: Value,
) -> std::thread::JoinHandle<Result<(u16, String), String>> {
    let base_url = function.base_url.clone();
    std::thread::spawn(move || {
        support::send_raw(
            &base_url,
            &support::http(
                "POST",
                "/2015-03-31/functions/_/invocations",
                &[("content-type", "application/json")],
                event.to_string().as_bytes(),
            ),
        )
    })
}

/// Waits until an attempt has taken `id`.
async fn wait_until_taken(aws: &Aws, id: &str, function: &LambdaFunction) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while aws.store.status(id).await.unwrap().unwrap().state != State::Processing {
        assert!(std::time::Instant::now() < deadline, "{}", function.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The new stream records that pass the stream mapping's filter in template.yaml.
async fn read_mapped(stream: &mut StreamReader) -> Vec<Value> {
    let filters = sam::stream_filters(&sam::parse(&sam::template_text()));
    assert!(!filters.is_empty(), "the template filters the stream");
    stream
        .read()
        .await
        .into_iter()
        .filter(|record| sam::passes(&filters, record))
        .collect()
}

/// The id of a signed BigCommerce delivery captured through API Gateway.
fn captured(function: &LambdaFunction, hash: &str) -> String {
    let (code, body) = capture(function, hash);
    assert_eq!(code, 202, "{body}\n{}", function.log());
    body["id"].as_str().unwrap().to_owned()
}

/// Hands every new stream record that passes the template's filter to the function.
async fn deliver_stream(function: &LambdaFunction, stream: &mut StreamReader) -> usize {
    let records = read_mapped(stream).await;
    let count = records.len();
    if count > 0 {
        let response = function.invoke(&moto::stream_event(records));
        assert_eq!(
            response,
            json!({ "batchItemFailures": [] }),
            "{}",
            function.log()
        );
    }
    count
}

/// Waits (SQS long polling) for the failed queue's next batch: the Lambda event, and the
/// receipt handles by message id.
async fn receive_failed(aws: &Aws) -> (Value, std::collections::HashMap<String, String>) {
    moto::receive_sqs_event(
        &aws.sqs,
        &aws.queues.failed_url,
        &aws.queues.failed_arn,
        Duration::from_secs(10),
    )
    .await
}

/// Waits (SQS long polling) for the failed queue's next batch and hands it to the function.
async fn deliver_failed_queue(function: &LambdaFunction, aws: &Aws) -> usize {
    let (event, receipts) = receive_failed(aws).await;
    let count = receipts.len();
    if count > 0 {
        let response = function.invoke(&event);
        assert_eq!(
            response,
            json!({ "batchItemFailures": [] }),
            "{}",
            function.log()
        );
        moto::settle_batch(&aws.sqs, &aws.queues.failed_url, receipts, &response).await;
    }
    count
}

#[tokio::test(flavor = "multi_thread")]
async fn a_webhook_that_always_fails_is_retried_from_the_failed_queue_then_dead_lettered() {
    let aws = aws().await;
    let function = processing_function(&aws, "1.0");
    let mut stream = StreamReader::new(Moto::shared(), &aws.table).await;

    let (code, body) = capture(&function, "hash-dead");
    assert_eq!(code, 202, "{body}\n{}", function.log());
    let id = body["id"].as_str().unwrap().to_owned();
    let (code, again) = capture(&function, "hash-dead");
    assert_eq!((code, again["id"].as_str()), (200, Some(id.as_str())));

    // The INSERT of the WEBHOOK item (the STATUS insert is filtered out): first attempt.
    assert_eq!(deliver_stream(&function, &mut stream).await, 1);
    let status = aws.store.status(&id).await.unwrap().unwrap();
    assert_eq!((status.state, status.attempts), (State::Failed, 1));

    // Two retries from the failed queue, each after its backoff.
    assert_eq!(deliver_failed_queue(&function, &aws).await, 1);
    let status = aws.store.status(&id).await.unwrap().unwrap();
    assert_eq!((status.state, status.attempts), (State::Failed, 2));
    assert_eq!(deliver_failed_queue(&function, &aws).await, 1);

    let status = aws.store.status(&id).await.unwrap().unwrap();
    assert_eq!(
        (status.state, status.attempts),
        (State::OperatorRequired, 3)
    );
    let letters = aws.store.details(&id).await.unwrap().unwrap().dead_letters;
    assert_eq!(letters.len(), 1);
    assert!(
        letters[0]
            .reason
            .contains("retries exhausted after 3 attempts")
    );
    // Exactly one message tells the operator; nothing is left to retry.
    let dead = moto::peek(&aws.sqs, &aws.queues.dead_url).await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["id"], id.as_str());
    assert!(
        dead[0]["reason"]
            .as_str()
            .unwrap()
            .contains("retries exhausted")
    );
    // The id, and nothing of the webhook: the operator reads the store.
    assert_eq!(dead[0].as_object().map(|m| m.len()), Some(2), "{dead:?}");
    assert_eq!(deliver_failed_queue(&function, &aws).await, 0);
    // No status change after the first attempt put anything back on the stream's filter.
    assert_eq!(deliver_stream(&function, &mut stream).await, 0);

    // The operator replays every dead webhook: the status goes back to received, which the
    // stream delivers, and the dead queue is cleared.
    let (ok, output) = operator(&aws, &["replay", "--all-dead", "--table", &aws.table]);
    assert!(ok, "{output}");
    assert!(output.contains("replayed 1 of 1 dead webhooks"), "{output}");
    assert!(
        output.contains("cleared 1 messages from the dead queue"),
        "{output}"
    );
    assert!(moto::peek(&aws.sqs, &aws.queues.dead_url).await.is_empty());
    assert_eq!(deliver_stream(&function, &mut stream).await, 1);
    let status = aws.store.status(&id).await.unwrap().unwrap();
    assert_eq!((status.state, status.attempts), (State::Failed, 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_webhook_is_processed_once_from_the_stream_by_the_bare_bootstrap() {
    let aws = aws().await;
    // No subcommand: with AWS_LAMBDA_RUNTIME_API set, `inbox` is a Lambda function.
    let function = LambdaFunction::start(
        &[],
        &function_env(&aws, &[("INBOX_DEMO_FAILURE_RATE", "0")]),
    );
    let mut stream = StreamReader::new(Moto::shared(), &aws.table).await;

    let mut ids = Vec::new();
    for n in 0..3 {
        let (code, body) = capture(&function, &format!("hash-ok-{n}"));
        assert_eq!(code, 202, "{body}\n{}", function.log());
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(deliver_stream(&function, &mut stream).await, 3);
    for id in &ids {
        let status = aws.store.status(id).await.unwrap().unwrap();
        assert_eq!((status.state, status.attempts), (State::Completed, 1));
    }
    // A redelivered stream batch (Lambda retries at least once) processes nothing again.
    let mut replay_stream = StreamReader::new(Moto::shared(), &aws.table).await;
    assert_eq!(deliver_stream(&function, &mut replay_stream).await, 3);
    for id in &ids {
        assert_eq!(aws.store.status(id).await.unwrap().unwrap().attempts, 1);
    }
    assert_eq!(
        function.log().matches("processed").count(),
        3,
        "{}",
        function.log()
    );
    assert!(
        moto::peek(&aws.sqs, &aws.queues.failed_url)
            .await
            .is_empty()
    );
    assert!(moto::peek(&aws.sqs, &aws.queues.dead_url).await.is_empty());

    // The admin endpoint answers through API Gateway as it does locally.
    let event = moto::http_event(
        "GET",
        &format!("/api/webhooks/{}", ids[0]),
        &[("authorization", &format!("Bearer {}", support::ADMIN_TOKEN))],
        b"",
    );
    let response = function.invoke(&event);
    assert_eq!(response["statusCode"], 200, "{response}");
    let view: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    assert_eq!(view["status"], "completed");
    // The operator CLI reads the same table.
    let (ok, output) = operator(
        &aws,
        &["list", "--status", "completed", "--table", &aws.table],
    );
    assert!(ok, "{output}");
    assert_eq!(
        output
            .lines()
            .filter(|l| l.contains("\"completed\""))
            .count(),
        3
    );
    let (ok, output) = operator(&aws, &["status", &ids[1], "--table", &aws.table]);
    assert!(ok, "{output}");
    let shown: Value = serde_json::from_str(&output).unwrap();
    assert_eq!(
        (shown["status"].as_str(), shown["retries"].as_u64()),
        (Some("completed"), Some(1))
    );
    assert_eq!(shown["dead_letters"], json!([]));

    // On Lambda every log line is a JSON object, for CloudWatch to query by field: a log
    // entry, or a metric in the embedded metric format.
    let log = function.log();
    assert!(log.contains(r#""component":"processor""#), "{log}");
    for line in log.lines() {
        let entry: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            (entry["level"].is_string() && entry["fields"].is_object())
                || entry["_aws"]["CloudWatchMetrics"].is_array(),
            "{line}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_through_api_gateway_store_nothing_and_unknown_events_are_refused() {
    let aws = aws().await;
    let function = LambdaFunction::start(&["lambda"], &function_env(&aws, &[]));
    let body = bigcommerce_event("hash-bad");
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a [u8], u16);
    let cases: [Case; 3] = [
        (
            &[
                ("content-type", "application/json"),
                ("signature", "forged"),
            ],
            &body,
            401,
        ),
        (&[("content-type", "application/json")], &body, 401),
        (
            &[
                ("content-type", "application/json"),
                (
                    "signature",
                    &sign_bigcommerce(BIGCOMMERCE_SECRET, b"{not json"),
                ),
            ],
            b"{not json",
            400,
        ),
    ];
    for (headers, body, expected) in cases {
        let event = moto::http_event("POST", "/api/webhooks/bigcommerce", headers, body);
        let response = function.invoke(&event);
        assert_eq!(response["statusCode"], expected, "{response}");
        assert_eq!(
            response["headers"]["content-type"],
            "application/problem+json"
        );
    }
    let unknown = moto::http_event(
        "POST",
        "/api/webhooks/nobody",
        &[("content-type", "application/json")],
        b"{}",
    );
    assert_eq!(function.invoke(&unknown)["statusCode"], 404);
    assert!(
        aws.store
            .list(&Query::default())
            .await
            .unwrap()
            .webhooks
            .is_empty()
    );

    // An event of no shape the function serves is an invocation error, not a success.
    let (status, answer) = support::request_raw(
        &function.base_url,
        "POST",
        "/2015-03-31/functions/_/invocations",
        &[("content-type", "application/json")],
        br#"{"source": "aws.events"}"#,
    );
    assert_ne!(status, 200, "{answer}");
    assert!(
        answer.contains("not an event this function serves"),
        "{answer}"
    );
}

/// Runs an operator command against the test's table and queues.
fn operator(aws: &Aws, args: &[&str]) -> (bool, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_inbox"))
        .args(args)
        .env_clear()
        .envs(moto::aws_env(Moto::shared()))
        .env("INBOX_DEAD_QUEUE_URL", &aws.queues.dead_url)
        .output()
        .unwrap();
    outcome(&output)
}

/// Whether a command succeeded, and what it printed (stdout, then stderr).
fn outcome(output: &std::process::Output) -> (bool, String) {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retry_that_comes_early_is_sent_on_and_an_unreadable_message_is_reported() {
    let aws = aws().await;
    let function = LambdaFunction::start(
        &["lambda"],
        &function_env(
            &aws,
            &[
                ("INBOX_DEMO_FAILURE_RATE", "1.0"),
                ("INBOX_RETRY_BASE_DELAY_MS", "60000"),
            ],
        ),
    );
    let mut stream = StreamReader::new(Moto::shared(), &aws.table).await;
    let id = captured(&function, "hash-early");
    assert_eq!(deliver_stream(&function, &mut stream).await, 1);
    let failed = aws.store.status(&id).await.unwrap().unwrap();
    assert_eq!((failed.state, failed.attempts), (State::Failed, 1));

    // A message for it arrives before its retry is due, next to one nobody can read.
    let event = json!({ "Records": [
        sqs_record("early", &json!({ "id": id }).to_string()),
        sqs_record("garbage", "not a message"),
    ]});
    let response = function.invoke(&event);
    assert_eq!(
        response,
        json!({ "batchItemFailures": [{ "itemIdentifier": "garbage" }] }),
        "{}",
        function.log()
    );
    // Nothing was attempted; the early message was sent on for the rest of the wait.
    assert_eq!(aws.store.status(&id).await.unwrap().unwrap(), failed);
    assert!(function.log().contains("not due; looking again later"));
    let delayed = aws
        .sqs
        .get_queue_attributes()
        .queue_url(&aws.queues.failed_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    assert_eq!(
        delayed[&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesDelayed],
        "2"
    );
}

/// The failed queue's messages: (visible, delayed).
async fn failed_queue_depth(aws: &Aws) -> (u64, u64) {
    use aws_sdk_sqs::types::QueueAttributeName::{
        ApproximateNumberOfMessages, ApproximateNumberOfMessagesDelayed,
    };
    let attributes = aws
        .sqs
        .get_queue_attributes()
        .queue_url(&aws.queues.failed_url)
        .attribute_names(ApproximateNumberOfMessages)
        .attribute_names(ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    let count = |name| attributes[&name].parse().unwrap();
    (
        count(ApproximateNumberOfMessages),
        count(ApproximateNumberOfMessagesDelayed),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retry_hours_away_gets_no_chain_of_messages_and_the_schedule_sends_it_when_due() {
    let aws = aws().await;
    let schedule = ("INBOX_RETRY_SCHEDULE", "20m,20m");
    let failing = LambdaFunction::start(
        &["lambda"],
        &function_env(&aws, &[("INBOX_DEMO_FAILURE_RATE", "1.0"), schedule]),
    );
    let mut stream = StreamReader::new(Moto::shared(), &aws.table).await;
    let id = captured(&failing, "hash-hours");
    assert_eq!(deliver_stream(&failing, &mut stream).await, 1);
    let failed = aws.store.status(&id).await.unwrap().unwrap();
    assert_eq!((failed.state, failed.attempts), (State::Failed, 1));
    let wait = failed.next_attempt_at.unwrap() - failed.updated_at;
    assert!((18 * 60_000..=22 * 60_000).contains(&wait), "{wait} ms");
    // Longer than SQS can delay a message: none is sent, now or as a chain of hops.
    assert_eq!(failed_queue_depth(&aws).await, (0, 0));
    assert!(failing.log().contains("the schedule sends its retry"));
    // A run of the schedule long before it is due sends nothing either.
    let early = failing.invoke(&moto::scheduled_event());
    assert_eq!(early["woken"], 0, "{early}\n{}", failing.log());
    assert_eq!(failed_queue_depth(&aws).await, (0, 0));

    // The destination is back. Time passes: the test moves the retry to a few seconds
    // from now, its wait still twenty minutes long.
    let recovered = LambdaFunction::start(
        &["lambda"],
        &function_env(&aws, &[("INBOX_DEMO_FAILURE_RATE", "0"), schedule]),
    );
    let due = now_ms() + 4_000;
    let later = inbox_core::Status {
        version: failed.version + 1,
        updated_at: due - wait,
        next_attempt_at: Some(due),
        ..failed.clone()
    };
    let moved = Transition::to(later);
    assert!(
        aws.store
            .swap_status(&id, failed.version, &moved)
            .await
            .unwrap()
    );

    // The schedule's next run sends one message, delayed to the retry's time.
    let run = recovered.invoke(&moto::scheduled_event());
    assert_eq!(
        run,
        json!({ "found": 0, "requeued": 0, "failed": 0, "woken": 1, "released": 0 }),
        "{}",
        recovered.log()
    );
    let (visible, delayed) = failed_queue_depth(&aws).await;
    assert_eq!(visible + delayed, 1, "one message");
    assert_eq!(deliver_failed_queue(&recovered, &aws).await, 1);
    assert!(now_ms() >= due - 1_000, "not before its time");
    let done = aws.store.status(&id).await.unwrap().unwrap();
    assert_eq!(
        (done.state, done.attempts),
        (State::Completed, 2),
        "{}",
        recovered.log()
    );
}

/// On AWS a destination's breaker lives in the table, so every invocation follows it: once
/// open, what the stream brings is held with nothing spent; of two invocations racing for
/// the probe one attempts and the other holds again; once a probe succeeds, the schedule
/// releases the rest, which complete on their first attempt.
#[tokio::test(flavor = "multi_thread")]
async fn a_destination_opens_holds_and_is_probed_and_released_on_lambda() {
    let aws = aws().await;
    let with = |failure_rate: &'static str| {
        function_env(
            &aws,
            &[
                ("INBOX_DEMO_FAILURE_RATE", failure_rate),
                ("INBOX_BREAKER_FAILURES", "2"),
                ("INBOX_BREAKER_PROBE_MS", "1000"),
                ("INBOX_BREAKER_MAX_PROBE_MS", "1000"),
                // The two failures that open it retry long after the test.
                ("INBOX_RETRY_BASE_DELAY_MS", "600000"),
            ],
        )
    };
    let down = LambdaFunction::start(&["lambda"], &with("1.0"));
    let racing = LambdaFunction::start(&["lambda"], &with("1.0"));
    let mut stream = StreamReader::new(Moto::shared(), &aws.table).await;
    for hash in ["hash-opens-1", "hash-opens-2"] {
        captured(&down, hash);
        assert_eq!(deliver_stream(&down, &mut stream).await, 1);
    }
    let name = "inbox-processor";
    let open = aws.store.destination(name).await.unwrap().unwrap();
    assert_eq!((open.state(), open.failures), ("open", 2), "{}", down.log());

    let held: Vec<String> = (1..=4)
        .map(|i| captured(&down, &format!("hash-held-{i}")))
        .collect();
    assert_eq!(deliver_stream(&down, &mut stream).await, 4);
    for id in &held {
        let status = aws.store.status(id).await.unwrap().unwrap();
        assert_eq!((status.state, status.attempts), (State::Received, 0));
        assert!(
            status.last_error.unwrap().starts_with("held"),
            "{}",
            down.log()
        );
    }
    assert_eq!(aws.store.held_count(name).await.unwrap(), 4);
    // A hold is a status change the stream passes on; it finds nothing to do.
    deliver_stream(&down, &mut stream).await;

    // The probe falls due; two webhooks are released for it (as two runs of the schedule
    // would) and two invocations race to take them.
    let wait_for =
        |at: i64| tokio::time::sleep(Duration::from_millis((at - now_ms()).max(0) as u64 + 50));
    wait_for(open.probe_at.unwrap()).await;
    let mut released = Vec::new();
    for _ in 0..2 {
        released.extend(
            inbox_core::store::release_held(&aws.store, now_ms(), 1)
                .await
                .unwrap(),
        );
    }
    assert_eq!(released.len(), 2);
    let message = |id: &str| json!({ "Records": [sqs_record(&format!("m-{id}"), &json!({ "id": id }).to_string())] });
    let first = invoke_in_background(&down, message(&released[0].0));
    let second = invoke_in_background(&racing, message(&released[1].0));
    for answer in [first, second] {
        let (code, body) = answer.join().unwrap().unwrap();
        assert_eq!(code, 200, "{body}");
    }
    let mut probes = 0;
    for (id, _) in &released {
        let details = aws.store.details(id).await.unwrap().unwrap();
        probes += details.attempts.len();
        assert_eq!(
            details.view.attempts, 0,
            "a probe is not counted: {details:?}"
        );
        assert!(
            details
                .view
                .last_error
                .as_deref()
                .unwrap()
                .starts_with("held")
        );
    }
    assert_eq!(probes, 1, "one probe:\n{}\n{}", down.log(), racing.log());
    assert_eq!(aws.store.held_count(name).await.unwrap(), 4);

    // The destination is back: the schedule's next run sends the probe, which closes it,
    // and the run after releases the rest.
    // One record at a time: moto's TransactWriteItems restores a snapshot of the whole
    // table when one fails (a destination's compare-and-swap lost to a concurrent
    // attempt), wiping what concurrent attempts wrote in between, stream records included.
    let mut sequential = with("0");
    sequential.push(("INBOX_WORKER_CONCURRENCY".into(), "1".into()));
    let up = LambdaFunction::start(&["lambda"], &sequential);
    let probe_at = aws
        .store
        .destination(name)
        .await
        .unwrap()
        .unwrap()
        .probe_at
        .unwrap();
    wait_for(probe_at).await;
    for _ in 0..2 {
        let run = up.invoke(&moto::scheduled_event());
        assert!(
            run["released"].as_u64().unwrap() >= 1,
            "{run}\n{}",
            up.log()
        );
        deliver_stream(&up, &mut stream).await;
        if failed_queue_depth(&aws).await.0 > 0 {
            deliver_failed_queue(&up, &aws).await;
        }
    }
    let closed = aws.store.destination(name).await.unwrap().unwrap();
    assert_eq!(closed.state(), "closed", "{}", up.log());
    // Lambda's pollers keep polling: what the runs released (through the stream, or the
    // failed queue for a retry already scheduled) can arrive after one pass of each, on a
    // loaded machine. Each is then attempted once and completed.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut waiting = Vec::new();
        for id in &held {
            let status = aws.store.status(id).await.unwrap().unwrap();
            if status.state != State::Completed {
                waiting.push(status);
            }
        }
        if waiting.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{waiting:?}\n{}",
            up.log()
        );
        deliver_stream(&up, &mut stream).await;
        if failed_queue_depth(&aws).await.0 > 0 {
            deliver_failed_queue(&up, &aws).await;
        } else {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    for id in &held {
        let status = aws.store.status(id).await.unwrap().unwrap();
        assert_eq!(status.attempts, 1, "{}", up.log());
    }
    assert_eq!(aws.store.held_count(name).await.unwrap(), 0);
}

fn sqs_record(id: &str, body: &str) -> Value {
    json!({
        "messageId": id,
        "receiptHandle": format!("receipt-{id}"),
        "body": body,
        "attributes": {},
        "messageAttributes": {},
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:failed",
        "awsRegion": "us-east-1",
    })
}

/// A failed-queue message names a webhook and never supplies one: forged with a payload of
/// its own under a captured webhook's id (whoever can send to the queue), it gets the stored
/// payload forwarded, not its own.
#[tokio::test(flavor = "multi_thread")]
async fn a_forged_failed_queue_message_cannot_change_what_is_forwarded() {
    use base64::Engine as _;
    use inbox_bridge::conformance::destination::{Answer, Destination};

    let aws = aws().await;
    let destination = Destination::start().await.unwrap();
    destination.answer(Answer {
        status: 200,
        retry_after: None,
    });
    let url = destination.url();
    let function = LambdaFunction::start(
        &["lambda"],
        &function_env(&aws, &[("INBOX_FORWARD_URL", url.as_str())]),
    );
    let id = captured(&function, "hash-forged");
    let stored = aws.store.webhook(&id).await.unwrap().unwrap();
    let forged_payload = br#"{"scope":"store/order/created","data":{"type":"order","id":666}}"#;
    let forged = json!({
        "id": id,
        "webhook": {
            "origin": "bigcommerce",
            "type": "store/order/created",
            "received_at": 1,
            "idempotency_key": "forged",
            "headers": [],
            "payload": base64::engine::general_purpose::STANDARD.encode(forged_payload),
        },
    });
    let response = function.invoke(&json!({
        "Records": [sqs_record("forged", &forged.to_string())]
    }));
    assert_eq!(
        response,
        json!({ "batchItemFailures": [] }),
        "{}",
        function.log()
    );
    let received = destination.take_received();
    assert_eq!(received.len(), 1, "{}", function.log());
    assert_eq!(received[0].body, stored.payload);
    assert_ne!(received[0].body, forged_payload);
    let status = aws.store.status(&id).await.unwrap().unwrap();
    assert_eq!(status.state, State::Completed);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_function_killed_mid_attempt_loses_nothing_the_lease_expires_and_it_is_retaken() {
    let aws = aws().await;
    // Attempts take 1.5 s of a 2 s deadline, so the lease runs 3 s.
    let env = function_env(
        &aws,
        &[
            ("INBOX_DEMO_DELAY_MS", "1500"),
            ("INBOX_PROCESSOR_TIMEOUT_MS", "2000"),
        ],
    );
    let mut crashing = LambdaFunction::start(&["lambda"], &env);
    let mut stream = StreamReader::new(Moto::shared(), &aws.table).await;
    let id = captured(&crashing, "hash-crash");
    let records = read_mapped(&mut stream).await;
    assert_eq!(records.len(), 1);

    // The function dies while the attempt runs; Lambda's invocation never answers.
    invoke_in_background(&crashing, moto::stream_event(records.clone()));
    wait_until_taken(&aws, &id, &crashing).await;
    crashing.kill();
    let held = aws.store.status(&id).await.unwrap().unwrap();
    assert_eq!((held.state, held.attempts), (State::Processing, 1));

    // Lambda retries the batch on a new container: the lease still holds, so the record is
    // sent to the failed queue for when it expires, and then it is retaken and completes.
    let function = LambdaFunction::start(&["lambda"], &env);
    let response = function.invoke(&moto::stream_event(records));
    assert_eq!(response, json!({ "batchItemFailures": [] }));
    assert_eq!(aws.store.status(&id).await.unwrap().unwrap(), held);
    assert_eq!(deliver_failed_queue(&function, &aws).await, 1);
    let status = aws.store.status(&id).await.unwrap().unwrap();
    assert_eq!(
        (status.state, status.attempts),
        (State::Completed, 2),
        "{}",
        function.log()
    );
    assert!(status.updated_at >= held.lease_until.unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_sender_works_on_lambda_through_the_capture_route_in_the_same_process() {
    let aws = aws().await;
    let auth = format!("Bearer {}", support::ADMIN_TOKEN);
    let admin = [("Authorization", auth.as_str())];
    let demo = |headers| moto::http_event("POST", "/demo/send-webhook", headers, b"");
    // Off by default, even to the admin token: nothing is stored.
    let closed = LambdaFunction::start(&["lambda"], &function_env(&aws, &[]));
    for headers in [&[][..], &admin] {
        let response = closed.invoke(&demo(headers));
        assert_eq!(response["statusCode"], 404, "{response}");
    }
    let counts = aws.store.counts(&Default::default()).await.unwrap();
    assert!(counts.0.values().all(|n| *n == 0), "{counts:?}");
    drop(closed);

    let function = LambdaFunction::start(
        &["lambda"],
        &function_env(&aws, &[("INBOX_DEMO_SENDER", "on")]),
    );
    let response = function.invoke(&demo(&[("Content-Type", "text/plain")]));
    assert_eq!(response["statusCode"], 401, "on, it takes the admin token");
    let mut ids = Vec::new();
    for _ in 0..2 {
        let response = function.invoke(&demo(&admin));
        assert_eq!(
            response["statusCode"],
            202,
            "{response}\n{}",
            function.log()
        );
        let body: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
        assert_eq!(
            (body["status"].as_str(), body["duplicate"].as_bool()),
            (Some("received"), Some(false))
        );
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    assert_ne!(ids[0], ids[1], "each press sends a fresh delivery");
    for id in &ids {
        let webhook = aws.store.webhook(id).await.unwrap().unwrap();
        assert_eq!(
            (webhook.origin.as_str(), webhook.event_type.as_str()),
            ("bigcommerce", "store/order/created")
        );
        let status = aws.store.status(id).await.unwrap().unwrap();
        assert_eq!(status.state, State::Received);
    }
    // A wrong method on the demo route is the component's own 405, not a gateway 404.
    let response = function.invoke(&moto::http_event("GET", "/demo/send-webhook", &[], b""));
    assert_eq!(response["statusCode"], 405, "{response}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_batch_lambda_gave_up_on_is_read_back_by_the_operator_and_processed() {
    let aws = aws().await;
    let function = processing_function(&aws, "0");
    let mut stream = StreamReader::new(Moto::shared(), &aws.table).await;
    let ids: Vec<String> = ["hash-given-up-1", "hash-given-up-2", "hash-stuck-elsewhere"]
        .into_iter()
        .map(|hash| captured(&function, hash))
        .collect();
    // Lambda's poller gives up on the batch of the first two (its retries exhausted): the
    // on-failure destination gets where the batch is, not the webhooks.
    let records = read_mapped(&mut stream).await;
    assert_eq!(records.len(), 3);
    let record = stream.on_failure_record(&records[..2], Duration::from_secs(60));
    moto::send(&aws.sqs, &aws.queues.dead_url, &record.to_string()).await;

    let (ok, output) = operator(&aws, &["replay", "--all-dead", "--table", &aws.table]);
    assert!(ok, "{output}");
    assert!(output.contains("requeued 2 stuck webhooks"), "{output}");
    assert!(
        output.contains("cleared 1 messages from the dead queue (0 left)"),
        "{output}"
    );
    assert!(
        !output.contains("cannot be read back"),
        "the stream still has the batch: {output}"
    );
    assert!(
        moto::peek_raw(&aws.sqs, &aws.queues.dead_url)
            .await
            .is_empty()
    );
    for id in &ids[..2] {
        let status = aws.store.status(id).await.unwrap().unwrap();
        assert_eq!(
            (status.state, status.version, status.attempts),
            (State::Received, 2, 0)
        );
    }
    let untouched = aws.store.status(&ids[2]).await.unwrap().unwrap();
    assert_eq!(
        untouched.version, 1,
        "outside the batch's sequence range, nothing is written"
    );

    // The requeue is a status change the mapping delivers: both are processed.
    assert_eq!(deliver_stream(&function, &mut stream).await, 2);
    for id in &ids[..2] {
        let status = aws.store.status(id).await.unwrap().unwrap();
        assert_eq!(
            (status.state, status.attempts),
            (State::Completed, 1),
            "{}",
            function.log()
        );
    }

    // A batch the stream cannot give back for now (here a shard it does not know, an
    // error worth trying again) stays; once its records are past the stream's 24 hours,
    // the operator falls back to the table: every webhook still due there is requeued.
    let mut unreadable = stream.on_failure_record(&records[2..], Duration::from_secs(60));
    unreadable["DDBStreamBatchInfo"]["shardId"] = json!("shardId-00000000000000000000-other");
    moto::send(&aws.sqs, &aws.queues.dead_url, &unreadable.to_string()).await;
    let lost = stream.on_failure_record(&records[2..], Duration::from_secs(25 * 3_600));
    moto::send(&aws.sqs, &aws.queues.dead_url, &lost.to_string()).await;
    let (ok, output) = operator(&aws, &["replay", "--all-dead", "--table", &aws.table]);
    assert!(ok, "{output}");
    assert!(
        output.contains("older than the stream's 24 hours"),
        "{output}"
    );
    assert!(output.contains("requeued 1 stuck webhooks"), "{output}");
    assert!(
        output.contains("cleared 1 messages from the dead queue (1 left)"),
        "{output}"
    );
    assert_eq!(
        moto::peek_raw(&aws.sqs, &aws.queues.dead_url).await,
        vec![unreadable.to_string()]
    );
    assert_eq!(deliver_stream(&function, &mut stream).await, 1);
    let status = aws.store.status(&ids[2]).await.unwrap().unwrap();
    assert_eq!((status.state, status.attempts), (State::Completed, 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retry_redriven_to_the_dead_queue_is_requeued_and_only_what_is_resolved_is_cleared() {
    let aws = aws().await;
    let failing = processing_function(&aws, "1.0");
    let mut stream = StreamReader::new(Moto::shared(), &aws.table).await;
    let id = captured(&failing, "hash-redriven");
    assert_eq!(deliver_stream(&failing, &mut stream).await, 1);
    let failed = aws.store.status(&id).await.unwrap().unwrap();
    assert_eq!((failed.state, failed.attempts), (State::Failed, 1));

    // Its retry message cannot be handled (here: a function whose table is missing) five
    // times; then the failed queue's redrive policy moves it to the dead queue.
    let broken_env = function_env(&aws, &[("INBOX_TABLE", "no-such-table")]);
    let broken = LambdaFunction::start(&["lambda"], &broken_env);
    for _ in 0..5 {
        let (event, receipts) = receive_failed(&aws).await;
        assert_eq!(receipts.len(), 1);
        let response = broken.invoke(&event);
        assert_eq!(
            response["batchItemFailures"].as_array().map(Vec::len),
            Some(1),
            "{response}"
        );
        for receipt in receipts.values() {
            aws.sqs
                .change_message_visibility()
                .queue_url(&aws.queues.failed_url)
                .receipt_handle(receipt)
                .visibility_timeout(0)
                .send()
                .await
                .unwrap();
        }
    }
    assert!(
        moto::peek_raw(&aws.sqs, &aws.queues.failed_url)
            .await
            .is_empty()
    );
    let redriven = moto::peek(&aws.sqs, &aws.queues.dead_url).await;
    assert_eq!(redriven.len(), 1);
    assert_eq!(
        (redriven[0]["id"].as_str(), redriven[0].get("reason")),
        (Some(id.as_str()), None)
    );

    // Beside it on the dead queue, about a webhook an attempt holds right now: a stale
    // notice that it needed an operator (it does not: cleared), and a redriven retry (not
    // resolved while the attempt runs: it stays); and a message nobody can read (it stays).
    let held_id = captured(&failing, "hash-held");
    assert_eq!(
        read_mapped(&mut stream).await.len(),
        1,
        "its record, taken by that attempt"
    );
    take(&aws, &held_id, 600_000).await;
    let stale = inbox_bridge::aws::sqs::Message::new(&held_id, Some("stale".into()));
    moto::send(&aws.sqs, &aws.queues.dead_url, &stale.encode()).await;
    let notice = inbox_bridge::aws::sqs::Message::new(&held_id, None);
    moto::send(&aws.sqs, &aws.queues.dead_url, &notice.encode()).await;
    moto::send(&aws.sqs, &aws.queues.dead_url, "not a message").await;

    let (ok, output) = operator(&aws, &["replay", "--all-dead", "--table", &aws.table]);
    assert!(ok, "{output}");
    assert!(output.contains("requeued 1 stuck webhooks"), "{output}");
    assert!(
        output.contains("cleared 2 messages from the dead queue (2 left)"),
        "{output}"
    );
    assert!(output.contains("an attempt holds the lease"), "{output}");
    let mut left = moto::peek_raw(&aws.sqs, &aws.queues.dead_url).await;
    left.sort();
    let mut kept = vec![notice.encode(), "not a message".to_owned()];
    kept.sort();
    assert_eq!(
        left, kept,
        "what is not resolved stays, visible to the alarm"
    );
    let requeued = aws.store.status(&id).await.unwrap().unwrap();
    assert_eq!(
        (requeued.state, requeued.attempts),
        (State::Received, 1),
        "its attempts are kept"
    );

    // The cause is fixed; the requeue reaches the processing function through the stream.
    let healthy = processing_function(&aws, "0");
    assert_eq!(deliver_stream(&healthy, &mut stream).await, 1);
    let status = aws.store.status(&id).await.unwrap().unwrap();
    assert_eq!(
        (status.state, status.attempts),
        (State::Completed, 2),
        "{}",
        healthy.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_requeues_a_stuck_webhook_but_never_a_live_or_finished_one() {
    let aws = aws().await;
    let function = processing_function(&aws, "0");
    let mut stream = StreamReader::new(Moto::shared(), &aws.table).await;
    // Two webhooks taken by attempts: one whose function died (its lease has run out, and
    // the record that would retry it is gone), one whose attempt is running.
    let mut ids = Vec::new();
    for (hash, lease_ms) in [("hash-expired", 1), ("hash-live", 600_000)] {
        let id = captured(&function, hash);
        take(&aws, &id, lease_ms).await;
        ids.push(id);
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        read_mapped(&mut stream).await.len(),
        2,
        "the captures, given up on"
    );

    let (ok, output) = operator(&aws, &["requeue", &ids[0], &ids[1], "--table", &aws.table]);
    assert!(!ok, "one of them could not be requeued: {output}");
    let view: Value = serde_json::from_str(output.lines().next().unwrap()).unwrap();
    assert_eq!(
        (
            view["id"].as_str(),
            view["status"].as_str(),
            view["retries"].as_u64()
        ),
        (Some(ids[0].as_str()), Some("received"), Some(1))
    );
    assert!(output.contains("an attempt holds the lease"), "{output}");
    assert_eq!(
        aws.store.status(&ids[1]).await.unwrap().unwrap().state,
        State::Processing
    );

    assert_eq!(deliver_stream(&function, &mut stream).await, 1);
    let done = aws.store.status(&ids[0]).await.unwrap().unwrap();
    assert_eq!(
        (done.state, done.attempts),
        (State::Completed, 2),
        "the lost attempt counts"
    );
    let (ok, output) = operator(&aws, &["requeue", &ids[0], "--table", &aws.table]);
    assert!(!ok && output.contains("it is finished"), "{output}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_attempt_that_lost_its_lease_sends_no_dead_queue_notice() {
    let aws = aws().await;
    // The first attempt is the last (no retries) and fails: it would dead-letter.
    let env = function_env(
        &aws,
        &[
            ("INBOX_DEMO_FAILURE_RATE", "1.0"),
            ("INBOX_MAX_RETRIES", "0"),
            ("INBOX_DEMO_DELAY_MS", "1500"),
            ("INBOX_PROCESSOR_TIMEOUT_MS", "5000"),
        ],
    );
    let function = LambdaFunction::start(&["lambda"], &env);
    let mut stream = StreamReader::new(Moto::shared(), &aws.table).await;
    let id = captured(&function, "hash-lost-lease");
    let records = read_mapped(&mut stream).await;
    let invocation = invoke_in_background(&function, moto::stream_event(records));
    wait_until_taken(&aws, &id, &function).await;
    // Another attempt takes the webhook over (as after an expired lease) mid-attempt.
    let held = aws.store.status(&id).await.unwrap().unwrap();
    let mut taken = held.clone();
    taken.version += 1;
    let take_over = Transition::to(taken.clone());
    assert!(
        aws.store
            .swap_status(&id, held.version, &take_over)
            .await
            .unwrap()
    );
    let (code, answer) = invocation.join().unwrap().unwrap();
    assert_eq!(code, 200, "{answer}");
    assert!(
        function.log().contains("the attempt is discarded"),
        "{}",
        function.log()
    );
    assert_eq!(aws.store.status(&id).await.unwrap().unwrap(), taken);
    assert!(
        moto::peek_raw(&aws.sqs, &aws.queues.dead_url)
            .await
            .is_empty(),
        "no notice for an outcome that was not recorded"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sweep_finds_stuck_webhooks_through_the_sparse_index_and_requeues_them() {
    let aws = aws().await;
    let grace_ms = 3_000;
    let env = function_env(
        &aws,
        &[
            ("INBOX_DEMO_FAILURE_RATE", "0"),
            ("INBOX_SWEEP_GRACE_MS", &grace_ms.to_string()),
        ],
    );
    let function = LambdaFunction::start(&["lambda"], &env);
    let mut stream = StreamReader::new(Moto::shared(), &aws.table).await;
    let done = captured(&function, "hash-done");
    assert_eq!(deliver_stream(&function, &mut stream).await, 1);
    // Stuck: the stream mapping gave up on its record; and one whose attempt died.
    let received = captured(&function, "hash-stuck-received");
    let crashed = captured(&function, "hash-stuck-crashed");
    take(&aws, &crashed, 1).await;
    // Not stuck: an attempt under way.
    let live = captured(&function, "hash-live");
    take(&aws, &live, 600_000).await;
    assert_eq!(read_mapped(&mut stream).await.len(), 3, "given up on");

    // Only the webhooks in flight are in the index.
    let dynamodb = Moto::shared().dynamodb().await;
    let indexed = dynamodb
        .scan()
        .table_name(&aws.table)
        .index_name("due")
        .send()
        .await
        .unwrap();
    let mut ids: Vec<String> = indexed
        .items()
        .iter()
        .map(|item| item["id"].as_s().unwrap().clone())
        .collect();
    ids.sort();
    let mut in_flight = vec![received.clone(), crashed.clone(), live.clone()];
    in_flight.sort();
    assert_eq!(ids, in_flight, "{done} is finished");
    // The list of the webhooks in flight reads the index, newest first.
    let listed = |state| {
        let store = &aws.store;
        async move {
            let query = Query {
                state: Some(state),
                ..Query::default()
            };
            let page = store.list(&query).await.unwrap();
            page.webhooks.into_iter().map(|v| v.id).collect::<Vec<_>>()
        }
    };
    assert_eq!(
        listed(State::Received).await,
        std::slice::from_ref(&received)
    );
    assert_eq!(
        listed(State::Processing).await,
        [live.clone(), crashed.clone()]
    );

    tokio::time::sleep(Duration::from_millis(grace_ms + 100)).await;
    // Not stuck yet: due within the grace period, the stream will deliver it.
    let fresh = captured(&function, "hash-fresh");
    assert_eq!(read_mapped(&mut stream).await.len(), 1);
    let answer = function.invoke(&moto::scheduled_event());
    assert_eq!(
        answer,
        json!({ "found": 2, "requeued": 2, "failed": 0, "woken": 0, "released": 0 }),
        "{}",
        function.log()
    );
    // Requeued, they are due now: the next sweep leaves them to the stream.
    let again = function.invoke(&moto::scheduled_event());
    assert_eq!(again["requeued"], 0, "{again}");

    // The stream delivers the requeue, as for `inbox requeue`.
    assert_eq!(deliver_stream(&function, &mut stream).await, 2);
    let state = |id: String| {
        let store = &aws.store;
        async move { store.status(&id).await.unwrap().unwrap() }
    };
    assert_eq!(state(received).await.state, State::Completed);
    let retaken = state(crashed).await;
    assert_eq!((retaken.state, retaken.attempts), (State::Completed, 2));
    assert_eq!(state(live).await.state, State::Processing);
    assert_eq!(state(fresh).await.state, State::Received);
}

/// The conformance kit's cases through the Lambda handlers, with `processor` as the
/// function's processor: the stream handler's first attempt meets each destination answer;
/// then, the destination answering again, the queue handler completes what was retried,
/// except the webhook whose Retry-After is not over. The function ran the file built
/// (`loaded`: `processor`, or the precompiled one beside it).
async fn conformance_on_lambda(processor: std::path::PathBuf, loaded: std::path::PathBuf) {
    use inbox_bridge::conformance::cases::{self, Expected};
    use inbox_bridge::conformance::destination::{Answer, Destination};

    let aws = aws().await;
    let mut destination = Destination::start().await.unwrap();
    let function = LambdaFunction::start(
        &["lambda"],
        &function_env(
            &aws,
            &[
                ("INBOX_PROCESSOR_WASM", processor.to_str().unwrap()),
                ("INBOX_FORWARD_URL", &destination.url()),
            ],
        ),
    );
    let mut stream = StreamReader::new(Moto::shared(), &aws.table).await;
    let mut retried = Vec::new();
    let mut waiting = None;
    // Lambda takes at most 6 MB of event: a larger case never reaches these handlers.
    let max_body: usize = template_max_body().parse().unwrap();
    let within = cases::all()
        .into_iter()
        .filter(|case| case.webhook.payload.len() <= max_body);
    for case in within {
        match case.answer {
            Some(answer) => destination.answer(answer),
            None => destination.stop().await,
        }
        let webhook = inbox_core::Webhook {
            received_at: now_ms(),
            ..case.webhook.clone()
        };
        aws.store.capture(webhook.clone(), false).await.unwrap();
        assert_eq!(
            deliver_stream(&function, &mut stream).await,
            1,
            "{}",
            case.name
        );
        let status = aws.store.status(&webhook.id).await.unwrap().unwrap();
        let received = destination.take_received();
        let expected = match case.expected() {
            Expected::Completed => State::Completed,
            Expected::Reject => State::OperatorRequired,
            Expected::Retry { .. } => State::Failed,
        };
        assert_eq!(status.state, expected, "{}: {status:?}", case.name);
        if case.answer.is_some() {
            assert_eq!(received.len(), 1, "{}", case.name);
            assert_eq!(received[0].body, webhook.payload, "{}", case.name);
        }
        match case.expected() {
            Expected::Retry {
                at_least_ms: Some(ms),
            } => {
                let due = status.next_attempt_at.unwrap();
                assert!(
                    due >= now_ms() + ms as i64 - 10_000,
                    "{}: {status:?}",
                    case.name
                );
                waiting = Some(webhook.id.clone());
            }
            Expected::Retry { at_least_ms: None } => retried.push(webhook.id.clone()),
            _ => {}
        }
    }

    destination.restart().await.unwrap();
    destination.answer(Answer {
        status: 200,
        retry_after: None,
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut delivered = 0;
    while delivered < retried.len() {
        assert!(std::time::Instant::now() < deadline, "{}", function.log());
        delivered += deliver_failed_queue(&function, &aws).await;
    }
    for id in &retried {
        let status = aws.store.status(id).await.unwrap().unwrap();
        assert_eq!(
            (status.state, status.attempts),
            (State::Completed, 2),
            "{id}"
        );
    }
    let waiting = aws.store.status(&waiting.unwrap()).await.unwrap().unwrap();
    assert_eq!((waiting.state, waiting.attempts), (State::Failed, 1));
    assert!(
        function.log().contains(&support::sha256_of(&loaded)),
        "{}",
        function.log()
    );
}

/// Each function of the template loads only the component it runs: a capture function
/// starts without any processor, and refuses a processing event it was not made for.
#[tokio::test(flavor = "multi_thread")]
async fn a_function_loads_only_the_components_it_runs() {
    let aws = aws().await;
    let capture_only = LambdaFunction::start(
        &["lambda"],
        &function_env(
            &aws,
            &[
                ("INBOX_LAMBDA_COMPONENTS", "capture"),
                ("INBOX_PROCESSOR_WASM", "/nonexistent/processor.wasm"),
            ],
        ),
    );
    let id = captured(&capture_only, "hash-capture-only");
    let log = capture_only.log();
    assert!(!log.contains("inbox_processor"), "{log}");
    assert!(log.contains("inbox_capture"), "{log}");
    let mut stream = StreamReader::new(Moto::shared(), &aws.table).await;
    let records = read_mapped(&mut stream).await;
    assert_eq!(records.len(), 1);
    let (status, answer) = support::request_raw(
        &capture_only.base_url,
        "POST",
        "/2015-03-31/functions/_/invocations",
        &[("content-type", "application/json")],
        moto::stream_event(records.clone()).to_string().as_bytes(),
    );
    assert!(
        answer.contains("does not run the processor component"),
        "{status} {answer}"
    );
    assert_eq!(
        aws.store.status(&id).await.unwrap().unwrap().state,
        State::Received
    );

    // A processing function, given the same record, processes it without loading capture.
    let processing = LambdaFunction::start(
        &["lambda"],
        &function_env(
            &aws,
            &[
                ("INBOX_LAMBDA_COMPONENTS", "processor"),
                ("INBOX_CAPTURE_WASM", "/nonexistent/capture.wasm"),
            ],
        ),
    );
    let response = processing.invoke(&moto::stream_event(records));
    assert_eq!(
        response,
        json!({ "batchItemFailures": [] }),
        "{}",
        processing.log()
    );
    assert_eq!(
        aws.store.status(&id).await.unwrap().unwrap().state,
        State::Completed
    );
    assert!(
        !processing.log().contains("inbox_capture"),
        "{}",
        processing.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_rust_processor_meets_the_conformance_cases_on_lambda() {
    let processor = support::component("inbox_processor");
    conformance_on_lambda(processor.clone(), processor).await;
}

/// Precompiled (`inbox compile`), as the layer ships it: the function loads the `.cwasm`
/// beside the `.wasm` it is given, and its log names the `.cwasm`'s digest.
#[tokio::test(flavor = "multi_thread")]
async fn a_precompiled_python_processor_meets_the_conformance_cases_on_lambda() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("python.wasm");
    std::fs::copy(support::kit_processor("python"), &wasm).unwrap();
    let output = std::process::Command::new(support::inbox_exe())
        .arg("compile")
        .arg(&wasm)
        .arg("--out-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    conformance_on_lambda(wasm.clone(), wasm.with_extension("cwasm")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_javascript_processor_meets_the_conformance_cases_on_lambda() {
    let processor = support::kit_processor("javascript");
    conformance_on_lambda(processor.clone(), processor).await;
}

/// The function's CloudWatch metrics: the embedded-metric-format lines of its log, each
/// `(metric, dimensions, value)`.
fn emf_metrics(function: &LambdaFunction) -> Vec<(String, BTreeMap<String, String>, f64)> {
    let mut metrics = Vec::new();
    for line in function.log().lines() {
        let Ok(value) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let Some(declared) = value.pointer("/_aws/CloudWatchMetrics/0") else {
            continue;
        };
        assert_eq!(declared["Namespace"], "WebhookInbox", "{line}");
        let dimensions: BTreeMap<String, String> = declared["Dimensions"][0]
            .as_array()
            .unwrap()
            .iter()
            .map(|name| {
                let name = name.as_str().unwrap();
                (name.to_owned(), value[name].as_str().unwrap().to_owned())
            })
            .collect();
        for metric in declared["Metrics"].as_array().unwrap() {
            let name = metric["Name"].as_str().unwrap();
            let amount = value[name]
                .as_f64()
                .unwrap_or_else(|| panic!("{name}: {line}"));
            metrics.push((name.to_owned(), dimensions.clone(), amount));
        }
    }
    metrics
}

fn total(
    metrics: &[(String, BTreeMap<String, String>, f64)],
    name: &str,
    dimension: (&str, &str),
) -> f64 {
    metrics
        .iter()
        .filter(|(n, d, _)| {
            n == name && d.get(dimension.0).map(String::as_str) == Some(dimension.1)
        })
        .map(|(_, _, value)| value)
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_functions_write_cloudwatch_metrics_in_their_logs() {
    let aws = aws().await;
    let function = LambdaFunction::start(&["lambda"], &function_env(&aws, &[]));
    let mut stream = StreamReader::new(Moto::shared(), &aws.table).await;
    captured(&function, "emf-1");
    captured(&function, "emf-2");
    assert_eq!(capture(&function, "emf-1").0, 200, "a redelivery");
    let forged = moto::http_event(
        "POST",
        "/api/webhooks/bigcommerce",
        &[
            ("content-type", "application/json"),
            ("signature", "forged"),
        ],
        &support::bigcommerce_event("emf-3"),
    );
    assert_eq!(function.invoke(&forged)["statusCode"], 401);
    let admin = moto::http_event(
        "GET",
        "/api/counts",
        &[("authorization", &format!("Bearer {}", support::ADMIN_TOKEN))],
        b"",
    );
    assert_eq!(function.invoke(&admin)["statusCode"], 200);
    assert_eq!(deliver_stream(&function, &mut stream).await, 2);

    let metrics = emf_metrics(&function);
    let origin = ("Origin", "bigcommerce");
    assert_eq!(
        total(&metrics, "WebhooksReceived", origin),
        2.0,
        "{metrics:?}"
    );
    assert_eq!(total(&metrics, "WebhooksDuplicate", origin), 1.0);
    assert_eq!(
        total(&metrics, "WebhooksRefused", ("Reason", "unauthenticated")),
        1.0
    );
    assert_eq!(total(&metrics, "Attempts", ("Outcome", "completed")), 2.0);
    assert_eq!(
        metrics
            .iter()
            .filter(|(name, _, _)| name == "DeliveryLatency")
            .count(),
        2
    );
    // The admin API is not a delivery.
    assert_eq!(
        metrics
            .iter()
            .filter(|(name, _, _)| name.starts_with("Webhooks"))
            .count(),
        4
    );
}

/// The status code the function answers a BigCommerce delivery (`hash` makes it unique)
/// signed with `secret`.
fn delivered(function: &LambdaFunction, secret: &str, hash: &str) -> u16 {
    let body = bigcommerce_event(hash);
    let signature = sign_bigcommerce(secret, &body);
    let event = moto::http_event(
        "POST",
        "/api/webhooks/bigcommerce",
        &[
            ("content-type", "application/json"),
            ("signature", &signature),
        ],
        &body,
    );
    let response = function.invoke(&event);
    response["statusCode"]
        .as_u64()
        .unwrap_or_else(|| panic!("{response}")) as u16
}

/// The template's capture function: its secret in SSM Parameter Store (a SecureString), only
/// the parameter's name in its environment, no admin token. A delivery signed with the
/// stored secret is accepted, so it came from SSM; it is read once per cold start, so a
/// changed parameter counts from the next start, not in the warm process; the admin API is
/// closed there and the demo off; the log names the parameter, never a value.
#[tokio::test(flavor = "multi_thread")]
async fn the_capture_function_reads_its_secret_from_ssm_once_per_cold_start() {
    let aws = aws().await;
    let ssm = Moto::shared().ssm().await;
    let name = format!("/{}/bigcommerce-secret", moto::unique("inbox"));
    moto::put_secure_string(&ssm, &name, BIGCOMMERCE_SECRET).await;
    let parameters = format!("INBOX_BIGCOMMERCE_SECRET={name}");
    let mut env = moto::aws_env(Moto::shared());
    for (k, v) in [
        ("INBOX_TABLE", aws.table.as_str()),
        ("INBOX_FAILED_QUEUE_URL", aws.queues.failed_url.as_str()),
        ("INBOX_DEAD_QUEUE_URL", aws.queues.dead_url.as_str()),
        ("INBOX_LAMBDA_COMPONENTS", "capture"),
        ("INBOX_SECRET_PARAMETERS", parameters.as_str()),
    ] {
        env.push((k.to_owned(), v.to_owned()));
    }
    let mut function = LambdaFunction::start(&["lambda"], &env);
    assert_eq!(
        delivered(&function, BIGCOMMERCE_SECRET, "ssm-1"),
        202,
        "{}",
        function.log()
    );
    assert_eq!(delivered(&function, "not-the-secret", "ssm-2"), 401);

    // No admin token: the admin API answers 403 (closed), the demo sender is off (404).
    let bearer = format!("Bearer {}", support::ADMIN_TOKEN);
    let counts = moto::http_event("GET", "/api/counts", &[("authorization", &bearer)], b"");
    let response = function.invoke(&counts);
    assert_eq!(response["statusCode"], 403, "{response}");
    assert!(
        response["body"]
            .as_str()
            .unwrap()
            .contains("INBOX_ADMIN_TOKEN"),
        "{response}"
    );
    let demo = moto::http_event(
        "POST",
        "/demo/send-webhook",
        &[("authorization", &bearer)],
        b"",
    );
    assert_eq!(function.invoke(&demo)["statusCode"], 404);

    // Rotated in SSM: the warm process keeps what it read when it started...
    let rotated = "bc-rotated-secret";
    moto::put_secure_string(&ssm, &name, rotated).await;
    assert_eq!(delivered(&function, BIGCOMMERCE_SECRET, "ssm-3"), 202);
    assert_eq!(delivered(&function, rotated, "ssm-4"), 401);
    // ...and a cold start reads the new value.
    function.restart(&[]);
    assert_eq!(
        delivered(&function, rotated, "ssm-5"),
        202,
        "{}",
        function.log()
    );
    assert_eq!(delivered(&function, BIGCOMMERCE_SECRET, "ssm-6"), 401);

    let log = function.log();
    assert!(log.contains(&name), "{log}");
    for secret in [BIGCOMMERCE_SECRET, rotated] {
        assert!(!log.contains(secret), "{log}");
    }
    // What each cold start paid: one call (`--nocapture` shows the time it took on moto).
    let reads: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("read the secrets from SSM Parameter Store"))
        .collect();
    assert_eq!(reads.len(), 2, "one read per cold start: {log}");
    assert!(
        reads.iter().all(|line| line.contains(r#""calls":1"#)),
        "{reads:?}"
    );
    eprintln!("{}", reads.join("\n"));
    let stored = aws.store.list(&Query::default()).await.unwrap().webhooks;
    assert_eq!(stored.len(), 3, "{stored:?}");
}

/// `inbox lambda` with `env` besides moto's and the test's table and queues, run to its
/// end without a Runtime API: whether it succeeded, and what it printed.
fn start_only(aws: &Aws, env: &[(&str, &str)]) -> (bool, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_inbox"))
        .arg("lambda")
        .env_clear()
        .envs(moto::aws_env(Moto::shared()))
        .env("INBOX_TABLE", &aws.table)
        .env("INBOX_FAILED_QUEUE_URL", &aws.queues.failed_url)
        .env("INBOX_DEAD_QUEUE_URL", &aws.queues.dead_url)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    outcome(&output)
}

/// A secret parameter that is missing stops the cold start, naming the parameter and the
/// setting it was for, without printing the secrets it did read; so does a setting given
/// both in the environment and as a parameter.
#[tokio::test(flavor = "multi_thread")]
async fn a_missing_secret_parameter_stops_the_cold_start_naming_it() {
    let aws = aws().await;
    let ssm = Moto::shared().ssm().await;
    let prefix = format!("/{}", moto::unique("inbox"));
    let present = format!("{prefix}/bigcommerce-secret");
    let missing = format!("{prefix}/admin-token");
    moto::put_secure_string(&ssm, &present, BIGCOMMERCE_SECRET).await;

    let parameters = format!("INBOX_BIGCOMMERCE_SECRET={present},INBOX_ADMIN_TOKEN={missing}");
    let (ok, output) = start_only(&aws, &[("INBOX_SECRET_PARAMETERS", &parameters)]);
    assert!(!ok, "{output}");
    assert!(output.contains(&missing), "{output}");
    assert!(output.contains("INBOX_ADMIN_TOKEN"), "{output}");
    assert!(!output.contains(BIGCOMMERCE_SECRET), "{output}");

    let parameters = format!("INBOX_BIGCOMMERCE_SECRET={present}");
    let (ok, output) = start_only(
        &aws,
        &[
            ("INBOX_SECRET_PARAMETERS", &parameters),
            ("INBOX_BIGCOMMERCE_SECRET", "set-directly"),
        ],
    );
    assert!(!ok, "{output}");
    assert!(
        output.contains("INBOX_BIGCOMMERCE_SECRET is set in the environment"),
        "{output}"
    );
    assert!(!output.contains("set-directly"), "{output}");
}

/// The largest body the template's functions take (`INBOX_MAX_BODY_BYTES`).
fn template_max_body() -> String {
    let template = sam::parse(&sam::template_text());
    template["Globals"]["Function"]["Environment"]["Variables"]["INBOX_MAX_BODY_BYTES"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A function that keeps payloads too large for their item in a bucket of its own, with
/// the template's body limit: the function, the bucket and an S3 client.
async fn with_bucket(
    aws: &Aws,
    extra: &[(&str, &str)],
) -> (LambdaFunction, String, aws_sdk_s3::Client) {
    let s3 = Moto::shared().s3().await;
    let bucket = moto::unique("payloads");
    moto::create_bucket(&s3, &bucket).await;
    let max_body = template_max_body();
    let mut env = vec![
        ("INBOX_PAYLOAD_BUCKET", bucket.as_str()),
        ("INBOX_MAX_BODY_BYTES", max_body.as_str()),
        ("INBOX_GITHUB_SECRET", large::GITHUB_SECRET),
    ];
    env.extend_from_slice(extra);
    let function = LambdaFunction::start(&["lambda"], &function_env(aws, &env));
    (function, bucket, s3)
}

/// A signed GitHub push event of `bytes` through API Gateway, its JSON body passed as
/// text, as API Gateway passes it: the event, within the 6 MB Lambda takes.
fn github_http_event(bytes: usize, delivery: &str) -> (Vec<u8>, Value) {
    let body = large::push_event(bytes, delivery);
    let headers = large::github_headers(&body, delivery);
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let text = std::str::from_utf8(&body).unwrap();
    let event = moto::http_text_event("POST", "/api/webhooks/github", &headers, text);
    assert!(
        event.to_string().len() < 6 << 20,
        "Lambda takes at most 6 MB"
    );
    (body, event)
}

/// An item of the table as stored, attribute by attribute.
async fn raw_item(
    aws: &Aws,
    pk: &str,
    sk: &str,
) -> Option<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    Moto::shared()
        .dynamodb()
        .await
        .get_item()
        .table_name(&aws.table)
        .key("PK", A::S(pk.into()))
        .key("SK", A::S(sk.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

/// Deletes an item, as DynamoDB's TTL does once it expires.
async fn expire(aws: &Aws, pk: &str, sk: &str) {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    Moto::shared()
        .dynamodb()
        .await
        .delete_item()
        .table_name(&aws.table)
        .key("PK", A::S(pk.into()))
        .key("SK", A::S(sk.into()))
        .send()
        .await
        .unwrap();
}

fn text(value: Option<&aws_sdk_dynamodb::types::AttributeValue>) -> String {
    value.unwrap().as_s().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_5_mb_delivery_is_kept_in_the_bucket_processed_retried_downloaded_and_deleted_with_its_item()
 {
    use inbox_bridge::conformance::destination::{Answer, Destination};
    let aws = aws().await;
    // Down for the first attempt (from the stream), back for the retry (from the queue).
    let destination = Destination::start().await.unwrap();
    destination.answer(Answer {
        status: 500,
        retry_after: None,
    });
    let url = destination.url();
    let (function, bucket, s3) = with_bucket(&aws, &[("INBOX_FORWARD_URL", url.as_str())]).await;
    let mut stream = StreamReader::new(Moto::shared(), &aws.table).await;
    let (body, event) = github_http_event(5 * large::MB, "lambda-5-mb");
    let digest = hex::encode(Sha256::digest(&body));

    let response = function.invoke(&event);
    assert_eq!(response["statusCode"], 202, "{}", function.log());
    let answer: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    let id = answer["id"].as_str().unwrap().to_owned();

    // The webhook item keeps the object's key and digest, well under DynamoDB's 400 KB;
    // the object is the body.
    let pk = format!("WH#{id}");
    let item = raw_item(&aws, &pk, "WEBHOOK").await.unwrap();
    assert!(!item.contains_key("payload"));
    let size: usize = item
        .iter()
        .map(|(name, value)| name.len() + value.as_s().map_or(32, String::len))
        .sum();
    assert!(size < 4_000, "the item is {size} bytes");
    assert_eq!(text(item.get("payload_sha256")), digest);
    let object = text(item.get("payload_object"));
    assert_eq!(
        moto::object(&s3, &bucket, &object).await.as_deref(),
        Some(&body[..])
    );
    // Its upload is claimed: no expiry while the webhook needs work.
    let status = raw_item(&aws, &pk, "STATUS").await.unwrap();
    let upload_sk = text(status.get("upload"));
    let upload = raw_item(&aws, &pk, &upload_sk).await.unwrap();
    assert!(!upload.contains_key("expires_at"), "{upload:?}");

    // The stream handler's attempt and the queue handler's retry each read it from the
    // bucket: the destination gets the exact bytes both times.
    assert!(deliver_stream(&function, &mut stream).await >= 1);
    let status = aws.store.status(&id).await.unwrap().unwrap();
    assert_eq!(status.state, State::Failed, "{}", function.log());
    destination.answer(Answer {
        status: 200,
        retry_after: None,
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while aws.store.status(&id).await.unwrap().unwrap().state != State::Completed {
        assert!(std::time::Instant::now() < deadline, "{}", function.log());
        deliver_failed_queue(&function, &aws).await;
    }
    let received = destination.take_received();
    assert_eq!(received.len(), 2);
    assert!(received.iter().all(|r| r.body == body));

    // The admin download reads it back whole.
    let auth = format!("Bearer {}", support::ADMIN_TOKEN);
    let download = function.invoke(&moto::http_event(
        "GET",
        &format!("/api/webhooks/{id}/payload"),
        &[("authorization", auth.as_str())],
        b"",
    ));
    assert_eq!(download["statusCode"], 200, "{}", function.log());
    assert_eq!(download["isBase64Encoded"], false);
    assert!(download["body"].as_str().unwrap().as_bytes() == &body[..]);

    // Its completion gave the upload the webhook item's expiry; when DynamoDB's TTL
    // deletes the upload item, the stream function deletes the object.
    let webhook_expiry = raw_item(&aws, &pk, "WEBHOOK").await.unwrap()["expires_at"].clone();
    let upload = raw_item(&aws, &pk, &upload_sk).await.unwrap();
    assert_eq!(upload["expires_at"], webhook_expiry);
    expire(&aws, &pk, &upload_sk).await;
    assert_eq!(deliver_stream(&function, &mut stream).await, 1);
    assert_eq!(moto::object(&s3, &bucket, &object).await, None);
    assert!(destination.take_received().is_empty(), "nothing sent again");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_capture_whose_transaction_fails_after_its_upload_acknowledges_nothing() {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    let aws = aws().await;
    let (function, bucket, s3) = with_bucket(&aws, &[]).await;
    let mut stream = StreamReader::new(Moto::shared(), &aws.table).await;
    let delivery = "lambda-refused";
    let (body, event) = github_http_event(2 * large::MB, delivery);
    // The counter the capture adds to holds text where DynamoDB wants a number, so its
    // transaction is refused after the payload is uploaded.
    let id = inbox_core::id::webhook_id("github", delivery);
    let probe = inbox_core::Webhook {
        id: id.clone(),
        origin: "github".into(),
        event_type: "push".into(),
        provider_timestamp: None,
        received_at: now_ms(),
        idempotency_key: delivery.into(),
        headers: Vec::new(),
        payload: b"{}".to_vec(),
    };
    let plan =
        inbox_core::item::dynamodb::capture(&probe, &Retention::default(), false, false).unwrap();
    let counter = &plan.counters[0];
    let mut spoiled: std::collections::HashMap<String, A> = counter.key.clone().into();
    spoiled.insert("received".into(), A::S("not a number".into()));
    Moto::shared()
        .dynamodb()
        .await
        .put_item()
        .table_name(&aws.table)
        .set_item(Some(spoiled))
        .send()
        .await
        .unwrap();

    let response = function.invoke(&event);
    assert_eq!(response["statusCode"], 503, "{}", function.log());
    // Nothing is acknowledged: no webhook, no status. The upload was written, and its
    // item keeps the day's expiry that makes an unclaimed upload go.
    let pk = format!("WH#{id}");
    assert!(raw_item(&aws, &pk, "WEBHOOK").await.is_none());
    assert!(aws.store.status(&id).await.unwrap().is_none());
    let partition = Moto::shared()
        .dynamodb()
        .await
        .query()
        .table_name(&aws.table)
        .key_condition_expression("PK = :pk")
        .expression_attribute_values(":pk", A::S(pk.clone()))
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    assert_eq!(partition.len(), 1, "{partition:?}");
    let upload_sk = text(partition[0].get("SK"));
    assert!(upload_sk.starts_with("UPLOAD#"));
    let expires: i64 = partition[0]["expires_at"].as_n().unwrap().parse().unwrap();
    let in_a_day = now_ms() / 1_000 + 86_400;
    assert!((in_a_day - 600..=in_a_day).contains(&expires), "{expires}");
    let object = text(partition[0].get("object"));
    assert_eq!(
        moto::object(&s3, &bucket, &object).await.as_deref(),
        Some(&body[..])
    );

    // A day later its item expires, and the stream function deletes the object; no
    // webhook was ever there to process.
    expire(&aws, &pk, &upload_sk).await;
    assert_eq!(deliver_stream(&function, &mut stream).await, 1);
    assert_eq!(moto::object(&s3, &bucket, &object).await, None);
    assert!(aws.store.status(&id).await.unwrap().is_none());
}
