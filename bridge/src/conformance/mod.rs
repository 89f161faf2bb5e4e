//! `inbox check-processor`: runs a fixed set of webhooks through a processor component on
//! the real host, against a real destination on 127.0.0.1, and reports each outcome, the
//! time and memory it took, and whether it kept within its deadline. A component that does
//! not fit the `processor` world is refused before any case runs.
//!
//! The outcomes are checked against what docs/processors.md asks of a processor that forwards to
//! `forward_url` (2xx completed; 408, 429, 5xx or no answer retried, honouring
//! `Retry-After`; other 4xx rejected). A processor that does something else with webhooks
//! is checked with [`Forwarding::Unused`]: it only has to return an outcome within its
//! limits.

pub mod cases;
pub mod destination;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use inbox_core::lifecycle::Outcome;
use inbox_wasm_host::{Engine, Limits, ProcessorHost};
use serde::Serialize;

use cases::{Case, Expected};
use destination::{Answer, Destination, Received};

/// Whether the processor under check forwards to `forward_url`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Forwarding {
    /// It does: each case's outcome must match the destination's answer.
    Required,
    /// It does not: the destination's answers are not checked.
    Unused,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub path: String,
    /// The file loaded: `path`, or the precompiled component beside it.
    pub loaded: String,
    pub precompiled: bool,
    pub sha256: String,
    pub size_bytes: usize,
    pub compile_ms: f64,
    pub imports: Vec<String>,
    pub deadline_ms: u64,
    pub memory_limit_bytes: usize,
    pub forwarding: Forwarding,
    /// Whether it exports `webhooks:inbox/destinations`: if not, it is one destination,
    /// named after its file.
    pub names_destinations: bool,
    pub cases: Vec<CaseReport>,
    pub passed: bool,
}

#[derive(Debug, Serialize)]
pub struct CaseReport {
    pub name: &'static str,
    pub webhook_id: String,
    pub payload_bytes: usize,
    pub attempt: u32,
    /// What the destination answered: `200`, `429 Retry-After: 120`, `not listening`.
    pub destination: String,
    /// The destination the processor named for the webhook (its file's name if it names
    /// none).
    pub destination_name: String,
    pub expected: String,
    /// `completed`, `retry`, `reject`, or `contained` when the host ended the attempt.
    pub outcome: &'static str,
    pub delay_ms: Option<u64>,
    /// The processor's reason, or why the host ended the attempt.
    pub reason: Option<String>,
    pub instantiate_ms: f64,
    pub time_ms: f64,
    pub peak_memory_bytes: usize,
    pub within_deadline: bool,
    /// Requests the destination received during the case.
    pub destination_requests: usize,
    /// Whether the destination received the payload byte for byte (when it was called).
    pub payload_intact: Option<bool>,
    pub passed: bool,
    /// Why it failed, or what is worth knowing though it passed.
    pub notes: Vec<String>,
}

/// Loads the processor at `path` (refusing one that does not fit, with why) and runs every
/// case through it. `config` is the processor's settings; `forward_url` is the kit's.
pub async fn check(
    engine: &Engine,
    path: &Path,
    mut config: BTreeMap<String, String>,
    limits: &Limits,
    forwarding: Forwarding,
) -> Result<Report> {
    let mut destination = Destination::start().await?;
    let forward_url = destination.url();
    // Where a processor that forwards there must say the webhooks go.
    let forward_name = inbox_core::forward::Target::parse(&forward_url)?.destination();
    config.insert("forward_url".into(), forward_url);
    let processor = ProcessorHost::load(engine, path, Arc::new(config), limits)?;
    let mut runs = Vec::new();
    for case in cases::all() {
        match case.answer {
            Some(answer) => destination.answer(answer),
            None => destination.stop().await,
        }
        let attempt = processor.attempt(&case.webhook, case.attempt).await;
        runs.push((case, attempt, destination.take_received()));
    }
    let cases: Vec<CaseReport> = runs
        .into_iter()
        .map(|(case, attempt, received)| {
            let mut report = judge(&case, attempt, &received, forwarding, &processor);
            let named = &report.destination_name;
            if forwarding == Forwarding::Required
                && processor.names_destinations()
                && *named != forward_name
            {
                report.passed = false;
                report.notes.push(format!(
                    "it named the destination {named:?}, not forward_url's scheme, host and port {forward_name:?}"
                ));
            }
            report
        })
        .collect();
    let file = processor.file();
    Ok(Report {
        path: path.display().to_string(),
        loaded: file.path.display().to_string(),
        precompiled: file.precompiled,
        sha256: file.sha256.clone(),
        size_bytes: file.size_bytes,
        compile_ms: millis(file.compile_time),
        imports: file.imports.clone(),
        deadline_ms: processor.deadline().as_millis() as u64,
        memory_limit_bytes: processor.max_memory_bytes(),
        forwarding,
        names_destinations: processor.names_destinations(),
        passed: cases.iter().all(|case| case.passed),
        cases,
    })
}

