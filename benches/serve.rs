//! Load on `warmlane serve` over loopback: tool calls per second and p50 /
//! p99 latency at 1, 16 and 64 concurrent keep-alive clients, errors
//! counted, and the server's resident memory before and after; through the
//! HTTP API and through MCP (2026-07-28, stateless JSON-RPC at `/mcp`),
//! beside the same call made in process through the library, in the same
//! run.
//!
//! Run: `cargo bench --bench serve`.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use support::Conn;
use warmlane_host::{Config, Host};

const INPUT: &[u8] = br#"{"text":"Warm pools serve calls. Lanes keep light work moving."}"#;

/// How a call reaches the tool.
#[derive(Clone, Copy)]
enum Route {
    /// `POST /v1/tools/text-stats`.
    Api,
    /// A stateless MCP `tools/call` at `/mcp`.
    Mcp,
}

/// One keep-alive connection calling the tool one way.
struct Client {
    conn: Conn,
    path: &'static str,
    headers: &'static [(&'static str, &'static str)],
    body: Vec<u8>,
    route: Route,
}

impl Client {
    fn connect(addr: &str, route: Route) -> Client {
        let input = std::str::from_utf8(INPUT).unwrap();
        let (path, headers, body): (_, &[(&str, &str)], _) = match route {
            Route::Api => ("/v1/tools/text-stats", &[], input.to_string()),
            Route::Mcp => (
                "/mcp",
                &[
                    ("Accept", "application/json, text/event-stream"),
                    ("MCP-Protocol-Version", "2026-07-28"),
                    ("Mcp-Method", "tools/call"),
                    ("Mcp-Name", "text-stats"),
                ],
                format!(
                    r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"text-stats","arguments":{input},"_meta":{{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{{}}}}}}}}"#
                ),
            ),
        };
        Client {
            conn: Conn::open(addr),
            path,
            headers,
            body: body.into_bytes(),
            route,
        }
    }

    /// One call; whether it answered.
    fn call(&mut self) -> bool {
        let (status, body) = self
            .conn
            .send_with("POST", self.path, self.headers, &self.body);
        match self.route {
            Route::Api => status == 200,
            Route::Mcp => status == 200 && body.contains("\"isError\":false"),
        }
    }
}

struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start() -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_warmlane"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stderr(Stdio::piped())
            .spawn()
            .expect("start warmlane serve");
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        let addr = loop {
            line.clear();
            assert!(
                stderr.read_line(&mut line).unwrap() > 0,
                "warmlane serve exited"
            );
            if let Some(a) = line.trim().strip_prefix("warmlane: listening on http://") {
                break a.to_string();
            }
        };
        std::thread::spawn(move || for _ in stderr.lines() {});
        let server = Server { child, addr };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !Client::connect(&server.addr, Route::Api).call() {
            assert!(Instant::now() < deadline, "the server never answered");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    /// Resident memory, in MiB.
    fn rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `clients` connections calling for `secs`: calls, errors, sorted latencies.
fn load(addr: &str, route: Route, clients: usize, secs: f64) -> (usize, usize, Vec<Duration>) {
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let addr = addr.to_string();
            std::thread::spawn(move || {
                let mut c = Client::connect(&addr, route);
                let (mut times, mut errors) = (Vec::new(), 0);
                while Instant::now() < until {
                    let t = Instant::now();
                    if !c.call() {
                        errors += 1;
                    }
                    times.push(t.elapsed());
                }
                (times, errors)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    for t in threads {
        let (times, e) = t.join().unwrap();
        all.extend(times);
        errors += e;
    }
    all.sort();
    (all.len(), errors, all)
}

fn pct(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
}

fn serve(c: &mut Criterion) {
    let server = Server::start();
    let host = Host::new(Config::default()).expect("host");
    assert!(host.wait_warm(Duration::from_secs(60)));
    let input = std::str::from_utf8(INPUT).unwrap();

    let mut group = c.benchmark_group("serve");
    group.bench_function("tool_call_in_process", |b| {
        b.iter(|| host.call_tool("text-stats", input, None).unwrap())
    });
    let mut client = Client::connect(&server.addr, Route::Api);
    group.bench_function("tool_call_http_1_client", |b| {
        b.iter(|| assert!(client.call()))
    });
    let mut client = Client::connect(&server.addr, Route::Mcp);
    group.bench_function("tool_call_mcp_1_client", |b| {
        b.iter(|| assert!(client.call()))
    });
    group.finish();

    let start = Instant::now();
    let mut n = 0;
    while start.elapsed() < Duration::from_secs(2) {
        host.call_tool("text-stats", input, None).unwrap();
        n += 1;
    }
    let in_process = n as f64 / start.elapsed().as_secs_f64();
    let rss_before = server.rss_mib();
    println!("\ntool calls (text-stats) on loopback, 5 s per row, same run");
    println!("in process, 1 thread: {in_process:>8.0} calls/s");
    println!("route  clients   calls/s   p50        p99        errors   server RSS");
    for (route, name, clients) in [
        (Route::Api, "api", 1),
        (Route::Api, "api", 16),
        (Route::Api, "api", 64),
        (Route::Mcp, "mcp", 1),
        (Route::Mcp, "mcp", 16),
        (Route::Mcp, "mcp", 64),
    ] {
        let secs = 5.0;
        let (calls, errors, times) = load(&server.addr, route, clients, secs);
        println!(
            "{name:<5}  {clients:>7}   {:>7.0}   {:>9.2?}  {:>9.2?}  {errors:>6}   {:.1} MiB ({:.2}x in process)",
            calls as f64 / secs,
            pct(&times, 0.5),
            pct(&times, 0.99),
            server.rss_mib(),
            calls as f64 / secs / in_process,
        );
    }
    println!("server RSS before the load: {rss_before:.1} MiB");
}

criterion_group!(benches, serve);
criterion_main!(benches);
