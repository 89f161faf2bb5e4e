//! A capture component and a store component made one component, the way Spin composes a
//! component with its dependencies (`[component.capture.dependencies]` in spin.toml): the
//! store's `webhooks:inbox/store` export plugged into capture's import, with wac-graph.
//! The composition's imports are what is left of both (WASI, outgoing HTTP, `spin:sqlite`),
//! which this host provides; its export is capture's HTTP handler.
//!
//! The two keep their own configuration: the store's `wasi:config/store` import becomes the
//! composition's [`STORE_CONFIG`] import (of the same interface type), which the host serves with the store's keys only,
//! so capture never sees the store's credentials (nor the store capture's secrets).

use anyhow::{Context, Result};
use wac_graph::types::{ItemKind, Package};
use wac_graph::{CompositionGraph, EncodeOptions};

const STORE_INTERFACE: &str = "webhooks:inbox/store@0.1.0";
const CONFIG_INTERFACE: &str = "wasi:config/store@0.2.0-draft-2024-09-27";
/// The import name of the store component's configuration in the composition (an
/// interface name: a plain label would need the component model's `implements`, which
/// wasmtime does not enable).
pub const STORE_CONFIG: &str = "webhooks:inbox/store-config@0.1.0";

pub fn plug_store(capture: &[u8], store: &[u8]) -> Result<Vec<u8>> {
    let mut graph = CompositionGraph::new();
    let capture = Package::from_bytes("inbox:capture", None, capture.to_vec(), graph.types_mut())
        .context("the capture component cannot be read")?;
    let capture = graph.register_package(capture)?;
    let store = Package::from_bytes("inbox:store", None, store.to_vec(), graph.types_mut())
        .context("the store component cannot be read")?;
    let store = graph.register_package(store)?;

    let store_instance = graph.instantiate(store);
    let store_config = graph.types()[graph[store].ty()]
        .imports
        .get(CONFIG_INTERFACE)
        .copied();
    if let Some(ItemKind::Instance(interface)) = store_config {
        // The same interface under its own id: wac-graph imports an interface once, so an
        // import of `wasi:config/store` itself would be capture's too.
        let mut own = graph.types()[interface].clone();
        own.id = Some(STORE_CONFIG.to_owned());
        let own = graph.types_mut().add_interface(own);
        let config = graph.import(STORE_CONFIG, ItemKind::Instance(own))?;
        graph.set_instantiation_argument(store_instance, CONFIG_INTERFACE, config)?;
    }
    let exported = graph
        .alias_instance_export(store_instance, STORE_INTERFACE)
        .with_context(|| format!("it does not export {STORE_INTERFACE}"))?;

    let capture_instance = graph.instantiate(capture);
    graph
        .set_instantiation_argument(capture_instance, STORE_INTERFACE, exported)
        .with_context(|| format!("its {STORE_INTERFACE} is not the one capture imports"))?;
    let exports: Vec<String> = graph.types()[graph[capture].ty()]
        .exports
        .keys()
        .cloned()
        .collect();
    for name in exports {
        let export = graph.alias_instance_export(capture_instance, &name)?;
        graph.export(export, &name)?;
    }
    graph
        .encode(EncodeOptions::default())
        .context("the composition cannot be encoded")
}
