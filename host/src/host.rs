//! The host: one engine, a warm pool per component, the tools, the session
//! store, and the document pipeline, put together from a [`Config`].

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::bindings::{
    chunker::ChunkerComponent, parser::PageParserComponent, tool::ToolComponent,
};
use crate::builtin;
use crate::components::{self, Loaded, WorldKind};
use crate::config::Config;
use crate::engine::{self, Allocation, EngineHandle};
use crate::error::ToolError;
use crate::pdf::PdfDocument;
use crate::pipeline::{self, DocumentOptions, Event, Summary};
use crate::pool::{Pool, PoolStats};
use crate::session::{MemorySessionStore, SessionBinding, SessionId, SessionStore};
use crate::state::HostState;
use crate::tools::{Tool, ToolInfo};
use wasmtime::component::Linker;

/// The built-in components, by name.
pub(crate) const BUILTINS: [(&str, &[u8]); 4] = [
    ("pdf-pages", builtin::PDF_PAGES),
    ("chunker", builtin::CHUNKER),
    ("text-stats", builtin::TEXT_STATS),
    ("notes", builtin::NOTES),
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
}

/// A running warmlane host.
pub struct Host {
    config: Config,
    pub(crate) engine: EngineHandle,
    pub(crate) linker: Linker<HostState>,
    pub(crate) parsers: BTreeMap<String, Pool<PageParserComponent>>,
    pub(crate) chunkers: BTreeMap<String, Pool<ChunkerComponent>>,
    pub(crate) tools: BTreeMap<String, Tool>,
    components: Vec<ComponentInfo>,
    sessions: Arc<dyn SessionStore>,
}

impl Host {
    /// Starts a host with in-memory sessions. Pools fill in the background;
    /// see [`Host::wait_warm`].
    pub fn new(config: Config) -> Result<Host> {
        let sessions = Arc::new(MemorySessionStore::new(
            config.sessions.max_bytes,
            Duration::from_secs(config.sessions.ttl_secs),
        ));
        Self::with_sessions(config, sessions)
    }

    /// Starts a host whose sessions live in `sessions`.
    pub fn with_sessions(config: Config, sessions: Arc<dyn SessionStore>) -> Result<Host> {
        config.validate()?;
        // Built-ins are borrowed from the binary; only plugins are read into memory.
        let mut sources: Vec<(String, Cow<'static, [u8]>, bool)> = BUILTINS
            .iter()
            .map(|(n, b)| (n.to_string(), Cow::Borrowed(*b), true))
            .collect();
        if let Some(dir) = &config.plugins.dir {
            for (name, bytes) in components::plugin_files(dir)? {
                if sources.iter().any(|(n, _, _)| *n == name) {
                    bail!(
                        "plugin `{name}` in {} has the name of a component already loaded",
                        dir.display()
                    );
                }
                sources.push((name, Cow::Owned(bytes), false));
            }
        }
        for name in config.components.keys() {
            if !sources.iter().any(|(n, _, _)| n == name) {
                let known: Vec<&str> = sources.iter().map(|(n, _, _)| n.as_str()).collect();
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
                .map(|(n, _, _)| config.limits_for(n).warm as u32 + 4 * cores)
                .sum::<u32>()
                + 16
        };
        let max_memory = sources
            .iter()
            .map(|(n, _, _)| config.limits_for(n).memory_bytes())
            .max()
            .unwrap_or(0);
        let warm_slots = sources
            .iter()
            .map(|(n, _, _)| config.limits_for(n).warm as u32 + 1)
            .sum::<u32>();
        let engine = engine::build(&config.engine, slots, warm_slots, max_memory)?;
        let linker = crate::state::linker(&engine.engine)?;
        let cache = if config.engine.compile_cache {
            components::default_cache_dir()
        } else {
            None
        };

        let mut host = Host {
            config,
            engine,
            linker,
            parsers: BTreeMap::new(),
            chunkers: BTreeMap::new(),
            tools: BTreeMap::new(),
            components: Vec::new(),
            sessions,
        };
        for (name, bytes, builtin) in sources {
            let loaded = components::load(
                &host.engine.engine,
                &host.linker,
                cache.as_deref(),
                &name,
                &bytes,
            )?;
            host.components.push(ComponentInfo {
                name: name.clone(),
                world: loaded.kind,
                builtin,
            });
            host.add(loaded)?;
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

    fn add(&mut self, loaded: Loaded) -> Result<()> {
        let name = loaded.name.clone();
        let limits = self.config.limits_for(&name);
        let (engine, tick) = (self.engine.engine.clone(), self.engine.tick);
        let key: Arc<str> = name.as_str().into();
        match loaded.kind {
            WorldKind::PageParser => {
                let pre = loaded.checked::<PageParserComponent>(&self.engine.engine)?;
                self.parsers
                    .insert(name, Pool::new(key, engine, pre, limits, tick));
            }
            WorldKind::Chunker => {
                let pre = loaded.checked::<ChunkerComponent>(&self.engine.engine)?;
                self.chunkers
                    .insert(name, Pool::new(key, engine, pre, limits, tick));
            }
            WorldKind::Tool => {
                let pre = loaded.checked::<ToolComponent>(&self.engine.engine)?;
                let tool = Tool::new(&name, Pool::new(key, engine, pre, limits, tick))?;
                if self.tools.contains_key(&tool.info.name) {
                    bail!(
                        "component `{name}` describes a tool named `{}`, which another component already provides",
                        tool.info.name
                    );
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

    /// The tools, in name order.
    pub fn tools(&self) -> Vec<ToolInfo> {
        self.tools.values().map(|t| t.info.clone()).collect()
    }

    /// Calls tool `name` with `input` (JSON text), in `session` if given.
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
            tool = name,
            session = session.map(SessionId::as_str).unwrap_or("")
        );
        let _enter = span.enter();
        tool.call(input, binding, None)
    }

    /// Document options from the configuration.
    pub fn document_options(&self) -> DocumentOptions {
        let p = &self.config.pipeline;
        DocumentOptions {
            batch_pages: p.batch_pages,
            workers: p.worker_count(),
            chunk_size: p.chunk_size,
            chunk_overlap: p.chunk_overlap,
            chunk_unit: p.chunk_unit,
            emit_pages: false,
        }
    }

    /// Parses and chunks `doc`, sending events to `sink` in page order.
    pub fn process(
        &self,
        doc: &PdfDocument,
        options: &DocumentOptions,
        job: &str,
        sink: &mut dyn FnMut(Event),
    ) -> Summary {
        let parser = &self.parsers[&self.config.pipeline.parser];
        let chunker = &self.chunkers[&self.config.pipeline.chunker];
        let span = tracing::info_span!("job", job, pages = doc.page_count());
        let _enter = span.enter();
        pipeline::run(doc, parser, chunker, options, job.into(), sink)
    }

    /// Reads and opens a PDF file; errors name what was wrong.
    pub fn open_pdf(path: &std::path::Path, password: Option<&str>) -> Result<PdfDocument> {
        let bytes =
            std::fs::read(path).map_err(|e| crate::error::DocumentError::Io(e.to_string()))?;
        PdfDocument::open(bytes, password).context("cannot open the document")
    }
}
