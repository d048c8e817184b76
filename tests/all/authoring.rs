//! Plugin authors' side: the example plugins in Rust, Python and JavaScript
//! built from source by their real toolchains and used through the CLI,
//! HTTP and MCP; `warmlane component check` on broken components; and
//! `warmlane component new` projects that build and answer.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use serde_json::{Value, json};

use crate::cli::warmlane;
use crate::redis_server::RedisServer;
use crate::serve::Serve;
use crate::support;

/// One toolchain build at a time: they each take a core or two for tens of
/// seconds, and other tests run beside them.
static BUILDS: Mutex<()> = Mutex::new(());

const COMPONENTIZE_PY: &str = "componentize-py==0.25.*";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The environment under which `componentize-py` runs: the machine's, or,
/// when it has none, PATH and PYTHONPATH leading to the copy pip installs
/// under target/.
fn componentize_py_env() -> &'static [(&'static str, String)] {
    static ENV: OnceLock<Vec<(&'static str, String)>> = OnceLock::new();
    ENV.get_or_init(|| {
        let on_path = Command::new("componentize-py")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if on_path {
            return Vec::new();
        }
        let target =
            support::python_path("componentize-py", "import componentize_py", COMPONENTIZE_PY)
                .expect("componentize-py is not on the PATH, so pip installed it");
        let path = std::env::var("PATH").unwrap_or_default();
        vec![
            ("PATH", format!("{}:{path}", target.join("bin").display())),
            // As the MCP and Kubernetes tests set it for their packages.
            ("PYTHONPATH", target.display().to_string()),
        ]
    })
}

/// Runs `script` (a build.sh or test.sh) in `dir` with the toolchains'
/// environment; panics with its output if it fails.
fn run_script(dir: &Path, script: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new("sh");
    cmd.arg(dir.join(script)).args(args).current_dir(dir);
    // The outer cargo's settings are not the guest build's.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "RUSTC_WRAPPER",
        "CARGO_TARGET_DIR",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(componentize_py_env().iter().cloned())
        // Rust projects share the guests' build directory, and so their
        // compiled dependencies.
        .env(
            "CARGO_TARGET_DIR",
            // ARTIFACTS_DIR is DIR/wasm32-wasip2/release.
            Path::new(warmlane_host::builtin::ARTIFACTS_DIR)
                .ancestors()
                .nth(2)
                .unwrap(),
        )
        .envs(env.iter().copied());
    let out = cmd.output().expect("run sh");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{script} in {} failed:\n{said}",
        dir.display()
    );
    said
}

/// The example plugin in `lang`, built once by its own build.sh.
fn example(lang: &str) -> PathBuf {
    static BUILT: Mutex<Vec<(String, PathBuf)>> = Mutex::new(Vec::new());
    if let Some((_, p)) = BUILT.lock().unwrap().iter().find(|(l, _)| l == lang) {
        return p.clone();
    }
    let _one = BUILDS.lock().unwrap_or_else(|p| p.into_inner());
    let dir = root().join("examples/plugins").join(lang);
    if lang == "js" && !dir.join("node_modules/.bin/jco").exists() {
        let npm = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--silent"])
            .current_dir(&dir)
            .status();
        assert!(
            npm.is_ok_and(|s| s.success()),
            "the JavaScript example needs jco: run `npm ci --prefix examples/plugins/js` (Node.js 20 or later)"
        );
    }
    let out = support::scratch(&format!("example-{lang}")).join(format!("counter-{lang}.wasm"));
    run_script(&dir, "build.sh", &[out.to_str().unwrap()], &[]);
    assert!(out.exists(), "build.sh wrote no {}", out.display());
    BUILT.lock().unwrap().push((lang.to_string(), out.clone()));
    out
}

