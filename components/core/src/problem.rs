//! Errors answered to HTTP callers as `application/problem+json` (RFC 9457).

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    #[serde(skip)]
    pub status: u16,
    pub title: &'static str,
    pub detail: String,
}

impl Problem {
    pub const CONTENT_TYPE: &'static str = "application/problem+json";

    pub fn new(status: u16, title: &'static str, detail: impl Into<String>) -> Self {
        Problem {
            status,
            title,
            detail: detail.into(),
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

    pub fn method_not_allowed(detail: impl Into<String>) -> Self {
        Problem::new(405, "Method Not Allowed", detail)
    }

    pub fn too_large(detail: impl Into<String>) -> Self {
        Problem::new(413, "Content Too Large", detail)
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Problem::new(503, "Service Unavailable", detail)
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
}
