//! AWS for the tests: one moto server (DynamoDB, DynamoDB Streams, SQS, SSM Parameter
//! Store) per test binary on 127.0.0.1, from the venv `scripts/test` installs; every test
//! makes its own table, queues and parameters. The tests stand in for Lambda's pollers:
//! they read the stream and the queue, build the Lambda events and hand them to the
//! function.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
    TimeToLiveSpecification,
};
use inbox_core::item::dynamodb::{due_index, list_index};
use serde_json::{Value, json};

pub const REGION: &str = "us-east-1";

pub struct Moto {
    pub endpoint: String,
    child: Child,
}

/// The environment that points the AWS SDK (in the `inbox` binary too) at moto.
pub fn aws_env(moto: &Moto) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL", moto.endpoint.as_str()),
        ("AWS_REGION", REGION),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// The settings of the DynamoDB store component (Spin's variables, here `INBOX_*`) for
/// `table` on moto.
pub fn store_component_env<'a>(moto: &'a Moto, table: &'a str) -> [(&'static str, &'a str); 5] {
    [
        ("INBOX_DYNAMODB_TABLE", table),
        ("INBOX_AWS_REGION", REGION),
        ("INBOX_AWS_ACCESS_KEY_ID", "test"),
        ("INBOX_AWS_SECRET_ACCESS_KEY", "test"),
        ("INBOX_AWS_ENDPOINT_URL", moto.endpoint.as_str()),
    ]
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A tool `scripts/test` installs (`ensure_aws_tools`); its absence fails the test loudly.
pub fn tool(variable: &str, venv_path: &str) -> PathBuf {
    let path = std::env::var_os(variable)
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".venv/aws/bin").join(venv_path));
    assert!(
        path.is_file(),
        "{} is missing ({variable}): run scripts/test, which installs moto and cargo-lambda",
        path.display()
    );
    path
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until something accepts connections on `port`.
pub fn wait_for_port(port: u16, what: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("{what} exited before listening: {status}");
        }
        assert!(Instant::now() < deadline, "{what} did not start in 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Spawns `command` so that it dies with the test process, however that ends. The kernel
/// ties a child to the *thread* that forked it, so the fork happens on a thread that lives
/// as long as the process.
pub fn spawn_tied(mut command: Command) -> Child {
    use std::os::unix::process::CommandExt;
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        sender.send(command.spawn()).unwrap();
        loop {
            std::thread::park();
        }
    });
    receiver.recv().unwrap().unwrap()
}

impl Moto {
    pub fn shared() -> &'static Moto {
        static MOTO: OnceLock<Moto> = OnceLock::new();
        MOTO.get_or_init(|| {
            let port = free_port();
            let mut moto = Command::new(tool("INBOX_MOTO_SERVER", "moto_server"));
            moto.args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let mut child = spawn_tied(moto);
            wait_for_port(port, "moto_server", &mut child);
            Moto {
                endpoint: format!("http://127.0.0.1:{port}"),
                child,
            }
        })
    }

    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(&self.endpoint)
            .credentials_provider(Credentials::new("test", "test", None, None, "moto"))
            .load()
            .await
    }

    pub async fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.sdk_config().await)
    }

    pub async fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.sdk_config().await)
    }

    pub async fn streams(&self) -> aws_sdk_dynamodbstreams::Client {
        aws_sdk_dynamodbstreams::Client::new(&self.sdk_config().await)
    }

    /// S3, its buckets named in the path (moto is one host).
    pub async fn s3(&self) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::config::Builder::from(&self.sdk_config().await)
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    pub async fn ssm(&self) -> aws_sdk_ssm::Client {
        aws_sdk_ssm::Client::new(&self.sdk_config().await)
    }
}

/// Stores `value` as the SecureString parameter `name` (encrypted with the aws/ssm key),
/// over what it held.
pub async fn put_secure_string(client: &aws_sdk_ssm::Client, name: &str, value: &str) {
    client
        .put_parameter()
        .name(name)
        .value(value)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .overwrite(true)
        .send()
        .await
        .unwrap();
}

