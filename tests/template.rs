//! The SAM template passes `cfn-lint` and `sam validate --lint` (both offline, from the
//! venv `scripts/test` installs), and a broken copy of it does not, so the check is real.
//! What the linters do not know is checked as the services read it: the HTTP API's routes
//! as API Gateway matches them, the stream filter as Lambda applies it, the queue's
//! concurrency bound, the functions' memory and timeout against the attempts they run,
//! and the `due` index against the one the stores query.

mod sam;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use inbox_bridge::lambda::FunctionComponents;
use inbox_bridge::settings::Settings;
use inbox_core::item::dynamodb::{due_index, list_index};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn tool(variable: &str, name: &str) -> PathBuf {
    let path = std::env::var_os(variable)
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join(".venv/sam/bin").join(name));
    assert!(
        path.is_file(),
        "{} is missing ({variable}): run scripts/test, which installs aws-sam-cli and cfn-lint",
        path.display()
    );
    path
}

fn run(command: &mut Command) -> (bool, String) {
    let output = command
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("SAM_CLI_TELEMETRY", "0")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn cfn_lint(template: &std::path::Path) -> (bool, String) {
    run(Command::new(tool("INBOX_CFN_LINT", "cfn-lint")).arg(template))
}

fn sam_validate(template: &std::path::Path) -> (bool, String) {
    run(Command::new(tool("INBOX_SAM", "sam"))
        .args(["validate", "--lint", "--template"])
        .arg(template))
}

#[test]
fn the_template_passes_cfn_lint_and_sam_validate() {
    let template = workspace().join("template.yaml");
    let (ok, output) = cfn_lint(&template);
    assert!(ok, "cfn-lint: {output}");
    let (ok, output) = sam_validate(&template);
    assert!(ok, "sam validate: {output}");
    assert!(output.contains("is a valid SAM Template"), "{output}");
}

#[test]
fn a_broken_template_is_caught() {
    let text = std::fs::read_to_string(workspace().join("template.yaml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("template.yaml");
    for (from, to) in [
        ("StreamViewType: NEW_IMAGE", "StreamViewType: NEW_IMAGES"),
        ("MemorySize: 512", "MemorySize: 99999999"),
        (
            "Value: !GetAtt DeadWebhooksQueue.QueueName",
            "Value: !GetAtt DeadWebhooksQueue.Name",
        ),
    ] {
        assert!(text.contains(from));
        std::fs::write(&broken, text.replacen(from, to, 1)).unwrap();
        let (ok, output) = cfn_lint(&broken);
        assert!(!ok, "cfn-lint accepted {to:?}: {output}");
    }
}

const CAPTURE_FUNCTION: &str = "CaptureWebhooksFunction";

/// A request for each route the capture component serves, its variables filled in.
fn served() -> Vec<(&'static str, String)> {
    let id = inbox_core::id::webhook_id("stripe", "evt_1");
    inbox_core::capture::ROUTES
        .iter()
        .map(|(method, path)| {
            let path = path.replace("{origin}", "stripe").replace("{id}", &id);
            (*method, path)
        })
        .collect()
}

fn route_problems(text: &str) -> Vec<String> {
    let served = served();
    let served: Vec<(&str, &str)> = served.iter().map(|(m, p)| (*m, p.as_str())).collect();
    sam::route_problems(&sam::routes(&sam::parse(text)), &served, CAPTURE_FUNCTION)
}

#[test]
fn every_route_the_capture_component_serves_deploys_and_reaches_it() {
    let text = sam::template_text();
    assert_eq!(route_problems(&text), Vec::<String>::new());

    // The seed's routes: two variables at one level, which API Gateway refuses (409).
    let seed = text.replacen(
        HTTP_EVENT,
        &[
            http_event("Capture", "POST", "/api/webhooks/{origin}"),
            http_event("Status", "GET", "/api/webhooks/{id}"),
        ]
        .concat(),
        1,
    );
    assert_ne!(seed, text);
    let problems = route_problems(&seed);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("conflicting variables {origin} and {id}")),
        "{problems:?}"
    );
    // Routes under /api/webhooks only: the counts, the demo and the console would be API
    // Gateway's own 404.
    let webhooks_only = text.replacen(
        HTTP_EVENT,
        &[
            http_event("Webhooks", "ANY", "/api/webhooks/{proxy+}"),
            http_event("List", "GET", "/api/webhooks"),
        ]
        .concat(),
        1,
    );
    assert_eq!(
        route_problems(&webhooks_only),
        [
            "GET /api/counts reaches no function (404)",
            "POST /demo/send-webhook reaches no function (404)",
            "GET /console reaches no function (404)",
            "GET /console/{asset} reaches no function (404)",
        ]
    );
}

/// The capture function's one event in template.yaml: the `$default` route.
const HTTP_EVENT: &str = "        Http:\n          Type: HttpApi\n";

fn http_event(name: &str, method: &str, path: &str) -> String {
    format!(
        "        {name}:\n          Type: HttpApi\n          Properties:\n            Method: {method}\n            Path: {path}\n"
    )
}

#[test]
fn the_stream_filter_uses_only_what_dynamodb_mappings_filter_on() {
    let template = sam::parse(&sam::template_text());
    let filters = sam::stream_filters(&template);
    assert_eq!(filters.len(), 2);
    for filter in &filters {
        let keys: Vec<&String> = filter.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            ["dynamodb"],
            "DynamoDB mappings filter on the dynamodb key only"
        );
    }
    let record = |name: &str, sk: &str, image: serde_json::Value| {
        serde_json::json!({
            "eventName": name,
            "dynamodb": { "Keys": { "PK": { "S": "WH#1" }, "SK": { "S": sk } }, "NewImage": image },
        })
    };
    let status = |state: &str, version: &str| serde_json::json!({ "SK": { "S": "STATUS" }, "status": { "S": state }, "version": { "N": version } });
    let webhook = serde_json::json!({ "SK": { "S": "WEBHOOK" }, "payload": { "B": "e30=" } });
    let passes = |r: serde_json::Value| sam::passes(&filters, &r);
    assert!(passes(record("INSERT", "WEBHOOK", webhook)));
    assert!(
        passes(record("MODIFY", "STATUS", status("received", "4"))),
        "a replay"
    );
    assert!(
        !passes(record("INSERT", "STATUS", status("received", "1"))),
        "a capture's own status"
    );
    assert!(!passes(record(
        "MODIFY",
        "STATUS",
        status("processing", "2")
    )));
    assert!(!passes(record("MODIFY", "STATUS", status("failed", "3"))));
    assert!(
        !passes(serde_json::json!({
            "eventName": "REMOVE",
            "dynamodb": { "Keys": { "PK": { "S": "WH#1" }, "SK": { "S": "WEBHOOK" } } },
        })),
        "an item expiring"
    );
    assert!(!passes(record(
        "INSERT",
        "DEAD#0001",
        serde_json::json!({ "SK": { "S": "DEAD#0001" } })
    )));
    let completed = serde_json::json!({
        "SK": { "S": "WEBHOOK" }, "payload": { "B": "e30=" }, "expires_at": { "N": "1800000000" }
    });
    assert!(
        !passes(record("MODIFY", "WEBHOOK", completed)),
        "the expiry a completion gives the webhook item"
    );
    assert!(
        !passes(record(
            "MODIFY",
            "6:stripe1:a",
            serde_json::json!({ "SK": { "S": "6:stripe1:a" }, "received": { "N": "3" } })
        )),
        "a counter"
    );
}

