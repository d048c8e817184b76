//! warmlane's host library: runs AI-service workers (PDF page parsing, text
//! chunking, agent tools) as pre-warmed WebAssembly components.
//!
//! Start a [`Host`] from a [`Config`]; open documents with
//! [`PdfDocument::open`], submit them to their lane with [`Host::submit`]
//! and collect them with [`Job::run`] (or both at once with
//! [`Host::process`]); call tools with [`Host::call_tool`]. Costly calls
//! draw from [`Budget`]s, in process or in Redis.

#![warn(missing_docs)]

mod bindings;
mod bucket;
mod compile;
mod components;
pub mod config;
mod engine;
mod error;
mod host;
mod inspect;
mod jobs;
mod lanes;
mod memory;
mod meter;
mod metrics;
mod pipeline;
mod pool;
mod redis_conn;
mod schema;
pub mod server;
mod session;
mod state;
mod stats;
mod stderr;
mod telemetry;
mod tools;
mod upstream;

#[doc(hidden)]
pub mod coldstart;

/// Entry points for the fuzz targets (`fuzz/`) and the test suite's short
/// fuzz run.
#[doc(hidden)]
pub mod fuzz {
    pub use crate::schema::fuzz as schema;
}

/// What the benches measure on its own.
#[doc(hidden)]
pub mod bench {
    pub use crate::schema::InputSchema;
}

/// A real `redis-server` for the unit tests, shared with the integration tests.
#[cfg(test)]
#[path = "../../tests/all/redis_server.rs"]
mod redis_server;

/// The built-in components, compiled for `wasm32-wasip2` by the build script.
pub mod builtin {
    include!(concat!(env!("OUT_DIR"), "/builtin.rs"));
}

pub use bucket::{Budget, BudgetStats, Cost, Grant, WaitLimit};
pub use compile::{Origin, Precompiled, precompile};
pub use components::{LoadStage, WorldKind};
pub use config::Config;
pub use engine::Allocation;
pub use error::{BudgetError, CallError, DocumentError, SubmitError, ToolError};
pub use host::{ComponentInfo, Host, Readiness, SkippedPlugin};
pub use inspect::{Check, Import, Verdict};
pub use jobs::SharedJobs;
pub use lanes::{Lane, LaneStats};
pub use pipeline::{ChunkRecord, DocumentOptions, Event, Job, Summary};
pub use pool::PoolStats;
pub use session::{
    CallRecord, IncrementError, MemorySessionStore, RedisSessionStore, SessionId, SessionStore,
    StoreError, Usage,
};
pub use stats::{BUCKETS, Histogram};
pub use tools::{ToolInfo, ToolStats};
pub use warmlane_pdf::{Access, BatchError, Limits as PdfLimits, PdfDocument};
