//! How many webhooks are in each state, kept as counters that every capture and status
//! change updates in its own transaction, so counts read a few small items instead of
//! the table. A counter item holds one origin and event type on one shard; a completed
//! webhook counts in the item of the day its items expire, so it stops counting when
//! DynamoDB's TTL takes them, without a write. Each change picks its shard from the
//! webhook and the version it writes, so a burst of one type spreads over every shard
//! rather than making transactions conflict on one item; counts sum the shards, so a
//! change need not undo on the shard its predecessor added to.

use std::collections::{BTreeMap, HashMap};

use serde_dynamo::{AttributeValue, Item};
use sha2::{Digest, Sha256};

use super::items::{ItemUpdate, KeyQuery, key_of};
use crate::item::ItemError;
use crate::listing::{Counts, Filter};
use crate::model::State;

/// How many items each counter is spread over; counts read them all.
pub const SHARDS: u32 = 16;

/// The partition key of the counter items of shard `shard`.
pub fn partition(shard: u32) -> String {
    format!("COUNT#{shard}")
}

const DAY_SECS: i64 = 86_400;

/// The counter item a webhook counts in while it is in one state.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Counter {
    shard: u32,
    origin: String,
    event_type: String,
    /// For a completed webhook that expires, the day (unix days) it expires.
    day: Option<i64>,
}

impl Counter {
    /// Where the change of webhook `id` (of `origin` and `event_type`) to `version`
    /// counts it in `state`, its items expiring at `expires_at` (unix seconds) if they do.
    pub fn of(
        id: &str,
        version: u64,
        origin: &str,
        event_type: &str,
        state: State,
        expires_at: Option<i64>,
    ) -> Counter {
        let mut digest = Sha256::new();
        digest.update(id.as_bytes());
        digest.update(version.to_be_bytes());
        Counter {
            shard: u32::from(digest.finalize()[0]) % SHARDS,
            origin: origin.to_owned(),
            event_type: event_type.to_owned(),
            day: expires_at
                .filter(|_| state == State::Completed)
                .map(|at| at.div_euclid(DAY_SECS)),
        }
    }

    /// The sort key: the origin and type each with its length before it, so no origin or
    /// type can make another's key, and an origin's items share a prefix ([`origin_prefix`]).
    fn sort_key(&self) -> String {
        let mut key = origin_prefix(&self.origin);
        key.push_str(&bounded(&self.event_type));
        if let Some(day) = self.day {
            key.push_str(&format!("@{day}"));
        }
        key
    }
}

fn origin_prefix(origin: &str) -> String {
    bounded(origin)
}

/// A name in a sort key, its length first; one too long for a key (DynamoDB takes 1,024
/// bytes) by its digest, marked `#`, since the item holds the name itself.
fn bounded(name: &str) -> String {
    const LONGEST: usize = 200;
    if name.len() <= LONGEST {
        format!("{}:{name}", name.len())
    } else {
        format!("#{}", hex::encode(Sha256::digest(name.as_bytes())))
    }
}

/// The counter updates of a webhook leaving `from` (if it was counted) for `to`: one
/// item's update when both count in the same item, none when nothing moves.
pub fn changes(from: Option<(&Counter, State)>, to: (&Counter, State)) -> Vec<ItemUpdate> {
    let mut deltas: BTreeMap<&Counter, BTreeMap<State, i64>> = BTreeMap::new();
    if let Some((counter, state)) = from {
        *deltas.entry(counter).or_default().entry(state).or_default() -= 1;
    }
    *deltas.entry(to.0).or_default().entry(to.1).or_default() += 1;
    deltas
        .into_iter()
        .filter_map(|(counter, by_state)| {
            let by_state: Vec<_> = by_state.into_iter().filter(|(_, d)| *d != 0).collect();
            (!by_state.is_empty()).then(|| update(counter, &by_state))
        })
        .collect()
}

