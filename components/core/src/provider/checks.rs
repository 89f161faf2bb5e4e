//! The checks every scheme is made of: MACs compared in constant time, timestamps within
//! a tolerance, required fields.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::Problem;

pub(crate) type HmacSha256 = Hmac<Sha256>;

/// Refuses a signed timestamp further than `tolerance_s` from now, either way.
pub(crate) fn check_timestamp(
    header: &str,
    timestamp: i64,
    now_s: i64,
    tolerance_s: u64,
) -> Result<(), Problem> {
    let age = now_s.saturating_sub(timestamp);
    if age.unsigned_abs() > tolerance_s {
        return Err(Problem::unauthorized(format!(
            "`{header}` is {} s {} now, outside the {tolerance_s} s tolerance",
            age.unsigned_abs(),
            if age > 0 { "before" } else { "after" },
        )));
    }
    Ok(())
}

/// Checks a signature over the raw body alone (the seed's demo scheme, GitHub, Shopify).
/// `decode` turns the header's value into the MAC's bytes, `None` if it is not `format`.
pub(crate) fn verify_body_mac(
    secrets: &[String],
    header: &str,
    value: &str,
    format: &str,
    decode: impl Fn(&str) -> Option<Vec<u8>>,
    body: &[u8],
) -> Result<(), Problem> {
    let signature = decode(value)
        .ok_or_else(|| Problem::unauthorized(format!("`{header}` must be {format}")))?;
    if secrets
        .iter()
        .any(|secret| hmac_matches(secret.as_bytes(), &[body], &signature))
    {
        Ok(())
    } else {
        Err(Problem::unauthorized(format!(
            "`{header}` does not match the body"
        )))
    }
}

/// HMAC-SHA256 of `message` under `key`.
pub(crate) fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// Whether `signature` is the HMAC-SHA256 of `message` under `key` (constant time; an
/// empty or short signature never matches).
pub(crate) fn hmac_matches(key: &[u8], message: &[&[u8]], signature: &[u8]) -> bool {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    for part in message {
        mac.update(part);
    }
    signature.len() == 32 && mac.verify_slice(signature).is_ok()
}

/// Constant-time equality of two secrets of any length (hashing first hides the length).
pub(crate) fn secret_matches(a: &str, b: &str) -> bool {
    Sha256::digest(a.as_bytes())
        .ct_eq(&Sha256::digest(b.as_bytes()))
        .into()
}

pub(crate) fn required_str<'a>(
    event: &'a serde_json::Value,
    field: &str,
) -> Result<&'a str, Problem> {
    match event.get(field) {
        Some(serde_json::Value::String(s)) if !s.is_empty() => Ok(s),
        Some(_) => Err(Problem::bad_request(format!(
            "field `{field}` must be a non-empty string"
        ))),
        None => Err(Problem::bad_request(format!("field `{field}` is missing"))),
    }
}