/// Everything one example must do, as a user of each door would.
fn example_works_everywhere(lang: &str, raised: &str) {
    let wasm = example(lang);
    let file = wasm.to_str().unwrap();
    let tool = format!("counter-{lang}");

    // `component check`: it loads, and says what it imports.
    let (code, out, err) = warmlane(&["component", "check", file]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("world:    tool-component"), "{out}");
    assert!(out.contains("loads:    yes"), "{out}");
    assert!(!out.contains("MISSING"), "{out}");

    // The CLI, one process per call: the session lives in Redis, so the
    // count carries across processes and fresh instances.
    let redis = RedisServer::start();
    let config = support::scratch(&format!("example-{lang}-cli")).join("warmlane.toml");
    std::fs::write(&config, format!("[redis]\nurl = \"{}\"\n", redis.url())).unwrap();
    let config = config.to_str().unwrap();
    let call = |input: &str| {
        warmlane(&[
            "component",
            "call",
            file,
            input,
            "--session",
            "cli",
            "--config",
            config,
        ])
    };
    for expected in [2, 4] {
        let (code, out, err) = call(r#"{"counter":"c","by":2}"#);
        assert_eq!(code, 0, "{err}");
        let v: Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(v["value"], expected, "{out}");
    }
    let (code, out, err) = call(r#"{"counter":"c","by":1,"expect":4}"#);
    assert_eq!((code, out.contains("\"value\"")), (0, true), "{err}");
    // A raised exception is the tool failing, with its message.
    let (code, _, err) = call(r#"{"counter":"c","by":1,"expect":0}"#);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("tool failed: {raised}counter:c is 5, not 0")),
        "{err}"
    );

    // HTTP: calls in one session, in a row and at once, lose nothing.
    let dir = support::scratch(&format!("example-{lang}-serve"));
    std::fs::copy(&wasm, dir.join(wasm.file_name().unwrap())).unwrap();
    let server = Serve::start(&format!(
        "[plugins]\ndir = {:?}\n",
        dir.display().to_string()
    ));
    server.wait_ready();
    let session = server.post("/v1/sessions", "application/json", b"").json()["session"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/v1/tools/{tool}?session={session}");
    for n in 1..=4 {
        let r = server.post(&path, "application/json", br#"{"counter":"h"}"#);
        assert_eq!((r.status, r.json()["value"].clone()), (200, json!(n)));
    }
    std::thread::scope(|s| {
        for _ in 0..16 {
            s.spawn(|| {
                let r = server.post(&path, "application/json", br#"{"counter":"h"}"#);
                assert_eq!(r.status, 200, "{}", r.json());
            });
        }
    });
    let r = server.post(&path, "application/json", br#"{"counter":"h","by":0}"#);
    assert_eq!(r.json()["value"], 20, "parallel calls lost updates");
    let r = server.post(&path, "application/json", br#"{"counter":"h","expect":3}"#);
    assert_eq!((r.status, r.code().as_str()), (422, "tool-failed"));
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("{raised}counter:h is 20, not 3")),
        "{}",
        r.json()
    );
    // Outside a session, it says it needs one.
    let r = server.post(
        &format!("/v1/tools/{tool}"),
        "application/json",
        br#"{"counter":"h"}"#,
    );
    assert_eq!((r.status, r.code().as_str()), (400, "session-required"));

    // MCP, through the Python `mcp` package's client.
    let url = format!("http://{}/mcp", server.addr);
    let steps = json!([
        {"list": true},
        {"call": "session-start", "save": "s"},
        {"call": tool, "args": {"counter": "m", "by": 5, "session": "$s"}},
        {"call": tool, "args": {"counter": "m", "session": "$s"}},
        {"call": tool, "args": {"counter": "m", "expect": 1, "session": "$s"}},
    ]);
    let report = crate::mcp::client(&["http", &url, "auto"], steps);
    let s = report["steps"].as_array().unwrap();
    let listed = s[0]["tools"].to_string();
    assert!(listed.contains(&tool), "{listed}");
    assert_eq!(s[2]["structured"]["value"], 5, "{}", s[2]);
    assert_eq!(s[3]["structured"]["value"], 6, "{}", s[3]);
    assert_eq!(crate::mcp::error_code(&s[4]), "tool-failed", "{}", s[4]);
}

#[test]
fn the_rust_example_works_through_the_cli_http_and_mcp() {
    example_works_everywhere("rust", "");
}

#[test]
fn the_python_example_works_through_the_cli_http_and_mcp() {
    example_works_everywhere("python", "ValueError: ");
}

#[test]
fn the_javascript_example_works_through_the_cli_http_and_mcp() {
    example_works_everywhere("js", "Error: ");
}

#[test]
fn component_check_diagnoses_broken_components() {
    let dir = support::scratch("check-broken");
    let empty = dir.join("empty.wasm");
    // A component with nothing in it: the preamble alone.
    std::fs::write(&empty, b"\0asm\x0d\0\x01\0").unwrap();
    let core = dir.join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let pdf = dir.join("document.wasm");
    std::fs::copy(support::data("en-lppl.pdf"), &pdf).unwrap();
    let (mismatched, foreign, legacy) = (
        support::guest("mismatched"),
        support::guest("foreign_import"),
        support::guest("legacy_counter"),
    );
    let files = [&mismatched, &empty, &core, &pdf, &foreign, &legacy];
    let mut args = vec!["component", "check"];
    args.extend(files.iter().map(|f| f.to_str().unwrap()));
    let (code, out, err) = warmlane(&args);
    assert_eq!(code, 1, "{out}{err}");
    // One report per file, in order.
    let reports: Vec<&str> = out.split("\n/").collect();
    assert_eq!(reports.len(), files.len(), "{out}");
    let [mismatched, empty, core, pdf, foreign, legacy] = reports[..] else {
        unreachable!()
    };
    for r in [mismatched, empty, core, pdf, foreign] {
        assert!(r.contains("loads:    no"), "{r}");
    }
    assert!(
        mismatched.contains("world:    tool-component (warmlane:worker@0.1.0)")
            && mismatched.contains("`warmlane:worker/tool@0.1.0` function `describe` is `func() -> string`; the world's is `func() -> record { name: string, description: string, input-schema: string }`")
            && mismatched.contains("function `invoke` is `func(input: u32) -> u32`"),
        "{mismatched}"
    );
    assert!(
        empty.contains("world:    none") && empty.contains("implements no warmlane world"),
        "{empty}"
    );
    assert!(
        core.contains("a core WebAssembly module, not a component"),
        "{core}"
    );
    assert!(
        pdf.contains("not WebAssembly") && pdf.contains("compile:  did not compile"),
        "{pdf}"
    );
    assert!(
        foreign.contains("acme:net/fetch@1.0.0: MISSING")
            && foreign.contains("it imports `acme:net/fetch@1.0.0`: the host does not provide it"),
        "{foreign}"
    );
    assert!(
        legacy.contains("loads:    yes")
            && legacy.contains("tool:     legacy-counter")
            && legacy.contains("warmlane:worker/session@0.1.0: provided")
            && legacy.contains("wasi:cli/environment@0.2.6: denied by policy"),
        "{legacy}"
    );
    for r in &reports {
        assert!(r.contains("size:"), "{r}");
    }
}

/// `component new` in `lang` for `world`, then its own test.sh (which
/// builds it, checks it, and tries it with this binary).
fn new_project_builds_and_answers(lang: &str, world: &str) {
    let name = format!("my-{world}-{lang}");
    let dir = support::scratch(&format!("new-{name}")).join(&name);
    let (code, out, err) = warmlane(&[
        "component",
        "new",
        &name,
        "--lang",
        lang,
        "--world",
        world,
        "--dir",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("./test.sh"), "{out}");
    assert!(dir.join("wit/worker.wit").exists());
    // Writing into a project that exists is refused.
    let (code, _, err) = warmlane(&[
        "component",
        "new",
        &name,
        "--lang",
        lang,
        "--dir",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not empty"), "{err}");
    let said = {
        let _one = BUILDS.lock().unwrap_or_else(|p| p.into_inner());
        run_script(
            &dir,
            "test.sh",
            &[],
            &[("WARMLANE", env!("CARGO_BIN_EXE_warmlane"))],
        )
    };
    assert!(said.contains(&format!("ok: {name}")), "{said}");
    assert!(said.contains("loads:    yes"), "{said}");
}

#[test]
fn a_new_rust_tool_builds_and_answers() {
    new_project_builds_and_answers("rust", "tool");
}

#[test]
fn a_new_python_tool_builds_and_answers() {
    new_project_builds_and_answers("python", "tool");
}

#[test]
fn a_new_javascript_tool_builds_and_answers() {
    new_project_builds_and_answers("js", "tool");
}

#[test]
fn a_new_rust_chunker_builds_and_chunks() {
    new_project_builds_and_answers("rust", "chunker");
}

#[test]
fn a_new_python_page_parser_builds_and_answers_for_every_page() {
    new_project_builds_and_answers("python", "page-parser");
}

#[test]
fn component_new_refuses_a_bad_name() {
    let (code, _, err) = warmlane(&["component", "new", "Bad Name", "--lang", "rust"]);
    assert_eq!(code, 2);
    assert!(err.contains("lowercase letters"), "{err}");
}

#[test]
fn component_call_says_what_a_component_that_is_not_a_tool_is() {
    let (code, _, err) = warmlane(&[
        "component",
        "call",
        support::guest("chunker").to_str().unwrap(),
        "{}",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("name of a component already loaded"), "{err}");
    let dir = support::scratch("call-parser");
    let parser = dir.join("my-parser.wasm");
    std::fs::copy(support::guest("pdf_pages"), &parser).unwrap();
    let (code, _, err) = warmlane(&["component", "call", parser.to_str().unwrap(), "{}"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("implements world `page-parser-component`, not a tool")
            && err.contains("warmlane run --parser"),
        "{err}"
    );
}
