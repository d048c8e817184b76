//! The host: one engine, a warm pool per component, the tools, the session
//! store, the budgets, the lanes, and the document pipeline, put together
//! from a [`Config`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::bindings::{
    chunker::ChunkerComponent, parser::PageParserComponent, tool::ToolComponent,
};
use crate::bucket::{Budget, BudgetStats, Draw, WaitLimit};
use crate::builtin;
use crate::compile::{self, Cache, Origin, Source};
use crate::components::{self, LoadError, LoadStage, Loaded, WorldKind};
use crate::config::{Config, CostRule, PluginErrors};
use crate::engine::{self, Allocation, EngineHandle};
use crate::error::{DocumentError, SubmitError, ToolError};
use crate::inspect::{self, Check};
use crate::lanes::{Lane, LaneStats, Lanes, Start};
use crate::pipeline::budget::{CpuBudget, Size};
use crate::pipeline::parsing::{Parsing, ParsingParts};
use crate::pipeline::{DocCounters, DocumentOptions, Event, Job, Summary};
use crate::pool::{Pool, PoolStats};
use crate::session::{
    CallRecord, MemorySessionStore, RedisSessionStore, SessionBinding, SessionId, SessionStore,
    StoreError, Usage,
};
use crate::state::HostState;
use crate::tools::{Tool, ToolInfo, ToolStats};
use crate::upstream::{Denied, Gate, Traffic, UpstreamStats, Upstreams};
use warmlane_pdf::PdfDocument;
use wasmtime::component::Linker;

/// A built-in component: its name, its bytes, and its native code when the
/// build compiled it.
pub(crate) type Builtin = (&'static str, &'static [u8], Option<&'static [u8]>);

/// The built-in components.
pub(crate) const BUILTINS: [Builtin; 4] = [
    ("pdf-pages", builtin::PDF_PAGES, builtin::PDF_PAGES_NATIVE),
    ("chunker", builtin::CHUNKER, builtin::CHUNKER_NATIVE),
    (
        "text-stats",
        builtin::TEXT_STATS,
        builtin::TEXT_STATS_NATIVE,
    ),
    ("notes", builtin::NOTES, builtin::NOTES_NATIVE),
];

/// A component the host has loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentInfo {
    /// Its name.
    pub name: String,
    /// The world it implements.
    pub world: WorldKind,
    /// Whether it is built in (else it came from the plugin directory).
    pub builtin: bool,
    /// Where its native code came from at start.
    pub origin: Origin,
    /// How long getting its native code took.
    pub load_time: Duration,
    /// Why its code compiled ahead of time was not used, if it was not.
    pub refused: Option<String>,
}

/// A plugin the host started without (`plugins.on_error = "skip"`), or one
/// it refused to start with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedPlugin {
    /// Its name: its file's, without `.wasm`.
    pub name: String,
    /// Its file.
    pub path: PathBuf,
    /// The step of loading it that failed.
    pub stage: LoadStage,
    /// What went wrong, in full.
    pub reason: String,
}

impl SkippedPlugin {
    fn new(name: &str, path: &Path, e: LoadError) -> SkippedPlugin {
        SkippedPlugin {
            name: name.to_string(),
            path: path.to_path_buf(),
            stage: e.stage,
            reason: format!("{:#}", e.error),
        }
    }
}

impl fmt::Display for SkippedPlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "plugin `{}` ({}), at {}: {}",
            self.name,
            self.path.display(),
            self.stage.as_str(),
            self.reason
        )
    }
}

/// Whether a host can serve, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// What stands in the way, one line each; empty when ready.
    pub not_ready: Vec<String>,
    /// The plugins the host serves without (`plugins.on_error = "skip"`);
    /// they do not stand in the way.
    pub skipped: Vec<SkippedPlugin>,
}

impl Readiness {
    /// Whether nothing stands in the way.
    pub fn is_ready(&self) -> bool {
        self.not_ready.is_empty()
    }
}

/// A running warmlane host.
pub struct Host {
    config: Config,
    pub(crate) engine: EngineHandle,
    pub(crate) linker: Linker<HostState>,
    pub(crate) parsers: BTreeMap<String, Arc<Pool<PageParserComponent>>>,
    pub(crate) chunkers: BTreeMap<String, Arc<Pool<ChunkerComponent>>>,
    pub(crate) tools: BTreeMap<String, Tool>,
    components: Vec<ComponentInfo>,
    /// Plugins that could not be loaded, with `plugins.on_error = "skip"`.
    skipped: Vec<SkippedPlugin>,
    sessions: Arc<dyn SessionStore>,
    budgets: BTreeMap<String, Arc<Budget>>,
    /// The HTTP services components may call.
    upstreams: Arc<Upstreams>,
    /// What each component's calls draw, by component name.
    draws: BTreeMap<String, Draw>,
    lanes: Lanes,
    pub(crate) documents: Arc<DocCounters>,
}