fn update(counter: &Counter, deltas: &[(State, i64)]) -> ItemUpdate {
    let mut names = HashMap::from([
        ("#origin".to_owned(), "origin".to_owned()),
        ("#type".to_owned(), "type".to_owned()),
    ]);
    let mut values = HashMap::from([
        (
            ":origin".to_owned(),
            AttributeValue::S(counter.origin.clone()),
        ),
        (
            ":type".to_owned(),
            AttributeValue::S(counter.event_type.clone()),
        ),
    ]);
    let mut add = Vec::new();
    for (i, (state, delta)) in deltas.iter().enumerate() {
        names.insert(format!("#s{i}"), state.as_str().to_owned());
        values.insert(format!(":d{i}"), AttributeValue::N(delta.to_string()));
        add.push(format!("#s{i} :d{i}"));
    }
    let mut set = vec!["#origin = :origin", "#type = :type"];
    if let Some(day) = counter.day {
        names.insert("#day".into(), "day".into());
        names.insert("#expires".into(), "expires_at".into());
        values.insert(":day".into(), AttributeValue::N(day.to_string()));
        // A day after its last webhook expired, nothing reads it.
        let expires = (day + 2) * DAY_SECS;
        values.insert(":expires".into(), AttributeValue::N(expires.to_string()));
        set.extend(["#day = :day", "#expires = :expires"]);
    }
    ItemUpdate {
        key: key_of(&partition(counter.shard), &counter.sort_key()),
        update: format!("ADD {} SET {}", add.join(", "), set.join(", ")),
        condition: None,
        names,
        values: Item::from(values),
    }
}

/// One query per shard for the counter items `filter` needs (an origin's only, when it
/// names one). A search is answered from the webhooks it finds, not from counters.
pub fn queries(filter: &Filter) -> Vec<KeyQuery> {
    (0..SHARDS)
        .map(|shard| {
            let mut names = HashMap::from([("#pk".to_owned(), "PK".to_owned())]);
            let mut values =
                HashMap::from([(":pk".to_owned(), AttributeValue::S(partition(shard)))]);
            let mut key_condition = "#pk = :pk".to_owned();
            if let Some(origin) = &filter.origin {
                names.insert("#sk".into(), "SK".into());
                values.insert(":origin".into(), AttributeValue::S(origin_prefix(origin)));
                key_condition.push_str(" AND begins_with(#sk, :origin)");
            }
            KeyQuery {
                key_condition,
                names,
                values: Item::from(values),
            }
        })
        .collect()
}

