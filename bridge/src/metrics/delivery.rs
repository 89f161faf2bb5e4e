//! Which answers of the HTTP server are deliveries, and what each counts as: the one place
//! a request's method, path and status become an [`Event`], for `inbox serve` and Lambda.

use inbox_core::capture::WEBHOOKS_PATH;

use super::event::{Event, Reason};

/// What a delivery's answer counts as: `POST /api/webhooks/{origin}` only (the admin API
/// and the console are not deliveries).
pub fn of_delivery<'a>(method: &str, path: &'a str, status: u16) -> Option<Event<'a>> {
    let origin = path.strip_prefix(WEBHOOKS_PATH)?.strip_prefix('/')?;
    if method != "POST" || origin.is_empty() || origin.contains('/') {
        return None;
    }
    Some(match status {
        202 => Event::Received { origin },
        200 => Event::Duplicate { origin },
        _ => Event::Refused {
            reason: Reason::of(status),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliveries_count_by_their_answer_and_nothing_else_does() {
        assert_eq!(
            of_delivery("POST", "/api/webhooks/stripe", 202),
            Some(Event::Received { origin: "stripe" })
        );
        assert_eq!(
            of_delivery("POST", "/api/webhooks/stripe", 200),
            Some(Event::Duplicate { origin: "stripe" })
        );
        assert_eq!(
            of_delivery("POST", "/api/webhooks/nope", 404),
            Some(Event::Refused {
                reason: Reason::unknown_origin
            })
        );
        assert_eq!(
            of_delivery("POST", "/api/webhooks/stripe", 401),
            Some(Event::Refused {
                reason: Reason::unauthenticated
            })
        );
        for (method, path) in [
            ("GET", "/api/webhooks/stripe"),
            ("POST", "/api/webhooks/0b1e/replay"),
            ("GET", "/api/webhooks"),
            ("GET", "/console"),
            ("POST", "/demo/send-webhook"),
        ] {
            assert_eq!(of_delivery(method, path, 200), None, "{method} {path}");
        }
    }
}
