//! The on-disk compile cache: the native code of components compiled at
//! start, keyed by their bytes and the engine, bounded in size. Older
//! builds of a plugin leave as soon as a newer one is stored; beyond that,
//! the least recently used entries leave first.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use wasmtime::Engine;
use wasmtime::component::Component;

/// A directory of `NAME-DIGEST-ENGINE.cwasm` files, at most `max_bytes`.
pub(crate) struct Cache {
    dir: PathBuf,
    max_bytes: u64,
}

/// One file of the cache, as its name reads.
struct Entry {
    path: PathBuf,
    name: String,
    digest: String,
    engine: String,
    bytes: u64,
    used: SystemTime,
}

impl Cache {
    pub(crate) fn new(dir: PathBuf, max_bytes: u64) -> Cache {
        Cache { dir, max_bytes }
    }

    /// The default directory: `$XDG_CACHE_HOME/warmlane` or `~/.cache/warmlane`.
    pub(crate) fn default_dir() -> Option<PathBuf> {
        std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .map(|d| d.join("warmlane"))
    }

    fn path(&self, name: &str, digest: &str, engine: &Engine) -> PathBuf {
        self.dir
            .join(format!("{name}-{digest}-{}.cwasm", engine_tag(engine)))
    }

    /// The cached code of component `name` with bytes `digest`, if any
    /// fits `engine`; marks it used.
    pub(crate) fn load(&self, engine: &Engine, name: &str, digest: &str) -> Option<Component> {
        let path = self.path(name, digest, engine);
        if !path.exists() {
            return None;
        }
        // SAFETY: the file was written from `Engine::precompile_component` into
        // warmlane's own cache directory, under a name holding the digest of
        // these bytes and this engine's compatibility hash; wasmtime checks
        // the engine settings again. A file that fails to load is replaced.
        #[allow(unsafe_code)]
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => {
                // Mark it recently used, for eviction.
                if let Ok(file) = std::fs::File::options().append(true).open(&path) {
                    let _ = file.set_modified(SystemTime::now());
                }
                Some(component)
            }
            Err(e) => {
                tracing::warn!(component = name, path = %path.display(), error = %format!("{e:#}"), "ignoring a compile cache entry that does not load");
                None
            }
        }
    }

    /// Keeps `code` (from `Engine::precompile_component`), then brings the
    /// cache back within its bounds. A cache that cannot be written is only
    /// a slower next start.
    pub(crate) fn store(&self, name: &str, digest: &str, engine: &Engine, code: &[u8]) {
        let path = self.path(name, digest, engine);
        let written = std::fs::create_dir_all(&self.dir)
            .map_err(anyhow::Error::from)
            .and_then(|()| super::write_atomically(&path, code));
        match written {
            Ok(()) => self.evict(&path),
            Err(e) => {
                tracing::info!(component = name, error = %format!("{e:#}"), "cannot write the compile cache")
            }
        }
    }

    /// Removes older builds of the component just stored at `kept`, then the
    /// least recently used entries until the cache fits `max_bytes`.
    fn evict(&self, kept: &Path) {
        let Ok(read) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut entries: Vec<Entry> = read
            .filter_map(|e| e.ok())
            .filter_map(|e| Entry::read(e.path()))
            .collect();
        let Some(new) = entries.iter().find(|e| e.path == kept) else {
            return;
        };
        let (name, digest, engine) = (new.name.clone(), new.digest.clone(), new.engine.clone());
        let superseded = |e: &Entry| e.name == name && e.engine == engine && e.digest != digest;
        // Superseded builds first, then the least recently used.
        entries.sort_by_key(|e| (!superseded(e), e.used));
        let mut total: u64 = entries.iter().map(|e| e.bytes).sum();
        for entry in &entries {
            if entry.path == kept || (!superseded(entry) && total <= self.max_bytes) {
                continue;
            }
            if std::fs::remove_file(&entry.path).is_ok() {
                total -= entry.bytes;
                tracing::debug!(path = %entry.path.display(), "evicted from the compile cache");
            }
        }
    }
}

impl Entry {
    fn read(path: PathBuf) -> Option<Entry> {
        let file = path.file_name()?.to_str()?;
        let meta = std::fs::metadata(&path).ok()?;
        let stem = file.strip_suffix(".cwasm")?;
        // NAME-DIGEST-ENGINE; NAME may hold dashes itself.
        let mut parts = stem.rsplitn(3, '-');
        let (engine, digest, name) = (parts.next()?, parts.next()?, parts.next());
        Some(Entry {
            // Files of an older layout count against the bound, and leave first.
            name: name.unwrap_or_default().to_string(),
            digest: digest.to_string(),
            engine: engine.to_string(),
            bytes: meta.len(),
            used: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            path,
        })
    }
}

/// The engine's compatibility hash, short.
fn engine_tag(engine: &Engine) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(dir: &Path, file: &str, bytes: usize, age_secs: u64) -> PathBuf {
        let path = dir.join(file);
        std::fs::write(&path, vec![0u8; bytes]).unwrap();
        let when = SystemTime::now() - std::time::Duration::from_secs(age_secs);
        std::fs::File::options()
            .append(true)
            .open(&path)
            .unwrap()
            .set_modified(when)
            .unwrap();
        path
    }

    #[test]
    fn older_builds_leave_then_the_least_recently_used() {
        let dir = std::env::temp_dir().join(format!("warmlane-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let cache = Cache::new(dir.clone(), 3000);
        let old_build = touch(&dir, "my-tool-aaaaaaaaaaaaaaaa-e1.cwasm", 100, 10);
        let other_engine = touch(&dir, "my-tool-aaaaaaaaaaaaaaaa-e2.cwasm", 1000, 50);
        let oldest = touch(&dir, "notes-cccccccccccccccc-e1.cwasm", 1000, 100);
        let recent = touch(&dir, "chunker-dddddddddddddddd-e1.cwasm", 1000, 5);
        let old_layout = touch(&dir, "chunker-074678fbfc3218a6.cwasm", 1000, 1);
        let not_ours = touch(&dir, "README", 10, 1000);
        let new_build = touch(&dir, "my-tool-bbbbbbbbbbbbbbbb-e1.cwasm", 1000, 0);

        cache.evict(&new_build);
        let left = |p: &PathBuf| p.exists();
        assert!(
            !left(&old_build),
            "an older build of the stored plugin leaves"
        );
        assert!(left(&new_build) && left(&recent) && left(&not_ours));
        // 5,000 bytes of entries for 3,000: the two least recently used go.
        assert!(!left(&oldest));
        assert!(!left(&other_engine));
        assert!(left(&old_layout), "recently used, and within the bound now");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