/// The counts of the counter items of [`queries`] that pass `filter`'s origin and type,
/// at `now_secs`: a completed day's count stops when the day of its expiry has passed.
pub fn tally(
    items: impl IntoIterator<Item = Item>,
    filter: &Filter,
    now_secs: i64,
) -> Result<Counts, ItemError> {
    let mut counts: BTreeMap<State, i64> = BTreeMap::new();
    for item in items {
        let item = item.into_inner();
        let text = |name: &str| match item.get(name) {
            Some(AttributeValue::S(s)) => Ok(s.as_str()),
            _ => Err(ItemError(format!("a counter item without its {name}"))),
        };
        let number = |name: &str| match item.get(name) {
            Some(AttributeValue::N(n)) => n
                .parse::<i64>()
                .map(Some)
                .map_err(|e| ItemError(format!("a counter's {name}: {e}"))),
            None => Ok(None),
            Some(_) => Err(ItemError(format!("a counter's {name} is not a number"))),
        };
        if !filter.matches("", text("origin")?, text("type")?, "") {
            continue;
        }
        if number("day")?.is_some_and(|day| (day + 1) * DAY_SECS <= now_secs) {
            continue;
        }
        for state in State::ALL {
            *counts.entry(state).or_default() += number(state.as_str())?.unwrap_or(0);
        }
    }
    let mut tallied = Counts::zero();
    for (state, n) in counts {
        // Never below zero, whatever a partly read set of shards says.
        tallied.0.insert(state, n.max(0) as u64);
    }
    Ok(tallied)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "00000000-0000-5000-8000-000000000001";

    fn apply(items: &mut BTreeMap<String, HashMap<String, AttributeValue>>, update: &ItemUpdate) {
        let key = update.key.clone().into_inner();
        let key = format!("{:?}{:?}", key.get("PK"), key.get("SK"));
        let item = items.entry(key).or_default();
        let (add, set) = update
            .update
            .trim_start_matches("ADD ")
            .split_once(" SET ")
            .unwrap();
        let values = update.values.clone().into_inner();
        for part in add.split(", ") {
            let (name, value) = part.split_once(' ').unwrap();
            let AttributeValue::N(delta) = &values[value] else {
                panic!()
            };
            let name = update.names[name].clone();
            let old = match item.get(&name) {
                Some(AttributeValue::N(n)) => n.parse::<i64>().unwrap(),
                _ => 0,
            };
            let new = old + delta.parse::<i64>().unwrap();
            item.insert(name, AttributeValue::N(new.to_string()));
        }
        for part in set.split(", ") {
            let (name, value) = part.split_once(" = ").unwrap();
            item.insert(update.names[name].clone(), values[value].clone());
        }
    }

    #[test]
    fn a_webhook_counts_once_in_the_state_it_is_in_and_a_completed_one_until_it_expires() {
        let mut items = BTreeMap::new();
        let live =
            |version, state| Counter::of(ID, version, "stripe", "charge.succeeded", state, None);
        let expires = 10 * DAY_SECS + 5;
        let done = Counter::of(
            ID,
            3,
            "stripe",
            "charge.succeeded",
            State::Completed,
            Some(expires),
        );
        let steps = [
            changes(None, (&live(1, State::Received), State::Received)),
            changes(
                Some((&live(1, State::Received), State::Received)),
                (&live(2, State::Processing), State::Processing),
            ),
            changes(
                Some((&live(2, State::Processing), State::Processing)),
                (&done, State::Completed),
            ),
        ];
        // One item, or two: the shards of its two versions, or the completed day's.
        assert!(steps[0].len() == 1 && steps[1].len() <= 2 && steps[2].len() == 2);
        let counts_after = |items: &BTreeMap<_, HashMap<_, _>>, now| {
            let items = items.values().cloned().map(Item::from);
            tally(items, &Filter::default(), now).unwrap()
        };
        for update in &steps[0] {
            apply(&mut items, update);
        }
        assert_eq!(counts_after(&items, 0).0[&State::Received], 1);
        for update in steps[1..].iter().flatten() {
            apply(&mut items, update);
        }
        let counts = counts_after(&items, 0);
        assert_eq!(counts.total(), 1);
        assert_eq!(counts.0[&State::Completed], 1);
        assert_eq!(counts_after(&items, 11 * DAY_SECS).0[&State::Completed], 0);
        let other_origin = Filter {
            origin: Some("github".into()),
            ..Filter::default()
        };
        let items: Vec<Item> = items.values().cloned().map(Item::from).collect();
        assert_eq!(tally(items, &other_origin, 0).unwrap().total(), 0);
        assert!(
            changes(
                Some((&live(4, State::Failed), State::Failed)),
                (&live(4, State::Failed), State::Failed)
            )
            .is_empty()
        );
    }

    #[test]
    fn no_origin_or_type_makes_the_key_of_another_and_no_key_is_too_long() {
        let a = Counter::of(ID, 1, "ab", "c", State::Received, None);
        let b = Counter::of(ID, 1, "a", "bc", State::Received, None);
        assert_ne!(a.sort_key(), b.sort_key());
        assert!(a.sort_key().starts_with(&origin_prefix("ab")));
        assert!(!b.sort_key().starts_with(&origin_prefix("ab")));
        let long = "x".repeat(5_000);
        let key = Counter::of(ID, 1, &long, &long, State::Completed, Some(0)).sort_key();
        assert!(key.len() < 1_024, "{}", key.len());
    }

    #[test]
    fn a_burst_of_one_type_spreads_over_every_shard() {
        let shards: std::collections::HashSet<u32> = (0..400)
            .map(|n| Counter::of(&format!("id-{n}"), 1, "stripe", "t", State::Received, None).shard)
            .collect();
        assert_eq!(shards.len(), SHARDS as usize);
    }
}
