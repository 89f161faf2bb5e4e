//! `wasi:config/store`: the component's settings, from the native host's `INBOX_*`
//! environment as lower-case keys without the prefix (what Spin's variables are named),
//! each component seeing only its own (`inbox_core::scope`). A store component composed
//! with capture reads its own through the composition's `store-config` import
//! (`crate::compose::STORE_CONFIG`).

use anyhow::Result;
use wasmtime::component::{HasSelf, Linker};

use crate::bindings::wasi::config::store as config;
use crate::compose::STORE_CONFIG;
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

/// Adds `wasi:config/store`, which every component is linked with.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> Result<()> {
    config::add_to_linker::<_, HasSelf<HostState>>(linker, |state| state)?;
    Ok(())
}

/// Serves the store-config import of a composition (`crate::compose`): the same interface
/// as `wasi:config/store`, over the store component's keys.
pub fn add_store_config(linker: &mut Linker<HostState>) -> Result<()> {
    let mut instance = linker.instance(STORE_CONFIG)?;
    instance.func_wrap_async("get", |store, (key,): (String,)| {
        let value = store.data().store_config.get(&key).cloned();
        Box::new(async move { Ok((Ok::<_, config::Error>(value),)) })
    })?;
    instance.func_wrap_async("get-all", |store, (): ()| {
        let all: Vec<(String, String)> = store
            .data()
            .store_config
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Box::new(async move { Ok((Ok::<_, config::Error>(all),)) })
    })?;
    Ok(())
}
