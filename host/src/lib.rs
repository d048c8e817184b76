//! warmlane's host library: runs AI-service workers (PDF page parsing, text
//! chunking, agent tools) as pre-warmed WebAssembly components.
//!
//! Start a [`Host`] from a [`Config`]; open documents with
//! [`PdfDocument::open`] and run them through [`Host::process`]; call tools
//! with [`Host::call_tool`].

#![warn(missing_docs)]

mod bindings;
mod components;
pub mod config;
mod engine;
mod error;
mod host;
mod pdf;
mod pipeline;
mod pool;
mod session;
mod state;
mod tools;

#[doc(hidden)]
pub mod coldstart;

/// The built-in components, compiled for `wasm32-wasip2` by the build script.
pub mod builtin {
    include!(concat!(env!("OUT_DIR"), "/builtin.rs"));
}

pub use components::WorldKind;
pub use config::Config;
pub use engine::Allocation;
pub use error::{CallError, DocumentError, ToolError};
pub use host::{ComponentInfo, Host};
pub use pdf::{Access, PdfDocument};
pub use pipeline::{ChunkRecord, DocumentOptions, Event, Summary};
pub use pool::{ACQUIRE_BUCKETS, PoolStats};
pub use session::{MemorySessionStore, SessionId, SessionStore, StoreError};
pub use tools::ToolInfo;
