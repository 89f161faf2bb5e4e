//! How large a request may be: its headers (431), and the refusal of a body over its limit (413).

use super::printable::printable;
use crate::Problem;
use crate::config::describe;
use crate::provider::Headers;

/// The most request headers, the largest one, and all of them together.
pub const MAX_HEADERS: usize = 100;
pub const MAX_HEADER_BYTES: usize = 8 * 1024;
pub const MAX_TOTAL_HEADER_BYTES: usize = 64 * 1024;

/// Refuses too many or too large headers before anything else is read (431).
pub fn check_headers(headers: &Headers) -> Result<(), Problem> {
    let too_large = |detail: String| Problem::new(431, "Request Header Fields Too Large", detail);
    if headers.len() > MAX_HEADERS {
        return Err(too_large(format!("more than {MAX_HEADERS} headers")));
    }
    let mut total = 0;
    for (name, value) in headers.iter() {
        let size = name.len() + value.len();
        if size > MAX_HEADER_BYTES {
            return Err(too_large(format!(
                "header `{}` is over {MAX_HEADER_BYTES} bytes",
                printable(name)
            )));
        }
        total += size;
    }
    if total > MAX_TOTAL_HEADER_BYTES {
        return Err(too_large(format!(
            "the headers are over {MAX_TOTAL_HEADER_BYTES} bytes together"
        )));
    }
    Ok(())
}

pub fn body_too_large(limit: usize) -> Problem {
    Problem::too_large(format!(
        "the body is over the {limit} byte limit ({})",
        describe("max_body_bytes")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_many_or_too_large_headers_are_431() {
        let many = Headers::new(
            (0..=MAX_HEADERS)
                .map(|i| (format!("x-{i}"), b"1".to_vec()))
                .collect(),
        );
        assert_eq!(check_headers(&many).unwrap_err().status, 431);
        let large = Headers::new(vec![("x".into(), vec![b'a'; MAX_HEADER_BYTES])]);
        assert_eq!(check_headers(&large).unwrap_err().status, 431);
        let total = Headers::new(
            (0..9)
                .map(|i| (format!("x-{i}"), vec![b'a'; 8_000]))
                .collect(),
        );
        assert_eq!(check_headers(&total).unwrap_err().status, 431);
        assert_eq!(check_headers(&Headers::default()), Ok(()));
    }
}
