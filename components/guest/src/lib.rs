//! What every component needs from its host, written once: its settings
//! (`wasi:config/store`) and a blocking HTTP request (`wasi:http/outgoing-handler`).
//!
//! A component generates its own world's bindings with wit-bindgen's `with` pointing the
//! shared interfaces at [`wasi`] (see [`with_shared_interfaces!`]), so the types here are
//! its types.

pub mod config;
pub mod http;

mod bindings {
    wit_bindgen::generate!({
        world: "guest-support",
        path: "../../wit",
        generate_all,
    });
}

pub use bindings::wasi;

/// Generates a component's bindings for `world`, sharing the interfaces this crate binds:
/// `with_shared_interfaces!("capture", "../../wit")` inside the component's `bindings`
/// module; with a third argument, `world` is one of that WIT text's, which may use the
/// contract's interfaces.
#[macro_export]
macro_rules! with_shared_interfaces {
    ($world:literal, $path:literal) => {
        $crate::with_shared_interfaces!(@generate world: $world, path: $path,);
    };
    ($world:literal, $path:literal, $inline:literal) => {
        $crate::with_shared_interfaces!(@generate world: $world, path: $path, inline: $inline,);
    };
    (@generate $($setting:ident: $value:literal,)*) => {
        wit_bindgen::generate!({
            $($setting: $value,)*
            with: {
                "wasi:config/store@0.2.0-draft-2024-09-27": inbox_guest::wasi::config::store,
                "wasi:http/types@0.2.0": inbox_guest::wasi::http::types,
                "wasi:http/outgoing-handler@0.2.0": inbox_guest::wasi::http::outgoing_handler,
                "wasi:io/error@0.2.0": inbox_guest::wasi::io::error,
                "wasi:io/poll@0.2.0": inbox_guest::wasi::io::poll,
                "wasi:io/streams@0.2.0": inbox_guest::wasi::io::streams,
                "wasi:clocks/monotonic-clock@0.2.0": inbox_guest::wasi::clocks::monotonic_clock,
            },
            generate_all,
        });
    };
}