/// A name no other test in this run uses.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A global secondary index: its name, key and projected attributes (keys only without).
fn index(
    name: &str,
    keys: Vec<KeySchemaElement>,
    attributes: Option<&[&str]>,
) -> GlobalSecondaryIndex {
    let projection = match attributes {
        Some(attributes) => Projection::builder()
            .projection_type(ProjectionType::Include)
            .set_non_key_attributes(Some(attributes.iter().map(|a| a.to_string()).collect())),
        None => Projection::builder().projection_type(ProjectionType::KeysOnly),
    };
    GlobalSecondaryIndex::builder()
        .index_name(name)
        .set_key_schema(Some(keys))
        .projection(projection.build())
        .build()
        .unwrap()
}

/// The table of template.yaml: PK/SK strings, the sparse `due` index, the `received` and
/// `key` indexes operators read, a NEW_IMAGE stream, TTL on `expires_at`.
pub async fn create_table(client: &aws_sdk_dynamodb::Client, name: &str) {
    let typed = |name: &str, kind| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(kind)
            .build()
            .unwrap()
    };
    let attribute = |name: &str| typed(name, ScalarAttributeType::S);
    let key = |name: &str, kind| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .unwrap()
    };
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("PK"))
        .attribute_definitions(attribute("SK"))
        .key_schema(key("PK", KeyType::Hash))
        .key_schema(key("SK", KeyType::Range))
        .attribute_definitions(attribute(due_index::PARTITION_KEY))
        .attribute_definitions(typed(due_index::SORT_KEY, ScalarAttributeType::N))
        .attribute_definitions(attribute(list_index::PARTITION_KEY))
        .attribute_definitions(attribute(list_index::SORT_KEY))
        .attribute_definitions(attribute(list_index::KEY_INDEX_PARTITION_KEY))
        .global_secondary_indexes(index(
            due_index::NAME,
            vec![
                key(due_index::PARTITION_KEY, KeyType::Hash),
                key(due_index::SORT_KEY, KeyType::Range),
            ],
            Some(&due_index::ATTRIBUTES),
        ))
        .global_secondary_indexes(index(
            list_index::NAME,
            vec![
                key(list_index::PARTITION_KEY, KeyType::Hash),
                key(list_index::SORT_KEY, KeyType::Range),
            ],
            Some(&list_index::ATTRIBUTES),
        ))
        .global_secondary_indexes(index(
            list_index::KEY_INDEX,
            vec![key(list_index::KEY_INDEX_PARTITION_KEY, KeyType::Hash)],
            None,
        ))
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewImage)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name("expires_at")
                .enabled(true)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
}

pub struct Queues {
    pub failed_url: String,
    pub dead_url: String,
    pub failed_arn: String,
}

