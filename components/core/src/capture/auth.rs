//! The admin endpoints' bearer token check.

use crate::Problem;
use crate::config::{Config, describe};
use crate::provider::Headers;

/// Checks `Authorization: Bearer <admin_token>` for the admin endpoints. Without a
/// configured token they are closed (403); a missing or wrong token is a 401.
pub fn authorize_admin(headers: &Headers, config: &dyn Config) -> Result<(), Problem> {
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
        assert_eq!(authorize_admin(&bearer("Bearer adm1n"), &config()), Ok(()));
        assert_eq!(
            authorize_admin(&bearer("Bearer nope"), &config())
                .unwrap_err()
                .status,
            401
        );
        assert_eq!(
            authorize_admin(&bearer("adm1n"), &config())
                .unwrap_err()
                .status,
            401
        );
        assert_eq!(
            authorize_admin(&Headers::default(), &config())
                .unwrap_err()
                .status,
            401
        );
        let closed = authorize_admin(&bearer("Bearer adm1n"), &BTreeMap::new()).unwrap_err();
        assert_eq!(closed.status, 403);
        assert!(closed.detail.contains("INBOX_ADMIN_TOKEN"));
    }
}
