//! The configuration, read from the environment once for the whole process.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Result;

use crate::aws::ssm;

/// The `INBOX_*` variables as the components read them (lower-case keys without the
/// prefix), shared by every host the command starts.
pub struct Environment {
    pub config: Arc<BTreeMap<String, String>>,
}

impl Environment {
    /// The environment, with the secrets it names in SSM Parameter Store
    /// (`INBOX_SECRET_PARAMETERS`) read in as if it had them: once, at start (on Lambda,
    /// once per cold start). Without such names it is the environment as it is.
    pub async fn read() -> Result<Environment> {
        let mut vars: Vec<(String, String)> = std::env::vars().collect();
        let secrets = ssm::secrets(&vars).await?;
        vars.extend(secrets);
        Ok(Environment {
            config: Arc::new(inbox_core::config::from_env(vars)),
        })
    }
}
