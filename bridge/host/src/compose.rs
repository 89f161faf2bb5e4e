//! A capture component and a store component made one component, the way Spin composes a
//! component with its dependencies (`[component.capture.dependencies]` in spin.toml): the
//! store's `webhooks:inbox/store` export plugged into capture's import, with wac-graph.
//! The composition's imports are what is left of both (WASI, `wasi:config`, `spin:sqlite`
//! or outgoing HTTP), which this host provides; its export is capture's HTTP handler.

use anyhow::{Context, Result};
use wac_graph::types::Package;
use wac_graph::{CompositionGraph, EncodeOptions};

pub fn plug_store(capture: &[u8], store: &[u8]) -> Result<Vec<u8>> {
    let mut graph = CompositionGraph::new();
    let socket = Package::from_bytes("inbox:capture", None, capture.to_vec(), graph.types_mut())
        .context("the capture component cannot be read")?;
    let socket = graph.register_package(socket)?;
    let plug = Package::from_bytes("inbox:store", None, store.to_vec(), graph.types_mut())
        .context("the store component cannot be read")?;
    let plug = graph.register_package(plug)?;
    wac_graph::plug(&mut graph, vec![plug], socket)
        .context("it does not export the webhooks:inbox/store capture imports")?;
    graph
        .encode(EncodeOptions::default())
        .context("the composition cannot be encoded")
}
