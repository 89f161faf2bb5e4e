//! `wasi:config/store`: the component's settings, from the native host's `INBOX_*`
//! environment as lower-case keys without the prefix (what Spin's variables are named).

use crate::bindings::wasi::config::store as config;
use crate::state::HostState;

impl config::Host for HostState {
    async fn get(&mut self, key: String) -> Result<Option<String>, config::Error> {
        Ok(self.config.get(&key).cloned())
    }

    async fn get_all(&mut self) -> Result<Vec<(String, String)>, config::Error> {
        Ok(self
            .config
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}
