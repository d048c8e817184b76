//! Getting a component's native code at start for the least work: the
//! built-ins' code compiled by the build and embedded in the binary, a
//! plugin's precompiled file beside it (`warmlane compile`), the bounded
//! compile cache, and compiling only when none of those fits this machine
//! and engine.

mod cache;
pub(crate) mod settings;

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

pub(crate) use cache::Cache;

/// Where a component's native code came from when the host started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Compiled when the binary was built, and embedded in it.
    Embedded,
    /// A file beside the plugin, written by `warmlane compile`.
    Precompiled,
    /// The compile cache, from an earlier start on this machine.
    Cached,
    /// Compiled at start.
    Compiled,
}

impl Origin {
    /// The name metrics and logs use.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Embedded => "embedded",
            Origin::Precompiled => "precompiled",
            Origin::Cached => "cached",
            Origin::Compiled => "compiled",
        }
    }
}

/// A component to load: its WebAssembly bytes and any native code compiled
/// for it ahead of time.
pub(crate) struct Source {
    pub(crate) name: String,
    pub(crate) wasm: Cow<'static, [u8]>,
    pub(crate) ahead: Ahead,
    digest: std::cell::OnceCell<String>,
}

impl Source {
    /// A built-in, with the native code the build embedded (if it did).
    pub(crate) fn builtin(
        name: &str,
        wasm: &'static [u8],
        native: Option<&'static [u8]>,
    ) -> Source {
        Source {
            name: name.to_string(),
            wasm: Cow::Borrowed(wasm),
            ahead: native.map_or(Ahead::None, Ahead::Embedded),
            digest: Default::default(),
        }
    }

    /// The plugin at `path`, with its precompiled file if one for exactly
    /// these bytes lies beside it.
    pub(crate) fn plugin(path: &Path) -> Result<Source> {
        let name = crate::components::plugin_name(path);
        let wasm = std::fs::read(path)
            .with_context(|| format!("cannot read plugin {}", path.display()))?;
        let source = Source {
            name,
            wasm: Cow::Owned(wasm),
            ahead: Ahead::None,
            digest: Default::default(),
        };
        let precompiled = precompiled_path(path, source.digest());
        Ok(Source {
            ahead: if precompiled.exists() {
                Ahead::File(precompiled)
            } else {
                Ahead::None
            },
            ..source
        })
    }

    /// The digest of the component's bytes (computed once, when needed).
    fn digest(&self) -> &str {
        self.digest.get_or_init(|| digest(&self.wasm))
    }
}

