//! Who may deliver to which origin, and how each provider proves it.
//!
//! Every check runs on the raw body bytes and compares in constant time.

mod bigcommerce;
mod checks;
mod delivery;
mod github;
mod scheme;
mod shopify;
mod standard_webhooks;
mod stripe;

pub use bigcommerce::demo_delivery;
pub use checks::Signature;
pub(crate) use checks::secret_matches;
pub use delivery::{EventMeta, Headers, SOURCE_SETTINGS, Source};
pub use scheme::Scheme;

use crate::Problem;
use crate::config::{Config, ConfigError, describe};

impl Source {
    /// The source behind `origin`: a scheme's own name, or one named in `sources`
    /// (`acme:standard-webhooks,shop2:shopify`).
    pub fn find(origin: &str, config: &dyn Config) -> Result<Option<Source>, ConfigError> {
        if let Some(scheme) = Scheme::from_name(origin) {
            return Ok(Some(Source {
                origin: origin.to_owned(),
                scheme,
            }));
        }
        Ok(Source::named(config)?
            .into_iter()
            .find(|source| source.origin == origin))
    }

    /// Every source, built-in and named, with its settings checked: what a host refuses to
    /// start on.
    pub fn check_all(config: &dyn Config) -> Result<(), ConfigError> {
        for source in Source::all(config)? {
            source.refuses_replayed_body(config)?;
        }
        Ok(())
    }

    /// The built-in sources (each scheme on its own name) and the named ones.
    pub fn all(config: &dyn Config) -> Result<Vec<Source>, ConfigError> {
        let builtin = Scheme::ALL.iter().map(|scheme| Source {
            origin: scheme.name().to_owned(),
            scheme: *scheme,
        });
        Ok(builtin.chain(Source::named(config)?).collect())
    }

    /// The sources configured in `sources`, checked.
    pub fn named(config: &dyn Config) -> Result<Vec<Source>, ConfigError> {
        let Some(raw) = config.get("sources") else {
            return Ok(Vec::new());
        };
        let mut sources: Vec<Source> = Vec::new();
        for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let invalid =
                |why: String| ConfigError(format!("{}: `{entry}` {why}", describe("sources")));
            let (origin, scheme) = entry
                .split_once(':')
                .ok_or_else(|| invalid("must be NAME:SCHEME".into()))?;
            let scheme = Scheme::from_name(scheme.trim()).ok_or_else(|| {
                let known: Vec<_> = Scheme::ALL.iter().map(|s| s.name()).collect();
                invalid(format!(
                    "names an unknown scheme; known: {}",
                    known.join(", ")
                ))
            })?;
            let origin = origin.trim();
            let well_formed = (1..=32).contains(&origin.len())
                && origin.starts_with(|c: char| c.is_ascii_lowercase())
                && origin
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !well_formed {
                return Err(invalid(
                    "must be 1 to 32 lower-case letters, digits or dashes, starting with a letter"
                        .into(),
                ));
            }
            if Scheme::from_name(origin).is_some() || sources.iter().any(|s| s.origin == origin) {
                return Err(invalid("names an origin that already exists".into()));
            }
            sources.push(Source {
                origin: origin.to_owned(),
                scheme,
            });
        }
        Ok(sources)
    }

    /// Whether a body this source delivered before is refused as a replay (answered as the
    /// duplicate of the first webhook): `<origin>_replay_guard` (`on` or `off`), on by
    /// default where a delivery can be replayed ([`Scheme::replayable`]).
    pub fn refuses_replayed_body(&self, config: &dyn Config) -> Result<bool, ConfigError> {
        let key = self.key("replay_guard");
        match config.get(&key).as_deref().map(str::trim) {
            None | Some("") => Ok(self.scheme.replayable()),
            Some("on" | "true") => Ok(true),
            Some("off" | "false") => Ok(false),
            Some(other) => Err(ConfigError(format!(
                "{} = {other:?} must be on or off",
                describe(&key)
            ))),
        }
    }

    /// The config key of one of this source's settings: `standard_webhooks_secret`.
    pub fn key(&self, setting: &str) -> String {
        format!("{}_{setting}", self.origin.replace('-', "_"))
    }

    /// Begins to prove the delivery came from the provider (401 otherwise): what its
    /// headers say is checked at once, its body as it arrives ([`Signature::update`],
    /// then [`Signature::finish`]), so a large body is verified as it is read, not read
    /// again after.
    pub fn signature(
        &self,
        headers: &Headers,
        config: &dyn Config,
        now_ms: i64,
        tolerance_s: u64,
    ) -> Result<Signature, Problem> {
        let now_s = now_ms.div_euclid(1000);
        let mac = match self.scheme {
            Scheme::BigCommerce => return bigcommerce::signature(self, headers, config),
            Scheme::Stripe => stripe::signature(self, headers, config, now_s, tolerance_s)?,
            Scheme::GitHub => github::signature(self, headers, config)?,
            Scheme::Shopify => shopify::signature(self, headers, config)?,
            Scheme::StandardWebhooks => {
                standard_webhooks::signature(self, headers, config, now_s, tolerance_s)?
            }
        };
        Ok(Signature(Some(mac)))
    }

    /// Proves the delivery came from the provider (401 otherwise), its body whole.
    pub fn verify(
        &self,
        headers: &Headers,
        body: &[u8],
        config: &dyn Config,
        now_ms: i64,
        tolerance_s: u64,
    ) -> Result<(), Problem> {
        let mut signature = self.signature(headers, config, now_ms, tolerance_s)?;
        signature.update(body);
        signature.finish()
    }

    /// What the provider says about the event (400 if the delivery lacks it).
    pub fn describe_event(
        &self,
        headers: &Headers,
        body: &[u8],
        event: &serde_json::Value,
    ) -> Result<EventMeta, Problem> {
        match self.scheme {
            Scheme::BigCommerce => bigcommerce::describe_event(body, event),
            Scheme::Stripe => stripe::describe_event(event),
            Scheme::GitHub => github::describe_event(headers, event),
            Scheme::Shopify => shopify::describe_event(headers, body),
            Scheme::StandardWebhooks => standard_webhooks::describe_event(headers, event),
        }
    }

    /// The secrets configured for this source, or a 401 that says which variable to set.
    fn required_secrets(&self, config: &dyn Config) -> Result<Vec<String>, Problem> {
        let key = self.key("secret");
        let secrets = crate::config::secrets(config, &key);
        if secrets.is_empty() {
            return Err(Problem::unauthorized(format!(
                "origin `{}` has no secret configured, so no delivery can be verified: set {}",
                self.origin,
                describe(&key)
            )));
        }
        Ok(secrets)
    }
}

