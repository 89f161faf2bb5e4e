//! Settings through `wasi:config/store`: Spin's variables, or the native host's `INBOX_*`
//! environment, under the lower-case keys of `inbox_core::config`.

use inbox_core::config::Config;

use crate::wasi::config::store;

/// The component's settings, as `inbox_core` reads them.
pub struct WasiConfig;

impl Config for WasiConfig {
    fn get(&self, key: &str) -> Option<String> {
        get(key)
    }
}

/// The value of `key`. One the host cannot give is logged (hosts log a component's stderr
/// as its own) and counts as unset, so the setting's default or refusal applies.
pub fn get(key: &str) -> Option<String> {
    match store::get(key) {
        Ok(value) => value,
        Err(error) => {
            eprintln!("the setting `{key}` could not be read: {error:?}");
            None
        }
    }
}

/// Every setting the component can read.
pub fn all() -> Vec<(String, String)> {
    store::get_all().unwrap_or_else(|error| {
        eprintln!("the settings could not be listed: {error:?}");
        Vec::new()
    })
}
