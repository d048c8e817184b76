//! Shared helpers: the test documents, hosts built from real components,
//! and a plugin directory holding the test guests.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use warmlane_host::{Config, Event, Host, PdfDocument};

/// `tests/data/NAME`.
pub(crate) fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// A built guest component that is not embedded (a test guest).
pub(crate) fn guest(stem: &str) -> PathBuf {
    Path::new(warmlane_host::builtin::ARTIFACTS_DIR).join(format!("{stem}.wasm"))
}

/// A fresh directory under the target directory.
pub(crate) fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// A plugin directory with the given test guests copied in, as NAME.wasm.
pub(crate) fn plugin_dir(name: &str, guests: &[(&str, &str)]) -> PathBuf {
    let dir = scratch(name);
    for (stem, as_name) in guests {
        std::fs::copy(guest(stem), dir.join(format!("{as_name}.wasm"))).expect("copy guest");
    }
    dir
}

/// The host most tests share: defaults, plus the hostile tool as a plugin
/// with a short deadline and a small memory cap; `notes` gives every call a
/// fresh instance, so its tests show the state lives in the host.
pub(crate) fn host() -> &'static Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(|| {
        let dir = plugin_dir("shared-plugins", &[("hostile", "hostile")]);
        let mut config = Config::from_toml(
            "[components.hostile]\ndeadline_ms = 300\nmemory_mib = 32\nwarm = 1\n[components.notes]\nwarm = 1\nreuse_calls = 1\n",
        )
        .expect("config");
        config.plugins.dir = Some(dir);
        let host = Host::new(config).expect("start the host");
        assert!(host.wait_warm(Duration::from_secs(60)), "pools did not warm up");
        host
    })
}

/// Runs a document through the shared host, collecting page texts, chunks
/// and page errors.
pub(crate) struct Outcome {
    pub(crate) pages: Vec<(u32, String)>,
    pub(crate) chunks: Vec<warmlane_host::ChunkRecord>,
    pub(crate) errors: Vec<(u32, String)>,
    pub(crate) summary: warmlane_host::Summary,
}

pub(crate) fn process(doc: &Arc<PdfDocument>) -> Outcome {
    let host = host();
    let mut options = host.document_options();
    options.emit_pages = true;
    let mut out = Outcome {
        pages: Vec::new(),
        chunks: Vec::new(),
        errors: Vec::new(),
        summary: Default::default(),
    };
    out.summary = host
        .process(doc.clone(), &options, "test", &mut |e| match e {
            Event::Page { page, text } => out.pages.push((page, text)),
            Event::Chunk(c) => out.chunks.push(c),
            Event::PageError { page, error } => out.errors.push((page, error)),
            Event::Progress { .. } => {}
        })
        .expect("the lane accepts the job");
    out
}

/// Opens `tests/data/NAME`.
pub(crate) fn open(name: &str, password: Option<&str>) -> Arc<PdfDocument> {
    let bytes = std::fs::read(data(name)).expect("read test PDF");
    Arc::new(PdfDocument::open(bytes, password).expect("open test PDF"))
}

/// A `PYTHONPATH` under which `python3 -c CHECK` succeeds: none if the
/// machine's Python passes as it is, else `target/py-NAME`, where pip
/// installs `requirement` once. Panics with the one-line fix otherwise.
pub(crate) fn python_path(name: &str, check: &str, requirement: &str) -> Option<PathBuf> {
    use std::process::{Command, Stdio};
    let passes = |path: Option<&PathBuf>| {
        let mut c = Command::new("python3");
        c.args(["-c", check]);
        if let Some(p) = path {
            c.env("PYTHONPATH", p);
        }
        c.stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if passes(None) {
        return None;
    }
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("target/py-{name}"));
    if !passes(Some(&target)) {
        let installed = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "--upgrade", "--target"])
            .arg(&target)
            .arg(requirement)
            .status();
        assert!(
            installed.is_ok_and(|s| s.success()) && passes(Some(&target)),
            "these tests need Python 3 with `{requirement}`: run `python3 -m pip install '{requirement}'`"
        );
    }
    Some(target)
}
