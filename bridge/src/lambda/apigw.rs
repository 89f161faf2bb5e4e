//! API Gateway HTTP API (payload v2) events as HTTP requests for the capture component,
//! and its answers as the event's response.

use anyhow::{Context, Result};
use aws_lambda_events::event::apigw::ApiGatewayV2httpRequest;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http_body_util::BodyExt;
use inbox_core::Problem;
use serde_json::{Value, json};

/// The HTTP request an API Gateway HTTP API (payload v2) event describes.
pub fn request_of(
    event: ApiGatewayV2httpRequest,
) -> Result<http::Request<http_body_util::Full<bytes::Bytes>>> {
    let body = match (event.body, event.is_base64_encoded) {
        (Some(body), true) => STANDARD.decode(body).context("the body is not base64")?,
        (Some(body), false) => body.into_bytes(),
        (None, _) => Vec::new(),
    };
    let host = event
        .request_context
        .domain_name
        .unwrap_or_else(|| "lambda".to_owned());
    let path = event.raw_path.as_deref().unwrap_or("/");
    let uri = match event.raw_query_string.as_deref().filter(|q| !q.is_empty()) {
        Some(query) => format!("https://{host}{path}?{query}"),
        None => format!("https://{host}{path}"),
    };
    let mut request = http::Request::builder()
        .method(event.request_context.http.method)
        .uri(uri);
    for (name, value) in &event.headers {
        request = request.header(name, value);
    }
    request
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .context("the event is not a valid HTTP request")
}

/// The capture component's answer as API Gateway's response: text bodies as they are,
/// others in base64. An answer whose body broke off is a `500` (the host logged why): a
/// cut body is never passed off as the whole answer. Returns the status answered with the
/// response.
pub async fn answer<B>(response: http::Response<B>) -> (u16, Value)
where
    B: http_body::Body,
{
    let status = response.status().as_u16();
    let headers: serde_json::Map<String, Value> = response
        .headers()
        .iter()
        .filter_map(|(name, value)| Some((name.to_string(), json!(value.to_str().ok()?))))
        .collect();
    match response.into_body().collect().await {
        Ok(body) => (status, response_of(status, headers, &body.to_bytes())),
        Err(_) => {
            let problem = Problem::new(
                500,
                "Internal Server Error",
                "the answer broke off before its end",
            );
            let headers = problem.headers().into_iter();
            let headers = headers.map(|(name, value)| (name.to_owned(), json!(value)));
            (500, response_of(500, headers.collect(), &problem.to_json()))
        }
    }
}

fn response_of(status: u16, headers: serde_json::Map<String, Value>, body: &[u8]) -> Value {
    let (body, encoded) = match std::str::from_utf8(body) {
        Ok(text) => (text.to_owned(), false),
        Err(_) => (STANDARD.encode(body), true),
    };
    json!({
        "statusCode": status,
        "headers": headers,
        "body": body,
        "isBase64Encoded": encoded,
    })
}
