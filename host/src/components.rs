//! Loading components: the built-ins and a plugin directory. Each component
//! is compiled once (through an on-disk cache), told apart by the
//! `warmlane:worker` interface it exports, and checked against that world's
//! imports and exports before anything runs.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use wasmtime::component::{Component, InstancePre, Linker};
use wasmtime::{Engine, Store};

use crate::bindings::{
    chunker::ChunkerComponent, parser::PageParserComponent, tool::ToolComponent,
};
use crate::pool::World;
use crate::state::HostState;

/// The worlds of `wit/worker.wit` a component can implement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum WorldKind {
    /// `page-parser-component`.
    PageParser,
    /// `chunker-component`.
    Chunker,
    /// `tool-component`.
    Tool,
}

impl WorldKind {
    const ALL: [WorldKind; 3] = [WorldKind::PageParser, WorldKind::Chunker, WorldKind::Tool];

    /// The interface a component of this world exports.
    pub fn interface(self) -> &'static str {
        match self {
            WorldKind::PageParser => "warmlane:worker/page-parser@0.1.0",
            WorldKind::Chunker => "warmlane:worker/chunker@0.1.0",
            WorldKind::Tool => "warmlane:worker/tool@0.1.0",
        }
    }

    /// The world's name in the WIT package.
    pub fn world(self) -> &'static str {
        match self {
            WorldKind::PageParser => "page-parser-component",
            WorldKind::Chunker => "chunker-component",
            WorldKind::Tool => "tool-component",
        }
    }
}

impl fmt::Display for WorldKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.world())
    }
}

/// Every generated world binding is a pool [`World`] the same way.
macro_rules! pool_world {
    ($world:ty, $pre:ty) => {
        impl World for $world {
            type Pre = $pre;
            fn pre(pre: InstancePre<HostState>) -> wasmtime::Result<Self::Pre> {
                <$pre>::new(pre)
            }
            fn instantiate(
                pre: &Self::Pre,
                store: &mut Store<HostState>,
            ) -> wasmtime::Result<Self> {
                pre.instantiate(store)
            }
        }
    };
}

pool_world!(
    PageParserComponent,
    crate::bindings::parser::PageParserComponentPre<HostState>
);
pool_world!(
    ChunkerComponent,
    crate::bindings::chunker::ChunkerComponentPre<HostState>
);
pool_world!(
    ToolComponent,
    crate::bindings::tool::ToolComponentPre<HostState>
);

/// A compiled component whose imports the linker satisfies.
pub(crate) struct Loaded {
    pub(crate) name: String,
    pub(crate) kind: WorldKind,
    pub(crate) pre: InstancePre<HostState>,
}

impl Loaded {
    /// Checks the exports against the claimed world, names and types (by
    /// one trial instantiation), and readies a pool's `Pre`.
    pub(crate) fn checked<W: World>(self, engine: &Engine) -> Result<W::Pre> {
        let (name, kind) = (self.name, self.kind);
        let context = || {
            format!(
                "component `{name}` exports {} but does not match world `{kind}`",
                kind.interface()
            )
        };
        let pre = W::pre(self.pre)
            .map_err(anyhow::Error::from)
            .with_context(context)?;
        let mut store = Store::new(
            engine,
            HostState::new(
                name.as_str().into(),
                1 << 30,
                std::time::Duration::from_millis(5),
            ),
        );
        store.set_epoch_deadline(u64::MAX / 2);
        W::instantiate(&pre, &mut store)
            .map_err(anyhow::Error::from)
            .with_context(context)?;
        Ok(pre)
    }
}

/// Compiles (or loads from the cache) and links one component.
pub(crate) fn load(
    engine: &Engine,
    linker: &Linker<HostState>,
    cache: Option<&Path>,
    name: &str,
    bytes: &[u8],
) -> Result<Loaded> {
    let component = compile(engine, cache, name, bytes)?;
    let kind = classify(engine, &component)
        .with_context(|| format!("component `{name}` implements no warmlane world"))?;
    let pre = linker.instantiate_pre(&component).map_err(anyhow::Error::from).with_context(|| {
        format!("component `{name}` claims world `{kind}` but imports something the host does not provide")
    })?;
    Ok(Loaded {
        name: name.to_string(),
        kind,
        pre,
    })
}

fn classify(engine: &Engine, component: &Component) -> Result<WorldKind> {
    let exports: Vec<String> = component
        .component_type()
        .exports(engine)
        .map(|(name, _)| name.to_string())
        .collect();
    let found: Vec<WorldKind> = WorldKind::ALL
        .into_iter()
        .filter(|k| exports.iter().any(|e| e == k.interface()))
        .collect();
    match found.as_slice() {
        [kind] => Ok(*kind),
        [] => {
            let wanted: Vec<&str> = WorldKind::ALL.iter().map(|k| k.interface()).collect();
            bail!(
                "it exports [{}]; a warmlane component exports one of [{}]",
                exports.join(", "),
                wanted.join(", ")
            )
        }
        many => bail!(
            "it exports several warmlane interfaces ({many:?}); a component implements one world"
        ),
    }
}

/// Compiles `bytes`, reusing a compiled artifact from `cache` when the same
/// bytes were compiled before by a compatible engine.
fn compile(engine: &Engine, cache: Option<&Path>, name: &str, bytes: &[u8]) -> Result<Component> {
    let compile = || {
        Component::new(engine, bytes)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("component `{name}` is not a valid WebAssembly component"))
    };
    let Some(dir) = cache else { return compile() };
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    bytes.hash(&mut hasher);
    let path = dir.join(format!("{name}-{:016x}.cwasm", hasher.finish()));
    if path.exists() {
        // SAFETY: the file was written by `Component::serialize` from this
        // very engine configuration (its compatibility hash is in the file
        // name) into warmlane's own cache directory; wasmtime additionally
        // checks the header. A file that fails to load is recompiled.
        #[allow(unsafe_code)]
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => return Ok(component),
            Err(e) => {
                tracing::warn!(component = name, error = %e, "ignoring a stale compile cache entry")
            }
        }
    }
    let component = compile()?;
    if let Err(e) = store_cached(&component, dir, &path) {
        tracing::debug!(component = name, error = %format!("{e:#}"), "cannot write the compile cache");
    }
    Ok(component)
}

fn store_cached(component: &Component, dir: &Path, path: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let bytes = component.serialize().map_err(|e| anyhow!("{e}"))?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// The default compile cache: `$XDG_CACHE_HOME/warmlane` or `~/.cache/warmlane`.
pub(crate) fn default_cache_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|d| d.join("warmlane"))
}

/// The `*.wasm` files of a plugin directory, in name order, as (name, bytes).
pub(crate) fn plugin_files(dir: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read plugin directory {}", dir.display()))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let name = p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let bytes =
                std::fs::read(&p).with_context(|| format!("cannot read plugin {}", p.display()))?;
            Ok((name, bytes))
        })
        .collect()
}
