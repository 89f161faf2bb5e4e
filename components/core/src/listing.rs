//! What operators ask of the webhooks a store keeps: a filtered list, newest first, read a
//! page at a time from a cursor, and how many there are in each state. The order, the
//! filter and the cursor are defined here once: the SQLite stores run them as SQL, the
//! DynamoDB stores over the items of a scan ([`Query::page`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::id;
use crate::model::{State, StatusView};

/// The most webhooks one page holds.
pub const MAX_LIMIT: u32 = 1_000;
pub const DEFAULT_LIMIT: u32 = 100;

/// Which webhooks, and how many from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub filter: Filter,
    pub state: Option<State>,
    /// Only those after this one, in the list's order.
    pub after: Option<Cursor>,
    pub limit: u32,
}

/// What a list and its counts are narrowed to, besides the state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub origin: Option<String>,
    pub event_type: Option<String>,
    /// A webhook id or a provider's idempotency key, exactly.
    pub search: Option<String>,
}

/// A place in the list's order (newest received first, then by id): the last webhook of
/// a page. Its text form, `<received_at>.<id>`, is what the API hands out.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor {
    pub received_at: i64,
    pub id: String,
}

/// One page of a list, and where the next one starts (none after the last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub webhooks: Vec<StatusView>,
    pub next: Option<Cursor>,
}

/// How many webhooks are in each state (every state, zero included).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts(pub BTreeMap<State, u64>);

impl Default for Query {
    fn default() -> Self {
        Query {
            filter: Filter::default(),
            state: None,
            after: None,
            limit: DEFAULT_LIMIT,
        }
    }
}

impl Filter {
    /// Whether a webhook with these fields passes the filter.
    pub fn matches(&self, id: &str, origin: &str, event_type: &str, idempotency_key: &str) -> bool {
        self.origin.as_deref().is_none_or(|o| o == origin)
            && self.event_type.as_deref().is_none_or(|t| t == event_type)
            && self
                .search
                .as_deref()
                .is_none_or(|s| s == id || s == idempotency_key)
    }
}

impl Query {
    /// The limit, within 1 to [`MAX_LIMIT`].
    pub fn limit(&self) -> usize {
        self.limit.clamp(1, MAX_LIMIT) as usize
    }

    /// The page of `webhooks` (each with its idempotency key) this query asks for, for a
    /// store that reads them all (a scan): filtered, in the list's order, from the cursor.
    pub fn page(&self, webhooks: impl IntoIterator<Item = (StatusView, String)>) -> Page {
        let mut matching: Vec<StatusView> = webhooks
            .into_iter()
            .filter(|(view, key)| {
                self.state.is_none_or(|s| s == view.status)
                    && self
                        .filter
                        .matches(&view.id, &view.origin, &view.event_type, key)
                    && self
                        .after
                        .as_ref()
                        .is_none_or(|after| Cursor::of(view) < *after)
            })
            .map(|(view, _)| view)
            .collect();
        matching.sort_by_key(|view| std::cmp::Reverse(Cursor::of(view)));
        Page::of(matching, self.limit())
    }
}

impl Page {
    /// The first `limit` of `webhooks` (already in the list's order, possibly one more
    /// than `limit`, so a store can tell whether a next page exists without counting).
    pub fn of(mut webhooks: Vec<StatusView>, limit: usize) -> Page {
        let next = (webhooks.len() > limit).then(|| {
            webhooks.truncate(limit);
            Cursor::of(webhooks.last().expect("limit is at least 1"))
        });
        Page { webhooks, next }
    }
}

impl Cursor {
    pub fn of(view: &StatusView) -> Cursor {
        Cursor {
            received_at: view.received_at,
            id: view.id.clone(),
        }
    }
}

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.received_at, self.id)
    }
}

