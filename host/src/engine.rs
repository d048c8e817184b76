//! The one `wasmtime::Engine`: pooling allocator (or on-demand where the
//! address space is short), epoch interruption, and the clock thread that
//! advances epochs so deadlines fire.

use std::time::Duration;

use anyhow::{Context, Result};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::config::EngineConfig;

/// How the engine allocates instances, as it turned out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allocation {
    /// wasmtime's pooling allocator with this many instance slots.
    Pooling {
        /// Component instance slots reserved.
        slots: u32,
    },
    /// Plain on-demand allocation (the pooling allocator could not reserve
    /// its address space).
    OnDemand,
}

/// The engine and how it was built.
pub(crate) struct EngineHandle {
    pub(crate) engine: Engine,
    pub(crate) allocation: Allocation,
    pub(crate) tick: Duration,
    /// Instances a pool may keep ready beyond its warm target after misses:
    /// the slack the host left in the slots it sized itself, none in slots
    /// an operator counted (`engine.instance_slots`).
    pub(crate) headroom: usize,
}

/// Builds the engine. `slots` is how many component instances may exist at
/// once; `max_memory` the largest memory cap of any component.
pub(crate) fn build(
    config: &EngineConfig,
    slots: u32,
    warm_slots: u32,
    max_memory: u64,
) -> Result<EngineHandle> {
    let tick = Duration::from_millis(config.tick_ms);
    let engine = if config.pooling {
        match Engine::new(
            base_config().allocation_strategy(pooling(config, slots, warm_slots, max_memory)),
        ) {
            Ok(engine) => Some(engine),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), slots, "pooling allocator unavailable; allocating instances on demand");
                None
            }
        }
    } else {
        None
    };
    let (engine, allocation) = match engine {
        Some(engine) => (engine, Allocation::Pooling { slots }),
        None => (
            Engine::new(&base_config())
                .map_err(anyhow::Error::from)
                .context("cannot create the WebAssembly engine")?,
            Allocation::OnDemand,
        ),
    };
    start_clock(&engine, tick)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Ok(EngineHandle {
        engine,
        allocation,
        tick,
        headroom: if config.instance_slots > 0 {
            0
        } else {
            2 * cores
        },
    })
}

fn base_config() -> Config {
    let mut config = crate::compile::settings::config();
    // `perf` names the components' functions (in /tmp/perf-PID.map).
    if std::env::var_os("WARMLANE_PERFMAP").is_some() {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    config
}

fn pooling(
    config: &EngineConfig,
    slots: u32,
    warm_slots: u32,
    max_memory: u64,
) -> InstanceAllocationStrategy {
    let mut pool = PoolingAllocationConfig::new();
    // A Rust wasip2 component holds a handful of core instances (the program
    // and the adapter shims); leave room for larger plugins.
    const CORE_PER_COMPONENT: u32 = 16;
    pool.total_component_instances(slots)
        .total_core_instances(slots.saturating_mul(CORE_PER_COMPONENT))
        .max_core_instances_per_component(CORE_PER_COMPONENT)
        .total_memories(slots.saturating_mul(2))
        .max_memories_per_component(4)
        .total_tables(slots.saturating_mul(4))
        .max_tables_per_component(8)
        .total_stacks(slots)
        .max_memory_size(max_memory as usize)
        .max_component_instance_size(1 << 20)
        .max_core_instance_size(1 << 20)
        // Keep the first pages of reused slots resident, so a taken instance
        // starts without page faults; but only in as many idle slots as the
        // warm pools need, so resident memory does not creep up with use.
        .linear_memory_keep_resident((config.keep_resident_kib as usize) << 10)
        .max_unused_warm_slots(warm_slots)
        // Where the kernel can say which pages a guest wrote (Linux 6.7+),
        // only those are reset, and stay resident for the slot's next
        // instance: fewer page faults on a call's time.
        .pagemap_scan(wasmtime::Enabled::Auto)
        .table_keep_resident(1 << 16);
    InstanceAllocationStrategy::Pooling(pool)
}

/// Advances the engine's epoch every `tick`, until the engine is dropped.
fn start_clock(engine: &Engine, tick: Duration) -> Result<()> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("warmlane-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(tick);
            }
        })
        .context("cannot start the deadline clock thread")?;
    Ok(())
}
