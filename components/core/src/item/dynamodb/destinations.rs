//! Destinations and their holds on DynamoDB ([`crate::item::destinations`]): the queries,
//! the conditional put of the compare-and-swap, and reading the items back.

use std::collections::HashMap;

use serde_dynamo::{AttributeValue, Item};

use super::items::{KeyQuery, NOT_EXISTS, key_of, to_item};
use crate::destination::{Destination, Held};
use crate::item::ItemError;
use crate::item::destinations::{DESTINATIONS_PK, DestinationItem, HeldItem, held_pks};

/// The one partition of every destination.
pub fn destinations_query() -> KeyQuery {
    partition(DESTINATIONS_PK)
}

/// The partitions of `name`'s hold items.
pub fn held_queries(name: &str) -> Vec<KeyQuery> {
    held_pks(name).map(|pk| partition(&pk)).collect()
}

fn partition(pk: &str) -> KeyQuery {
    KeyQuery {
        key_condition: "#pk = :pk".into(),
        names: HashMap::from([("#pk".to_owned(), "PK".to_owned())]),
        values: Item::from(HashMap::from([(
            ":pk".to_owned(),
            AttributeValue::S(pk.to_owned()),
        )])),
    }
}

/// A conditional put: the item, its condition, and the names and values the condition uses.
#[derive(Debug, Clone, PartialEq)]
pub struct ConditionalPut {
    pub item: Item,
    pub condition: String,
    pub names: HashMap<String, String>,
    pub values: Option<Item>,
}

/// The compare-and-swap of a destination: put only if none is stored (`expected_version`
/// 0) or the stored one has `expected_version`.
pub fn destination_put(expected_version: u64, destination: &Destination) -> ConditionalPut {
    let item = to_item(&DestinationItem::new(destination));
    if expected_version == 0 {
        return ConditionalPut {
            item,
            condition: NOT_EXISTS.into(),
            names: HashMap::new(),
            values: None,
        };
    }
    ConditionalPut {
        item,
        condition: "#version = :expected".into(),
        names: HashMap::from([("#version".to_owned(), "version".to_owned())]),
        values: Some(Item::from(HashMap::from([(
            ":expected".to_owned(),
            AttributeValue::N(expected_version.to_string()),
        )]))),
    }
}

pub fn read_destination(item: Item) -> Result<Destination, ItemError> {
    let item: DestinationItem =
        serde_dynamo::from_item(item).map_err(|e| ItemError(format!("a destination item: {e}")))?;
    item.into_destination()
}

pub fn read_held(item: Item) -> Result<Held, ItemError> {
    let item: HeldItem =
        serde_dynamo::from_item(item).map_err(|e| ItemError(format!("a hold item: {e}")))?;
    Ok(item.held())
}

/// The hold item a transition holding webhook `id` for `destination` writes.
pub fn held_item(destination: &str, id: &str, status_version: u64) -> Item {
    to_item(&HeldItem::new(destination, id, status_version))
}

pub fn held_key(destination: &str, held: &Held) -> Item {
    let item = HeldItem::new(destination, &held.id, held.version);
    key_of(&item.pk, &item.sk)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::destination::Breaker;

    #[test]
    fn the_first_write_of_a_destination_must_find_none_and_later_ones_its_version() {
        let destination = Destination::new("d", &Breaker::default());
        let first = destination_put(0, &destination);
        assert_eq!(first.condition, NOT_EXISTS);
        let later = destination_put(4, &destination);
        assert_eq!(
            later.values.unwrap()[":expected"],
            AttributeValue::N("4".into())
        );
        assert_eq!(read_destination(first.item).unwrap(), destination);
        let held = Held {
            id: "57f0".into(),
            version: 2,
        };
        assert_eq!(read_held(held_item("d", "57f0", 2)).unwrap(), held);
        assert_eq!(held_queries("d").len(), crate::item::DUE_SHARDS as usize);
    }
}
