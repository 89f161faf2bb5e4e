//! Bring your own processor: the Rust, Python and JavaScript processors (the kits in
//! processors/, built by scripts/test) pass the conformance kit (`inbox check-processor`)
//! and handle webhooks on `inbox serve`; components that do not fit the `processor` world
//! are refused at start, and misbehaving ones are contained, each with a clear error.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use inbox_bridge::conformance::destination::{Answer, Destination};
use serde_json::Value;
use support::{Inbox, component, inbox_exe, kit_processor, sha256_of};

/// The three processors: the project's own, and the two kits.
fn processors() -> Vec<(&'static str, PathBuf)> {
    vec![
        ("rust", component("inbox_processor")),
        ("python", kit_processor("python")),
        ("javascript", kit_processor("javascript")),
    ]
}

fn check_processor(path: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(inbox_exe())
        .arg("check-processor")
        .args(args)
        .arg(path)
        .env_clear()
        .env("HOME", std::env::var("HOME").unwrap_or_default())
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// The kit's JSON report, and whether the command succeeded.
fn check_json(path: &Path, args: &[&str], env: &[(&str, &str)]) -> (bool, Value) {
    let output = check_processor(path, &[&["--json"], args].concat(), env);
    let report = serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "{error}: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.success(), report)
}

#[test]
fn the_rust_python_and_javascript_processors_pass_the_conformance_kit() {
    let mut versions = std::collections::BTreeSet::new();
    for (language, path) in processors() {
        let (ok, report) = check_json(&path, &[], &[]);
        assert!(ok, "{language}: {report:#}");
        assert_eq!(report["passed"], true, "{language}");
        // The host ran the very file that was built.
        assert_eq!(report["sha256"], sha256_of(&path), "{language}");
        assert_eq!(
            report["size_bytes"],
            std::fs::metadata(&path).unwrap().len()
        );
        // Sized for GitHub's largest body, the default's: the 24 MB case fits each kit.
        assert_eq!(report["memory_limit_bytes"], 132 << 20, "{language}");
        let cases = report["cases"].as_array().unwrap();
        let outcome = |name: &str| -> (&str, Option<u64>) {
            let case = cases.iter().find(|c| c["name"] == name).unwrap();
            (case["outcome"].as_str().unwrap(), case["delay_ms"].as_u64())
        };
        assert_eq!(
            outcome("destination 429, Retry-After 120"),
            ("retry", Some(120_000))
        );
        assert_eq!(outcome("destination 410 Gone").0, "reject");
        assert_eq!(outcome("destination 500").0, "retry");
        assert_eq!(outcome("destination not listening").0, "retry");
        // Each names its destination: forward_url's scheme, host and port, not its path.
        assert_eq!(report["names_destinations"], true, "{language}");
        for case in cases {
            let named = case["destination_name"].as_str().unwrap();
            let port = named.strip_prefix("http://127.0.0.1:").unwrap_or_default();
            assert!(
                !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()),
                "{language}: {named}"
            );
        }
        for case in cases {
            assert_eq!(case["passed"], true, "{language}: {case:#}");
            assert_eq!(case["within_deadline"], true, "{language}: {case:#}");
            let memory = case["peak_memory_bytes"].as_u64().unwrap();
            assert!(
                memory > 0 && memory <= report["memory_limit_bytes"].as_u64().unwrap(),
                "{language}: {case:#}"
            );
            if case["destination"] != "not listening" {
                // Forwarded once, byte for byte, the largest payload and non-ASCII included.
                assert_eq!(case["destination_requests"], 1, "{language}: {case:#}");
                assert_eq!(case["payload_intact"], true, "{language}: {case:#}");
            }
        }
        // The imports are what the component declares: the kits' WASI versions differ from
        // the host's 0.2.0 and link all the same.
        let imports: Vec<&str> = report["imports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_str().unwrap())
            .collect();
        assert!(
            imports
                .iter()
                .any(|i| i.starts_with("wasi:http/outgoing-handler@0.2.")),
            "{language}: {imports:?}"
        );
        versions.extend(
            imports
                .iter()
                .filter_map(|i| i.split_once('@'))
                .map(|(_, v)| v.to_owned()),
        );
    }
    // WASI 0.2.3 (jco's wasi:http), 0.2.9 (componentize-py) and 0.2.12 (jco) link against
    // the host's 0.2.0 interfaces.
    for version in ["0.2.3", "0.2.9", "0.2.12"] {
        assert!(
            versions.contains(version),
            "{version} not among {versions:?}"
        );
    }
}

#[test]
fn the_kit_reports_for_a_terminal_and_fails_a_processor_that_maps_answers_wrongly() {
    let path = kit_processor("python");
    let output = check_processor(&path, &[], &[]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    assert!(text.contains(&sha256_of(&path)), "{text}");
    assert!(text.contains("PASS: 12 of 12 cases passed"), "{text}");
    assert!(
        text.contains("names      the destination http://127.0.0.1:"),
        "{text}"
    );

    // A processor that never forwards fails every case the destination should have
    // decided; told it does not forward, the kit holds it to its limits only.
    let misbehaving = component("misbehaving_processor");
    let (ok, report) = check_json(&misbehaving, &[], &[]);
    assert!(!ok);
    let first = &report["cases"][0];
    assert_eq!(first["passed"], false, "{first:#}");
    assert!(
        first["notes"][0]
            .as_str()
            .unwrap()
            .contains("was not called"),
        "{first:#}"
    );
    let (ok, report) = check_json(&misbehaving, &["--without-destination"], &[]);
    assert!(ok, "{report:#}");
    assert_eq!(report["forwarding"], "unused");
    // It was built before the `destinations` interface: it loads and runs all the same,
    // as one destination named after its file.
    assert_eq!(report["names_destinations"], false, "{report:#}");
    assert_eq!(
        report["cases"][0]["destination_name"],
        "misbehaving_processor"
    );

    // One that forwards something else and completes whatever the answer fails on both.
    let (ok, report) = check_json(
        &misbehaving,
        &[],
        &[("INBOX_PROCESSOR_MISBEHAVIOUR", "careless")],
    );
    assert!(!ok, "{report:#}");
    let notes = |name: &str| -> String {
        let case = report["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap();
        assert_eq!(case["passed"], false, "{case:#}");
        case["notes"].to_string()
    };
    let gone = notes("destination 410 Gone");
    assert!(gone.contains("expected reject, got completed"), "{gone}");
    assert!(
        gone.contains("another body than the webhook's payload"),
        "{gone}"
    );
    let limited = notes("destination 429, Retry-After 120");
    assert!(
        limited.contains("expected retry after >= 120 s, got completed"),
        "{limited}"
    );
    let unreachable = notes("destination not listening");
    assert!(
        unreachable.contains("expected retry, got completed"),
        "{unreachable}"
    );
}

#[test]
fn the_kits_route_by_event_type_from_their_own_settings() {
    for language in ["python", "javascript"] {
        let (ok, report) = check_json(
            &kit_processor(language),
            &[],
            &[("INBOX_PROCESSOR_IGNORE_EVENTS", "ping, push")],
        );
        // GitHub's pushes are completed without a call, which the kit reports as failures.
        assert!(!ok, "{language}: {report:#}");
        for case in report["cases"].as_array().unwrap() {
            let ignored = case["name"].as_str().unwrap().starts_with("github push");
            assert_eq!(case["passed"], !ignored, "{language}: {case:#}");
            if ignored {
                assert_eq!(case["outcome"], "completed");
                assert_eq!(case["destination_requests"], 0);
            }
        }
    }
}

#[test]
fn components_of_another_world_are_refused_naming_what_does_not_fit() {
    for (name, unfit) in [
        (
            "inbox_capture",
            [
                "does not export webhooks:inbox/handler@0.1.0",
                "wasi:http/incoming-handler@0.2.0",
                "it imports webhooks:inbox/store@0.1.0",
            ],
        ),
        (
            "inbox_store_sqlite",
            [
                "does not export webhooks:inbox/handler@0.1.0",
                "(it exports: webhooks:inbox/store@0.1.0)",
                "it imports spin:sqlite/sqlite@3.0.0",
            ],
        ),
    ] {
        let path = component(name);
        let output = check_processor(&path, &[], &[]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{name}: {stderr}");
        assert!(output.stdout.is_empty(), "{name}: no case ran");
        assert!(stderr.contains("cannot run as the processor"), "{stderr}");
        for what in unfit {
            assert!(stderr.contains(what), "{name}: {what}\n{stderr}");
        }

        // The hosts refuse it at start, not at every attempt.
        for command in [&["serve", "--listen", "127.0.0.1:0"][..], &["worker"]] {
            let dir = tempfile::tempdir().unwrap();
            let output = Command::new(inbox_exe())
                .args(command)
                .arg("--db")
                .arg(dir.path().join("inbox.db"))
                .arg("--processor")
                .arg(&path)
                .env_clear()
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(!output.status.success(), "{command:?} started with {name}");
            assert!(stderr.contains(unfit[0]), "{command:?}: {stderr}");
        }
    }

    let not_wasm = check_processor(Path::new("Cargo.toml"), &[], &[]);
    assert!(!not_wasm.status.success());
    assert!(
        String::from_utf8_lossy(&not_wasm.stderr).contains("cannot load the component"),
        "{}",
        String::from_utf8_lossy(&not_wasm.stderr)
    );
}

#[test]
fn trapping_looping_and_hoarding_processors_are_contained_with_clear_errors() {
    let path = component("misbehaving_processor");
    for (behaviour, expected) in [
        ("trap", "it trapped"),
        ("loop", "exceeded its 300 ms deadline"),
        ("memory", "it reached its memory limit of 32 MiB"),
    ] {
        let (ok, report) = check_json(
            &path,
            &["--without-destination"],
            &[
                ("INBOX_PROCESSOR_MISBEHAVIOUR", behaviour),
                ("INBOX_PROCESSOR_TIMEOUT_MS", "300"),
                ("INBOX_MAX_COMPONENT_MEMORY_BYTES", "33554432"),
            ],
        );
        assert!(!ok, "{behaviour}: {report:#}");
        for case in report["cases"].as_array().unwrap() {
            assert_eq!(case["outcome"], "contained", "{behaviour}: {case:#}");
            assert_eq!(case["passed"], false);
            let reason = case["reason"].as_str().unwrap();
            assert!(reason.contains(expected), "{behaviour}: {reason}");
            // The host ended it on time and within its memory.
            assert!(case["time_ms"].as_f64().unwrap() < 2_000.0, "{case:#}");
            assert!(case["peak_memory_bytes"].as_u64().unwrap() <= 33_554_432);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn python_and_javascript_processors_handle_webhooks_on_inbox_serve() {
    let destination = Destination::start().await.unwrap();
    destination.answer(Answer {
        status: 200,
        retry_after: None,
    });
    for language in ["python", "javascript"] {
        let path = kit_processor(language);
        let inbox = Inbox::start(&[
            ("INBOX_PROCESSOR_WASM", path.to_str().unwrap()),
            ("INBOX_FORWARD_URL", &destination.url()),
            ("INBOX_PROCESSOR_TOKEN", "kit-token"),
        ]);
        let body = support::bigcommerce_event(&format!("{language}-order"));
        let (code, answer) = inbox.post_bigcommerce(&body);
        assert_eq!(code, 202, "{answer}");
        let id = answer["id"].as_str().unwrap().to_owned();
        inbox.wait_for(&id, "completed", Duration::from_secs(30));
        let received = destination.take_received();
        assert_eq!(received.len(), 1, "{language}: {}", inbox.log());
        let request = &received[0];
        assert_eq!(request.body, body, "{language}");
        let header = |name: &str| {
            request
                .headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(header("x-inbox-webhook-id"), Some(id.as_str()));
        assert_eq!(header("authorization"), Some("Bearer kit-token"));
        assert_eq!(header("content-type"), Some("application/json"));
        // The host logged which file it runs.
        assert!(inbox.log().contains(&sha256_of(&path)), "{}", inbox.log());
    }
}

#[test]
fn the_kits_name_their_destination_without_the_secrets_of_its_url() {
    // A token in the path and one in the query (the host refuses credentials before the
    // URL reaches a processor); nothing listens on port 9, so each attempt fails and is
    // logged.
    let url = "http://127.0.0.1:9/hooks/T0KEN/s3cr3t?token=t0p";
    for language in ["python", "javascript"] {
        let path = kit_processor(language);
        let inbox = Inbox::start(&[
            ("INBOX_PROCESSOR_WASM", path.to_str().unwrap()),
            ("INBOX_FORWARD_URL", url),
        ]);
        let body = support::bigcommerce_event(&format!("{language}-secret-url"));
        let (code, answer) = inbox.post_bigcommerce(&body);
        assert_eq!(code, 202, "{answer}");
        let id = answer["id"].as_str().unwrap().to_owned();
        inbox.wait_for(&id, "operator_required", Duration::from_secs(60));
        let log = inbox.log();
        let named: Vec<&str> = log
            .lines()
            .filter(|line| line.contains(&id) && line.contains("attempt failed"))
            .map(|line| {
                let value = line.split("destination=").nth(1).unwrap_or_default();
                value
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .trim_matches('"')
            })
            .collect();
        assert_eq!(named, ["http://127.0.0.1:9"; 3], "{language}: {log}");
        for secret in ["kit-user", "pa/ss"] {
            assert!(!log.contains(secret), "{language} logged {secret}: {log}");
        }
    }
}

/// `inbox compile` into `dir`: the path of the `.cwasm` written.
fn precompile(wasm: &Path, dir: &Path, target: Option<&str>) -> PathBuf {
    let mut command = Command::new(inbox_exe());
    command.arg("compile").arg(wasm).arg("--out-dir").arg(dir);
    if let Some(target) = target {
        command.args(["--target", target]);
    }
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let cwasm = dir.join(wasm.file_stem().unwrap()).with_extension("cwasm");
    assert!(cwasm.is_file());
    cwasm
}

#[test]
fn a_precompiled_processor_is_loaded_instead_unless_stale_or_made_for_another_machine() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("processor.wasm");
    std::fs::copy(component("inbox_processor"), &wasm).unwrap();
    let cwasm = precompile(&wasm, dir.path(), None);

    // Given the .wasm, the host loads the .cwasm beside it: the file it ran is that one.
    let (ok, report) = check_json(&wasm, &[], &[]);
    assert!(ok, "{report:#}");
    assert_eq!(report["precompiled"], true);
    assert_eq!(report["loaded"], cwasm.to_str().unwrap());
    assert_eq!(report["sha256"], sha256_of(&cwasm));
    // Given the .cwasm itself, the same.
    let (ok, report) = check_json(&cwasm, &[], &[]);
    assert!(ok && report["precompiled"] == true, "{report:#}");

    // A .wasm rebuilt after its .cwasm is compiled, never run stale, with a warning.
    let later = std::time::SystemTime::now() + Duration::from_secs(60);
    std::fs::File::options()
        .write(true)
        .open(&wasm)
        .unwrap()
        .set_modified(later)
        .unwrap();
    let output = check_processor(&wasm, &["--json"], &[]);
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["precompiled"], false);
    assert_eq!(report["sha256"], sha256_of(&wasm));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("older than its .wasm"), "{stderr}");

    // One made for another machine (Lambda's arm64) is compiled from the .wasm, with a
    // warning; on its own it is refused, saying why.
    let arm64 = precompile(
        &wasm,
        &dir.path().join("arm64"),
        Some("aarch64-unknown-linux-gnu"),
    );
    std::fs::copy(&arm64, &cwasm).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&cwasm)
        .unwrap()
        .set_modified(later + Duration::from_secs(60))
        .unwrap();
    let output = check_processor(&wasm, &["--json"], &[]);
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(output.status.success(), "{report:#}");
    assert_eq!(report["precompiled"], false);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("precompiled for another wasmtime, engine or CPU"),
        "{stderr}"
    );
    let output = check_processor(&arm64, &[], &[]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("compiled for architecture 'aarch64'"),
        "{stderr}"
    );

    // Compiling what is already precompiled is refused.
    let output = Command::new(inbox_exe())
        .arg("compile")
        .arg(&arm64)
        .arg("--out-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("already precompiled"));
}

/// A destination URL carries its credentials in every part (`user:pass@`, tokens in the
/// path as Slack's and Discord's hooks have them, `?token=`). Whatever a processor says of
/// a failure to reach it (the kits name the whole URL), none of that reaches the status,
/// the list or the log; and the host's refusal of a URL with credentials before its host
/// does not print them either.
#[test]
fn no_secret_of_a_forward_url_reaches_a_status_a_list_or_a_log() {
    // A port nothing listens on: every attempt fails to connect.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let path_and_query =
        "/services/T0SECRET1/B0SECRET2/XyZsecretTokenValue123/QwErTyUiOpAs?token=qsecret";
    let with_credentials = format!("http://hookuser:hookpass@127.0.0.1:{port}{path_and_query}");
    let secrets = [
        "hookuser",
        "hookpass",
        "T0SECRET1",
        "B0SECRET2",
        "XyZsecretTokenValue123",
        "QwErTyUiOpAs",
        "qsecret",
    ];
    let auth = format!("Bearer {}", support::ADMIN_TOKEN);
    // Credentials before the host are refused at start, whatever the processor (below).
    let url = format!("http://127.0.0.1:{port}{path_and_query}");
    for (language, path) in processors() {
        let inbox = Inbox::start(&[
            ("INBOX_PROCESSOR_WASM", path.to_str().unwrap()),
            ("INBOX_FORWARD_URL", &url),
            ("INBOX_MAX_RETRIES", "0"),
        ]);
        let body = support::bigcommerce_event(&format!("{language}-secret-url"));
        let (code, answer) = inbox.post_bigcommerce(&body);
        assert_eq!(code, 202, "{answer}");
        let id = answer["id"].as_str().unwrap().to_owned();
        let status = inbox.wait_for(&id, "operator_required", Duration::from_secs(30));
        let (code, list) = support::request(
            &inbox.url,
            "GET",
            "/api/webhooks?status=operator_required",
            &[("Authorization", auth.as_str())],
            b"",
        );
        assert_eq!(code, 200, "{list}");
        let (status, list, log) = (status.to_string(), list.to_string(), inbox.log());
        for secret in secrets {
            for (what, text) in [("status", &status), ("list", &list), ("log", &log)] {
                assert!(
                    !text.contains(secret),
                    "{language}: {secret} in the {what}: {text}"
                );
            }
        }
        // It still says where it could not reach.
        assert!(status.contains("127.0.0.1"), "{language}: {status}");
    }

    let refused = Command::new(inbox_exe())
        .args(["worker", "--db"])
        .arg(tempfile::tempdir().unwrap().path().join("inbox.db"))
        .env_clear()
        .env("INBOX_FORWARD_URL", &with_credentials)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(stderr.contains("credentials"), "{stderr}");
    for secret in secrets {
        assert!(!stderr.contains(secret), "{secret} in: {stderr}");
    }
}
