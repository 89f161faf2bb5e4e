//! Webhook ids: derived from where a delivery came from and the provider's own event key,
//! so that a redelivery of the same event maps to the same stored item.

use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Namespace of the version-5 UUIDs this inbox derives (fixed forever: changing it would
/// make redeliveries of already-captured events look new).
const NAMESPACE: Uuid = Uuid::from_u128(0x5e0f_4d2c_8a61_4f3b_9a7e_1c2b_3d4e_5f60);

pub fn webhook_id(origin: &str, idempotency_key: &str) -> String {
    // Length-prefixed, so no (origin, key) pair can spell another's name.
    let name = format!("{}:{origin}:{idempotency_key}", origin.len());
    Uuid::new_v5(&NAMESPACE, name.as_bytes()).to_string()
}

/// The idempotency key of a provider that sends none: the body itself.
pub fn body_hash_key(body: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(body)))
}

/// Whether `s` has the shape of an id this inbox hands out (so a path can be refused early).
pub fn is_webhook_id(s: &str) -> bool {
    Uuid::try_parse(s).is_ok_and(|u| u.hyphenated().to_string() == s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_origin_and_key_give_the_same_id() {
        let a = webhook_id("bigcommerce", "abc");
        assert_eq!(a, webhook_id("bigcommerce", "abc"));
        assert!(is_webhook_id(&a));
    }

    #[test]
    fn origin_and_key_both_matter_and_cannot_be_confused() {
        let a = webhook_id("stripe", "evt_1");
        assert_ne!(a, webhook_id("bigcommerce", "evt_1"));
        assert_ne!(a, webhook_id("stripe", "evt_2"));
        // The length prefix keeps ("a", "b\nc") and ("a\nb", "c") apart.
        assert_ne!(webhook_id("a", "b\nc"), webhook_id("a\nb", "c"));
    }

    #[test]
    fn only_canonical_uuids_are_ids() {
        assert!(!is_webhook_id("../etc/passwd"));
        assert!(!is_webhook_id(""));
        assert!(!is_webhook_id(&webhook_id("a", "b").to_uppercase()));
    }

    #[test]
    fn body_hash_is_stable() {
        assert_eq!(
            body_hash_key(b"{}"),
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }
}
