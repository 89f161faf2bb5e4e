//! DynamoDB's `received` index, what operators list: every webhook's status under its
//! state's partitions, newest received first, with what a list shows of it, so a page
//! reads about a page of small items whatever the table holds. And the `key` index, the
//! webhooks by their provider's idempotency key, for a search.

use std::collections::{BTreeSet, HashMap};

use serde_dynamo::{AttributeValue, Item};

use super::items::{KeyQuery, key, read};
use super::list::STATUS_ATTRIBUTES;
use crate::item::{
    ItemError, LIST_SHARDS, STATUS_SK, StatusItem, WEBHOOK_SK, id_of_pk, list_at, list_part_key,
};
use crate::listing::{Cursor, Page, Query};
use crate::model::{State, StatusView};

pub const NAME: &str = "received";
pub const PARTITION_KEY: &str = "list_part";
pub const SORT_KEY: &str = "list_at";
/// What it projects besides the keys: the status and what a list shows of the webhook.
pub const ATTRIBUTES: [&str; 11] = {
    let mut all = [""; 11];
    let mut i = 0;
    while i < STATUS_ATTRIBUTES.len() {
        all[i] = STATUS_ATTRIBUTES[i];
        i += 1;
    }
    all[8] = "origin";
    all[9] = "type";
    all[10] = "received_at";
    all
};

/// The index of the webhooks by idempotency key (keys only): its partition key is the
/// `WEBHOOK` item's own attribute.
pub const KEY_INDEX: &str = "key";
pub const KEY_INDEX_PARTITION_KEY: &str = "idempotency_key";

/// A query of one partition of the `received` index, newest first: its key condition,
/// the filter on origin and type, and how many items to read.
#[derive(Debug, Clone, PartialEq)]
pub struct PageQuery {
    pub key: KeyQuery,
    pub filter: Option<String>,
    pub limit: usize,
}

/// The queries of a page: each partition of the state asked for (of every state without
/// one), from the cursor, each reading one more than the page so the merge knows whether
/// more follow.
pub fn queries(query: &Query) -> Vec<PageQuery> {
    let states = match query.state {
        Some(state) => vec![state],
        None => State::ALL.to_vec(),
    };
    let mut queries = Vec::new();
    for state in states {
        for shard in 0..LIST_SHARDS {
            let mut names = HashMap::from([("#part".to_owned(), PARTITION_KEY.to_owned())]);
            let mut values = HashMap::from([(
                ":part".to_owned(),
                AttributeValue::S(list_part_key(state, shard)),
            )]);
            let mut key_condition = "#part = :part".to_owned();
            if let Some(after) = &query.after {
                names.insert("#at".into(), SORT_KEY.into());
                values.insert(
                    ":after".into(),
                    AttributeValue::S(list_at(after.received_at, &after.id)),
                );
                key_condition.push_str(" AND #at < :after");
            }
            let mut filters = Vec::new();
            for (field, wanted) in [
                ("origin", &query.filter.origin),
                ("type", &query.filter.event_type),
            ] {
                if let Some(wanted) = wanted {
                    names.insert(format!("#{field}"), field.to_owned());
                    values.insert(format!(":{field}"), AttributeValue::S(wanted.clone()));
                    filters.push(format!("#{field} = :{field}"));
                }
            }
            queries.push(PageQuery {
                key: KeyQuery {
                    key_condition,
                    names,
                    values: Item::from(values),
                },
                filter: (!filters.is_empty()).then(|| filters.join(" AND ")),
                limit: query.limit() + 1,
            });
        }
    }
    queries
}

/// One page of `limit`, from what each query of [`queries`] read: its items and where it
/// stopped (its `LastEvaluatedKey`), if it did before its partition's end. Past where the
/// first unfinished partition stopped, another could hold newer webhooks than the ones
/// read, so the page ends there, shorter than `limit` if a filter passed few, with a
/// cursor to go on from.
pub fn page(parts: Vec<(Vec<Item>, Option<Item>)>, limit: usize) -> Result<Page, ItemError> {
    let mut boundary: Option<String> = None;
    // A webhook whose state changed while the partitions were read may be in its old one
    // and its new one (the index is updated after the table): its latest version counts.
    let mut latest: HashMap<String, (u64, StatusView)> = HashMap::new();
    for (items, last) in parts {
        if let Some(last) = last {
            let at = match last.into_inner().remove(SORT_KEY) {
                Some(AttributeValue::S(at)) => at,
                _ => {
                    return Err(ItemError(
                        "a page of the received index stopped without its sort key".into(),
                    ));
                }
            };
            boundary = boundary.max(Some(at));
        }
        for item in items {
            let status: StatusItem = read(item).map_err(|e| ItemError(e.to_string()))?;
            let version = status.version;
            if latest
                .get(&status.id)
                .is_none_or(|(seen, _)| *seen < version)
            {
                latest.insert(status.id.clone(), (version, view(status)?));
            }
        }
    }
    let views = latest.into_values().map(|(_, view)| view);
    let mut views: Vec<StatusView> = match &boundary {
        Some(boundary) => views
            .filter(|v| list_at(v.received_at, &v.id) >= *boundary)
            .collect(),
        None => views.collect(),
    };
    views.sort_by_key(|view| std::cmp::Reverse(Cursor::of(view)));
    if views.len() > limit {
        return Ok(Page::of(views, limit));
    }
    let next = boundary.map(|at| cursor(&at)).transpose()?;
    Ok(Page {
        webhooks: views,
        next,
    })
}

