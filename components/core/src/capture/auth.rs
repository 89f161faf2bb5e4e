//! Who may use what is not capture: the admin endpoints' host and bearer token, and the
//! demo sender, closed twice.

use super::hosts::check_host;
use crate::Problem;
use crate::config::{Config, describe, env_name};
use crate::provider::Headers;

/// Checks an admin request: first its Host (`host`, the request's authority) against
/// `allowed_hosts` (a `421` when it is not allowed, see [`check_host`]), then
/// `Authorization: Bearer <admin_token>`. Without a configured token the admin endpoints
/// are closed (403); a missing or wrong token is a 401.
pub fn authorize_admin(
    host: Option<&str>,
    headers: &Headers,
    config: &dyn Config,
) -> Result<(), Problem> {
    check_host(host, config)?;
    let tokens = crate::config::secrets(config, "admin_token");
    if tokens.is_empty() {
        return Err(Problem::new(
            403,
            "Forbidden",
            format!(
                "the admin endpoints are closed until {} is set",
                describe("admin_token")
            ),
        ));
    }
    let presented = headers
        .single("authorization")?
        .and_then(|value| value.strip_prefix("Bearer "))
        .ok_or_else(|| {
            Problem::unauthorized("an `Authorization: Bearer` admin token is required")
        })?;
    if tokens
        .iter()
        .any(|token| crate::provider::secret_matches(token, presented))
    {
        Ok(())
    } else {
        Err(Problem::unauthorized("the admin token is not valid"))
    }
}

/// The demo sender signs a fresh order with the production BigCommerce secret, so a
/// stranger (or a page in a visitor's browser) who reaches it makes genuine-looking orders.
/// It is off unless `demo_sender` is `on` (a 404 that says how to turn it on), and on, it
/// takes the admin token like any admin endpoint.
pub fn authorize_demo(
    host: Option<&str>,
    headers: &Headers,
    config: &dyn Config,
) -> Result<(), Problem> {
    // A foreign Host learns nothing, not even whether the demo sender is on.
    check_host(host, config)?;
    if config.get("demo_sender").as_deref().map(str::trim) != Some("on") {
        return Err(Problem::not_found(format!(
            "the demo sender is off; an operator turns it on with {}=on",
            env_name("demo_sender")
        )));
    }
    authorize_admin(host, headers, config)
}

/// The shortest admin token taken without a warning: 32 characters, as many as a random
/// 128-bit value in hex (`scripts/dev-secrets` makes 64).
pub const MIN_ADMIN_TOKEN_CHARS: usize = 32;