#[test]
fn retries_have_a_bounded_concurrency_set_by_a_parameter() {
    let template = sam::parse(&sam::template_text());
    let queues = sam::events(&template, "SQS");
    assert_eq!(queues.len(), 1);
    let (_, _, properties) = &queues[0];
    let parameter = properties["ScalingConfig"]["MaximumConcurrency"]
        .as_str()
        .expect("MaximumConcurrency is a !Ref to a parameter");
    let declared = &template["Parameters"][parameter];
    assert_eq!(declared["Type"].as_str(), Some("Number"));
    // SQS mappings take 2 to 1000.
    assert!(declared["MinValue"].as_i64().is_some_and(|min| min >= 2));
    assert!(declared["MaxValue"].as_i64().is_some_and(|max| max <= 1000));
    let streams = sam::events(&template, "DynamoDB");
    assert!(streams[0].2["ParallelizationFactor"].as_str().is_some());
}

/// The environment a function of the template runs with: the globals, then its own; a
/// `!Ref` to a parameter as its default.
fn function_config(template: &yaml_rust2::Yaml, function: &str) -> BTreeMap<String, String> {
    let globals = &template["Globals"]["Function"]["Environment"]["Variables"];
    let own = &template["Resources"][function]["Properties"]["Environment"]["Variables"];
    let vars = [globals, own]
        .into_iter()
        .filter_map(|vars| vars.as_hash())
        .flatten()
        .map(|(name, value)| {
            let scalar = |value: &yaml_rust2::Yaml| match value {
                yaml_rust2::Yaml::String(s) => s.clone(),
                yaml_rust2::Yaml::Integer(i) => i.to_string(),
                other => panic!("{name:?} is {other:?}, not a string"),
            };
            let parameter = &template["Parameters"][scalar(value).as_str()];
            let value = if parameter.is_badvalue() {
                scalar(value)
            } else {
                scalar(&parameter["Default"])
            };
            (name.as_str().unwrap().to_owned(), value)
        });
    inbox_core::config::from_env(vars)
}

