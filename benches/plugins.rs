//! Plugin tools against the built-in `text-stats`, through one `warmlane
//! serve` over loopback, in the same run: the example counter in Rust,
//! Python (an 18 MB component) and JavaScript (12 MB). For each tool: the
//! median and p99 of 1,000 sequential calls in one session and the ratio
//! of its median to `text-stats`'; the pool's misses over those calls
//! (a miss instantiates on the caller's time); the server's resident memory
//! after the tool's first call and after its 1,000th; the median of 200
//! calls 5 ms apart (as an agent's calls come: the pool has time to prime
//! what it made); then a burst of 16 clients calling at once, and its
//! misses; and the median of 200 sequential calls each in a new session
//! (so each on a fresh instance, as every call was before a session's calls
//! reused one).
//!
//! Run: `cargo bench --bench plugins` (needs componentize-py and the
//! JavaScript example's toolchain: `pip install componentize-py==0.25.*`,
//! `npm ci --prefix examples/plugins/js`).

mod support;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{Conn, Proc, example, free_port, http, status_mib};

const SEQUENTIAL: usize = 1000;
const PACED: usize = 200;
const PACE: Duration = Duration::from_millis(5);
const BURST_CLIENTS: usize = 16;
const BURST_CALLS: usize = 25;
const SESSIONLESS: usize = 200;

/// The tools, with an input each: the built-in first, as the baseline.
const TOOLS: [(&str, &str); 4] = [
    ("text-stats", r#"{"text":"Warm pools serve calls."}"#),
    ("counter-rust", r#"{"counter":"c"}"#),
    ("counter-python", r#"{"counter":"c"}"#),
    ("counter-js", r#"{"counter":"c"}"#),
];

fn start(config: &std::path::Path) -> Proc {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_warmlane"))
        .args(["serve", "--listen", &addr, "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start warmlane serve");
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("WARN") || line.contains("ERROR") {
                eprintln!("plugins: {line}");
            }
        }
    });
    let proc = Proc { child, addr };
    let deadline = Instant::now() + Duration::from_secs(120);
    while http(&proc.addr, "GET", "/readyz", b"").0 != 200 {
        assert!(Instant::now() < deadline, "never ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    proc
}

/// The pool's misses for `component` so far.
fn misses(conn: &mut Conn, component: &str) -> u64 {
    let (_, text) = conn.send("GET", "/metrics", b"");
    let series = format!("warmlane_pool_takes_total{{component=\"{component}\",result=\"miss\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(series.as_str()))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn pct(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let target = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-plugins");
    let built = target.join("built");
    let plugins = target.join("plugins");
    let _ = std::fs::remove_dir_all(&plugins);
    std::fs::create_dir_all(&built).unwrap();
    std::fs::create_dir_all(&plugins).unwrap();
    for lang in ["rust", "python", "js"] {
        example(&plugins, lang, &format!("counter-{lang}"), &built);
    }
    let config = target.join("warmlane.toml");
    std::fs::write(
        &config,
        format!("[plugins]\ndir = {:?}\n", plugins.display().to_string()),
    )
    .unwrap();
    let server = start(&config);
    let pid = server.child.id();
    let mut conn = Conn::open(&server.addr);

    println!(
        "{:<16} {:>9} {:>9} {:>7} {:>7} {:>11} {:>11} {:>7} {:>9} {:>7} {:>10} {:>7} {:>11} {:>7}",
        "tool",
        "median",
        "p99",
        "ratio",
        "misses",
        "RSS first",
        "RSS 1000",
        "growth",
        "paced",
        "ratio",
        "burst p99",
        "misses",
        "new session",
        "ratio"
    );
    let mut sessionless_baseline = None;
    let mut paced_baseline = None;
    let mut baseline = None;
    for (tool, input) in TOOLS {
        let (status, body) = conn.send("POST", "/v1/sessions", b"");
        assert_eq!(status, 201, "{body}");
        let session = body.split('"').nth(3).expect("a session id").to_string();
        let path = format!("/v1/tools/{tool}?session={session}");
        let (status, body) = conn.send("POST", &path, input.as_bytes());
        assert_eq!(status, 200, "{tool}: {body}");
        let rss_first = status_mib(pid, "VmRSS");
        let missed = misses(&mut conn, tool);
        let mut times: Vec<Duration> = (0..SEQUENTIAL)
            .map(|_| {
                let t = Instant::now();
                let (status, body) = conn.send("POST", &path, input.as_bytes());
                assert_eq!(status, 200, "{tool}: {body}");
                t.elapsed()
            })
            .collect();
        let sequential_misses = misses(&mut conn, tool) - missed;
        let rss_after = status_mib(pid, "VmRSS");
        times.sort();
        let median = pct(&times, 0.5);
        let base = *baseline.get_or_insert(median);

        // Calls with room between them.
        let mut paced: Vec<Duration> = (0..PACED)
            .map(|_| {
                std::thread::sleep(PACE);
                let t = Instant::now();
                let (status, body) = conn.send("POST", &path, input.as_bytes());
                assert_eq!(status, 200, "{tool}: {body}");
                t.elapsed()
            })
            .collect();
        paced.sort();
        let paced = pct(&paced, 0.5);
        let paced_base = *paced_baseline.get_or_insert(paced);

        // A burst: clients at once, each calling back to back.
        let missed = misses(&mut conn, tool);
        let threads: Vec<_> = (0..BURST_CLIENTS)
            .map(|_| {
                let (addr, path) = (server.addr.clone(), path.clone());
                std::thread::spawn(move || {
                    let mut c = Conn::open(&addr);
                    (0..BURST_CALLS)
                        .map(|_| {
                            let t = Instant::now();
                            let (status, body) = c.send("POST", &path, input.as_bytes());
                            assert_eq!(status, 200, "{body}");
                            t.elapsed()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut burst: Vec<Duration> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        burst.sort();
        let burst_misses = misses(&mut conn, tool) - missed;

        // A new session for every call: a fresh instance for every call.
        let mut sessionless: Vec<Duration> = (0..SESSIONLESS)
            .map(|_| {
                let (_, body) = conn.send("POST", "/v1/sessions", b"");
                let session = body.split('"').nth(3).expect("a session id").to_string();
                let path = format!("/v1/tools/{tool}?session={session}");
                let t = Instant::now();
                let (status, body) = conn.send("POST", &path, input.as_bytes());
                let took = t.elapsed();
                assert_eq!(status, 200, "{tool}: {body}");
                conn.send("DELETE", &format!("/v1/sessions/{session}"), b"");
                took
            })
            .collect();
        sessionless.sort();
        let sessionless = pct(&sessionless, 0.5);
        let sessionless_base = *sessionless_baseline.get_or_insert(sessionless);
        println!(
            "{:<16} {:>6.3} ms {:>6.3} ms {:>6.2}x {:>7} {:>7.1} MiB {:>7.1} MiB {:>6.2}x {:>6.3} ms {:>6.2}x {:>7.2} ms {:>7} {:>8.3} ms {:>6.2}x",
            tool,
            ms(median),
            ms(pct(&times, 0.99)),
            median.as_secs_f64() / base.as_secs_f64(),
            sequential_misses,
            rss_first,
            rss_after,
            rss_after / rss_first,
            ms(paced),
            paced.as_secs_f64() / paced_base.as_secs_f64(),
            ms(pct(&burst, 0.99)),
            burst_misses,
            ms(sessionless),
            sessionless.as_secs_f64() / sessionless_base.as_secs_f64(),
        );
    }
}
