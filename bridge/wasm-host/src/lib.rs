//! The wasm host: one wasmtime engine, each component compiled once and pre-linked, an
//! instance (with a deadline and a memory limit) for every request, used again for later
//! ones, a fresh one for every processing attempt, and the host side of each interface the
//! components import.
//!
//! - [`engine`]: the engine, compiling, the linker, instances' limits; [`precompiled`]:
//!   components compiled ahead of time (`.cwasm`);
//! - [`state`]: what one instance may touch; [`config`], [`store`], [`spin_sqlite`],
//!   [`outgoing`], [`guest_log`]: the interfaces it imports, one module each;
//! - [`files`]: where the component files are; [`compose`]: capture and a store component
//!   made one component, as Spin composes them;
//! - [`capture`], [`processor`]: running the two kinds of component; [`reuse`]: capture
//!   instances kept between requests.

mod bindings;
pub mod capture;
pub mod compose;
pub mod config;
pub mod engine;
pub mod engine_config;
pub mod files;
pub mod guest_log;
pub mod outgoing;
pub mod precompiled;
pub mod processor;
pub mod reuse;
pub mod spin_sqlite;
pub mod sqlite_connection;
pub mod state;
pub mod store;

pub use capture::CaptureHost;
pub use engine::Limits;
pub use files::{ComponentPaths, StoreComponent};
pub use processor::{Named, Processed, ProcessorHost};
pub use wasmtime::Engine;
