//! `GET /metrics`, served by the one HTTP server (`crate::serve`) with its limits, on a
//! listener of its own: the metrics can face a private interface whatever capture faces.

use std::pin::Pin;
use std::sync::Arc;

use anyhow::Result;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use inbox_core::Problem;
use inbox_stores::WebhookStore;
use inbox_wasm_host::capture::{HyperOutgoingBody, problem_response};

use crate::metrics::{OPENMETRICS, Prometheus};
use crate::serve::{Handler, RequestBody};

pub struct MetricsPage {
    pub prometheus: Arc<Prometheus>,
    /// Read at each scrape, for the backlog by state.
    pub store: Arc<dyn WebhookStore>,
}

impl Handler for MetricsPage {
    fn handle(
        self: Arc<Self>,
        request: http::Request<RequestBody>,
    ) -> Pin<Box<dyn Future<Output = Result<http::Response<HyperOutgoingBody>>> + Send>> {
        Box::pin(async move {
            if request.uri().path() != "/metrics" {
                return Ok(text(404, "text/plain", "metrics are at /metrics\n".into()));
            }
            Ok(match self.prometheus.scrape(self.store.as_ref()).await {
                Ok(page) => text(200, OPENMETRICS, page),
                Err(error) => {
                    tracing::error!(error = format!("{error:#}"), "cannot read the backlog");
                    problem_response(&Problem::unavailable("the store cannot be read"))
                }
            })
        })
    }
}

fn text(status: u16, content_type: &str, body: String) -> http::Response<HyperOutgoingBody> {
    let body = Full::new(Bytes::from(body))
        .map_err(|never| match never {})
        .boxed_unsync();
    http::Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(body)
        .expect("a valid response")
}
