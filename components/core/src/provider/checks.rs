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

/// A signature over a body, checked as the body arrives, in pieces or whole: an
/// HMAC-SHA256 under each key, primed with what the scheme signs before the body (Stripe's
/// timestamp, Standard Webhooks' id and timestamp). It holds if any key's MAC is any of the
/// signatures the headers carry.
#[derive(Clone)]
pub struct BodyMac {
    macs: Vec<HmacSha256>,
    signatures: Vec<Vec<u8>>,
    /// Why it is refused if none matches.
    refusal: String,
}

impl BodyMac {
    pub(crate) fn new<K: AsRef<[u8]>>(
        keys: impl IntoIterator<Item = K>,
        prefix: &[u8],
        signatures: Vec<Vec<u8>>,
        refusal: impl Into<String>,
    ) -> BodyMac {
        let macs = keys
            .into_iter()
            .map(|key| {
                let mut mac = HmacSha256::new_from_slice(key.as_ref())
                    .expect("HMAC accepts keys of any length");
                mac.update(prefix);
                mac
            })
            .collect();
        BodyMac {
            macs,
            signatures,
            refusal: refusal.into(),
        }
    }

    pub fn update(&mut self, chunk: &[u8]) {
        for mac in &mut self.macs {
            mac.update(chunk);
        }
    }

    /// Whether the body fed to it is signed (constant time; an empty or short signature
    /// never matches).
    pub fn finish(self) -> Result<(), Problem> {
        let BodyMac {
            macs,
            signatures,
            refusal,
        } = self;
        let matched = macs.into_iter().any(|mac| {
            let tag = mac.finalize().into_bytes();
            signatures
                .iter()
                .any(|signature| bool::from(tag.as_slice().ct_eq(signature)))
        });
        if matched {
            Ok(())
        } else {
            Err(Problem::unauthorized(refusal))
        }
    }
}

/// What the headers of a delivery proved of it, and what its body still has to: the MAC
/// to check, or nothing (a shared token sufficed).
#[derive(Clone)]
pub struct Signature(pub(crate) Option<BodyMac>);

impl Signature {
    pub fn update(&mut self, chunk: &[u8]) {
        if let Some(mac) = &mut self.0 {
            mac.update(chunk);
        }
    }

    pub fn finish(self) -> Result<(), Problem> {
        self.0.map_or(Ok(()), BodyMac::finish)
    }
}

/// A signature over the raw body alone (the seed's demo scheme, GitHub, Shopify), from the
/// header's `value`. `decode` turns it into the MAC's bytes, `None` if it is not `format`.
pub(crate) fn body_mac(
    secrets: &[String],
    header: &str,
    value: &str,
    format: &str,
    decode: impl Fn(&str) -> Option<Vec<u8>>,
) -> Result<BodyMac, Problem> {
    let signature = decode(value)
        .ok_or_else(|| Problem::unauthorized(format!("`{header}` must be {format}")))?;
    Ok(BodyMac::new(
        secrets.iter().map(String::as_bytes),
        b"",
        vec![signature],
        format!("`{header}` does not match the body"),
    ))
}

/// HMAC-SHA256 of `message` under `key`.
pub(crate) fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
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
