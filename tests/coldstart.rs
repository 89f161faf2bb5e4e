//! Lambda cold start, measured from outside: from spawning `inbox lambda` (an empty HOME,
//! so no compiled code cached) to its answer to the first API Gateway capture, through
//! cargo-lambda's Runtime API against moto; with the components as `.wasm` only, and with
//! their precompiled `.cwasm` beside them (as the layer ships them); as the template's
//! capture function (capture only) and as plain `inbox lambda` (every component).
//!
//! A smoke run in the test suite (each variant twice, checking the answers); a benchmark
//! with more runs: `INBOX_COLD_STARTS=30 cargo test --release -p inbox-bridge --test
//! coldstart -- --nocapture` (scripts/bench-cold-start). It prints the median and the
//! fastest of each variant, and each one's ratio to the first, measured in the same run.

mod moto;
mod sam;
mod support;

use std::path::Path;
use std::time::Duration;

use moto::{LambdaFunction, Moto};
use support::BIGCOMMERCE_SECRET;

/// The components, copied into `dir`, precompiled beside them if `precompiled`.
fn components_in(dir: &Path, precompiled: bool) {
    for name in ["inbox_capture", "inbox_processor"] {
        let wasm = dir.join(format!("{name}.wasm"));
        std::fs::copy(support::component(name), &wasm).unwrap();
        if precompiled {
            let output = std::process::Command::new(support::inbox_exe())
                .arg("compile")
                .arg(&wasm)
                .arg("--out-dir")
                .arg(dir)
                .output()
                .unwrap();
            assert!(output.status.success(), "{output:?}");
        }
    }
}

