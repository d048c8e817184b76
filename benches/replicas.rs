//! Replicas through Redis against one process, in the same run: pages per
//! second on the large PDF for `warmlane serve` alone (role `all`, no
//! Redis) and for one `api` replica with one `worker` replica through a
//! local `redis-server`; one worker replica with one parse worker against
//! two such replicas (the work is shared by batch); and the time a 1-page
//! job takes while a heavy job runs, through Redis, beside idle; and the
//! peak memory of each role of the Kubernetes split under a burst, which
//! sizes its pods in deploy/kubernetes.
//!
//! Run: `cargo bench --bench replicas` (needs `redis-server`, and the large
//! PDF: `bash scripts/fetch-bench-pdf.sh`).

mod support;

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use std::time::{Duration, Instant};
use support::{Proc, free_port, http};

fn redis(dir: &Path) -> (Child, String) {
    let port = free_port();
    let child = Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server (apt-get install redis-server)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    (child, format!("redis://127.0.0.1:{port}"))
}

fn serve(dir: &Path, name: &str, config: &str) -> Proc {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, config).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_warmlane"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start warmlane serve");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let mut addr = None;
    while stderr.read_line(&mut line).unwrap_or(0) > 0 {
        if let Some(a) = line.trim().strip_prefix("warmlane: listening on http://") {
            addr = a.split_whitespace().next().map(str::to_string);
            break;
        }
        line.clear();
    }
    std::thread::spawn(move || for _ in stderr.lines() {});
    let p = Proc {
        child,
        addr: addr.expect("warmlane serve started"),
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while http(&p.addr, "GET", "/readyz", b"").0 != 200 {
        assert!(Instant::now() < deadline, "{name} never ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    p
}

fn json_field(body: &str, key: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body.trim())
        .or_else(|_| serde_json::from_str(body.lines().nth(1).unwrap_or("")))
        .unwrap_or_default();
    match &v[key] {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Uploads `pdf`; its job id.
fn submit(api: &str, pdf: &[u8]) -> String {
    let (status, body) = http(api, "POST", "/v1/documents", pdf);
    assert_eq!(status, 202, "{body}");
    json_field(&body, "job")
}

/// Waits until `job` is done.
fn wait_done(api: &str, job: &str) {
    loop {
        let (_, state) = http(api, "GET", &format!("/v1/jobs/{job}"), b"");
        let s = json_field(&state, "state");
        if s != "running" && !s.is_empty() {
            assert_eq!(s, "done", "{state}");
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Uploads `pdf` and waits until its job is done; the time that took.
fn process(api: &str, pdf: &[u8]) -> Duration {
    let start = Instant::now();
    let job = submit(api, pdf);
    wait_done(api, &job);
    start.elapsed()
}

fn best(n: usize, mut f: impl FnMut() -> Duration) -> Duration {
    (0..n).map(|_| f()).min().unwrap()
}

fn main() {
    let pdf_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-data/source3.pdf");
    let Ok(big) = std::fs::read(&pdf_path) else {
        eprintln!(
            "replicas: {} is missing; run: bash scripts/fetch-bench-pdf.sh",
            pdf_path.display()
        );
        return;
    };
    let small =
        std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/en-lppl.pdf"))
            .unwrap();
    let pages = 1611.0;
    let dir = std::env::temp_dir().join(format!("warmlane-bench-replicas-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    // One process without Redis, and one API replica with one worker
    // replica (every core parsing) through Redis, all up at once; their
    // runs alternate, so a machine that drifts faster or slower during the
    // bench moves both alike.
    let alone = serve(&dir, "alone", "");
    let (mut redis_proc, url) = redis(&dir);
    let base = format!("[redis]\nurl = \"{url}\"\n");
    let api = serve(&dir, "api", &format!("{base}[server]\nrole = \"api\"\n"));
    let worker = serve(
        &dir,
        "worker",
        &format!("{base}[server]\nrole = \"worker\"\n"),
    );
    process(&alone.addr, &big);
    process(&api.addr, &big);
    let pairs: Vec<(Duration, Duration)> = (0..7)
        .map(|_| (process(&alone.addr, &big), process(&api.addr, &big)))
        .collect();
    let one = pairs.iter().map(|p| p.0).min().unwrap();
    let through_redis = pairs.iter().map(|p| p.1).min().unwrap();
    // Each pair ran back to back: the median of their ratios is the figure
    // least moved by a noisy machine.
    let mut ratios: Vec<f64> = pairs
        .iter()
        .map(|(a, r)| a.as_secs_f64() / r.as_secs_f64())
        .collect();
    ratios.sort_by(f64::total_cmp);
    let paired = ratios[ratios.len() / 2];
    drop(alone);
    // Light latency, idle and beside a heavy job.
    let idle = best(5, || process(&api.addr, &small));
    let beside = {
        let (status, _) = http(&api.addr, "POST", "/v1/documents", &big);
        assert_eq!(status, 202);
        std::thread::sleep(Duration::from_millis(200));
        let t = best(5, || process(&api.addr, &small));
        std::thread::sleep(Duration::from_secs(3));
        t
    };
    drop(worker);

    // One parse worker per replica: one replica, then two.
    let single = format!(
        "{base}[server]\nrole = \"worker\"\nlanes = [\"heavy\"]\n[pipeline]\nworkers = 1\n"
    );
    let w1 = serve(&dir, "w1", &single);
    process(&api.addr, &big);
    let one_worker = best(2, || process(&api.addr, &big));
    let w2 = serve(&dir, "w2", &single);
    let two_workers = best(2, || process(&api.addr, &big));
    drop((w1, w2, api));

    // The Kubernetes split with deploy/kubernetes's settings (two parse
    // workers a worker pod) under a burst of 3 large and 24 small uploads
    // at once: the peak memory of each role, which sizes its pods.
    let pod = |name: &str, server: &str| {
        let config = format!("{base}[server]\n{server}\n[pipeline]\nworkers = 2\n");
        serve(&dir, name, &config)
    };
    let api = pod("api-pod", "role = \"api\"");
    let light = pod("light-pod", "role = \"worker\"\nlanes = [\"light\"]");
    let heavy = pod("heavy-pod", "role = \"worker\"\nlanes = [\"heavy\"]");
    let burst: Vec<String> = (0..27)
        .map(|i| submit(&api.addr, if i % 9 == 0 { &big } else { &small }))
        .collect();
    for job in &burst {
        wait_done(&api.addr, job);
    }
    let peak = |p: &Proc| support::status_mib(p.child.id(), "VmHWM");
    let peaks = [peak(&api), peak(&light), peak(&heavy)];
    drop((api, light, heavy));
    let _ = redis_proc.kill();
    let _ = redis_proc.wait();
    let _ = std::fs::remove_dir_all(&dir);

    let rate = |d: Duration| pages / d.as_secs_f64();
    println!("replicas: source3.pdf, 1,611 pages, best of the runs, same run");
    println!(
        "  role all, no Redis:                  {:>7.0} pages/s ({:.2} s)",
        rate(one),
        one.as_secs_f64()
    );
    println!(
        "  api + worker through Redis:          {:>7.0} pages/s ({:.2} s) = {:.2}x the single process (median of 7 back-to-back pairs {:.2}x)",
        rate(through_redis),
        through_redis.as_secs_f64(),
        one.as_secs_f64() / through_redis.as_secs_f64(),
        paired
    );
    println!(
        "  1 worker replica, 1 parse worker:    {:>7.0} pages/s",
        rate(one_worker)
    );
    println!(
        "  2 worker replicas, 1 parse worker each: {:>4.0} pages/s = {:.2}x",
        rate(two_workers),
        one_worker.as_secs_f64() / two_workers.as_secs_f64()
    );
    println!(
        "  8-page light job through Redis: idle {:.1} ms, beside the heavy job {:.1} ms = {:.2}x",
        idle.as_secs_f64() * 1e3,
        beside.as_secs_f64() * 1e3,
        beside.as_secs_f64() / idle.as_secs_f64()
    );
    println!(
        "  peak RSS, 3 x 1,611 + 24 x 8 pages at once: api {:.0} MB, light worker {:.0} MB, heavy worker {:.0} MB",
        peaks[0] * 1.048576,
        peaks[1] * 1.048576,
        peaks[2] * 1.048576
    );
}
