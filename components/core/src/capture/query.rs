//! The admin API's query strings: each parameter known to its route and named at most once.

use super::printable::printable;
use crate::Problem;
use crate::listing::Filter;

/// A query string's parameters, each named at most once and among those a route takes.
pub(super) struct Parameters(Vec<(String, String)>);

impl Parameters {
    pub(super) fn parse(query: &str, known: &[&str]) -> Result<Parameters, Problem> {
        let mut seen: Vec<(String, String)> = Vec::new();
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            if !known.contains(&name.as_ref()) {
                return Err(Problem::bad_request(format!(
                    "unknown query parameter `{}`; use {}",
                    printable(&name),
                    known.join(", ")
                )));
            }
            if seen.iter().any(|(n, _)| *n == name) {
                return Err(Problem::bad_request(format!(
                    "query parameter `{name}` is given twice"
                )));
            }
            seen.push((name.into_owned(), value.into_owned()));
        }
        Ok(Parameters(seen))
    }

    /// A parameter's value; an empty one counts as not given (a form's blank field).
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, v)| n == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    pub(super) fn filter(&self) -> Filter {
        Filter {
            origin: self.get("origin").map(str::to_owned),
            event_type: self.get("type").map(str::to_owned),
            search: self.get("search").map(str::to_owned),
        }
    }
}