impl std::str::FromStr for Cursor {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let malformed = || "malformed cursor: pass the `after` of the previous page".to_owned();
        let (at, id) = s.split_once('.').ok_or_else(malformed)?;
        let received_at = at.parse().map_err(|_| malformed())?;
        if !id::is_webhook_id(id) {
            return Err(malformed());
        }
        Ok(Cursor {
            received_at,
            id: id.to_owned(),
        })
    }
}

impl Counts {
    /// Counts of `states`, one per webhook, every state present.
    pub fn tally(states: impl IntoIterator<Item = State>) -> Counts {
        let mut counts = Counts::zero();
        for state in states {
            *counts.0.entry(state).or_default() += 1;
        }
        counts
    }

    pub fn zero() -> Counts {
        Counts(State::ALL.into_iter().map(|s| (s, 0)).collect())
    }

    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(id: &str, received_at: i64, status: State, origin: &str) -> (StatusView, String) {
        let view = StatusView {
            id: id.to_owned(),
            origin: origin.to_owned(),
            event_type: "t".into(),
            status,
            attempts: 0,
            last_error: None,
            received_at,
            updated_at: received_at,
            next_attempt_at: None,
        };
        (view, format!("key-{id}"))
    }

    fn uuid(n: u8) -> String {
        format!("00000000-0000-5000-8000-0000000000{n:02x}")
    }

    #[test]
    fn pages_go_newest_first_and_end() {
        let all: Vec<_> = (0..5)
            .map(|n| view(&uuid(n), i64::from(n / 2), State::Completed, "stripe"))
            .collect();
        let mut query = Query {
            limit: 2,
            ..Query::default()
        };
        let mut seen = Vec::new();
        loop {
            let page = query.page(all.clone());
            seen.extend(page.webhooks.iter().map(|v| v.id.clone()));
            match page.next {
                Some(next) => query.after = Some(next),
                None => break,
            }
        }
        // Same received_at: by id, descending; nothing twice, nothing missed.
        let expected: Vec<_> = [4, 3, 2, 1, 0].into_iter().map(uuid).collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn filters_narrow_by_state_origin_and_search() {
        let all = vec![
            view(&uuid(1), 1, State::OperatorRequired, "stripe"),
            view(&uuid(2), 2, State::Completed, "stripe"),
            view(&uuid(3), 3, State::OperatorRequired, "github"),
        ];
        let query = Query {
            state: Some(State::OperatorRequired),
            filter: Filter {
                origin: Some("stripe".into()),
                ..Filter::default()
            },
            ..Query::default()
        };
        let page = query.page(all.clone());
        assert_eq!(page.webhooks.len(), 1);
        assert_eq!(page.webhooks[0].id, uuid(1));
        assert_eq!(page.next, None);
        let by_key = Query {
            filter: Filter {
                search: Some(format!("key-{}", uuid(3))),
                ..Filter::default()
            },
            ..Query::default()
        };
        assert_eq!(by_key.page(all.clone()).webhooks[0].id, uuid(3));
        let by_id = Query {
            filter: Filter {
                search: Some(uuid(2)),
                ..Filter::default()
            },
            ..Query::default()
        };
        assert_eq!(by_id.page(all).webhooks[0].id, uuid(2));
    }

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let cursor = Cursor {
            received_at: 1_700_000_000_123,
            id: uuid(9),
        };
        assert_eq!(cursor.to_string().parse::<Cursor>(), Ok(cursor));
        for bad in [
            "",
            "12",
            "x.y",
            "12.not-an-id",
            ".00000000-0000-5000-8000-000000000009",
        ] {
            assert!(bad.parse::<Cursor>().is_err(), "{bad}");
        }
    }

    #[test]
    fn counts_name_every_state() {
        let counts = Counts::tally([State::Completed, State::Completed, State::Failed]);
        assert_eq!(counts.0[&State::Completed], 2);
        assert_eq!(counts.0[&State::OperatorRequired], 0);
        assert_eq!(counts.total(), 3);
        assert_eq!(
            serde_json::to_value(&counts).unwrap()["operator_required"],
            serde_json::json!(0)
        );
    }
}
