//! Caller-supplied text made safe to echo back in a refusal.

/// Caller-supplied text as it may be echoed back: short, and nothing but plain characters.
pub(super) fn printable(text: &str) -> String {
    text.chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '?'
            }
        })
        .collect()
}
