//! Starting without compiling: the built-ins' native code comes embedded in
//! the binary, `warmlane compile` precompiles plugins beside them, code that
//! does not fit is refused (said once, in the log and the metrics) and
//! compiled instead, and what is compiled at start is cached for the next.

use std::path::{Path, PathBuf};
use std::process::Command;

use warmlane_host::{Config, Host, Origin};

use crate::support;

/// A host with plugins from `plugins` and its compile cache in `cache`.
fn host(plugins: Option<&Path>, cache: &Path) -> Host {
    let mut config = Config::default();
    config.plugins.dir = plugins.map(Path::to_path_buf);
    config.engine.compile_cache_dir = Some(cache.to_path_buf());
    config.instances.warm = 1;
    Host::new(config).unwrap()
}

fn origin(host: &Host, name: &str) -> (Origin, Option<String>) {
    let c = host.components().iter().find(|c| c.name == name).unwrap();
    (c.origin, c.refused.clone())
}

/// The hostile test tool, loaded as plugin `my-tool`, answers.
fn assert_echoes(host: &Host) {
    let out = host.call_tool("hostile", r#"{"do":"echo"}"#, None);
    assert_eq!(out.as_deref(), Ok(r#"{"do":"echo"}"#));
}

/// `warmlane compile ARGS...`: its JSON lines.
fn compile(args: &[&str]) -> Vec<serde_json::Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_warmlane"))
        .arg("compile")
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn cwasm_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "cwasm"));
    files.sort();
    files
}