/// What to warn the operator of at start when an admin token (any of the comma-separated
/// ones) is shorter than [`MIN_ADMIN_TOKEN_CHARS`]; `None` when every one is long enough
/// or none is set. It never shows a token.
pub fn short_admin_token(config: &dyn Config) -> Option<String> {
    let tokens = crate::config::secrets(config, "admin_token");
    let short = tokens
        .iter()
        .any(|token| token.chars().count() < MIN_ADMIN_TOKEN_CHARS);
    short.then(|| {
        format!(
            "{} holds an admin token shorter than {MIN_ADMIN_TOKEN_CHARS} characters: a short \
             token can be guessed, nothing limits how many a caller tries, and the admin API \
             reads every stored payload and replays webhooks; use at least \
             {MIN_ADMIN_TOKEN_CHARS} random characters (`openssl rand -hex 32`)",
            env_name("admin_token")
        )
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn config() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("bigcommerce_secret".to_string(), "s3cret".to_string()),
            ("admin_token".to_string(), "adm1n".to_string()),
        ])
    }

    #[test]
    fn admin_endpoints_need_the_configured_bearer_token() {
        let bearer = |v: &str| Headers::new(vec![("Authorization".into(), v.as_bytes().to_vec())]);
        assert_eq!(
            authorize_admin(None, &bearer("Bearer adm1n"), &config()),
            Ok(())
        );
        assert_eq!(
            authorize_admin(None, &bearer("Bearer nope"), &config())
                .unwrap_err()
                .status,
            401
        );
        assert_eq!(
            authorize_admin(None, &bearer("adm1n"), &config())
                .unwrap_err()
                .status,
            401
        );
        assert_eq!(
            authorize_admin(None, &Headers::default(), &config())
                .unwrap_err()
                .status,
            401
        );
        let closed = authorize_admin(None, &bearer("Bearer adm1n"), &BTreeMap::new()).unwrap_err();
        assert_eq!(closed.status, 403);
        assert!(closed.detail.contains("INBOX_ADMIN_TOKEN"));
    }

    #[test]
    fn the_demo_sender_is_off_by_default_and_then_takes_the_admin_token() {
        let bearer = |v: &str| Headers::new(vec![("Authorization".into(), v.as_bytes().to_vec())]);
        let admin = bearer("Bearer adm1n");
        let off = authorize_demo(None, &admin, &config()).unwrap_err();
        assert_eq!(off.status, 404);
        assert!(
            off.detail.contains("INBOX_DEMO_SENDER=on"),
            "{}",
            off.detail
        );
        for value in ["off", "yes", "true", "ON", ""] {
            let mut config = config();
            config.insert("demo_sender".into(), value.into());
            assert_eq!(
                authorize_demo(None, &admin, &config).unwrap_err().status,
                404,
                "{value}"
            );
        }
        let mut on = config();
        on.insert("demo_sender".into(), "on".into());
        assert_eq!(authorize_demo(None, &admin, &on), Ok(()));
        let anonymous = authorize_demo(None, &Headers::default(), &on).unwrap_err();
        assert_eq!(anonymous.status, 401);
        assert_eq!(
            authorize_demo(None, &bearer("Bearer nope"), &on)
                .unwrap_err()
                .status,
            401
        );
        on.remove("admin_token");
        assert_eq!(authorize_demo(None, &admin, &on).unwrap_err().status, 403);
    }

    #[test]
    fn the_host_is_checked_before_the_token() {
        let admin = Headers::new(vec![("Authorization".into(), b"Bearer adm1n".to_vec())]);
        let mut config = config();
        // Unset, any host (or none) is answered.
        assert_eq!(
            authorize_admin(Some("evil.example"), &admin, &config),
            Ok(())
        );
        config.insert("allowed_hosts".into(), "localhost:3000".into());
        assert_eq!(
            authorize_admin(Some("localhost:3000"), &admin, &config),
            Ok(())
        );
        let refused = authorize_admin(Some("evil.example"), &admin, &config).unwrap_err();
        assert_eq!(refused.status, 421);
        // A foreign host learns nothing of the token: not whether one is set, nor its worth.
        let anonymous = authorize_admin(Some("evil.example"), &Headers::default(), &config);
        assert_eq!(anonymous, Err(refused.clone()));
        config.remove("admin_token");
        let closed = authorize_admin(Some("evil.example"), &admin, &config);
        assert_eq!(closed, Err(refused));
        // The demo sender, on, is an admin endpoint like the others.
        config.insert("admin_token".into(), "adm1n".into());
        config.insert("demo_sender".into(), "on".into());
        let demo = authorize_demo(Some("evil.example"), &admin, &config).unwrap_err();
        assert_eq!(demo.status, 421);
        assert_eq!(
            authorize_demo(Some("localhost:3000"), &admin, &config),
            Ok(())
        );
    }

    #[test]
    fn a_short_admin_token_is_warned_of_without_showing_it() {
        let with = |token: &str| BTreeMap::from([("admin_token".to_string(), token.to_string())]);
        let warning = short_admin_token(&with("adm1n")).unwrap();
        assert!(warning.contains("INBOX_ADMIN_TOKEN"), "{warning}");
        assert!(warning.contains("32 characters"), "{warning}");
        assert!(!warning.contains("adm1n"), "{warning}");
        let long = "0123456789abcdef0123456789abcdef";
        assert_eq!(long.len(), MIN_ADMIN_TOKEN_CHARS);
        assert_eq!(short_admin_token(&with(long)), None);
        assert!(short_admin_token(&with(&long[1..])).is_some());
        // Every token of a rotation counts.
        assert!(short_admin_token(&with(format!("{long}, adm1n").as_str())).is_some());
        assert_eq!(short_admin_token(&BTreeMap::new()), None);
    }
}
