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
        let mut env = moto::aws_env(moto);
        for (k, v) in [
            ("INBOX_TABLE", table.as_str()),
            ("INBOX_FAILED_QUEUE_URL", &queues.failed_url),
            ("INBOX_DEAD_QUEUE_URL", &queues.dead_url),
            ("INBOX_BIGCOMMERCE_SECRET", BIGCOMMERCE_SECRET),
            ("INBOX_LOG", "warn"),
            (
                "INBOX_CAPTURE_WASM",
                dir.path().join("inbox_capture.wasm").to_str().unwrap(),
            ),
            (
                "INBOX_PROCESSOR_WASM",
                dir.path().join("inbox_processor.wasm").to_str().unwrap(),
            ),
        ]
        .into_iter()
        .chain(components.map(|c| ("INBOX_LAMBDA_COMPONENTS", c)))
        {
            env.push((k.to_owned(), v.to_owned()));
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
