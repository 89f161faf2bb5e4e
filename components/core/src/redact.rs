//! One rule for showing a URL without its secrets. Destination URLs carry credentials in
//! every part (`user:pass@`, Slack's and Discord's tokens in the path, `?token=` in the
//! query), and whatever names a destination ends up in a status, the admin API, the
//! console, logs and queue messages: each shows only what this rule leaves.

/// What takes the place of a secret.
pub const HIDDEN: &str = "…";

/// `url` as it may be shown: its scheme, host and port, the shape of its path (a segment
/// that could be a token hidden), the names of its query parameters but not their
/// values; no user or password, no fragment.
pub fn url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (scheme, rest),
        None => return HIDDEN.to_owned(),
    };
    // A user and password end at the last `@` before the query, and may hold a `/` of
    // their own: everything up to it is dropped (a path's own `@` is lost with them).
    let before_query = rest.find(['?', '#']).unwrap_or(rest.len());
    let rest = match rest[..before_query].rfind('@') {
        Some(at) => &rest[at + 1..],
        None => rest,
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (host, rest) = rest.split_at(end);
    let rest = rest.split('#').next().unwrap_or_default();
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut shown = format!("{scheme}://{host}");
    for segment in path.split('/').skip(1) {
        shown.push('/');
        shown.push_str(if may_show(segment) { segment } else { HIDDEN });
    }
    if !query.is_empty() {
        let names: Vec<String> = query
            .split('&')
            .map(|pair| {
                let name = pair.split('=').next().unwrap_or_default();
                let name = if may_show(name) { name } else { HIDDEN };
                format!("{name}={HIDDEN}")
            })
            .collect();
        shown.push('?');
        shown.push_str(&names.join("&"));
    }
    shown
}

/// `text` with every `http://` or `https://` URL in it shown by [`url`]: what a processor
/// (the user's code) or a component says, before the inbox stores or logs it.
pub fn urls_in(text: &str) -> String {
    // Lowered once: ASCII lowering keeps every byte where it was.
    let lower = text.to_ascii_lowercase();
    let mut shown = String::with_capacity(text.len());
    let mut at = 0;
    while let Some(start) = find_url(&lower[at..]).map(|found| at + found) {
        shown.push_str(&text[at..start]);
        let candidate = &text[start..];
        let len = candidate
            .find(|c: char| c.is_whitespace() || "\"'<>`".contains(c))
            .unwrap_or(candidate.len());
        // Punctuation closing a sentence is not part of the URL.
        let found = candidate[..len].trim_end_matches(['.', ',', ';', ':', ')', ']', '}']);
        shown.push_str(&url(found));
        at = start + found.len();
    }
    shown.push_str(&text[at..]);
    shown
}

fn find_url(lower: &str) -> Option<usize> {
    [lower.find("http://"), lower.find("https://")]
        .into_iter()
        .flatten()
        .min()
}

/// A path segment or parameter name that reads as a word (`hooks`, `v1`, `orders`), not as
/// a token or an id: lower case (random tokens mix cases), no digits beyond a short
/// version or year, not long.
fn may_show(part: &str) -> bool {
    let digits = part.chars().filter(char::is_ascii_digit).count();
    part.len() <= 16
        && (digits == 0 || part.len() <= 4)
        && part
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_keeps_where_it_goes_and_hides_what_opens_it() {
        let cases = [
            (
                "https://user:p4ss@hooks.example.com:8443/api/v1/hook?token=abc&x=1#frag",
                "https://hooks.example.com:8443/api/v1/hook?token=…&x=…",
            ),
            (
                "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
                "https://hooks.slack.com/services/…/…/…",
            ),
            (
                "https://discord.com/api/webhooks/123456789012345678/abcDEF_ghi-JKL0123456789",
                "https://discord.com/api/webhooks/…/…",
            ),
            ("http://127.0.0.1:9/hooks", "http://127.0.0.1:9/hooks"),
            ("http://example.com", "http://example.com"),
            ("not a url", "…"),
        ];
        for (given, shown) in cases {
            assert_eq!(url(given), shown, "{given}");
        }
        // Tokens without digits: long, or mixing cases.
        assert_eq!(
            url("https://x.io/abcdefghijklmnopqrstuvwxyzab/AbCdEfGhIjKl/hooks"),
            "https://x.io/…/…/hooks"
        );
        // A password with a `/` of its own is dropped whole, as is one before a port.
        assert_eq!(url("https://user:pa/ss@h.io/x"), "https://h.io/x");
        assert_eq!(url("http://u:p@[::1]:8080/a"), "http://[::1]:8080/a");
        assert_eq!(url("http://"), "http://");
    }

    #[test]
    fn every_url_in_a_text_is_shown_so() {
        let said = "POST https://u:s3cret@x.io/hook/a1b2c3d4e5f6?key=k3y failed: \
                    connection refused (http://y.io/T123456789/, \"https://z.io/?sig=abc\").";
        let shown = urls_in(said);
        for secret in ["u:", "s3cret", "a1b2c3d4e5f6", "k3y", "T123456789", "abc\""] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert_eq!(
            shown,
            "POST https://x.io/hook/…?key=… failed: connection refused (http://y.io/…/, \
             \"https://z.io/?sig=…\")."
        );
        assert_eq!(urls_in("no link here"), "no link here");
        assert_eq!(urls_in("HTTPS://A:B@c.io"), "HTTPS://c.io");
        assert_eq!(urls_in("http://)"), "http://)");
        assert_eq!(
            urls_in("é http://x.io/AbCdEfGhIjKlMnOp ü"),
            "é http://x.io/… ü"
        );
    }
}
