//! The operators' web console: three static files compiled into the component, so every
//! host that serves the capture component (native, Spin, Lambda) serves the console too,
//! with nothing to build or fetch. The files are public; everything they show comes from
//! the admin API, which asks for the admin token.

use inbox_core::Problem;

use crate::response::Response;

const INDEX: &str = include_str!("../console/index.html");
const SCRIPT: &str = include_str!("../console/app.js");
const STYLE: &str = include_str!("../console/app.css");

/// Only these files' own scripts and styles run, the page talks only to this origin, and
/// no other site may frame it (the console holds the admin token).
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; \
    frame-ancestors 'none'";

/// `GET /console` (`asset` empty) and `GET /console/{asset}`.
pub fn asset(asset: &str) -> Result<Response, Problem> {
    let (content_type, body) = match asset {
        "" | "index.html" => ("text/html; charset=utf-8", INDEX),
        "app.js" => ("text/javascript; charset=utf-8", SCRIPT),
        "app.css" => ("text/css; charset=utf-8", STYLE),
        _ => return Err(Problem::not_found("the console has no such file")),
    };
    let mut response = Response::new(200, content_type, body.as_bytes().to_vec());
    response.headers.extend([
        ("content-security-policy", POLICY.as_bytes().to_vec()),
        ("x-content-type-options", b"nosniff".to_vec()),
        ("referrer-policy", b"no-referrer".to_vec()),
        // The files change with the component: a browser asks again each time.
        ("cache-control", b"no-cache".to_vec()),
    ]);
    Ok(response)
}
