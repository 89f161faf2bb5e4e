//! The SAM template passes `cfn-lint` and `sam validate --lint` (both offline, from the
//! venv `scripts/test` installs), and a broken copy of it does not, so the check is real.
//! What the linters do not know is checked as the services read it: the HTTP API's routes
//! as API Gateway matches them, the stream filter as Lambda applies it, the queue's
//! concurrency bound, the functions' memory and timeout against the attempts they run,
//! the `due` index against the one the stores query, what the capture function may do
//! (no admin token, no scan, updates to the counters only), and that every secret comes
//! from an SSM parameter only the functions that need it may read.

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

/// Providers' deliveries, and nothing else.
const CAPTURE_FUNCTION: &str = "CaptureWebhooksFunction";
/// The admin API, the console and the demo.
const ADMIN_FUNCTION: &str = "AdminWebhooksFunction";
const CAPTURE_ROUTE: (&str, &str) = ("POST", "/api/webhooks/{origin}");

/// A request for each route the capture component serves, its variables filled in, and
/// the function that must serve it: the capture route the capture function, every other
/// route the admin function.
fn served() -> Vec<(&'static str, String, &'static str)> {
    let id = inbox_core::id::webhook_id("stripe", "evt_1");
    inbox_core::capture::ROUTES
        .iter()
        .map(|&(method, path)| {
            let function = if (method, path) == CAPTURE_ROUTE {
                CAPTURE_FUNCTION
            } else {
                ADMIN_FUNCTION
            };
            let path = path.replace("{origin}", "stripe").replace("{id}", &id);
            (method, path, function)
        })
        .collect()
}

fn route_problems(text: &str) -> Vec<String> {
    let served = served();
    let served: Vec<(&str, &str, &str)> = served
        .iter()
        .map(|(m, p, f)| (*m, p.as_str(), *f))
        .collect();
    sam::route_problems(&sam::routes(&sam::parse(text)), &served)
}

#[test]
fn every_route_the_capture_component_serves_deploys_and_reaches_it() {
    let text = sam::template_text();
    assert_eq!(route_problems(&text), Vec::<String>::new());

    // The admin routes listed beside the capture route: two variables at one level, which
    // API Gateway refuses (409).
    let seed = text.replacen(
        HTTP_EVENT,
        &http_event("Status", "GET", "/api/webhooks/{id}"),
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
    // Admin routes under /api/webhooks only (their variable named as the capture route's,
    // which another name at that level would conflict with): the counts, the destinations,
    // the demo and the console would be API Gateway's own 404.
    let webhooks_only = text.replacen(
        HTTP_EVENT,
        &[
            http_event("Status", "GET", "/api/webhooks/{origin}"),
            http_event("Below", "ANY", "/api/webhooks/{origin}/{proxy+}"),
            http_event("List", "GET", "/api/webhooks"),
        ]
        .concat(),
        1,
    );
    assert_eq!(
        route_problems(&webhooks_only),
        [
            "GET /api/counts reaches no function (404)",
            "GET /api/destinations reaches no function (404)",
            "POST /api/destinations/{name}/pause reaches no function (404)",
            "POST /api/destinations/{name}/resume reaches no function (404)",
            "POST /demo/send-webhook reaches no function (404)",
            "GET /console reaches no function (404)",
            "GET /console/{asset} reaches no function (404)",
        ]
    );
    // A capture route that takes more than deliveries takes the admin API with it.
    let greedy_capture = text.replacen(
        "            Method: POST\n            Path: /api/webhooks/{origin}\n",
        "            Method: ANY\n            Path: /api/webhooks/{proxy+}\n",
        1,
    );
    assert_ne!(greedy_capture, text);
    let id = inbox_core::id::webhook_id("stripe", "evt_1");
    assert!(
        route_problems(&greedy_capture).contains(&format!(
            "POST /api/webhooks/{id}/replay goes to {CAPTURE_FUNCTION} (ANY /api/webhooks/{{proxy+}}), not {ADMIN_FUNCTION}"
        )),
        "{:?}",
        route_problems(&greedy_capture)
    );
}

/// The admin function's one event in template.yaml: the `$default` route.
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
    assert_eq!(filters.len(), 3);
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
    // An upload's item deleted (its TTL, or never claimed): its object goes. Its writes
    // (put before the object, put again by the capture, given an expiry) are no work.
    let upload = format!("UPLOAD#1700000000123-{}", "ab".repeat(32));
    assert!(passes(serde_json::json!({
        "eventName": "REMOVE",
        "dynamodb": { "Keys": { "PK": { "S": "WH#1" }, "SK": { "S": upload } } },
    })));
    for name in ["INSERT", "MODIFY"] {
        let image =
            serde_json::json!({ "SK": { "S": upload }, "expires_at": { "N": "1800000000" } });
        assert!(!passes(record(name, &upload, image)), "{name}");
    }
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

/// The values of a policy's `Action` or `Resource`: one, or a list.
fn strings(value: &yaml_rust2::Yaml) -> Vec<String> {
    match value {
        yaml_rust2::Yaml::String(one) => vec![one.clone()],
        yaml_rust2::Yaml::Array(many) => many
            .iter()
            .map(|v| v.as_str().expect("a string").to_owned())
            .collect(),
        other => panic!("not a string or a list of them: {other:?}"),
    }
}

/// Every statement of a function's policies, which must all be written out: a SAM policy
/// template (`DynamoDBCrudPolicy`, ...) would grant what this file cannot see.
fn statements<'a>(template: &'a yaml_rust2::Yaml, function: &str) -> Vec<&'a yaml_rust2::Yaml> {
    let policies = template["Resources"][function]["Properties"]["Policies"]
        .as_vec()
        .unwrap_or_else(|| panic!("{function} has no Policies"));
    policies
        .iter()
        .flat_map(|policy| {
            policy["Statement"]
                .as_vec()
                .unwrap_or_else(|| panic!("{function}: a policy that is not a Statement list"))
        })
        .collect()
}