/// Native code compiled before the host started.
pub(crate) enum Ahead {
    /// None: compile (or find it in the cache).
    None,
    /// Compiled by the build, embedded in the binary.
    Embedded(&'static [u8]),
    /// A precompiled file for exactly these bytes, beside the plugin.
    File(PathBuf),
}

/// A component's native code and how it was had.
pub(crate) struct Compiled {
    pub(crate) component: Component,
    pub(crate) origin: Origin,
    /// Why the code compiled ahead of time was not used, if it was not.
    pub(crate) refused: Option<String>,
    /// How long getting it took.
    pub(crate) took: Duration,
}

/// The native code for `source`, from the cheapest place that has it;
/// compiled only if `may_compile`.
pub(crate) fn component(
    engine: &Engine,
    cache: Option<&Cache>,
    source: &Source,
    may_compile: bool,
) -> Result<Compiled> {
    let started = Instant::now();
    let name = source.name.as_str();
    let ahead = match &source.ahead {
        Ahead::None => None,
        // SAFETY: these bytes are what `Engine::precompile_component` wrote
        // for this very component when the binary was built (host/build.rs),
        // and are part of the binary itself; wasmtime checks that their
        // engine settings and CPU features fit this engine and machine.
        #[allow(unsafe_code)]
        Ahead::Embedded(code) => Some(unsafe { Component::deserialize(engine, code) }),
        // SAFETY: the file carries the digest of this component's bytes in
        // its name and was written by `warmlane compile` (with
        // `Engine::precompile_component`) into the plugin directory, which
        // is as trusted as the plugins themselves; wasmtime checks that its
        // engine settings and CPU features fit this engine and machine.
        #[allow(unsafe_code)]
        Ahead::File(path) => Some(unsafe { Component::deserialize_file(engine, path) }),
    };
    let refused = match ahead {
        Some(Ok(component)) => {
            let origin = match source.ahead {
                Ahead::Embedded(_) => Origin::Embedded,
                _ => Origin::Precompiled,
            };
            return Ok(Compiled {
                component,
                origin,
                refused: None,
                took: started.elapsed(),
            });
        }
        Some(Err(e)) => Some(format!("{e:#}")),
        None => None,
    };
    let digest = source.digest();
    if let Some(component) = cache.and_then(|c| c.load(engine, name, digest)) {
        return Ok(Compiled {
            component,
            origin: Origin::Cached,
            refused,
            took: started.elapsed(),
        });
    }
    if !may_compile {
        let why = match &refused {
            Some(why) => format!("its code compiled ahead of time does not fit ({why})"),
            None => "it has no code compiled ahead of time".to_string(),
        };
        bail!(
            "component `{name}` would have to be compiled at start, and engine.compile_at_start is false: {why}; run `warmlane compile` on the plugin directory with this binary"
        );
    }
    let invalid = || format!("component `{name}` is not a valid WebAssembly component");
    // Compiled by an engine of its own, with the same settings, dropped
    // right after: an engine keeps its compiler's working memory (sized for
    // the largest function it ever compiled) for as long as it lives.
    let code = Engine::new(&settings::config())
        .map_err(anyhow::Error::from)
        .context("cannot create the WebAssembly engine")?
        .precompile_component(&source.wasm)
        .map_err(anyhow::Error::from)
        .with_context(invalid)?;
    // Mapped from the cache's file when there is one, so the code is not
    // also held in memory a second time.
    let cached = cache.and_then(|cache| {
        cache.store(name, digest, engine, &code);
        cache.load(engine, name, digest)
    });
    let component = match cached {
        Some(component) => component,
        // SAFETY: `code` was just made by `precompile_component` with this
        // engine's settings; wasmtime checks them again.
        #[allow(unsafe_code)]
        None => unsafe { Component::deserialize(engine, &code) }
            .map_err(anyhow::Error::from)
            .with_context(invalid)?,
    };
    drop(code);
    // Compiling frees a great deal: give it back before the pools warm.
    crate::memory::release_freed();
    Ok(Compiled {
        component,
        origin: Origin::Compiled,
        refused,
        took: started.elapsed(),
    })
}

/// A component's digest: the first 64 bits of its bytes' SHA-256, in hex.
pub(crate) fn digest(wasm: &[u8]) -> String {
    Sha256::digest(wasm)[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Where `warmlane compile` puts the native code of the plugin at `wasm`
/// whose bytes have `digest`: `NAME.DIGEST.cwasm` beside it.
pub(crate) fn precompiled_path(wasm: &Path, digest: &str) -> PathBuf {
    let stem = wasm.file_stem().unwrap_or_default().to_string_lossy();
    wasm.with_file_name(format!("{stem}.{digest}.cwasm"))
}

/// One plugin compiled ahead of time by [`precompile`].
#[derive(Debug, Clone)]
pub struct Precompiled {
    /// The component file.
    pub wasm: PathBuf,
    /// The native code written beside it.
    pub cwasm: PathBuf,
    /// The native code's size in bytes.
    pub bytes: u64,
    /// How long compiling took.
    pub took: Duration,
    /// Older precompiled files of the same plugin that were removed.
    pub removed: Vec<PathBuf>,
}

/// Compiles the component at `path` (or every `*.wasm` in the directory at
/// `path`) to native code for the host's engine, for CPU level `cpu`
/// (`native`, `x86-64`, `x86-64-v2` or `x86-64-v3`), writing
/// `NAME.DIGEST.cwasm` beside each, where a host loading that plugin finds
/// it. Removes precompiled files of earlier versions of the same plugins.
pub fn precompile(path: &Path, cpu: &str) -> Result<Vec<Precompiled>> {
    let files = if !path.exists() {
        bail!("{} does not exist", path.display());
    } else if path.is_dir() {
        crate::components::plugin_paths(path)?
    } else if path.extension().is_some_and(|e| e == "wasm") {
        vec![path.to_path_buf()]
    } else {
        bail!(
            "{} is neither a .wasm file nor a directory of them",
            path.display()
        );
    };
    if files.is_empty() {
        bail!("{} holds no .wasm files", path.display());
    }
    let config = settings::config_for_cpu(cpu).map_err(|e| anyhow!("--cpu: {e}"))?;
    let engine = Engine::new(&config)
        .map_err(anyhow::Error::from)
        .context("cannot create the WebAssembly engine")?;
    files
        .into_iter()
        .map(|wasm| precompile_one(&engine, wasm))
        .collect()
}

fn precompile_one(engine: &Engine, wasm: PathBuf) -> Result<Precompiled> {
    let started = Instant::now();
    let bytes = std::fs::read(&wasm).with_context(|| format!("cannot read {}", wasm.display()))?;
    let code = engine
        .precompile_component(&bytes)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("{} is not a valid WebAssembly component", wasm.display()))?;
    let cwasm = precompiled_path(&wasm, &digest(&bytes));
    write_atomically(&cwasm, &code)?;
    let took = started.elapsed();
    let removed = stale_siblings(&wasm, &cwasm)?
        .into_iter()
        .filter(|p| std::fs::remove_file(p).is_ok())
        .collect();
    Ok(Precompiled {
        wasm,
        cwasm,
        bytes: code.len() as u64,
        took,
        removed,
    })
}

/// The `NAME.*.cwasm` files beside plugin `wasm` other than `keep`.
fn stale_siblings(wasm: &Path, keep: &Path) -> Result<Vec<PathBuf>> {
    let dir = wasm.parent().filter(|p| !p.as_os_str().is_empty());
    let dir = dir.unwrap_or(Path::new("."));
    let stem = wasm.file_stem().unwrap_or_default().to_string_lossy();
    let prefix = format!("{stem}.");
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    Ok(entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.as_path() != keep)
        .filter(|p| {
            let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
                return false;
            };
            // `NAME.DIGEST.cwasm`, DIGEST 16 hex digits: not another plugin
            // whose name merely starts with this one's.
            name.strip_prefix(&prefix)
                .and_then(|rest| rest.strip_suffix(".cwasm"))
                .is_some_and(|d| d.len() == 16 && d.bytes().all(|b| b.is_ascii_hexdigit()))
        })
        .collect())
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a
/// reader never sees half a file.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_code_that_does_not_fit_is_refused_and_compiled_instead() {
        let engine = Engine::new(&settings::config()).unwrap();
        let wasm = crate::builtin::TEXT_STATS;
        let fits = component(
            &engine,
            None,
            &Source::builtin("t", wasm, crate::builtin::TEXT_STATS_NATIVE),
            false,
        )
        .unwrap();
        assert_eq!((fits.origin, fits.refused), (Origin::Embedded, None));

        // Code for an engine with other settings.
        let mut other = settings::config();
        other.epoch_interruption(false);
        let other = Engine::new(&other)
            .unwrap()
            .precompile_component(wasm)
            .unwrap();
        let code: &'static [u8] = Vec::leak(other);
        let source = Source::builtin("t", wasm, Some(code));
        let err = component(&engine, None, &source, false).err().unwrap();
        assert!(format!("{err:#}").contains("compile_at_start"), "{err:#}");
        let refused = component(&engine, None, &source, true).unwrap();
        assert_eq!(refused.origin, Origin::Compiled);
        let why = refused.refused.unwrap();
        assert!(why.contains("epoch"), "{why}");
    }
}