#[test]
fn the_built_ins_start_from_the_code_the_build_compiled() {
    let cache = support::scratch("startup-builtins-cache");
    let host = host(None, &cache);
    for name in ["pdf-pages", "chunker", "text-stats", "notes"] {
        assert_eq!(origin(&host, name), (Origin::Embedded, None), "{name}");
    }
    assert!(cwasm_files(&cache).is_empty(), "nothing was compiled");
    let metrics = host.metrics();
    assert!(
        metrics.contains(
            r#"warmlane_component_load_seconds{component="pdf-pages",origin="embedded"}"#
        ),
        "{metrics}"
    );
    assert!(metrics.contains(r#"warmlane_component_precompiled_refused{component="chunker"} 0"#));
    assert_eq!(
        host.call_tool("text-stats", r#"{"text":"warm start"}"#, None)
            .map(|out| out.contains("\"words\":2")),
        Ok(true)
    );
}

#[test]
fn a_precompiled_plugin_is_used_only_for_the_bytes_it_was_compiled_from() {
    let plugins = support::plugin_dir("startup-precompiled", &[("hostile", "my-tool")]);
    let cache = support::scratch("startup-precompiled-cache");
    let lines = compile(&[plugins.to_str().unwrap()]);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let cwasm = PathBuf::from(lines[0]["cwasm"].as_str().unwrap());
    assert!(cwasm.exists() && lines[0]["bytes"].as_u64() > Some(10_000));
    let name = cwasm.file_name().unwrap().to_str().unwrap();
    assert!(
        name.starts_with("my-tool.") && name.ends_with(".cwasm"),
        "{name}"
    );

    let started = host(Some(&plugins), &cache);
    assert_eq!(origin(&started, "my-tool"), (Origin::Precompiled, None));
    assert_echoes(&started);
    assert!(cwasm_files(&cache).is_empty(), "the cache was not needed");
    drop(started);

    // Other bytes under the same name: the old code is not their code.
    std::fs::copy(support::guest("chunker"), plugins.join("my-tool.wasm")).unwrap();
    let started = host(Some(&plugins), &cache);
    assert_eq!(origin(&started, "my-tool"), (Origin::Compiled, None));
    let info = started
        .components()
        .iter()
        .find(|c| c.name == "my-tool")
        .unwrap();
    assert_eq!(info.world, warmlane_host::WorldKind::Chunker);
    drop(started);
    // Compiled at start once, then cached.
    assert_eq!(cwasm_files(&cache).len(), 1);
    let started = host(Some(&plugins), &cache);
    assert_eq!(origin(&started, "my-tool"), (Origin::Cached, None));
    drop(started);

    // Precompiling again replaces the old build's file.
    let lines = compile(&[plugins.join("my-tool.wasm").to_str().unwrap()]);
    assert_eq!(
        lines[0]["removed"].as_array().unwrap().len(),
        1,
        "{lines:?}"
    );
    assert_eq!(
        cwasm_files(&plugins),
        [PathBuf::from(lines[0]["cwasm"].as_str().unwrap())]
    );
    let started = host(Some(&plugins), &cache);
    assert_eq!(origin(&started, "my-tool"), (Origin::Precompiled, None));
}

#[test]
fn code_for_an_older_cpu_level_runs_here() {
    let plugins = support::plugin_dir("startup-cpu-level", &[("hostile", "my-tool")]);
    let cache = support::scratch("startup-cpu-level-cache");
    for level in ["x86-64", "x86-64-v2"] {
        compile(&["--cpu", level, plugins.to_str().unwrap()]);
        let started = host(Some(&plugins), &cache);
        assert_eq!(
            origin(&started, "my-tool"),
            (Origin::Precompiled, None),
            "{level}"
        );
        assert_echoes(&started);
    }
    let out = Command::new(env!("CARGO_BIN_EXE_warmlane"))
        .args(["compile", "--cpu", "pentium", plugins.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("pentium") && stderr.contains("x86-64-v3"),
        "{stderr}"
    );
}

#[test]
fn precompiled_code_that_does_not_fit_is_refused_and_compiled_instead() {
    let plugins = support::plugin_dir("startup-refused", &[("hostile", "my-tool")]);
    let cache = support::scratch("startup-refused-cache");
    let lines = compile(&[plugins.to_str().unwrap()]);
    let cwasm = PathBuf::from(lines[0]["cwasm"].as_str().unwrap());
    // Another engine's output, as far as this one can tell: the right name,
    // the wrong contents.
    let mut bytes = std::fs::read(&cwasm).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&cwasm, bytes).unwrap();

    let started = host(Some(&plugins), &cache);
    let (origin, refused) = origin(&started, "my-tool");
    assert_eq!(origin, Origin::Compiled);
    assert!(refused.is_some());
    let metrics = started.metrics();
    assert!(
        metrics.contains(r#"warmlane_component_precompiled_refused{component="my-tool"} 1"#)
            && metrics.contains(
                r#"warmlane_component_load_seconds{component="my-tool",origin="compiled"}"#
            ),
        "{metrics}"
    );
    assert_echoes(&started);
}

#[test]
fn compile_names_what_it_cannot_compile() {
    let dir = support::scratch("startup-compile-bad");
    std::fs::write(dir.join("junk.wasm"), b"\0asm\x01\0\0\0").unwrap();
    for (path, expect) in [
        (dir.join("junk.wasm"), "junk.wasm"),
        (dir.join("missing.wasm"), "does not exist"),
        (dir.clone(), "junk.wasm"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_warmlane"))
            .arg("compile")
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expect), "{path:?}: {stderr}");
    }
}

#[test]
fn without_compiling_at_start_a_plugin_needs_its_precompiled_code() {
    let plugins = support::plugin_dir("startup-no-compile", &[("hostile", "my-tool")]);
    let cache = support::scratch("startup-no-compile-cache");
    let start = || {
        let mut config = Config::default();
        config.plugins.dir = Some(plugins.clone());
        config.engine.compile_cache_dir = Some(cache.clone());
        config.engine.compile_at_start = false;
        Host::new(config)
    };
    let err = format!("{:#}", start().err().unwrap());
    assert!(
        err.contains("my-tool") && err.contains("warmlane compile"),
        "{err}"
    );
    compile(&[plugins.to_str().unwrap()]);
    let started = start().unwrap();
    assert_eq!(origin(&started, "my-tool"), (Origin::Precompiled, None));
}