/// The two queues of template.yaml, the failed one redriving to the dead one.
pub async fn create_queues(client: &aws_sdk_sqs::Client, prefix: &str) -> Queues {
    use aws_sdk_sqs::types::QueueAttributeName;
    let dead_url = client
        .create_queue()
        .queue_name(format!("{prefix}-dead"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let dead_arn = queue_arn(client, &dead_url).await;
    let redrive = json!({ "deadLetterTargetArn": dead_arn, "maxReceiveCount": 5 }).to_string();
    let failed_url = client
        .create_queue()
        .queue_name(format!("{prefix}-failed"))
        .attributes(QueueAttributeName::RedrivePolicy, redrive)
        .attributes(QueueAttributeName::VisibilityTimeout, "30")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let failed_arn = queue_arn(client, &failed_url).await;
    Queues {
        failed_url,
        dead_url,
        failed_arn,
    }
}

async fn queue_arn(client: &aws_sdk_sqs::Client, url: &str) -> String {
    use aws_sdk_sqs::types::QueueAttributeName;
    client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()
        .remove(&QueueAttributeName::QueueArn)
        .unwrap()
}

/// Reads a table's stream from where the last call left off, as Lambda's poller does.
pub struct StreamReader {
    client: aws_sdk_dynamodbstreams::Client,
    stream_arn: String,
    iterators: HashMap<String, Option<String>>,
}

impl StreamReader {
    pub async fn new(moto: &Moto, table: &str) -> StreamReader {
        let client = moto.streams().await;
        let stream_arn = client
            .list_streams()
            .table_name(table)
            .send()
            .await
            .unwrap()
            .streams
            .unwrap()
            .remove(0)
            .stream_arn
            .unwrap();
        StreamReader {
            client,
            stream_arn,
            iterators: HashMap::new(),
        }
    }

    /// The records written since the last read, as the `Records` of a Lambda event.
    pub async fn read(&mut self) -> Vec<Value> {
        use aws_sdk_dynamodbstreams::types::ShardIteratorType;
        let shards = self
            .client
            .describe_stream()
            .stream_arn(&self.stream_arn)
            .send()
            .await
            .unwrap()
            .stream_description
            .unwrap()
            .shards
            .unwrap_or_default();
        let mut records = Vec::new();
        for shard in shards {
            let shard_id = shard.shard_id.unwrap();
            if !self.iterators.contains_key(&shard_id) {
                let iterator = self
                    .client
                    .get_shard_iterator()
                    .stream_arn(&self.stream_arn)
                    .shard_id(&shard_id)
                    .shard_iterator_type(ShardIteratorType::TrimHorizon)
                    .send()
                    .await
                    .unwrap()
                    .shard_iterator;
                self.iterators.insert(shard_id.clone(), iterator);
            }
            let Some(Some(iterator)) = self.iterators.get(&shard_id).cloned() else {
                continue;
            };
            let output = self
                .client
                .get_records()
                .shard_iterator(iterator)
                .send()
                .await
                .unwrap();
            self.iterators.insert(shard_id, output.next_shard_iterator);
            for record in output.records.unwrap_or_default() {
                records.push(self.lambda_record(record));
            }
        }
        records
    }

    /// What Lambda's stream mapping puts on its on-failure destination when it gives up on
    /// `batch` (records this reader returned, which reached the stream `age` ago): not the
    /// records, only where they are.
    pub fn on_failure_record(&self, batch: &[Value], age: Duration) -> Value {
        use aws_sdk_dynamodbstreams::primitives::{DateTime, DateTimeFormat};
        let shard_id = self.only_shard();
        let sequence = |record: &Value| record["dynamodb"]["SequenceNumber"].clone();
        let arrived = std::time::SystemTime::now() - age;
        let arrived = DateTime::from(arrived)
            .fmt(DateTimeFormat::DateTime)
            .unwrap();
        json!({
            "requestContext": {
                "requestId": "4f8b0a56-0000-4000-8000-000000000000",
                "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:DynamoProcessWebhooks",
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": 11
            },
            "responseContext": {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": "Unhandled"
            },
            "version": "1.0",
            "timestamp": "2026-11-29T00:00:00.000Z",
            "DDBStreamBatchInfo": {
                "shardId": shard_id,
                "startSequenceNumber": sequence(batch.first().unwrap()),
                "endSequenceNumber": sequence(batch.last().unwrap()),
                "approximateArrivalOfFirstRecord": arrived,
                "approximateArrivalOfLastRecord": arrived,
                "batchSize": batch.len(),
                "streamArn": self.stream_arn,
            }
        })
    }

    /// moto gives a table's stream one shard.
    fn only_shard(&self) -> String {
        let shards: Vec<&String> = self.iterators.keys().collect();
        assert_eq!(shards.len(), 1, "read the stream first");
        shards[0].clone()
    }

    fn lambda_record(&self, record: aws_sdk_dynamodbstreams::types::Record) -> Value {
        let change = record.dynamodb.unwrap();
        let image =
            |item: Option<HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>>| {
                serde_json::to_value(serde_dynamo::Item::from(item.unwrap_or_default())).unwrap()
            };
        json!({
            "eventID": record.event_id,
            "eventName": record.event_name.map(|n| n.as_str().to_owned()),
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": REGION,
            "eventSourceARN": self.stream_arn,
            "dynamodb": {
                "Keys": image(change.keys),
                "NewImage": image(change.new_image),
                "SequenceNumber": change.sequence_number,
                "SizeBytes": change.size_bytes,
                "StreamViewType": "NEW_IMAGE",
            },
        })
    }
}

pub fn stream_event(records: Vec<Value>) -> Value {
    json!({ "Records": records })
}

/// What an EventBridge schedule (`Type: Schedule` in template.yaml) invokes a function with.
pub fn scheduled_event() -> Value {
    json!({
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-11-29T00:00:00Z",
        "region": REGION,
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/sweep"],
        "detail": {}
    })
}

/// Up to ten messages from `url` as a Lambda SQS event, and their receipt handles by
/// message id (to delete the ones the function does not report as failed).
pub async fn receive_sqs_event(
    client: &aws_sdk_sqs::Client,
    url: &str,
    arn: &str,
    wait: Duration,
) -> (Value, HashMap<String, String>) {
    let output = client
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .wait_time_seconds(wait.as_secs() as i32)
        .send()
        .await
        .unwrap();
    let mut receipts = HashMap::new();
    let records: Vec<Value> = output
        .messages
        .unwrap_or_default()
        .into_iter()
        .map(|message| {
            let id = message.message_id.clone().unwrap();
            receipts.insert(id.clone(), message.receipt_handle.clone().unwrap());
            json!({
                "messageId": id,
                "receiptHandle": message.receipt_handle,
                "body": message.body,
                "md5OfBody": message.md5_of_body,
                "attributes": {},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
                "awsRegion": REGION,
            })
        })
        .collect();
    (json!({ "Records": records }), receipts)
}

/// Deletes the messages of a handled batch except those reported in `batchItemFailures`.
pub async fn settle_batch(
    client: &aws_sdk_sqs::Client,
    url: &str,
    receipts: HashMap<String, String>,
    response: &Value,
) {
    let failed: Vec<&str> = response["batchItemFailures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["itemIdentifier"].as_str().unwrap())
        .collect();
    for (id, receipt) in receipts {
        if !failed.contains(&id.as_str()) {
            client
                .delete_message()
                .queue_url(url)
                .receipt_handle(receipt)
                .send()
                .await
                .unwrap();
        }
    }
}

pub async fn send(client: &aws_sdk_sqs::Client, url: &str, body: &str) {
    client
        .send_message()
        .queue_url(url)
        .message_body(body)
        .send()
        .await
        .unwrap();
}

/// The bodies of every message on `url` right now, as JSON, left on the queue.
pub async fn peek(client: &aws_sdk_sqs::Client, url: &str) -> Vec<Value> {
    peek_raw(client, url)
        .await
        .iter()
        .map(|body| serde_json::from_str(body).unwrap())
        .collect()
}

/// The bodies of every message on `url` right now, left on the queue.
pub async fn peek_raw(client: &aws_sdk_sqs::Client, url: &str) -> Vec<String> {
    let output = client
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .visibility_timeout(0)
        .send()
        .await
        .unwrap();
    output
        .messages
        .unwrap_or_default()
        .into_iter()
        .map(|m| m.body.unwrap_or_default())
        .collect()
}

/// The Lambda Runtime API of cargo-lambda (`cargo lambda watch --only-lambda-apis`) with
/// the real `inbox` binary as the function: events go in over HTTP as Lambda sends them.
pub struct LambdaFunction {
    pub base_url: String,
    runtime_api: Child,
    function: Child,
    pub log: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    _dir: tempfile::TempDir,
}

impl LambdaFunction {
    /// Starts the runtime API and `inbox` (with `args`) as its function, with `env`.
    pub fn start(args: &[&str], env: &[(String, String)]) -> LambdaFunction {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut command = Command::new(tool("INBOX_CARGO_LAMBDA", "cargo-lambda"));
        command
            .args([
                "lambda",
                "watch",
                "--only-lambda-apis",
                "-A",
                "127.0.0.1",
                "-P",
            ])
            .arg(port.to_string())
            .current_dir(workspace())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("runtime-api.log")).unwrap());
        let mut runtime_api = spawn_tied(command);
        wait_for_port(port, "cargo lambda watch", &mut runtime_api);
        let base_url = format!("http://127.0.0.1:{port}");
        let log = dir.path().join("function.log");
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        // Its start (compiling a component the code cache lacks, which can take tens of
        // seconds) is waited for by the first invocation.
        let function = spawn_function(&base_url, &args, env, &log);
        LambdaFunction {
            base_url,
            runtime_api,
            function,
            log,
            args,
            env: env.to_vec(),
            _dir: dir,
        }
    }

    /// Kills the function and starts a new process in its place (a new execution
    /// environment, as Lambda starts one cold), with `extra` settings besides its own:
    /// when it was spawned.
    pub fn restart(&mut self, extra: &[(String, String)]) -> std::time::Instant {
        self.kill();
        let env = [self.env.as_slice(), extra].concat();
        let spawned = std::time::Instant::now();
        self.function = spawn_function(&self.base_url, &self.args, &env, &self.log);
        spawned
    }

    /// Invokes the function with `event` and returns what it answered.
    pub fn invoke(&self, event: &Value) -> Value {
        let body = event.to_string();
        let (status, answer) = crate::support::request_raw(
            &self.base_url,
            "POST",
            "/2015-03-31/functions/_/invocations",
            &[("content-type", "application/json")],
            body.as_bytes(),
        );
        assert_eq!(
            status,
            200,
            "the invocation failed: {answer}\n{}",
            self.log()
        );
        serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{e}: {answer}"))
    }

    /// Kills the function process with SIGKILL, as a crashed or timed-out Lambda dies.
    pub fn kill(&mut self) {
        let _ = self.function.kill();
        let _ = self.function.wait();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// `inbox` with `args` as the function of the runtime API at `base_url`.
fn spawn_function(base_url: &str, args: &[String], env: &[(String, String)], log: &Path) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_inbox"));
    command
        .args(args)
        .env_clear()
        .env("HOME", std::env::var("HOME").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", format!("{base_url}/.rt"))
        .env("AWS_LAMBDA_FUNCTION_NAME", "_")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("INBOX_LOG", "info")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        // Both into the log, as Lambda sends both to CloudWatch Logs (the metrics'
        // lines are on stdout).
        .stdout(append(log))
        .stderr(append(log));
    spawn_tied(command)
}

fn append(log: &Path) -> std::fs::File {
    std::fs::File::options()
        .create(true)
        .append(true)
        .open(log)
        .unwrap()
}

impl Drop for LambdaFunction {
    fn drop(&mut self) {
        for child in [&mut self.function, &mut self.runtime_api] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A signed BigCommerce delivery (`hash` makes it unique) as an API Gateway event.
pub fn bigcommerce_http_event(hash: &str) -> Value {
    use crate::support::{BIGCOMMERCE_SECRET, bigcommerce_event, sign_bigcommerce};
    let body = bigcommerce_event(hash);
    let signature = sign_bigcommerce(BIGCOMMERCE_SECRET, &body);
    http_event(
        "POST",
        "/api/webhooks/bigcommerce",
        &[
            ("content-type", "application/json"),
            ("signature", &signature),
        ],
        &body,
    )
}

pub async fn create_bucket(client: &aws_sdk_s3::Client, name: &str) {
    client.create_bucket().bucket(name).send().await.unwrap();
}

/// The object `key` of `bucket`, if it is there.
pub async fn object(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Option<Vec<u8>> {
    match client.get_object().bucket(bucket).key(key).send().await {
        Ok(output) => Some(output.body.collect().await.unwrap().to_vec()),
        Err(error) if error.as_service_error().is_some_and(|e| e.is_no_such_key()) => None,
        Err(error) => panic!("{}", aws_sdk_s3::error::DisplayErrorContext(error)),
    }
}

/// As [`http_event`], with a text body as API Gateway passes one (a JSON body is text).
pub fn http_text_event(method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Value {
    let mut event = http_event(method, path, headers, b"");
    event["body"] = json!(body);
    event["isBase64Encoded"] = json!(false);
    event
}

/// An API Gateway HTTP API (payload v2) event for `method path` (with its query, if any)
/// with `headers` and `body`.
pub fn http_event(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Value {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    use base64::Engine;
    let headers: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), json!(v)))
        .collect();
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api",
            "domainName": "api.example.com",
            "domainPrefix": "api",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "192.0.2.1",
                "userAgent": "test"
            },
            "requestId": "req",
            "routeKey": "$default",
            "stage": "$default",
            "time": "28/Nov/2026:18:00:00 +0000",
            "timeEpoch": 1_795_000_000_000i64
        },
        "body": base64::engine::general_purpose::STANDARD.encode(body),
        "isBase64Encoded": true
    })
}

/// Counts the items DynamoDB reads for a client: what a `Query` or `Scan` evaluated
/// (`ScannedCount`, filtered or not, as DynamoDB bills it) and what a `GetItem` or
/// `BatchGetItem` returned. Installed with [`ReadMeter::client`].
#[derive(Debug, Clone, Default)]
pub struct ReadMeter(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl ReadMeter {
    /// `client` with the meter counting every read it makes.
    pub fn client(&self, client: &aws_sdk_dynamodb::Client) -> aws_sdk_dynamodb::Client {
        let config = client
            .config()
            .to_builder()
            .interceptor(self.clone())
            .build();
        aws_sdk_dynamodb::Client::from_conf(config)
    }

    /// The items read since the last call.
    pub fn take(&self) -> u64 {
        self.0.swap(0, Ordering::Relaxed)
    }
}

impl aws_sdk_dynamodb::config::Intercept for ReadMeter {
    fn name(&self) -> &'static str {
        "ReadMeter"
    }

    fn read_after_deserialization(
        &self,
        context: &aws_sdk_dynamodb::config::interceptors::AfterDeserializationInterceptorContextRef<
            '_,
        >,
        _: &aws_sdk_dynamodb::config::RuntimeComponents,
        _: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        use aws_sdk_dynamodb::operation::{
            batch_get_item::BatchGetItemOutput, get_item::GetItemOutput, query::QueryOutput,
            scan::ScanOutput,
        };
        let Ok(output) = context.output_or_error() else {
            return Ok(());
        };
        let read = if let Some(query) = output.downcast_ref::<QueryOutput>() {
            query.scanned_count as u64
        } else if let Some(scan) = output.downcast_ref::<ScanOutput>() {
            scan.scanned_count as u64
        } else if let Some(get) = output.downcast_ref::<GetItemOutput>() {
            u64::from(get.item.is_some())
        } else if let Some(batch) = output.downcast_ref::<BatchGetItemOutput>() {
            batch
                .responses
                .iter()
                .flat_map(|r| r.values())
                .map(|items| items.len() as u64)
                .sum()
        } else {
            0
        };
        self.0.fetch_add(read, Ordering::Relaxed);
        Ok(())
    }
}

/// The items of `webhooks`, in `state`, as a capture writes them, put 25 at a time (a
/// capture's transaction on moto copies the table, so thousands of them would take
/// minutes); and their counters, each written once with its total.
pub async fn seed(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    webhooks: &[(inbox_core::Webhook, inbox_core::State)],
) {
    use inbox_core::item::dynamodb::{counters, to_item};
    use inbox_core::item::{StatusItem, WebhookItem};
    let mut items = Vec::new();
    let mut totals: std::collections::BTreeMap<
        String,
        (inbox_core::item::dynamodb::ItemUpdate, i64),
    > = Default::default();
    for (hook, state) in webhooks {
        let mut status = inbox_core::Status::received(hook.received_at);
        status.state = *state;
        items.push(to_item(&WebhookItem::new(hook, None)));
        items.push(to_item(&StatusItem::captured(hook, &status)));
        let counter = counters::Counter::of(
            &hook.id,
            status.version,
            &hook.origin,
            &hook.event_type,
            *state,
            None,
        );
        for update in counters::changes(None, (&counter, *state)) {
            let entry = totals
                .entry(format!("{:?}{}", update.key, update.names["#s0"]))
                .or_insert((update, 0));
            entry.1 += 1;
        }
    }
    put_items(client, table, &items).await;
    for (_, (update, total)) in totals {
        let mut values: HashMap<String, aws_sdk_dynamodb::types::AttributeValue> =
            update.values.into();
        values.insert(
            ":d0".into(),
            aws_sdk_dynamodb::types::AttributeValue::N(total.to_string()),
        );
        client
            .update_item()
            .table_name(table)
            .set_key(Some(update.key.into()))
            .update_expression(update.update)
            .set_expression_attribute_names(Some(update.names))
            .set_expression_attribute_values(Some(values))
            .send()
            .await
            .unwrap();
    }
}

/// `items` written straight into `table`, 25 a request (`BatchWriteItem`), none refused.
pub async fn put_items(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    items: &[serde_dynamo::Item],
) {
    use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
    for chunk in items.chunks(25) {
        let requests = chunk
            .iter()
            .map(|item| {
                let put = PutRequest::builder()
                    .set_item(Some(item.clone().into()))
                    .build()
                    .unwrap();
                WriteRequest::builder().put_request(put).build()
            })
            .collect();
        let written = client
            .batch_write_item()
            .request_items(table, requests)
            .send()
            .await
            .unwrap();
        assert!(written.unprocessed_items.unwrap_or_default().is_empty());
    }
}
