//! The benchmarks' baseline: the same capture logic (`inbox_core::capture`, compiled
//! natively, no wasm) behind the same HTTP server (`serve`), SQLite store and worker as
//! `inbox serve`, with a native processor that completes every webhook (what the default
//! processor does with no `forward_url`). `scripts/bench` runs both in the same session, so
//! the wasm host's throughput is reported as a ratio to this one. Capture only: the admin
//! routes are the component's.
//!
//! With `commit-each`, the store commits each capture on its own instead of grouping the
//! captures waiting into one commit: the ceiling of a store reached statement by statement,
//! as the store component reaches Spin's `spin:sqlite` (one commit, one fsync, a capture).
//!
//! `cargo run --release --example native_inbox -- 127.0.0.1:0 DB [commit-each]` (settings: INBOX_*)

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use inbox_bridge::attempt::{Named, Processed, Processor};
use inbox_bridge::metrics::NoMetrics;
use inbox_bridge::serve::{self, Handler, HttpLimits, RequestBody};
use inbox_bridge::settings::Settings;
use inbox_bridge::worker;
use inbox_core::capture::{self, Route};
use inbox_core::clock::now_ms;
use inbox_core::lifecycle::Outcome;
use inbox_core::provider::Headers;
use inbox_core::store::{Captured, StoreError};
use inbox_core::{Problem, Webhook};
use inbox_stores::WebhookStore;
use inbox_stores::sqlite::SqliteStore;
use inbox_wasm_host::capture::{HyperOutgoingBody, problem_response};

struct NativeCapture {
    config: BTreeMap<String, String>,
    store: Arc<dyn WebhookStore>,
}

impl Handler for NativeCapture {
    fn handle(
        self: Arc<Self>,
        request: http::Request<RequestBody>,
    ) -> Pin<Box<dyn Future<Output = Result<http::Response<HyperOutgoingBody>>> + Send>> {
        Box::pin(async move {
            Ok(match self.capture(request).await {
                Ok(response) => response,
                Err(problem) => problem_response(&problem),
            })
        })
    }
}

impl NativeCapture {
    /// What the capture component does for `POST /api/webhooks/{origin}`.
    async fn capture(
        &self,
        request: http::Request<RequestBody>,
    ) -> Result<http::Response<HyperOutgoingBody>, Problem> {
        let (parts, body) = request.into_parts();
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let headers = Headers::new(
            parts
                .headers
                .iter()
                .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
                .collect(),
        );
        let Route::Capture { origin } = capture::route(parts.method.as_str(), path)? else {
            return Err(Problem::not_found("the baseline serves captures only"));
        };
        capture::check_headers(&headers)?;
        let intake = capture::intake(&origin, &self.config)?;
        let limit = intake.limits.max_body_bytes;
        let body = Limited::new(body, limit)
            .collect()
            .await
            .map_err(|_| capture::body_too_large(limit))?
            .to_bytes();
        let webhook = intake.accept(&headers, Vec::from(body), &self.config, now_ms())?;
        let id = webhook.id.clone();
        let (code, id, status, duplicate) = match self
            .store
            .capture(webhook, intake.refuse_replayed_body)
            .await
            .map_err(store_problem)?
        {
            Captured::Stored(status) => (202, id, status, false),
            Captured::Duplicate { id, status } => (200, id, status, true),
        };
        let answer =
            serde_json::json!({ "id": id, "status": status.state, "duplicate": duplicate });
        Ok(http::Response::builder()
            .status(code)
            .header("content-type", "application/json")
            .body(
                Full::new(Bytes::from(answer.to_string()))
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            )
            .expect("a valid response"))
    }
}

fn store_problem(error: StoreError) -> Problem {
    match error {
        StoreError::TooLarge(why) => Problem::too_large(why),
        other => Problem::unavailable(other.to_string()),
    }
}

/// The default processor's answer when it has nowhere to forward: completed.
struct Completes;

#[async_trait]
impl Processor for Completes {
    async fn destination(&self, _: &Webhook) -> Named {
        Named::new("inbox-processor".into())
    }

    async fn process(&self, _: &Webhook, _: u32, _: Option<Named>) -> Processed {
        Processed {
            outcome: Outcome::Completed,
            destination: "inbox-processor".into(),
        }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (listen, db, commit_each) = match args.as_slice() {
        [_, listen, db] => (listen, db, false),
        [_, listen, db, mode] if mode == "commit-each" => (listen, db, true),
        _ => anyhow::bail!("usage: native_inbox LISTEN DB [commit-each]"),
    };
    let config: BTreeMap<String, String> = inbox_core::config::from_env(std::env::vars());
    let settings = Settings::from_config(&config)?;
    let limits = HttpLimits::from_config(&config)?;
    let sqlite = match commit_each {
        true => SqliteStore::open_committing_each(db.as_ref()),
        false => SqliteStore::open(db.as_ref()),
    }
    .with_context(|| format!("cannot open {db}"))?;
    let wake = sqlite.written();
    let store: Arc<dyn WebhookStore> = Arc::new(sqlite);
    let listener = serve::listen(listen.parse()?)?;
    println!("listening on http://{}", listener.local_addr()?);
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(worker::run(
        Arc::new(Completes),
        store.clone(),
        wake,
        settings,
        Arc::new(NoMetrics),
        stopped,
    ));
    let capture = Arc::new(NativeCapture { config, store });
    serve::serve(
        capture,
        listener,
        limits,
        Arc::new(NoMetrics),
        std::future::pending(),
        Duration::ZERO,
    )
    .await
}