/// `inbox lambda`'s settings: moto's table and queues, and the components in `dir`.
fn function_env(
    moto: &Moto,
    table: &str,
    queues: &moto::Queues,
    dir: &Path,
) -> Vec<(String, String)> {
    let mut env = moto::aws_env(moto);
    for (k, v) in [
        ("INBOX_TABLE", table),
        ("INBOX_FAILED_QUEUE_URL", &queues.failed_url),
        ("INBOX_DEAD_QUEUE_URL", &queues.dead_url),
        ("INBOX_BIGCOMMERCE_SECRET", BIGCOMMERCE_SECRET),
        ("INBOX_LOG", "warn"),
        (
            "INBOX_CAPTURE_WASM",
            dir.join("inbox_capture.wasm").to_str().unwrap(),
        ),
        (
            "INBOX_PROCESSOR_WASM",
            dir.join("inbox_processor.wasm").to_str().unwrap(),
        ),
    ] {
        env.push((k.to_owned(), v.to_owned()));
    }
    env
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cold_function_answers_its_first_capture() {
    let runs: usize = std::env::var("INBOX_COLD_STARTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2);
    let moto = Moto::shared();
    let dynamodb = moto.dynamodb().await;
    let table = moto::unique("coldstart");
    moto::create_table(&dynamodb, &table).await;
    let sqs = moto.sqs().await;
    let queues = moto::create_queues(&sqs, &moto::unique("coldstart")).await;

    let mut results: Vec<(String, Duration, Duration)> = Vec::new();
    for (precompiled, components) in [
        (false, Some("capture")),
        (true, Some("capture")),
        (false, None),
        (true, None),
    ] {
        let dir = tempfile::tempdir().unwrap();
        components_in(dir.path(), precompiled);
        let mut env = function_env(moto, &table, &queues, dir.path());
        if let Some(components) = components {
            env.push(("INBOX_LAMBDA_COMPONENTS".to_owned(), components.to_owned()));
        }
        let mut function = LambdaFunction::start(&["lambda"], &env);
        let mut times = Vec::new();
        for run in 0..runs {
            // A HOME of its own: no code compiled by an earlier run is cached.
            let home = tempfile::tempdir().unwrap();
            let spawned =
                function.restart(&[("HOME".into(), home.path().to_str().unwrap().into())]);
            let event =
                moto::bigcommerce_http_event(&format!("cold-{precompiled}-{components:?}-{run}"));
            let response = function.invoke(&event);
            times.push(spawned.elapsed());
            assert_eq!(
                response["statusCode"],
                202,
                "{response}\n{}",
                function.log()
            );
        }
        let variant = format!(
            "{}, {}",
            components.map_or("every component", |_| "capture only"),
            if precompiled { ".cwasm" } else { ".wasm" }
        );
        let fastest = *times.iter().min().unwrap();
        results.push((variant, median(times), fastest));
    }
    let baseline = results[0].1.as_secs_f64();
    println!("cold start, spawn to first capture answered ({runs} runs each):");
    for (variant, median, fastest) in &results {
        println!(
            "  {variant:<28} median {:>6.1} ms, fastest {:>6.1} ms, {:.2}x the first",
            median.as_secs_f64() * 1e3,
            fastest.as_secs_f64() * 1e3,
            median.as_secs_f64() / baseline
        );
    }
}

/// A warm function against a cold one: the first capture a fresh process answers (from its
/// spawn: it compiles, or loads, the components) and the ones after it in the same process
/// (its capture instance kept, as a warm Lambda container keeps it); then a stream batch of
/// 10 webhooks, first in a fresh process, then in the warm one. A smoke run in the test
/// suite, checking the answers; `INBOX_COLD_STARTS=30` for the benchmark, which prints the
/// medians and each one's ratio to the cold one of its kind, measured in the same run.
#[tokio::test(flavor = "multi_thread")]
async fn a_warm_function_answers_without_paying_the_cold_start_again() {
    let runs: usize = std::env::var("INBOX_COLD_STARTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    let moto = Moto::shared();
    let dynamodb = moto.dynamodb().await;
    let table = moto::unique("warm");
    moto::create_table(&dynamodb, &table).await;
    let sqs = moto.sqs().await;
    let queues = moto::create_queues(&sqs, &moto::unique("warm")).await;
    let dir = tempfile::tempdir().unwrap();
    components_in(dir.path(), true);
    let env = function_env(moto, &table, &queues, dir.path());
    let filters = sam::stream_filters(&sam::parse(&sam::template_text()));
    let mut stream = moto::StreamReader::new(moto, &table).await;
    let mut function = LambdaFunction::start(&["lambda"], &env);
    let (mut cold, mut warm, mut cold_batch, mut warm_batch) = (vec![], vec![], vec![], vec![]);
    let captured = |function: &LambdaFunction, hash: String| {
        let response = function.invoke(&moto::bigcommerce_http_event(&hash));
        assert_eq!(
            response["statusCode"],
            202,
            "{response}\n{}",
            function.log()
        );
    };
    let batch = |function: &LambdaFunction, records: &[serde_json::Value]| {
        let started = std::time::Instant::now();
        let response = function.invoke(&moto::stream_event(records.to_vec()));
        let took = started.elapsed();
        assert_eq!(
            response,
            serde_json::json!({ "batchItemFailures": [] }),
            "{}",
            function.log()
        );
        took
    };
    for run in 0..runs {
        let home = tempfile::tempdir().unwrap();
        let home = [("HOME".to_owned(), home.path().to_str().unwrap().to_owned())];
        let spawned = function.restart(&home);
        captured(&function, format!("warm-{run}-0"));
        cold.push(spawned.elapsed());
        for n in 1..20 {
            let started = std::time::Instant::now();
            captured(&function, format!("warm-{run}-{n}"));
            warm.push(started.elapsed());
        }
        let mut records = Vec::new();
        while records.len() < 20 {
            records.extend(
                stream
                    .read()
                    .await
                    .into_iter()
                    .filter(|record| sam::passes(&filters, record)),
            );
        }
        assert_eq!(records.len(), 20, "one WEBHOOK insert a capture");
        let spawned = function.restart(&home);
        batch(&function, &records[..10]);
        cold_batch.push(spawned.elapsed());
        warm_batch.push(batch(&function, &records[10..]));
    }
    let ms = |time: Duration| time.as_secs_f64() * 1e3;
    let (cold, warm) = (median(cold), median(warm));
    let (cold_batch, warm_batch) = (median(cold_batch), median(warm_batch));
    println!("a cold function (spawn to answer) against a warm one ({runs} runs each):");
    println!(
        "  capture          cold {:>7.1} ms, warm {:>6.1} ms ({:.3}x)",
        ms(cold),
        ms(warm),
        ms(warm) / ms(cold)
    );
    println!(
        "  stream batch 10  cold {:>7.1} ms, warm {:>6.1} ms ({:.3}x)",
        ms(cold_batch),
        ms(warm_batch),
        ms(warm_batch) / ms(cold_batch)
    );
}
