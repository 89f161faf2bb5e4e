//! Host-side bindings of our own interfaces in the WIT contract. The `wasi:*` interfaces
//! are linked from wasmtime-wasi and wasmtime-wasi-http; the capture component's
//! `wasi:http/incoming-handler` export is called through wasmtime-wasi-http's `ProxyPre`.
//! `spin:sqlite` is Spin's, provided here so the store component Spin composes with the
//! capture component runs in this host too.

wasmtime::component::bindgen!({
    path: "../../wit",
    interfaces: "
        import wasi:config/store@0.2.0-draft-2024-09-27;
        import webhooks:inbox/store@0.1.0;
        import spin:sqlite/sqlite@3.0.0;
        export webhooks:inbox/handler@0.1.0;
        export webhooks:inbox/destinations@0.1.0;
    ",
    imports: { default: async },
    exports: { default: async },
    with: {
        "spin:sqlite/sqlite.connection": crate::sqlite_connection::SqliteConnection,
    },
});

inbox_core::wit_conversions!(webhooks::inbox::types);
inbox_core::store_error_conversion!(webhooks::inbox::store);
inbox_core::destination_conversions!(webhooks::inbox::store);
