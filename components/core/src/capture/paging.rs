//! The list's paging link: the query string of its next page.

use super::routes::WEBHOOKS_PATH;
use crate::listing::{Cursor, Query};

/// The query string of the list's next page: the same list, from `after`.
pub fn next_page(query: &Query, after: &Cursor) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    if let Some(state) = query.state {
        out.append_pair("status", state.as_str());
    }
    for (name, value) in [
        ("origin", &query.filter.origin),
        ("type", &query.filter.event_type),
        ("search", &query.filter.search),
    ] {
        if let Some(value) = value {
            out.append_pair(name, value);
        }
    }
    out.append_pair("after", &after.to_string());
    out.append_pair("limit", &query.limit.to_string());
    format!("{WEBHOOKS_PATH}?{}", out.finish())
}
