//! Telling components apart and linking them: each is told apart by the
//! `warmlane:worker` interface it exports, and checked against that world's
//! imports and exports before anything runs. (Getting their native code is
//! `compile`'s.)

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
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

    /// The interface a component of this world exports, at the package
    /// version the host implements.
    pub fn interface(self) -> &'static str {
        match self {
            WorldKind::PageParser => "warmlane:worker/page-parser@0.1.1",
            WorldKind::Chunker => "warmlane:worker/chunker@0.1.1",
            WorldKind::Tool => "warmlane:worker/tool@0.1.1",
        }
    }

    /// Whether `export`, an export's name, is this world's interface at a
    /// version the host serves: any `0.1.x`, as wasmtime matches names
    /// (0.1.1 only added functions, so components built against 0.1.0 load).
    pub(crate) fn exported_as(self, export: &str) -> bool {
        let (name, _) = self.interface().split_once('@').expect("versioned");
        export
            .split_once('@')
            .is_some_and(|(n, version)| n == name && version.starts_with("0.1."))
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

/// The step of loading a component at which it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadStage {
    /// Its file could not be read.
    Read,
    /// Its name, or its tool's, is another component's already.
    Name,
    /// It is not a WebAssembly component, or its code could not be made.
    Compile,
    /// It exports no warmlane interface (or several).
    World,
    /// It imports something the host does not provide.
    Imports,
    /// Its exports do not have the world's names and types.
    Exports,
    /// It is a tool whose `describe` failed or described it wrongly.
    Describe,
    /// Its `[components.NAME]` section does not fit what it is.
    Config,
}

impl LoadStage {
    /// The stage as a metric label and in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            LoadStage::Read => "read",
            LoadStage::Name => "name",
            LoadStage::Compile => "compile",
            LoadStage::World => "world",
            LoadStage::Imports => "imports",
            LoadStage::Exports => "exports",
            LoadStage::Describe => "describe",
            LoadStage::Config => "config",
        }
    }

    /// Tags an error with this stage.
    pub(crate) fn of(self) -> impl FnOnce(anyhow::Error) -> LoadError {
        move |error| LoadError { stage: self, error }
    }
}

/// Why a component could not be loaded: the step and what it said.
#[derive(Debug)]
pub(crate) struct LoadError {
    pub(crate) stage: LoadStage,
    pub(crate) error: anyhow::Error,
}

/// Every generated world binding is a pool [`World`] the same way; a tool
/// is primed by describing itself.
macro_rules! pool_world {
    ($world:ty, $pre:ty $(, prime: $prime:expr)?) => {
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
            $(
                fn prime(&self, store: &mut Store<HostState>) -> wasmtime::Result<()> {
                    $prime(self, store)
                }
            )?
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
    crate::bindings::tool::ToolComponentPre<HostState>,
    prime: |tool: &ToolComponent, store: &mut Store<HostState>| tool
        .warmlane_worker_tool()
        .call_describe(store)
        .map(drop)
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
            format!("component `{name}` does not match world `{kind}` whose interface it exports")
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
                crate::upstream::Gate::closed(),
            ),
        );
        store.set_epoch_deadline(u64::MAX / 2);
        W::instantiate(&pre, &mut store)
            .map_err(anyhow::Error::from)
            .with_context(context)?;
        Ok(pre)
    }
}

/// Tells what `component` is and links it.
pub(crate) fn load(
    engine: &Engine,
    linker: &Linker<HostState>,
    name: &str,
    component: &Component,
) -> Result<Loaded, LoadError> {
    let kind = classify(engine, component)
        .with_context(|| format!("component `{name}` implements no warmlane world"))
        .map_err(LoadStage::World.of())?;
    let pre = linker.instantiate_pre(component).map_err(anyhow::Error::from).with_context(|| {
        format!("component `{name}` claims world `{kind}` but imports something the host does not provide")
    }).map_err(LoadStage::Imports.of())?;
    Ok(Loaded {
        name: name.to_string(),
        kind,
        pre,
    })
}

pub(crate) fn classify(engine: &Engine, component: &Component) -> Result<WorldKind> {
    let exports: Vec<String> = component
        .component_type()
        .exports(engine)
        .map(|(name, _)| name.to_string())
        .collect();
    let found: Vec<WorldKind> = WorldKind::ALL
        .into_iter()
        .filter(|k| exports.iter().any(|e| k.exported_as(e)))
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

/// A plugin's name: its file's, without `.wasm`.
pub(crate) fn plugin_name(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The `*.wasm` files of a plugin directory, in name order.
pub(crate) fn plugin_paths(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read plugin directory {}", dir.display()))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
        .collect();
    paths.sort();
    Ok(paths)
}
