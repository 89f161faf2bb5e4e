//! Destinations and their holds on SQLite: rows of the one table ([`crate::item::destinations`]).

use super::connection::{Answer, Connection, Value, limit_of, read_rows, text, version};
use crate::destination::{Destination, DestinationView, Held};
use crate::item::destinations::{
    DESTINATIONS_PK, DestinationItem, HeldItem, destination_sk, held_pks,
};
use crate::store::StoreError;

const SELECT_DESTINATIONS: &str =
    "SELECT sk, version, headers FROM items WHERE pk = ?1 ORDER BY sk";
const SELECT_DESTINATION: &str = "SELECT sk, version, headers FROM items WHERE pk = ?1 AND sk = ?2";
const INSERT_DESTINATION: &str = "INSERT INTO items (pk, sk, id, version, headers)
    VALUES (?1, ?2, ?2, ?3, ?4) ON CONFLICT (pk, sk) DO NOTHING";
const SWAP_DESTINATION: &str = "UPDATE items SET version = ?3, headers = ?4
    WHERE pk = ?1 AND sk = ?2 AND version = ?5";
const INSERT_HELD: &str = "INSERT INTO items (pk, sk, id, version) VALUES (?1, ?2, ?3, ?4)
    ON CONFLICT (pk, sk) DO NOTHING";
const SELECT_HELD: &str = "SELECT id, version FROM items WHERE pk = ?1 ORDER BY sk LIMIT ?2";
const COUNT_HELD: &str = "SELECT COUNT(*) AS n FROM items WHERE pk = ?1";
const DELETE_HELD: &str = "DELETE FROM items WHERE pk = ?1 AND sk = ?2";

fn read(answer: Answer) -> Result<Vec<Destination>, StoreError> {
    let items = read_rows(answer, |row| {
        Ok(DestinationItem {
            pk: DESTINATIONS_PK.to_owned(),
            sk: row.text("sk")?,
            version: row.unsigned("version")?,
            json: row.text("headers")?,
        })
    })?;
    items
        .into_iter()
        .map(|item| {
            item.into_destination()
                .map_err(|e| StoreError::Corrupt(e.0))
        })
        .collect()
}

pub fn destinations(db: &mut impl Connection) -> Result<Vec<Destination>, StoreError> {
    read(db.execute(SELECT_DESTINATIONS, vec![text(DESTINATIONS_PK)])?)
}

pub fn destination(
    db: &mut impl Connection,
    name: &str,
) -> Result<Option<Destination>, StoreError> {
    let answer = db.execute(
        SELECT_DESTINATION,
        vec![text(DESTINATIONS_PK), text(&destination_sk(name))],
    )?;
    Ok(read(answer)?.pop())
}

/// The compare-and-swap of [`crate::store::WebhookStore::swap_destination`]. Run it inside
/// a write transaction.
pub fn swap_destination(
    db: &mut impl Connection,
    expected_version: u64,
    destination: &Destination,
) -> Result<bool, StoreError> {
    let item = DestinationItem::new(destination);
    let mut values = vec![
        text(&item.pk),
        text(&item.sk),
        version(item.version),
        text(&item.json),
    ];
    let sql = if expected_version == 0 {
        INSERT_DESTINATION
    } else {
        values.push(version(expected_version));
        SWAP_DESTINATION
    };
    Ok(db.execute(sql, values)?.changes == 1)
}

/// Writes the hold item of a transition that holds webhook `id` (inside its transaction).
pub(crate) fn insert_held(
    db: &mut impl Connection,
    destination: &str,
    id: &str,
    status_version: u64,
) -> Result<(), StoreError> {
    let item = HeldItem::new(destination, id, status_version);
    db.execute(
        INSERT_HELD,
        vec![
            text(&item.pk),
            text(&item.sk),
            text(id),
            version(item.version),
        ],
    )?;
    Ok(())
}

pub fn held(db: &mut impl Connection, name: &str, limit: usize) -> Result<Vec<Held>, StoreError> {
    let mut held = Vec::new();
    for pk in held_pks(name) {
        if held.len() >= limit {
            break;
        }
        let answer = db.execute(
            SELECT_HELD,
            vec![text(&pk), Value::Integer(limit_of(limit - held.len()))],
        )?;
        held.extend(read_rows(answer, |row| {
            Ok(Held {
                id: row.text("id")?,
                version: row.unsigned("version")?,
            })
        })?);
    }
    Ok(held)
}

pub fn held_count(db: &mut impl Connection, name: &str) -> Result<u64, StoreError> {
    let mut count = 0;
    for pk in held_pks(name) {
        let answer = db.execute(COUNT_HELD, vec![text(&pk)])?;
        count += read_rows(answer, |row| row.unsigned::<u64>("n"))?
            .into_iter()
            .sum::<u64>();
    }
    Ok(count)
}

pub fn unhold(db: &mut impl Connection, name: &str, held: &Held) -> Result<(), StoreError> {
    let item = HeldItem::new(name, &held.id, held.version);
    db.execute(DELETE_HELD, vec![text(&item.pk), text(&item.sk)])?;
    Ok(())
}

/// Every destination as operators list it ([`crate::store::destination_views`]).
pub fn destination_views(db: &mut impl Connection) -> Result<Vec<DestinationView>, StoreError> {
    let mut views = Vec::new();
    for destination in destinations(db)? {
        let held = held_count(db, &destination.name)?;
        views.push(DestinationView::new(&destination, held));
    }
    Ok(views)
}

/// Pauses or resumes destination `name` ([`crate::store::set_paused`]), in the write
/// transaction it is run in: nothing can change it between the read and the write.
pub fn set_paused(
    db: &mut impl Connection,
    name: &str,
    paused: bool,
    now: i64,
) -> Result<DestinationView, StoreError> {
    let current = destination(db, name)?
        .ok_or_else(|| StoreError::NotFound(format!("destination named {name}")))?;
    let changed = match paused {
        true => current.pause(now),
        false => current.resume(now),
    };
    let destination = match changed {
        Some(next) if swap_destination(db, current.version, &next)? => next,
        Some(_) => {
            return Err(StoreError::Conflict(format!(
                "destination {name} changed; try again"
            )));
        }
        None => current,
    };
    Ok(DestinationView::new(&destination, held_count(db, name)?))
}