/// The template parameters a `!Sub` text names (`${Name}`), not the pseudo parameters
/// (`${AWS::Region}`) nor attributes (`${Table.Arn}`).
fn references(text: &str) -> Vec<String> {
    text.split("${")
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
        .filter(|name| !name.contains("::") && !name.contains('.'))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_capture_function_serves_deliveries_only_and_cannot_scan_or_change_a_status() {
    let template = sam::parse(&sam::template_text());
    let routes = sam::routes(&template);
    let capture_routes: Vec<&str> = routes
        .iter()
        .filter(|r| r.function == CAPTURE_FUNCTION)
        .map(|r| r.key.as_str())
        .collect();
    assert_eq!(capture_routes, ["POST /api/webhooks/{origin}"]);
    let admin_routes: Vec<&str> = routes
        .iter()
        .filter(|r| r.function == ADMIN_FUNCTION)
        .map(|r| r.key.as_str())
        .collect();
    assert_eq!(admin_routes, ["$default"]);

    // No admin token and no demo sender: on the capture function the admin API answers
    // 403 (closed) and the demo 404, however it is invoked.
    let config = function_config(&template, CAPTURE_FUNCTION);
    for key in ["admin_token", "demo_sender"] {
        assert!(!config.contains_key(key), "{CAPTURE_FUNCTION} has {key}");
    }
    let spec = config
        .get("secret_parameters")
        .expect("the capture function reads its secrets from SSM");
    let variables: Vec<String> = inbox_bridge::aws::ssm::parse(spec)
        .unwrap()
        .into_iter()
        .map(|wanted| wanted.variable)
        .collect();
    assert_eq!(
        variables,
        [
            "INBOX_BIGCOMMERCE_SECRET",
            "INBOX_BIGCOMMERCE_TOKEN",
            "INBOX_STRIPE_SECRET",
            "INBOX_GITHUB_SECRET",
            "INBOX_SHOPIFY_SECRET",
            "INBOX_STANDARD_WEBHOOKS_SECRET",
        ]
    );
    let admin = function_config(&template, ADMIN_FUNCTION);
    let admin_variables: Vec<String> = inbox_bridge::aws::ssm::parse(&admin["secret_parameters"])
        .unwrap()
        .into_iter()
        .map(|wanted| wanted.variable)
        .collect();
    assert_eq!(
        admin_variables,
        ["INBOX_ADMIN_TOKEN", "INBOX_BIGCOMMERCE_SECRET"]
    );
    assert_eq!(admin["demo_sender"], "off");

    // Its role: put the new items and read one back (a duplicate's status), add to the
    // COUNT# counters, and nothing else on the table.
    let mut updates = 0;
    for statement in statements(&template, CAPTURE_FUNCTION) {
        assert_eq!(statement["Effect"].as_str(), Some("Allow"));
        let actions = strings(&statement["Action"]);
        for action in &actions {
            assert!(
                !action.contains('*'),
                "{CAPTURE_FUNCTION} is allowed {action}"
            );
        }
        let dynamodb: Vec<&String> = actions
            .iter()
            .filter(|a| a.starts_with("dynamodb:"))
            .collect();
        if dynamodb.is_empty() {
            continue;
        }
        assert!(
            !dynamodb.iter().any(|a| *a == "dynamodb:Scan"),
            "{CAPTURE_FUNCTION} may scan the table"
        );
        if dynamodb.iter().any(|a| *a == "dynamodb:UpdateItem") {
            assert_eq!(
                actions,
                ["dynamodb:UpdateItem"],
                "UpdateItem in a statement of its own, under its condition"
            );
            let condition = statement["Condition"].as_hash().expect("a condition");
            assert_eq!(condition.len(), 1, "{condition:?}");
            let leading = &statement["Condition"]["ForAllValues:StringLike"];
            assert_eq!(leading.as_hash().map(|h| h.len()), Some(1), "{leading:?}");
            assert_eq!(strings(&leading["dynamodb:LeadingKeys"]), ["COUNT#*"]);
            updates += 1;
        } else {
            assert!(
                statement["Condition"].is_badvalue(),
                "{CAPTURE_FUNCTION}: a condition this test does not know"
            );
            for action in dynamodb {
                assert!(
                    [
                        "dynamodb:PutItem",
                        "dynamodb:GetItem",
                        "dynamodb:ConditionCheckItem"
                    ]
                    .contains(&action.as_str()),
                    "{CAPTURE_FUNCTION} is allowed {action} on any item"
                );
            }
        }
    }
    assert_eq!(updates, 1, "the counters' UpdateItem, under its condition");
}

#[test]
fn secrets_come_from_ssm_parameters_each_function_reading_only_its_own() {
    let template = sam::parse(&sam::template_text());
    let expected: BTreeMap<&str, Vec<&str>> = [
        (
            CAPTURE_FUNCTION,
            vec![
                "BigCommerceSecretParameter",
                "BigCommerceTokenParameter",
                "GithubSecretParameter",
                "ShopifySecretParameter",
                "StandardWebhooksSecretParameter",
                "StripeSecretParameter",
            ],
        ),
        (
            ADMIN_FUNCTION,
            vec!["AdminTokenParameter", "BigCommerceSecretParameter"],
        ),
        (
            "DynamoProcessWebhooksFunction",
            vec![
                "AlertSecretParameter",
                "AlertUrlParameter",
                "ForwardUrlParameter",
            ],
        ),
        (
            "SqsProcessWebhooksFunction",
            vec![
                "AlertSecretParameter",
                "AlertUrlParameter",
                "ForwardUrlParameter",
            ],
        ),
        ("SweepWebhooksFunction", vec![]),
    ]
    .into_iter()
    .collect();
    let functions: Vec<&str> = template["Resources"]
        .as_hash()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::Serverless::Function"))
        .map(|(name, _)| name.as_str().unwrap())
        .collect();
    let mut listed: Vec<&str> = expected.keys().copied().collect();
    let mut found = functions.clone();
    listed.sort();
    found.sort();
    assert_eq!(found, listed, "every function, and what it may read");

    let secret = |key: &str| {
        key.ends_with("_secret")
            || key.ends_with("_token")
            || key == "forward_url"
            || key == "alert_url"
    };
    for function in functions {
        let config = function_config(&template, function);
        let plain: Vec<&String> = config.keys().filter(|key| secret(key)).collect();
        assert!(
            plain.is_empty(),
            "{function} has {plain:?} in its environment"
        );

        // The parameters its environment names (`INBOX_X=${XParameter}`)...
        let mut named: Vec<String> = config
            .get("secret_parameters")
            .map(|spec| inbox_bridge::aws::ssm::parse(spec).unwrap())
            .unwrap_or_default()
            .into_iter()
            .flat_map(|wanted| {
                assert!(
                    secret(
                        &wanted.variable[inbox_core::config::ENV_PREFIX.len()..]
                            .to_ascii_lowercase()
                    ),
                    "{function}: {} is not a secret",
                    wanted.variable
                );
                let refs = references(&wanted.parameter);
                assert_eq!(refs.len(), 1, "{function}: {}", wanted.parameter);
                assert_eq!(wanted.parameter, format!("${{{}}}", refs[0]));
                refs
            })
            .collect();
        // ...are the ones its role may read, by their ARN.
        let mut readable = Vec::new();
        for statement in statements(&template, function) {
            let actions = strings(&statement["Action"]);
            if !actions.iter().any(|a| a.starts_with("ssm:")) {
                continue;
            }
            assert_eq!(actions, ["ssm:GetParameters"], "{function}");
            for resource in strings(&statement["Resource"]) {
                let refs = references(&resource);
                assert_eq!(refs.len(), 1, "{function}: {resource}");
                assert_eq!(
                    resource,
                    format!(
                        "arn:${{AWS::Partition}}:ssm:${{AWS::Region}}:${{AWS::AccountId}}:parameter${{{}}}",
                        refs[0]
                    )
                );
                readable.extend(refs);
            }
        }
        named.sort();
        readable.sort();
        assert_eq!(named, readable, "{function}: named and readable");
        assert_eq!(named, expected[function], "{function}");
        for parameter in &named {
            // A name with its leading slash, as the ARN above needs; empty: not used.
            let declared = &template["Parameters"][parameter.as_str()];
            assert_eq!(declared["Default"].as_str(), Some(""), "{parameter}");
            assert_eq!(
                declared["AllowedPattern"].as_str(),
                Some("^(/[A-Za-z0-9_.-]+)*$"),
                "{parameter}"
            );
            assert!(
                declared["NoEcho"].is_badvalue(),
                "{parameter}: a name, not a secret"
            );
        }
    }
    // No secret is a parameter of the stack any more.
    for (name, declared) in template["Parameters"].as_hash().unwrap() {
        assert!(
            declared["NoEcho"].is_badvalue(),
            "{name:?} is a secret passed to the stack"
        );
    }
}