#[cfg(test)]
mod tests {
    use hmac::Mac;

    use super::checks::{BodyMac, HmacSha256};
    use super::*;

    #[test]
    fn header_lookup_ignores_case_and_refuses_duplicates() {
        let headers = Headers::new(vec![
            ("Signature".into(), b" abc ".to_vec()),
            ("x-dup".into(), b"1".to_vec()),
            ("X-Dup".into(), b"2".to_vec()),
            ("x-bin".into(), vec![0xff]),
        ]);
        assert_eq!(headers.single("signature"), Ok(Some("abc")));
        assert_eq!(headers.single("missing"), Ok(None));
        assert_eq!(headers.single("x-dup").unwrap_err().status, 400);
        assert_eq!(headers.single("x-bin").unwrap_err().status, 400);
    }

    #[test]
    fn hmac_refuses_empty_and_truncated_signatures() {
        let mac = HmacSha256::new_from_slice(b"k")
            .unwrap()
            .chain_update(b"m")
            .finalize()
            .into_bytes()
            .to_vec();
        let check = |key: &[u8], signature: &[u8]| {
            let mut check = BodyMac::new([key], b"", vec![signature.to_vec()], "no");
            check.update(b"m");
            check.finish().is_ok()
        };
        assert!(check(b"k", &mac));
        assert!(!check(b"k", &[]));
        assert!(!check(b"k", &mac[..16]));
        assert!(!check(b"other", &mac));
    }

    #[test]
    fn a_body_in_pieces_is_checked_as_it_is_whole() {
        let signed = b"1700000000.{\"id\":\"evt_1\"}";
        let mac = HmacSha256::new_from_slice(b"k")
            .unwrap()
            .chain_update(signed)
            .finalize()
            .into_bytes()
            .to_vec();
        let (prefix, body) = signed.split_at(11);
        for split in 0..=body.len() {
            let mut check = BodyMac::new([b"k"], prefix, vec![mac.clone()], "no");
            check.update(&body[..split]);
            check.update(&body[split..]);
            assert!(check.finish().is_ok(), "split at {split}");
        }
        let mut altered = BodyMac::new([b"k"], prefix, vec![mac], "no");
        altered.update(&body[1..]);
        assert!(altered.finish().is_err());
    }

    #[test]
    fn secrets_compare_by_value() {
        assert!(secret_matches("token", "token"));
        assert!(!secret_matches("token", "token2"));
        assert!(!secret_matches("", "token"));
    }
}
