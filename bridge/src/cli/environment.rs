//! The configuration, read from the environment once for the whole process.

use std::collections::BTreeMap;
use std::sync::Arc;

/// The `INBOX_*` variables as the components read them (lower-case keys without the
/// prefix), shared by every host the command starts.
pub struct Environment {
    pub config: Arc<BTreeMap<String, String>>,
}

impl Environment {
    pub fn read() -> Environment {
        Environment {
            config: Arc::new(inbox_core::config::from_env(std::env::vars())),
        }
    }
}