fn cursor(list_at: &str) -> Result<Cursor, ItemError> {
    list_at
        .replacen('#', ".", 1)
        .parse()
        .map_err(|_| ItemError(format!("{list_at} is not a sort key of the received index")))
}

fn view(status: StatusItem) -> Result<StatusView, ItemError> {
    let missing = |what: &str| ItemError(format!("the status of {} has no {what}", status.id));
    Ok(StatusView {
        origin: status.origin.clone().ok_or_else(|| missing("origin"))?,
        event_type: status.event_type.clone().ok_or_else(|| missing("type"))?,
        received_at: status.received_at.ok_or_else(|| missing("received_at"))?,
        id: status.id,
        status: status.status,
        attempts: status.retries,
        last_error: status.last_error,
        updated_at: status.updated_at,
        next_attempt_at: status.next_attempt_at,
    })
}

/// The query of the `key` index for the webhooks a search's text may be the key of.
pub fn key_query(search: &str) -> KeyQuery {
    KeyQuery {
        key_condition: "#key = :key".into(),
        names: HashMap::from([("#key".to_owned(), KEY_INDEX_PARTITION_KEY.to_owned())]),
        values: Item::from(HashMap::from([(
            ":key".to_owned(),
            AttributeValue::S(search.to_owned()),
        )])),
    }
}

/// The `STATUS` and `WEBHOOK` keys of what a search finds: the webhook it names by id,
/// and those the `key` index holds under it ([`key_query`]), to read and join
/// ([`super::joined`]).
pub fn found(search: &str, by_key: impl IntoIterator<Item = Item>) -> Vec<Item> {
    let mut ids = BTreeSet::new();
    if crate::id::is_webhook_id(search) {
        ids.insert(search.to_owned());
    }
    for item in by_key {
        if let Some(AttributeValue::S(pk)) = item.get("PK")
            && let Some(id) = id_of_pk(pk)
        {
            ids.insert(id.to_owned());
        }
    }
    ids.iter()
        .flat_map(|id| [key(id, STATUS_SK), key(id, WEBHOOK_SK)])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::item::dynamodb::to_item;
    use crate::listing::Filter;
    use crate::model::{Status, Webhook};

    fn captured(n: u8, received_at: i64, state: State) -> Item {
        let webhook = Webhook {
            id: format!("00000000-0000-5000-8000-0000000000{n:02x}"),
            origin: "stripe".into(),
            event_type: "t".into(),
            provider_timestamp: None,
            received_at,
            idempotency_key: format!("k{n}"),
            headers: Vec::new(),
            payload: Vec::new(),
        };
        let mut status = Status::received(received_at);
        status.state = state;
        to_item(&StatusItem::captured(&webhook, &status))
    }

    fn last(item: &Item) -> Item {
        let item = item.clone().into_inner();
        Item::from(HashMap::from([(
            SORT_KEY.to_owned(),
            item[SORT_KEY].clone(),
        )]))
    }

    #[test]
    fn a_page_merges_the_partitions_newest_first_and_stops_where_one_stopped() {
        // Two partitions read two items each; the second stopped after its second item.
        let a = vec![
            captured(1, 50, State::Completed),
            captured(2, 10, State::Completed),
        ];
        let b = vec![
            captured(3, 40, State::Received),
            captured(4, 30, State::Received),
        ];
        let stop = last(&b[1]);
        let page = page(vec![(a, None), (b, Some(stop))], 10).unwrap();
        let at: Vec<i64> = page.webhooks.iter().map(|v| v.received_at).collect();
        // 10 is past where the second partition stopped: it may have older ones before it.
        assert_eq!(at, [50, 40, 30]);
        let next = page.next.unwrap();
        assert_eq!(next.received_at, 30);
        // A full page ends at its last webhook.
        let a = vec![
            captured(1, 50, State::Completed),
            captured(2, 10, State::Completed),
        ];
        let full = super::page(vec![(a, None)], 1).unwrap();
        assert_eq!(full.webhooks.len(), 1);
        assert_eq!(full.next.unwrap().received_at, 50);
        let a = vec![captured(1, 50, State::Completed)];
        assert_eq!(super::page(vec![(a, None)], 1).unwrap().next, None);
    }

    #[test]
    fn a_webhook_read_in_its_old_and_new_partition_is_listed_once_as_it_is_now() {
        let before = captured(1, 50, State::Received);
        let mut after = before.clone().into_inner();
        after.insert("status".into(), AttributeValue::S("processing".into()));
        after.insert("version".into(), AttributeValue::N("2".into()));
        let page = page(
            vec![(vec![before], None), (vec![Item::from(after)], None)],
            10,
        )
        .unwrap();
        assert_eq!(page.webhooks.len(), 1);
        assert_eq!(page.webhooks[0].status, State::Processing);
    }

    #[test]
    fn queries_read_the_state_asked_for_from_the_cursor_with_its_filter() {
        let query = Query {
            state: Some(State::OperatorRequired),
            after: Some(Cursor {
                received_at: 7,
                id: "00000000-0000-5000-8000-000000000001".into(),
            }),
            filter: Filter {
                origin: Some("stripe".into()),
                ..Filter::default()
            },
            limit: 5,
        };
        let queries = queries(&query);
        assert_eq!(queries.len(), LIST_SHARDS as usize);
        assert!(queries[0].key.key_condition.ends_with("#at < :after"));
        assert_eq!(queries[0].filter.as_deref(), Some("#origin = :origin"));
        assert_eq!(queries[0].limit, 6);
        assert_eq!(
            super::queries(&Query::default()).len(),
            5 * LIST_SHARDS as usize
        );
    }
}
