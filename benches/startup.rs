//! How fast a new `warmlane serve` process is ready, from exec to the first
//! `/readyz` 200, and the most memory it needed on the way (peak RSS), in
//! the same run: the built-ins on an empty and on a warm compile cache; two
//! plugin tools (the Python and the JavaScript examples, 18 MB and 12 MB
//! components) precompiled with `warmlane compile`, against the same
//! plugins compiled at start (what every new pod did before) and from a
//! warm cache; and what compiling the built-ins at start would cost.
//!
//! Run: `cargo bench --bench startup` (needs componentize-py and the
//! JavaScript example's toolchain: `pip install componentize-py==0.25.*`,
//! `npm ci --prefix examples/plugins/js`).

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{Proc, example, free_port, http, status_mib};

/// One start: time to the port opening, time to ready, peak and current RSS
/// at ready, and where the components' code came from.
struct Start {
    listening: Duration,
    ready: Duration,
    peak_mib: f64,
    rss_mib: f64,
    load: Duration,
}

fn start(config: &Path) -> Start {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let begun = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_warmlane"))
        .args(["serve", "--listen", &addr, "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start warmlane serve");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.starts_with("warmlane: listening on") {
                let _ = tx.send(begun.elapsed());
            } else if line.contains("WARN") || line.contains("ERROR") {
                eprintln!("startup: {line}");
            }
        }
    });
    let proc = Proc { child, addr };
    let deadline = begun + Duration::from_secs(120);
    loop {
        if http(&proc.addr, "GET", "/readyz", b"").0 == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "never ready");
        std::thread::sleep(Duration::from_micros(500));
    }
    let ready = begun.elapsed();
    let pid = proc.child.id();
    let (peak_mib, rss_mib) = (status_mib(pid, "VmHWM"), status_mib(pid, "VmRSS"));
    let listening = rx.recv_timeout(Duration::from_secs(5)).unwrap_or(ready);
    let (_, metrics) = http(&proc.addr, "GET", "/metrics", b"");
    let load = metrics
        .lines()
        .filter(|l| l.starts_with("warmlane_component_load_seconds{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>();
    Start {
        listening,
        ready,
        peak_mib,
        rss_mib,
        load: Duration::from_secs_f64(load),
    }
}

/// `runs` starts, each after `before`; the median start (by time to ready)
/// and the largest peak.
fn measure(runs: usize, config: &Path, mut before: impl FnMut()) -> (Start, f64) {
    let mut starts: Vec<Start> = (0..runs)
        .map(|_| {
            before();
            start(config)
        })
        .collect();
    let peak = starts.iter().map(|s| s.peak_mib).fold(0.0, f64::max);
    starts.sort_by_key(|s| s.ready);
    (starts.swap_remove(runs / 2), peak)
}

fn report(what: &str, (s, peak): &(Start, f64)) {
    println!(
        "  {what:<44} ready {:>7.1} ms (port open {:>6.1} ms, code loaded in {:>6.1} ms), peak {:>4.0} MB, RSS at ready {:>4.0} MB",
        ms(s.ready),
        ms(s.listening),
        ms(s.load),
        peak,
        s.rss_mib
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn compile(path: &Path) -> (Duration, f64) {
    let begun = Instant::now();
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%M"])
        .arg(env!("CARGO_BIN_EXE_warmlane"))
        .arg("compile")
        .arg(path)
        .stdout(Stdio::null())
        .output()
        .expect("/usr/bin/time (apt-get install time)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let kib: f64 = String::from_utf8_lossy(&out.stderr)
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0.0);
    (begun.elapsed(), kib / 1024.0)
}

fn main() {
    let root = std::env::temp_dir().join(format!("warmlane-bench-startup-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let plugins = root.join("plugins");
    let cache = root.join("cache");
    std::fs::create_dir_all(&plugins).unwrap();
    let built = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-data/plugins");
    std::fs::create_dir_all(&built).unwrap();
    example(&plugins, "python", "counter-python", &built);
    example(&plugins, "js", "counter-js", &built);
    let write = |name: &str, body: String| {
        let path = root.join(name);
        std::fs::write(&path, body).unwrap();
        path
    };
    let cache_line = format!("compile_cache_dir = {:?}\n", cache.display().to_string());
    let builtins = write("builtins.toml", format!("[engine]\n{cache_line}"));
    let with_plugins = write(
        "plugins.toml",
        format!(
            "[engine]\n{cache_line}[plugins]\ndir = {:?}\n",
            plugins.display().to_string()
        ),
    );
    let empty_cache = || {
        let _ = std::fs::remove_dir_all(&cache);
    };
    let drop_precompiled = || {
        for e in std::fs::read_dir(&plugins).unwrap().flatten() {
            if e.path().extension().is_some_and(|x| x == "cwasm") {
                std::fs::remove_file(e.path()).unwrap();
            }
        }
    };

    let runs = 9;
    let builtins_empty = measure(runs, &builtins, empty_cache);
    let builtins_warm = measure(runs, &builtins, || {});
    drop_precompiled();
    let compiled = measure(3, &with_plugins, empty_cache);
    let cached = measure(runs, &with_plugins, || {});
    let (precompile_time, precompile_peak) = compile(&plugins);
    let precompiled = measure(runs, &with_plugins, empty_cache);

    // What compiling the built-ins at start would take (the binary embeds
    // their code, so that is only measurable with `warmlane compile`).
    let builtin_dir = root.join("builtins");
    std::fs::create_dir_all(&builtin_dir).unwrap();
    for stem in ["pdf_pages", "chunker", "text_stats", "notes"] {
        let from = Path::new(warmlane_host::builtin::ARTIFACTS_DIR).join(format!("{stem}.wasm"));
        std::fs::copy(from, builtin_dir.join(format!("{stem}.wasm"))).unwrap();
    }
    let (builtin_compile, builtin_compile_peak) = compile(&builtin_dir);
    let _ = std::fs::remove_dir_all(&root);

    let size = |name: &str| std::fs::metadata(built.join(name)).map_or(0, |m| m.len()) >> 20;
    println!(
        "startup: exec to the first /readyz 200, median of {runs} starts (3 when compiling), peak = largest VmHWM; same run"
    );
    report("built-ins, empty cache", &builtins_empty);
    report("built-ins, warm cache", &builtins_warm);
    println!(
        "  (compiling the 4 built-ins instead: {:.0} ms, {:.0} MB peak)",
        ms(builtin_compile),
        builtin_compile_peak
    );
    println!(
        "  plugins: counter-python.wasm ({} MB), counter-js.wasm ({} MB)",
        size("counter-python.wasm"),
        size("counter-js.wasm")
    );
    report("+ 2 plugins compiled at start, empty cache", &compiled);
    report("+ 2 plugins from a warm cache", &cached);
    report("+ 2 plugins precompiled, empty cache", &precompiled);
    println!(
        "  (`warmlane compile` on the 2 plugins: {:.0} ms, {:.0} MB peak)",
        ms(precompile_time),
        precompile_peak
    );
    println!(
        "  precompiled vs compiled at start: {:.0}x faster to ready, {:.1}x less peak memory",
        compiled.0.ready.as_secs_f64() / precompiled.0.ready.as_secs_f64(),
        compiled.1 / precompiled.1
    );
}