impl Host {
    /// Starts a host whose sessions live in Redis when `redis.url` is set,
    /// else in memory. Pools fill in the background; see [`Host::wait_warm`].
    pub fn new(config: Config) -> Result<Host> {
        let (max, ttl, log) = (
            config.sessions.max_bytes,
            Duration::from_secs(config.sessions.ttl_secs),
            config.sessions.call_log,
        );
        let sessions: Arc<dyn SessionStore> = match &config.redis.url {
            None => Arc::new(MemorySessionStore::new(max, ttl, log)),
            Some(url) => Arc::new(
                RedisSessionStore::new(
                    url,
                    &config.redis.key_prefix,
                    max,
                    ttl,
                    log,
                    Duration::from_millis(config.redis.timeout_ms),
                )
                .map_err(|e| anyhow::anyhow!("redis.url is not a Redis URL: {e}"))?,
            ),
        };
        Self::with_sessions(config, sessions)
    }

    /// Starts a host whose sessions live in `sessions`.
    pub fn with_sessions(config: Config, sessions: Arc<dyn SessionStore>) -> Result<Host> {
        config.validate()?;
        // Built-ins are borrowed from the binary; only plugins are read into
        // memory. A plugin carries its path; a built-in none.
        let mut sources: Vec<(Source, Option<PathBuf>)> = BUILTINS
            .iter()
            .map(|(n, wasm, native)| (Source::builtin(n, wasm, *native), None))
            .collect();
        let mut failed: Vec<SkippedPlugin> = Vec::new();
        let mut plugins = match &config.plugins.dir {
            Some(dir) => components::plugin_paths(dir)?,
            None => Vec::new(),
        };
        plugins.extend(config.plugins.files.iter().cloned());
        for path in plugins.iter().cloned() {
            let skip = |name: &str, e: LoadError| SkippedPlugin::new(name, &path, e);
            let name = components::plugin_name(&path);
            let source = match Source::plugin(&path) {
                Ok(source) => source,
                Err(e) => {
                    failed.push(skip(&name, LoadStage::Read.of()(e)));
                    continue;
                }
            };
            if sources.iter().any(|(s, _)| s.name == name) {
                let e = anyhow::anyhow!(
                    "plugin `{name}` ({}) has the name of a component already loaded",
                    path.display()
                );
                failed.push(skip(&name, LoadStage::Name.of()(e)));
                continue;
            }
            sources.push((source, Some(path)));
        }
        for name in config.components.keys() {
            let plugin = failed.iter().any(|f| f.name == *name);
            if !plugin && !sources.iter().any(|(s, _)| s.name == *name) {
                let known: Vec<&str> = sources.iter().map(|(s, _)| s.name.as_str()).collect();
                bail!(
                    "[components.{name}] names no component; the components are: {}",
                    known.join(", ")
                );
            }
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
        let slots = if config.engine.instance_slots > 0 {
            config.engine.instance_slots
        } else {
            sources
                .iter()
                .map(|(s, _)| config.limits_for(&s.name).warm as u32 + 4 * cores)
                .sum::<u32>()
                + 16
        };
        let max_memory = sources
            .iter()
            .map(|(s, _)| config.limits_for(&s.name).memory_bytes())
            .max()
            .unwrap_or(0);
        let warm_slots = sources
            .iter()
            .map(|(s, _)| config.limits_for(&s.name).warm as u32 + 1)
            .sum::<u32>();
        let engine = engine::build(&config.engine, slots, warm_slots, max_memory)?;
        let linker = crate::state::linker(&engine.engine)?;
        let cache = config
            .engine
            .compile_cache_dir()
            .map(|dir| Cache::new(dir, config.engine.compile_cache_mib << 20));

        let budgets = config
            .budgets
            .iter()
            .map(|(name, b)| Ok((name.clone(), Arc::new(Budget::new(name, b, &config.redis)?))))
            .collect::<Result<BTreeMap<_, _>>>()?;
        let upstreams = Arc::new(Upstreams::new(&config, &budgets)?);
        let lanes =
            Lanes::new(config.lane_settings()).context("cannot start the lanes' worker threads")?;

        let mut host = Host {
            config,
            engine,
            linker,
            parsers: BTreeMap::new(),
            chunkers: BTreeMap::new(),
            tools: BTreeMap::new(),
            components: Vec::new(),
            skipped: Vec::new(),
            sessions,
            budgets,
            upstreams,
            draws: BTreeMap::new(),
            lanes,
            documents: Arc::default(),
        };
        for (source, path) in sources {
            match (host.load(&source, path.is_none(), cache.as_ref()), path) {
                (Ok(()), _) => {}
                (Err(e), None) => return Err(e.error),
                (Err(e), Some(path)) => failed.push(SkippedPlugin::new(&source.name, &path, e)),
            }
        }
        host.report_refused();
        if !failed.is_empty() {
            // In the order they were named, whatever step they failed at.
            failed.sort_by_key(|f| plugins.iter().position(|p| *p == f.path));
            match host.config.plugins.on_error {
                PluginErrors::Refuse => {
                    let list: Vec<String> = failed.iter().map(|f| format!("  {f}")).collect();
                    bail!(
                        "{} could not be loaded, so warmlane does not start (plugins.on_error = \"skip\" starts without them):\n{}",
                        match failed.len() {
                            1 => "a plugin".to_string(),
                            n => format!("{n} plugins"),
                        },
                        list.join("\n")
                    );
                }
                PluginErrors::Skip => {
                    for f in &failed {
                        tracing::error!(
                            component = %f.name,
                            path = %f.path.display(),
                            stage = f.stage.as_str(),
                            reason = %f.reason,
                            "plugin skipped: it could not be loaded, and plugins.on_error is skip"
                        );
                    }
                    host.skipped = failed;
                }
            }
        }
        for (role, name, present) in [
            (
                "parser",
                &host.config.pipeline.parser,
                host.parsers.contains_key(&host.config.pipeline.parser),
            ),
            (
                "chunker",
                &host.config.pipeline.chunker,
                host.chunkers.contains_key(&host.config.pipeline.chunker),
            ),
        ] {
            if !present {
                bail!("pipeline.{role} names `{name}`, which is not a loaded {role} component");
            }
        }
        Ok(host)
    }

    /// Loads one component: its native code, its world, its checks against
    /// the world and its configuration, its pool.
    fn load(
        &mut self,
        source: &Source,
        builtin: bool,
        cache: Option<&Cache>,
    ) -> std::result::Result<(), LoadError> {
        let compiled = compile::component(
            &self.engine.engine,
            cache,
            source,
            self.config.engine.compile_at_start,
        )
        .map_err(LoadStage::Compile.of())?;
        self.load_compiled(&source.name, compiled, builtin)
    }

    /// [`load`](Self::load), once the component's native code is there.
    fn load_compiled(
        &mut self,
        name: &str,
        compiled: compile::Compiled,
        builtin: bool,
    ) -> std::result::Result<(), LoadError> {
        let linking = Instant::now();
        let loaded =
            components::load(&self.engine.engine, &self.linker, name, &compiled.component)?;
        drop(compiled.component);
        let kind = loaded.kind;
        let draw = self.draw(name, kind).map_err(LoadStage::Config.of())?;
        self.add(loaded)?;
        if let Some(draw) = draw {
            self.draws.insert(name.to_string(), draw);
        }
        self.components.push(ComponentInfo {
            name: name.to_string(),
            world: kind,
            builtin,
            origin: compiled.origin,
            load_time: compiled.took,
            refused: compiled.refused,
        });
        tracing::info!(
            component = name,
            origin = compiled.origin.as_str(),
            code_ms = compiled.took.as_secs_f64() * 1e3,
            checked_ms = linking.elapsed().as_secs_f64() * 1e3,
            "component loaded"
        );
        Ok(())
    }

    /// Checks the component at `path` as this host would load it as a
    /// plugin, and says what it is: its world and, where it does not fit,
    /// how; its imports and the policy each meets; its size and compile
    /// time. A component that fits is loaded into this host (so a check
    /// also runs a tool's `describe`). Errs only when the file cannot be
    /// read.
    pub fn check_component(&mut self, path: &Path) -> Result<Check> {
        let mut source = Source::plugin(path)?;
        // Compiled afresh, so that the time is what compiling costs.
        source.ahead = compile::Ahead::None;
        let (mut check, compiled) = inspect::inspect(&self.engine.engine, path, &source, |kind| {
            self.reference(kind)
        });
        let name = source.name.as_str();
        if self.components.iter().any(|c| c.name == name) {
            check.problems.push(format!(
                "its name `{name}` (the file's) is a built-in component's; rename the file"
            ));
        }
        if let (true, Some(compiled)) = (check.problems.is_empty(), compiled) {
            match self.load_compiled(name, compiled, false) {
                Ok(()) => {
                    check.tool = self
                        .tools
                        .values()
                        .find(|t| t.info.component == name)
                        .map(|t| t.info.clone());
                }
                Err(e) => check
                    .problems
                    .push(format!("{}: {:#}", e.stage.as_str(), e.error)),
            }
        }
        Ok(check)
    }

    /// Why `component` does not fit world `kind`: what wasmtime's check
    /// said, and each function that differs from the world's, with both
    /// types.
    fn exports_error(
        &self,
        kind: WorldKind,
        component: &wasmtime::component::Component,
        e: anyhow::Error,
    ) -> LoadError {
        let differences = self
            .reference(kind)
            .map(|r| inspect::export_differences(&self.engine.engine, kind, component, r))
            .unwrap_or_default();
        let error = match differences.as_slice() {
            [] => e,
            found => anyhow::anyhow!("{e}: {}", found.join("; ")),
        };
        LoadStage::Exports.of()(error)
    }

    /// A loaded built-in component of world `kind`, whose exports are the
    /// world's by construction.
    fn reference(&self, kind: WorldKind) -> Option<&wasmtime::component::Component> {
        let builtin = |name: &str| self.components.iter().any(|c| c.builtin && c.name == name);
        match kind {
            WorldKind::PageParser => self
                .parsers
                .get("pdf-pages")
                .filter(|_| builtin("pdf-pages"))
                .map(|p| p.pre().instance_pre().component()),
            WorldKind::Chunker => self
                .chunkers
                .get("chunker")
                .filter(|_| builtin("chunker"))
                .map(|p| p.pre().instance_pre().component()),
            WorldKind::Tool => self
                .tools
                .values()
                .find(|t| t.info.component == "text-stats")
                .map(|t| t.pool().pre().instance_pre().component()),
        }
    }

    /// Says, once, which code compiled ahead of time this machine could not
    /// use (the built-ins together: they were built together).
    fn report_refused(&self) {
        let refused = |builtin: bool| {
            self.components
                .iter()
                .filter(move |c| c.builtin == builtin)
                .filter_map(|c| Some((c, c.refused.as_deref()?)))
        };
        if let Some((_, why)) = refused(true).next() {
            let names: Vec<&str> = refused(true).map(|(c, _)| c.name.as_str()).collect();
            let took: Duration = refused(true).map(|(c, _)| c.load_time).sum();
            tracing::warn!(
                components = %names.join(", "),
                reason = why,
                took_ms = took.as_millis() as u64,
                "the built-in components' native code, compiled when warmlane was built, does not fit this machine or engine; compiled them at start instead (build warmlane with WARMLANE_PRECOMPILE_CPU=x86-64-v2 for machines of every x86-64 level)"
            );
        }
        for (c, why) in refused(false) {
            tracing::warn!(
                component = %c.name,
                reason = why,
                took_ms = c.load_time.as_millis() as u64,
                "the plugin's precompiled file does not fit this machine or engine; compiled it at start instead (run `warmlane compile` with this binary)"
            );
        }
    }

    /// What component `name`'s calls draw, if anything, checking that the
    /// cost rule fits what the component is.
    fn draw(&self, name: &str, kind: WorldKind) -> Result<Option<Draw>> {
        let Some(o) = self.config.components.get(name) else {
            return Ok(None);
        };
        let Some(budget) = &o.budget else {
            return Ok(None);
        };
        let rule = match (&o.cost, kind) {
            (None, WorldKind::PageParser) => CostRule::Pages,
            (None, _) => CostRule::Calls,
            (Some(CostRule::Pages), WorldKind::Tool) => {
                bail!("[components.{name}]: cost `pages` counts pages, but `{name}` is a tool")
            }
            (Some(rule @ (CostRule::InputBytes | CostRule::Field(_))), kind)
                if kind != WorldKind::Tool =>
            {
                bail!(
                    "[components.{name}]: cost {rule:?} reads a tool's input, but `{name}` is a {kind:?}"
                )
            }
            (Some(rule), _) => rule.clone(),
        };
        let budget = self.budgets[budget].clone();
        Ok(Some(Draw { budget, rule }))
    }

    fn add(&mut self, loaded: Loaded) -> std::result::Result<(), LoadError> {
        let name = loaded.name.clone();
        let limits = self.config.limits_for(&name);
        let (engine, tick) = (self.engine.engine.clone(), self.engine.tick);
        let most_ready = limits.warm + self.engine.headroom;
        let key: Arc<str> = name.as_str().into();
        let (kind, component) = (loaded.kind, loaded.pre.component().clone());
        let exports = |e| self.exports_error(kind, &component, e);
        let granted = self
            .config
            .components
            .get(&name)
            .map(|o| self.upstreams.granted(&o.upstreams))
            .unwrap_or_else(|| Arc::new([]));
        let gate = Gate::new(self.upstreams.clone(), granted, key.clone());
        match loaded.kind {
            WorldKind::PageParser => {
                let pre = loaded
                    .checked::<PageParserComponent>(&self.engine.engine)
                    .map_err(exports)?;
                self.parsers.insert(
                    name,
                    Arc::new(Pool::new(key, engine, pre, limits, most_ready, tick, gate)),
                );
            }
            WorldKind::Chunker => {
                let pre = loaded
                    .checked::<ChunkerComponent>(&self.engine.engine)
                    .map_err(exports)?;
                self.chunkers.insert(
                    name,
                    Arc::new(Pool::new(key, engine, pre, limits, most_ready, tick, gate)),
                );
            }
            WorldKind::Tool => {
                let pre = loaded
                    .checked::<ToolComponent>(&self.engine.engine)
                    .map_err(exports)?;
                let tool = Tool::new(
                    &name,
                    Pool::new(key, engine, pre, limits, most_ready, tick, gate),
                )
                .map_err(LoadStage::Describe.of())?;
                if self.tools.contains_key(&tool.info.name) {
                    return Err(LoadStage::Name.of()(anyhow::anyhow!(
                        "component `{name}` describes a tool named `{}`, which another component already provides",
                        tool.info.name
                    )));
                }
                self.tools.insert(tool.info.name.clone(), tool);
            }
        }
        Ok(())
    }

    /// Waits until every pool holds its warm instances, or `timeout` passes;
    /// whether they all do.
    pub fn wait_warm(&self, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        let left = || deadline.saturating_duration_since(std::time::Instant::now());
        self.parsers.values().all(|p| p.wait_warm(left()))
            && self.chunkers.values().all(|p| p.wait_warm(left()))
            && self.tools.values().all(|t| t.pool().wait_warm(left()))
    }

    /// How the engine allocates instances.
    pub fn allocation(&self) -> Allocation {
        self.engine.allocation
    }

    /// The configuration the host runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The loaded components.
    pub fn components(&self) -> &[ComponentInfo] {
        &self.components
    }

    /// The plugins the host started without (`plugins.on_error = "skip"`).
    pub fn skipped_plugins(&self) -> &[SkippedPlugin] {
        &self.skipped
    }

    /// Every pool's statistics, by component name.
    pub fn pool_stats(&self) -> Vec<(String, PoolStats)> {
        let mut out: Vec<(String, PoolStats)> = Vec::new();
        out.extend(self.parsers.iter().map(|(n, p)| (n.clone(), p.stats())));
        out.extend(self.chunkers.iter().map(|(n, p)| (n.clone(), p.stats())));
        out.extend(
            self.tools
                .values()
                .map(|t| (t.info.component.clone(), t.stats())),
        );
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Every tool's call figures, in name order.
    pub fn tool_stats(&self) -> Vec<ToolStats> {
        self.tools.values().map(Tool::call_stats).collect()
    }

    /// Everything above, in Prometheus' text format.
    pub fn metrics(&self) -> String {
        crate::metrics::expose(
            vec![Box::new(crate::metrics::HostReport::of(self))],
            crate::metrics::Format::Prometheus,
        )
    }

    /// Whether the host can serve: every pool has been warm, every budget
    /// can be drawn from (its backend answers now, or its policy falls back
    /// locally), and the session store answers. Asks Redis, so it costs a
    /// round trip per budget and one for sessions.
    pub fn readiness(&self) -> Readiness {
        let mut not_ready = Vec::new();
        let pools = self
            .parsers
            .iter()
            .map(|(n, p)| (n, p.warmed(), p.refill_error()))
            .chain(
                self.chunkers
                    .iter()
                    .map(|(n, p)| (n, p.warmed(), p.refill_error())),
            )
            .chain(self.tools.values().map(|t| {
                let pool = t.pool();
                (&t.info.component, pool.warmed(), pool.refill_error())
            }));
        for (name, warmed, error) in pools {
            match (warmed, error) {
                (true, _) => {}
                (false, None) => not_ready.push(format!("component `{name}` is still warming up")),
                (false, Some(why)) => not_ready.push(format!(
                    "component `{name}` cannot be warmed: its instances fail to start ({why})"
                )),
            }
        }
        for b in self.budgets.values() {
            b.probe();
            if !b.ready() {
                not_ready.push(format!(
                    "budget `{}` cannot be drawn: Redis is unreachable and redis.on_unreachable is fail-closed",
                    b.name()
                ));
            }
        }
        let probe = SessionId("readiness-probe".to_string());
        if let Err(e) = self.sessions.exists(&probe) {
            not_ready.push(format!("sessions: {e}"));
        }
        Readiness {
            not_ready,
            skipped: self.skipped.clone(),
        }
    }

    /// The tools, in name order.
    pub fn tools(&self) -> Vec<ToolInfo> {
        self.tools.values().map(|t| t.info.clone()).collect()
    }

    /// Starts a session with a new random id.
    pub fn create_session(&self) -> Result<SessionId, StoreError> {
        let id = SessionId::random();
        self.sessions.create(&id)?;
        Ok(id)
    }

    /// Starts session `id` if it does not exist; whether it was started.
    pub fn open_session(&self, id: &SessionId) -> Result<bool, StoreError> {
        self.sessions.create(id)
    }

    /// Ends session `id` and forgets its state; whether it existed.
    pub fn delete_session(&self, id: &SessionId) -> Result<bool, StoreError> {
        for tool in self.tools.values() {
            tool.pool().forget_session(id);
        }
        self.sessions.remove(id)
    }

    /// Session `id`'s keys, in order (the host's own left out).
    pub fn session_keys(&self, id: &SessionId) -> Result<Vec<String>, StoreError> {
        let mut keys = self.sessions.list_keys(id)?;
        keys.retain(|k| !crate::session::is_host_key(k));
        Ok(keys)
    }

    /// What session `id`'s tool calls have cost so far.
    pub fn session_usage(&self, id: &SessionId) -> Result<Usage, StoreError> {
        self.sessions.usage(id)
    }

    /// Where sessions live.
    pub fn sessions(&self) -> &Arc<dyn SessionStore> {
        &self.sessions
    }

    /// Calls tool `name` with `input` (JSON text), in `session` if given
    /// (which must exist: see [`Host::create_session`]). The call's time
    /// and budget tokens are added to the session's usage.
    pub fn call_tool(
        &self,
        name: &str,
        input: &str,
        session: Option<&SessionId>,
    ) -> Result<String, ToolError> {
        let tool = self
            .tools
            .get(name)
            .ok_or_else(|| ToolError::UnknownTool(name.to_string()))?;
        let binding = session.map(|id| SessionBinding {
            id: id.clone(),
            store: self.sessions.clone(),
        });
        let span = tracing::info_span!(
            "tool",
            otel.name = %format_args!("tool {name}"),
            otel.status_code = tracing::field::Empty,
            tool = name,
            component = %tool.info.component,
            session = session.map(SessionId::as_str).unwrap_or(""),
            outcome = tracing::field::Empty,
            error = tracing::field::Empty,
            duration_ms = tracing::field::Empty,
            cpu_ms = tracing::field::Empty,
            tokens = tracing::field::Empty,
            trace_id = tracing::field::Empty,
        );
        crate::telemetry::mark(&span);
        let _enter = span.enter();
        if let Some(id) = session
            && !self.sessions.exists(id).map_err(ToolError::Session)?
        {
            return Err(ToolError::Session(StoreError::NoSession));
        }
        let started = Instant::now();
        let at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let cpu = cpu_time::ThreadTime::try_now().ok();
        let traffic = Arc::default();
        let (result, tokens) = self.pay_and_call(tool, input, binding, &traffic);
        // The instance ran on this thread: its CPU time is this thread's.
        let cpu_nanos = cpu
            .zip(cpu_time::ThreadTime::try_now().ok())
            .map_or(0, |(a, b)| {
                b.as_duration().saturating_sub(a.as_duration()).as_nanos() as u64
            });
        let call = CallRecord {
            tool: name.to_string(),
            at_ms,
            micros: started.elapsed().as_micros() as u64,
            cpu_nanos,
            tokens,
            requests: traffic.requests.load(std::sync::atomic::Ordering::Relaxed),
            error: result
                .as_ref()
                .err()
                .map(|e| CallRecord::error_text(&e.to_string())),
        };
        span.record("outcome", if result.is_ok() { "ok" } else { "error" });
        if let Some(error) = &call.error {
            span.record("error", error.as_str());
            span.record("otel.status_code", "ERROR");
        }
        span.record("duration_ms", call.micros as f64 / 1e3);
        span.record("cpu_ms", cpu_nanos as f64 / 1e6);
        span.record("tokens", tokens);
        tool.record(result.is_ok(), &call.usage());
        if let Some(id) = session
            && let Err(e) = self.sessions.record(id, &call)
        {
            tracing::warn!(session = %id, "the call was not recorded in its session: {e}");
        }
        result
    }

    /// Session `id`'s last `limit` tool calls, oldest first (as many as
    /// `sessions.call_log` keeps).
    pub fn session_calls(
        &self,
        id: &SessionId,
        limit: usize,
    ) -> Result<Vec<CallRecord>, StoreError> {
        self.sessions.calls(id, limit)
    }

    /// Draws the call's cost from the tool's budget, if it has one, and
    /// calls it; the result and the tokens kept.
    fn pay_and_call(
        &self,
        tool: &Tool,
        input: &str,
        binding: Option<SessionBinding>,
        traffic: &Arc<Traffic>,
    ) -> (Result<String, ToolError>, u64) {
        // Input that cannot be valid costs nothing.
        let value = match tool.check(input) {
            Ok(value) => value,
            Err(e) => return (Err(e), 0),
        };
        let charge = match self.draws.get(&tool.info.component) {
            None => None,
            Some(d) => {
                let cost = match d.for_input(input, &value) {
                    Ok(cost) => cost,
                    Err(why) => return (Err(ToolError::InvalidInput(why)), 0),
                };
                // A tool call waits for its budget no longer than it may run.
                let limit = WaitLimit::AtMost(tool.pool().limits().deadline());
                match d.charge(Lane::Light, cost, limit) {
                    Ok(charge) => Some(charge),
                    Err(e) => return (Err(e.into()), 0),
                }
            }
        };
        let result = tool.call(input, binding, None, traffic);
        let upstream = traffic.tokens.load(std::sync::atomic::Ordering::Relaxed);
        match (&result, charge) {
            // No instance could be made: the tool never ran.
            (Err(ToolError::Call(crate::CallError::PoolExhausted { .. })), Some(c)) => {
                c.refund();
                (result, upstream)
            }
            (_, charge) => (result, charge.map_or(0, |c| c.cost().0) + upstream),
        }
    }

    /// Document options from the configuration.
    pub fn document_options(&self) -> DocumentOptions {
        let p = &self.config.pipeline;
        DocumentOptions {
            batch_pages: p.batch_pages,
            chunk_size: p.chunk_size,
            chunk_overlap: p.chunk_overlap,
            chunk_unit: p.chunk_unit,
            emit_pages: false,
        }
    }

    /// Puts `doc` in the lane its size calls for and starts parsing it as
    /// soon as it has its turn; [`Job::run`] collects the results. Refused
    /// when the lane's queue is full.
    pub fn submit(
        &self,
        doc: impl Into<Arc<PdfDocument>>,
        options: &DocumentOptions,
        job: &str,
    ) -> Result<Job, SubmitError> {
        self.submit_for(doc.into(), options, job, Start::Workers)
    }

    /// [`Host::submit`], with `start` saying who takes a light job's first
    /// turn (a heavy job's caller never does).
    fn submit_for(
        &self,
        doc: Arc<PdfDocument>,
        options: &DocumentOptions,
        job: &str,
        start: Start,
    ) -> Result<Job, SubmitError> {
        let submitted = Instant::now();
        let pipeline = &self.config.pipeline;
        let pages = doc.page_count();
        let lane = self.lanes.settings().classify(pages);
        let ranges = Parsing::ranges(pages, options.batch_pages);
        let batches = ranges.len();
        let id: Arc<str> = job.into();
        let cancel = Arc::new(AtomicBool::new(false));
        let (results_tx, results) = mpsc::channel();
        let span = tracing::info_span!(
            "job",
            job,
            lane = %lane,
            pages,
            trace_id = tracing::field::Empty,
        );
        crate::telemetry::mark(&span);
        let parsing = Parsing::new(
            ParsingParts {
                doc,
                parser: self.parsers[&pipeline.parser].clone(),
                draw: self.draws.get(&pipeline.parser).cloned(),
                job: id.clone(),
                lane,
                cancel: cancel.clone(),
                budget: Arc::new(CpuBudget::new(Size::parsing(pipeline, pages))),
                retry_cpu: Duration::from_millis(pipeline.page_retry_cpu_ms),
                batch_cpu_per_page: Duration::from_millis(pipeline.cpu_ms_per_page) / 4,
                counters: self.documents.clone(),
                results: results_tx,
                span: span.clone(),
            },
            ranges,
        );
        let start = if lane == Lane::Light {
            start
        } else {
            Start::Workers
        };
        let ticket = self.lanes.submit(lane, batches, Arc::new(parsing), start)?;
        tracing::debug!(job, %lane, pages, "job accepted");
        Ok(Job {
            id,
            pages,
            submitted,
            ticket,
            results,
            chunker: self.chunkers[&pipeline.chunker].clone(),
            chunk_draw: self.draws.get(&pipeline.chunker).cloned(),
            options: options.clone(),
            cancel,
            chunk_cpu: CpuBudget::new(Size::chunking(pipeline, pages)),
            max_page_text: self.pdf_limits().page_text_bytes,
            chunk_input: usize::try_from(pipeline.chunk_input_kib << 10).unwrap_or(usize::MAX),
            counters: self.documents.clone(),
            span,
        })
    }

    /// Submits `doc` and runs it to the end on this thread, sending events
    /// to `sink` in page order.
    pub fn process(
        &self,
        doc: impl Into<Arc<PdfDocument>>,
        options: &DocumentOptions,
        job: &str,
        sink: &mut dyn FnMut(Event),
    ) -> Result<Summary, SubmitError> {
        // This thread collects the results at once: a light job's turn is
        // its to take, and no worker need be woken for it.
        Ok(self
            .submit_for(doc.into(), options, job, Start::Caller)?
            .run(sink))
    }

    /// The pipeline's parser, and the budget its calls draw from.
    pub(crate) fn parser(&self) -> (&Arc<Pool<PageParserComponent>>, Option<&Draw>) {
        let name = &self.config.pipeline.parser;
        (&self.parsers[name], self.draws.get(name))
    }

    /// The pipeline's chunker, and the budget its calls draw from.
    pub(crate) fn chunker(&self) -> (&Arc<Pool<ChunkerComponent>>, Option<&Draw>) {
        let name = &self.config.pipeline.chunker;
        (&self.chunkers[name], self.draws.get(name))
    }

    /// The lanes' sizes.
    pub(crate) fn lane_settings(&self) -> &crate::lanes::Settings {
        self.lanes.settings()
    }

    /// The lane `doc` would go to.
    pub fn lane_for(&self, doc: &PdfDocument) -> Lane {
        self.lanes.settings().classify(doc.page_count())
    }

    /// Both lanes' figures, light first.
    pub fn lane_stats(&self) -> [LaneStats; 2] {
        self.lanes.stats()
    }

    /// Every budget's figures, by name.
    pub fn budget_stats(&self) -> Vec<BudgetStats> {
        self.budgets.values().map(|b| b.stats()).collect()
    }

    /// Every upstream's figures, and requests denied by component.
    pub(crate) fn upstream_stats(&self) -> (Vec<UpstreamStats>, Denied) {
        self.upstreams.stats()
    }

    /// The budgets, by name.
    pub fn budgets(&self) -> impl Iterator<Item = &Arc<Budget>> {
        self.budgets.values()
    }

    /// Opens a PDF from its bytes under the configured `[pdf]` limits.
    pub fn open_document(
        &self,
        bytes: Vec<u8>,
        password: Option<&str>,
    ) -> Result<PdfDocument, DocumentError> {
        PdfDocument::open_with(bytes, password, self.pdf_limits())
    }

    /// The `[pdf]` limits documents are read under, as the page parser's
    /// memory cap allows them.
    pub fn pdf_limits(&self) -> warmlane_pdf::Limits {
        let parser = self.config.limits_for(&self.config.pipeline.parser);
        self.config.pdf.limits_for_parser(parser.memory_bytes())
    }

    /// Reads and opens a PDF file under the configured `[pdf]` limits;
    /// errors name what was wrong.
    pub fn open_pdf(&self, path: &std::path::Path, password: Option<&str>) -> Result<PdfDocument> {
        let bytes = std::fs::read(path).map_err(|e| DocumentError::Io(e.to_string()))?;
        self.open_document(bytes, password)
            .context("cannot open the document")
    }
}