fn judge(
    case: &Case,
    attempt: inbox_wasm_host::processor::Run,
    received: &[Received],
    forwarding: Forwarding,
    processor: &ProcessorHost,
) -> CaseReport {
    let mut notes = Vec::new();
    let expected = case.expected();
    let within_deadline = attempt.elapsed < processor.deadline();
    let (outcome, delay_ms, reason) = match &attempt.result {
        Ok(Outcome::Completed) => ("completed", None, None),
        Ok(Outcome::Retry { reason, delay_ms }) => ("retry", *delay_ms, Some(reason.clone())),
        Ok(Outcome::Reject { reason }) => ("reject", None, Some(reason.clone())),
        Err(contained) => (
            "contained",
            None,
            Some(format!("the host ended the attempt: {contained}")),
        ),
    };
    let mut passed = attempt.result.is_ok() && within_deadline;
    if forwarding == Forwarding::Required && attempt.result.is_ok() {
        let expected_here = match expected {
            Expected::Completed => outcome == "completed",
            Expected::Reject => outcome == "reject",
            Expected::Retry { at_least_ms } => outcome == "retry" && delay_ms >= at_least_ms,
        };
        if case.answer.is_some() && received.is_empty() {
            passed = false;
            notes.push(
                "the destination (forward_url) was not called; for a processor that does not \
                 forward, check with --without-destination"
                    .into(),
            );
        } else if !expected_here {
            passed = false;
            notes.push(format!(
                "expected {}, got {}",
                describe_expected(expected),
                describe_outcome(outcome, delay_ms)
            ));
        }
    }
    let payload_intact = received
        .last()
        .map(|request| request.body == case.webhook.payload);
    if forwarding == Forwarding::Required {
        let mut wrong = |note: String| {
            passed = false;
            notes.push(note);
        };
        if payload_intact == Some(false) {
            wrong("the destination received another body than the webhook's payload".into());
        }
        if received.len() > 1 {
            wrong(format!(
                "the destination was called {} times in one attempt",
                received.len()
            ));
        }
        if let Some(request) = received.iter().find(|r| r.path != destination::PATH) {
            wrong(format!(
                "the destination was called at {}, not forward_url's path {}",
                request.path,
                destination::PATH
            ));
        }
    }
    CaseReport {
        name: case.name,
        webhook_id: case.webhook.id.clone(),
        payload_bytes: case.webhook.payload.len(),
        attempt: case.attempt,
        destination: describe_answer(case.answer),
        destination_name: attempt.destination,
        expected: describe_expected(expected),
        outcome,
        delay_ms,
        reason,
        instantiate_ms: millis(attempt.instantiate_time),
        time_ms: millis(attempt.elapsed),
        peak_memory_bytes: attempt.peak_memory_bytes,
        within_deadline,
        destination_requests: received.len(),
        payload_intact,
        passed,
        notes,
    }
}

fn describe_answer(answer: Option<Answer>) -> String {
    match answer {
        None => "not listening".into(),
        Some(Answer {
            status,
            retry_after: Some(seconds),
        }) => format!("{status} Retry-After: {seconds}"),
        Some(Answer { status, .. }) => status.to_string(),
    }
}

fn describe_expected(expected: Expected) -> String {
    match expected {
        Expected::Completed => "completed".into(),
        Expected::Reject => "reject".into(),
        Expected::Retry { at_least_ms: None } => "retry".into(),
        Expected::Retry {
            at_least_ms: Some(ms),
        } => format!("retry after >= {} s", ms / 1000),
    }
}

fn describe_outcome(outcome: &str, delay_ms: Option<u64>) -> String {
    match delay_ms {
        Some(ms) => format!("{outcome} after {ms} ms"),
        None => outcome.to_owned(),
    }
}

fn millis(duration: std::time::Duration) -> f64 {
    (duration.as_secs_f64() * 1e5).round() / 100.0
}

fn mib(bytes: usize) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

impl Report {
    /// The report for a terminal: one line per case, then the verdict.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "processor  {}", self.path);
        let _ = writeln!(
            out,
            "component  {} sha256 {}, {:.1} MB, {} in {:.0} ms",
            self.loaded,
            self.sha256,
            self.size_bytes as f64 / 1e6,
            if self.precompiled {
                "precompiled, loaded"
            } else {
                "compiled"
            },
            self.compile_ms
        );
        let _ = writeln!(out, "imports    {}", self.imports.join(", "));
        let _ = writeln!(
            out,
            "limits     deadline {} ms, memory {} (a fresh instance per attempt)",
            self.deadline_ms,
            mib(self.memory_limit_bytes)
        );
        let named = self.cases.first().map_or("", |case| &case.destination_name);
        let _ = if self.names_destinations {
            writeln!(out, "names      the destination {named}\n")
        } else {
            writeln!(
                out,
                "names      no destination (no webhooks:inbox/destinations): one, {named}\n"
            )
        };
        let _ = writeln!(
            out,
            "{:<34} {:<22} {:<22} {:>10} {:>11} {:>10}  result",
            "case", "destination", "outcome", "time", "instantiate", "memory"
        );
        for case in &self.cases {
            let _ = writeln!(
                out,
                "{:<34} {:<22} {:<22} {:>7.1} ms {:>8.2} ms {:>10}  {}",
                case.name,
                case.destination,
                describe_outcome(case.outcome, case.delay_ms),
                case.time_ms,
                case.instantiate_ms,
                mib(case.peak_memory_bytes),
                if case.passed { "ok" } else { "FAILED" }
            );
            if let Some(reason) = &case.reason {
                let _ = writeln!(out, "    reason: {reason}");
            }
            for note in &case.notes {
                let _ = writeln!(out, "    {note}");
            }
        }
        let failed = self.cases.iter().filter(|case| !case.passed).count();
        let _ = writeln!(
            out,
            "\n{}: {} of {} cases passed",
            if self.passed { "PASS" } else { "FAIL" },
            self.cases.len() - failed,
            self.cases.len()
        );
        out
    }
}
