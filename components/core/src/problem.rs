//! Errors answered to HTTP callers as `application/problem+json` (RFC 9457), with the
//! headers their status calls for: one rule for every host (the capture component, the
//! native host's own answers, the Lambda bridge, the native baseline).

use serde::Serialize;

/// How long a client is asked to wait before it tries a `503` again, in seconds.
pub const RETRY_AFTER_SECS: u32 = 5;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    #[serde(skip)]
    pub status: u16,
    pub title: &'static str,
    pub detail: String,
    /// For a `405`: the methods the route allows (its `Allow` header).
    #[serde(skip)]
    pub allow: Option<&'static str>,
}

impl Problem {
    pub const CONTENT_TYPE: &'static str = "application/problem+json";

    pub fn new(status: u16, title: &'static str, detail: impl Into<String>) -> Self {
        Problem {
            status,
            title,
            detail: detail.into(),
            allow: None,
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Problem::new(400, "Bad Request", detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Problem::new(401, "Unauthorized", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Problem::new(404, "Not Found", detail)
    }

    /// A `405` from a route that allows only `allow` (`GET`, or `GET, POST`).
    pub fn method_not_allowed(allow: &'static str, detail: impl Into<String>) -> Self {
        Problem {
            allow: Some(allow),
            ..Problem::new(405, "Method Not Allowed", detail)
        }
    }

    pub fn too_large(detail: impl Into<String>) -> Self {
        Problem::new(413, "Content Too Large", detail)
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Problem::new(503, "Service Unavailable", detail)
    }

    /// The headers that go with the problem's body, `content-type` first: a `401` names
    /// the scheme it wants, a `405` what its route allows, a `503` when to try again.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = vec![("content-type", Problem::CONTENT_TYPE.to_owned())];
        match self.status {
            401 => headers.push(("www-authenticate", "Bearer".to_owned())),
            405 => headers.extend(self.allow.map(|allow| ("allow", allow.to_owned()))),
            503 => headers.push(("retry-after", RETRY_AFTER_SECS.to_string())),
            _ => {}
        }
        headers
    }

    pub fn to_json(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct Body<'a> {
            #[serde(rename = "type")]
            kind: &'static str,
            title: &'static str,
            status: u16,
            detail: &'a str,
        }
        serde_json::to_vec(&Body {
            kind: "about:blank",
            title: self.title,
            status: self.status,
            detail: &self.detail,
        })
        .expect("a problem always serialises")
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.title, self.detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_rfc9457_members() {
        let json: serde_json::Value =
            serde_json::from_slice(&Problem::unauthorized("bad signature").to_json()).unwrap();
        assert_eq!(json["status"], 401);
        assert_eq!(json["title"], "Unauthorized");
        assert_eq!(json["detail"], "bad signature");
        assert_eq!(json["type"], "about:blank");
    }

    #[test]
    fn each_status_carries_the_headers_it_calls_for() {
        let header = |problem: &Problem, name: &str| {
            problem
                .headers()
                .into_iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v)
        };
        let only_get = Problem::method_not_allowed("GET", "use GET");
        assert_eq!(header(&only_get, "allow").as_deref(), Some("GET"));
        let busy = Problem::unavailable("later");
        assert_eq!(header(&busy, "retry-after").as_deref(), Some("5"));
        let who = Problem::unauthorized("no token");
        assert_eq!(header(&who, "www-authenticate").as_deref(), Some("Bearer"));
        assert_eq!(
            header(&Problem::bad_request("x"), "content-type").as_deref(),
            Some(Problem::CONTENT_TYPE)
        );
        assert_eq!(Problem::bad_request("x").headers().len(), 1);
    }
}
