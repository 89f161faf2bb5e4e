//! A response as the component builds it, and how it goes out over `wasi:http`.

use inbox_core::{Problem, Webhook};
use inbox_guest::http;
use inbox_guest::wasi::http::types::{Fields, OutgoingBody, OutgoingResponse, ResponseOutparam};

pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, Vec<u8>)>,
}

impl Response {
    pub fn new(status: u16, content_type: &'static str, body: Vec<u8>) -> Self {
        Response {
            status,
            content_type,
            body,
            headers: Vec::new(),
        }
    }

    pub fn json(status: u16, value: &impl serde::Serialize) -> Self {
        let body = serde_json::to_vec(value).expect("responses always serialise");
        Response::new(status, "application/json", body)
    }

    pub fn problem(problem: &Problem) -> Self {
        let mut response = Response::new(problem.status, Problem::CONTENT_TYPE, problem.to_json());
        response.headers = (problem.headers().into_iter())
            .filter(|(name, _)| *name != "content-type")
            .map(|(name, value)| (name, value.into_bytes()))
            .collect();
        response
    }

    /// A stored body, byte for byte, as a download: never rendered by a browser that
    /// opens it, whatever it holds.
    pub fn payload(webhook: Webhook) -> Self {
        let mut response = Response::new(200, "application/json", webhook.payload);
        response.headers.push((
            "content-disposition",
            format!("attachment; filename=\"{}.json\"", webhook.id).into_bytes(),
        ));
        response
            .headers
            .push(("x-content-type-options", b"nosniff".to_vec()));
        response
    }

    pub fn send(self, out: ResponseOutparam) {
        let mut headers = vec![
            (
                "content-type".to_owned(),
                self.content_type.as_bytes().to_vec(),
            ),
            (
                "content-length".to_owned(),
                self.body.len().to_string().into_bytes(),
            ),
        ];
        headers.extend(
            self.headers
                .into_iter()
                .map(|(name, value)| (name.to_owned(), value)),
        );
        let fields = Fields::from_list(&headers).expect("response headers are valid");
        let response = OutgoingResponse::new(fields);
        response
            .set_status_code(self.status)
            .expect("status codes used here are valid");
        let body = response.body().expect("a new response has a body");
        ResponseOutparam::set(out, Ok(response));
        let stream = body.write().expect("a new body has a stream");
        if let Err(error) = http::write_all(&stream, &self.body) {
            eprintln!("capture: the response could not be written: {error:?}");
        }
        drop(stream);
        if let Err(error) = OutgoingBody::finish(body, None) {
            eprintln!("capture: the response could not be finished: {error:?}");
        }
    }
}
