//! A delivery's JSON, read for what describes its event. Every provider describes an
//! event with fields at the top of the object (an id, a type, a time), so the nested
//! objects and arrays are checked as JSON and skipped, not built: a 25 MB push event costs
//! its bytes, not a tree several times their size.

use std::fmt;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// The top level of `body`, which must be a JSON object: its scalars as they are, each
/// nested object or array as an empty one (so a field's type can still be checked). The
/// whole body is parsed: invalid JSON anywhere in it is an error.
pub fn top_level(body: &[u8]) -> Result<Value, TopLevelError> {
    let mut parser = serde_json::Deserializer::from_slice(body);
    let object = parser
        .deserialize_any(TopLevel)
        .map_err(TopLevelError::Json)?;
    parser.end().map_err(TopLevelError::Json)?;
    object.ok_or(TopLevelError::NotAnObject)
}

#[derive(Debug)]
pub enum TopLevelError {
    Json(serde_json::Error),
    NotAnObject,
}

/// The top level: an object's fields made shallow, or `None` for any other value.
struct TopLevel;

impl<'de> Visitor<'de> for TopLevel {
    type Value = Option<Value>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(Shallow)?;
            fields.insert(key, value);
        }
        Ok(Some(Value::Object(fields)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        Skip.visit_seq(seq).map(|_| None)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// A field's value: a scalar as it is, an object or array checked and left empty.
struct Shallow;

impl<'de> de::DeserializeSeed<'de> for Shallow {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Shallow {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Value, A::Error> {
        Skip.visit_map(map).map(|_| Value::Object(Map::new()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Value, A::Error> {
        Skip.visit_seq(seq).map(|_| Value::Array(Vec::new()))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

/// A value read and dropped. Unlike `serde::de::IgnoredAny`, which serde_json skips without
/// decoding strings or counting depth, it is checked as a full parse checks it: escapes
/// decoded, nesting within serde_json's limit (128), so what is stored is JSON any
/// processor's parser takes.
struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Skip, D::Error> {
        deserializer.deserialize_any(Skip)
    }
}

impl<'de> Visitor<'de> for Skip {
    type Value = Skip;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skip, A::Error> {
        while map.next_entry::<Skip, Skip>()?.is_some() {}
        Ok(Skip)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Skip, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Skip)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Skip, E> {
        Ok(Skip)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Skip, E> {
        Ok(Skip)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn scalars_are_kept_and_what_is_nested_is_emptied() {
        let body = br#"{"id": "evt_1", "n": -3, "big": 18446744073709551615, "f": 1.5,
            "ok": true, "none": null, "data": {"object": {"id": "x"}}, "list": [1, [2]]}"#;
        assert_eq!(
            top_level(body).unwrap(),
            json!({"id": "evt_1", "n": -3, "big": 18446744073709551615u64, "f": 1.5,
                   "ok": true, "none": null, "data": {}, "list": []})
        );
    }

    #[test]
    fn what_is_nested_is_still_checked() {
        for bad in [
            &br#"{"id": "x", "data": {"a": }}"#[..],
            br#"{"id": "x", "list": [1, 2,]}"#,
            br#"{"id": "x"} trailing"#,
            br#"{"id": "\ud800"}"#,
            br#"{"id": "x", "data": {"name": "\ud800"}}"#,
        ] {
            assert!(
                matches!(top_level(bad), Err(TopLevelError::Json(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let deep = format!("{{\"a\": {}{}}}", "[".repeat(200), "]".repeat(200));
        assert!(matches!(
            top_level(deep.as_bytes()),
            Err(TopLevelError::Json(_))
        ));
    }

    #[test]
    fn only_an_object_is_a_delivery() {
        for other in [&b"[1]"[..], b"\"s\"", b"1", b"true", b"null"] {
            assert!(matches!(top_level(other), Err(TopLevelError::NotAnObject)));
        }
    }

    #[test]
    fn a_repeated_field_keeps_its_last_value_as_a_full_parse_does() {
        let body = br#"{"id": "a", "id": "b"}"#;
        let full: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(top_level(body).unwrap(), full);
    }
}