#[test]
fn every_function_is_sized_for_its_attempts() {
    let template = sam::parse(&sam::template_text());
    let globals = &template["Globals"]["Function"];
    let memory_mb = globals["MemorySize"].as_i64().unwrap() as usize;
    let timeout = Duration::from_secs(globals["Timeout"].as_i64().unwrap() as u64);
    let mut checked = 0;
    for kind in ["DynamoDB", "SQS"] {
        for (function, _, properties) in sam::events(&template, kind) {
            let resource = &template["Resources"][function.as_str()]["Properties"];
            assert!(
                resource["MemorySize"].is_badvalue() && resource["Timeout"].is_badvalue(),
                "{function} sizes itself: check it here"
            );
            let settings = Settings::from_config(&function_config(&template, &function)).unwrap();
            let batch = properties["BatchSize"].as_i64().unwrap() as usize;
            settings.fits_memory(memory_mb << 20).unwrap();
            settings.fits_time(batch, timeout).unwrap();
            checked += 1;
        }
    }
    assert_eq!(checked, 2);
}

#[test]
fn each_function_loads_only_the_component_its_events_need() {
    let template = sam::parse(&sam::template_text());
    let mut checked = std::collections::BTreeSet::new();
    for (kind, capture, processor) in [
        ("HttpApi", true, false),
        ("DynamoDB", false, true),
        ("SQS", false, true),
        ("Schedule", false, false),
    ] {
        for (function, _, _) in sam::events(&template, kind) {
            let runs =
                FunctionComponents::from_config(&function_config(&template, &function)).unwrap();
            assert_eq!(
                (runs.capture, runs.processor),
                (capture, processor),
                "{function} ({kind} events)"
            );
            checked.insert(function);
        }
    }
    let functions = template["Resources"]
        .as_hash()
        .unwrap()
        .values()
        .filter(|resource| resource["Type"].as_str() == Some("AWS::Serverless::Function"))
        .count();
    assert_eq!(checked.len(), functions, "{checked:?}");
    // The components layer carries arm64 code, as the functions run.
    let layer = &template["Resources"]["ComponentsLayer"];
    assert_eq!(
        layer["Metadata"]["BuildArchitecture"].as_str(),
        Some("arm64")
    );
    assert_eq!(
        template["Globals"]["Function"]["Architectures"][0].as_str(),
        Some("arm64")
    );
}

#[test]
fn the_indexes_are_the_ones_the_stores_query() {
    let template = sam::parse(&sam::template_text());
    let table = &template["Resources"]["WebhooksTable"]["Properties"];
    let types: BTreeMap<&str, &str> = table["AttributeDefinitions"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["AttributeName"].as_str().unwrap(),
                a["AttributeType"].as_str().unwrap(),
            )
        })
        .collect();
    let indexes = table["GlobalSecondaryIndexes"].as_vec().unwrap();
    // Name, partition key, sort key with their types, and what is projected (keys only
    // without a list).
    type Key<'a> = (&'a str, &'a str);
    type Index<'a> = (&'a str, Key<'a>, Option<Key<'a>>, Option<&'a [&'a str]>);
    let expected: [Index; 3] = [
        (
            due_index::NAME,
            (due_index::PARTITION_KEY, "S"),
            Some((due_index::SORT_KEY, "N")),
            Some(&due_index::ATTRIBUTES),
        ),
        (
            list_index::NAME,
            (list_index::PARTITION_KEY, "S"),
            Some((list_index::SORT_KEY, "S")),
            Some(&list_index::ATTRIBUTES),
        ),
        (
            list_index::KEY_INDEX,
            (list_index::KEY_INDEX_PARTITION_KEY, "S"),
            None,
            None,
        ),
    ];
    assert_eq!(indexes.len(), expected.len());
    for (name, partition, sort, attributes) in expected {
        let index = indexes
            .iter()
            .find(|i| i["IndexName"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("the {name} index"));
        let keys: Vec<(&str, &str)> = index["KeySchema"]
            .as_vec()
            .unwrap()
            .iter()
            .map(|k| {
                (
                    k["AttributeName"].as_str().unwrap(),
                    k["KeyType"].as_str().unwrap(),
                )
            })
            .collect();
        let mut wanted = vec![(partition.0, "HASH")];
        wanted.extend(sort.map(|(key, _)| (key, "RANGE")));
        assert_eq!(keys, wanted, "{name}");
        for (key, kind) in [Some(partition), sort].into_iter().flatten() {
            assert_eq!(types[key], kind, "{name}: {key}");
        }
        match attributes {
            Some(attributes) => {
                assert_eq!(
                    index["Projection"]["ProjectionType"].as_str(),
                    Some("INCLUDE"),
                    "{name}"
                );
                let projected: Vec<&str> = index["Projection"]["NonKeyAttributes"]
                    .as_vec()
                    .unwrap()
                    .iter()
                    .map(|a| a.as_str().unwrap())
                    .collect();
                assert_eq!(projected, attributes, "{name}");
            }
            None => assert_eq!(
                index["Projection"]["ProjectionType"].as_str(),
                Some("KEYS_ONLY"),
                "{name}"
            ),
        }
    }
}
