//! A fresh instance per request and per attempt: what instantiating the capture, the
//! processor and the store components costs, pre-linked, from the engine's instance pool,
//! with the limits every instance gets. Needs the components built (`build_components`, scripts/env.sh).
//! `cargo bench -p inbox-wasm-host --bench instantiate`

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use inbox_wasm_host::engine::{self, CodeCache};
use inbox_wasm_host::state::HostState;

/// Where the workspace's build puts the components, beside this bench's target directory.
fn component(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let release = exe.ancestors().nth(3).unwrap();
    let path = release.join(format!("wasm32-wasip2/release/{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: build the components first",
        path.display()
    );
    path
}

fn instantiate(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // The baseline, in the same run: wasmtime's default allocator, which maps and unmaps
    // each instance's memory, tables and stack.
    let on_demand = {
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        wasmtime::Engine::new(&config).unwrap()
    };
    let pooled = engine::new(CodeCache::OnDisk).unwrap();
    for (allocator, engine) in [("pooled", pooled), ("on demand", on_demand)] {
        let mut linker = engine::linker(&engine).unwrap();
        inbox_wasm_host::store::add_to_linker(&mut linker).unwrap();
        inbox_wasm_host::spin_sqlite::add_to_linker(&mut linker).unwrap();
        for name in [
            "inbox_capture",
            "inbox_processor",
            "inbox_store_sqlite",
            "inbox_store_dynamodb",
        ] {
            let compiled = engine::compile(&engine, &component(name)).unwrap();
            let pre = linker.instantiate_pre(&compiled.component).unwrap();
            let config = Arc::default();
            c.bench_function(&format!("instantiate {name} ({allocator})"), |b| {
                b.to_async(&runtime).iter(|| async {
                    let state = HostState::new("bench", Arc::clone(&config), 64 << 20);
                    let mut store = engine::store(&engine, state, Duration::from_secs(10));
                    pre.instantiate_async(&mut store).await.unwrap()
                })
            });
        }
    }
}

criterion_group!(benches, instantiate);
criterion_main!(benches);
