//! API Gateway HTTP API (payload v2) events as HTTP requests for the capture component,
//! and its answers as the event's response.

use anyhow::{Context, Result};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::event::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, HeaderName, HeaderValue};
use http_body_util::BodyExt;
use inbox_core::Problem;

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
pub async fn answer<B>(response: http::Response<B>) -> (u16, ApiGatewayV2httpResponse)
where
    B: http_body::Body,
{
    let (parts, body) = response.into_parts();
    // API Gateway's response carries text headers only (the component writes no others).
    let headers = (parts.headers.iter())
        .filter(|(_, value)| value.to_str().is_ok())
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    match body.collect().await {
        Ok(body) => {
            let status = parts.status.as_u16();
            (status, response_of(status, headers, body.to_bytes().into()))
        }
        Err(_) => {
            let problem = Problem::new(
                500,
                "Internal Server Error",
                "the answer broke off before its end",
            );
            let headers = problem
                .headers()
                .into_iter()
                .filter_map(|(name, value)| {
                    Some((
                        HeaderName::try_from(name).ok()?,
                        HeaderValue::try_from(value).ok()?,
                    ))
                })
                .collect();
            (500, response_of(500, headers, problem.to_json()))
        }
    }
}

fn response_of(status: u16, headers: HeaderMap, body: Vec<u8>) -> ApiGatewayV2httpResponse {
    let mut response = ApiGatewayV2httpResponse::default();
    response.status_code = status.into();
    response.headers = headers;
    // Text as it is; anything else in base64 (the encoding serialises a binary body so).
    (response.body, response.is_base64_encoded) = match String::from_utf8(body) {
        Ok(text) => (Some(Body::Text(text)), false),
        Err(binary) => (Some(Body::Binary(binary.into_bytes())), true),
    };
    response
}
