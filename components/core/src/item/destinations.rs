//! The items of destinations ([`crate::destination`]), for every store.
//!
//! | item        | PK                        | SK                      | holds                       |
//! | ----------- | ------------------------- | ----------------------- | --------------------------- |
//! | Destination | `DESTINATIONS`            | `DEST#<name>`           | version, its state as JSON (`headers`) |
//! | Hold        | `HELD#<name>#<shard>`     | `<id>#<status version>` | a webhook held for it       |
//!
//! Destinations share one partition (they are few, and written only when their state
//! changes); holds spread over [`DUE_SHARDS`] partitions per destination, like the due
//! index, so a burst held at once does not write one hot partition.

use serde::{Deserialize, Serialize};

use super::{DUE_SHARDS, ItemError};
use crate::destination::{Destination, Held};

pub const DESTINATIONS_PK: &str = "DESTINATIONS";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestinationItem {
    #[serde(rename = "PK")]
    pub pk: String,
    #[serde(rename = "SK")]
    pub sk: String,
    /// The compare-and-swap token, outside the JSON so a condition can read it.
    pub version: u64,
    /// The destination as JSON: read and written whole, never queried inside. Under the
    /// name of the webhook's JSON column, which SQLite's one table has free on this row.
    #[serde(rename = "headers")]
    pub json: String,
}

impl DestinationItem {
    pub fn new(destination: &Destination) -> DestinationItem {
        DestinationItem {
            pk: DESTINATIONS_PK.to_owned(),
            sk: destination_sk(&destination.name),
            version: destination.version,
            json: serde_json::to_string(destination).expect("a destination serialises"),
        }
    }

    pub fn into_destination(self) -> Result<Destination, ItemError> {
        serde_json::from_str(&self.json)
            .map_err(|e| ItemError(format!("destination {}: {e}", self.sk)))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldItem {
    #[serde(rename = "PK")]
    pub pk: String,
    #[serde(rename = "SK")]
    pub sk: String,
    pub id: String,
    /// The status version the hold wrote ([`Held::version`]).
    pub version: u64,
}

impl HeldItem {
    pub fn new(destination: &str, id: &str, version: u64) -> HeldItem {
        HeldItem {
            pk: held_pk(destination, super::shard_of(id, DUE_SHARDS)),
            sk: format!("{id}#{version:020}"),
            id: id.to_owned(),
            version,
        }
    }

    pub fn held(&self) -> Held {
        Held {
            id: self.id.clone(),
            version: self.version,
        }
    }
}

/// `DEST#<name>`: never one of a webhook's sort keys, whatever a processor names.
pub fn destination_sk(name: &str) -> String {
    format!("DEST#{name}")
}

/// The partition of shard `shard` of `destination`'s holds.
pub fn held_pk(destination: &str, shard: u32) -> String {
    format!("HELD#{destination}#{shard}")
}

/// Every partition of `destination`'s holds.
pub fn held_pks(destination: &str) -> impl Iterator<Item = String> + '_ {
    (0..DUE_SHARDS).map(move |shard| held_pk(destination, shard))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::destination::Breaker;

    #[test]
    fn a_destination_reads_back_as_written_and_holds_are_keyed_by_version() {
        let destination = Destination::new("https://api.example.com:443", &Breaker::default());
        let item = DestinationItem::new(&destination);
        assert_eq!(
            (item.pk.as_str(), item.sk.as_str()),
            (DESTINATIONS_PK, "DEST#https://api.example.com:443")
        );
        assert_eq!(item.into_destination().unwrap(), destination);
        let held = HeldItem::new("d", "57f0", 3);
        assert!(held_pks("d").any(|pk| pk == held.pk));
        assert_eq!(held.sk, "57f0#00000000000000000003");
        assert_ne!(
            held.sk,
            HeldItem::new("d", "57f0", 4).sk,
            "a hold again is a new item"
        );
        assert_eq!(
            held.held(),
            Held {
                id: "57f0".into(),
                version: 3
            }
        );
    }
}
