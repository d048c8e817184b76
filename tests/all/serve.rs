//! `warmlane serve`, end to end: the real binary on a free port, driven
//! over HTTP by a client that speaks plain HTTP/1.1.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::redis_server::RedisServer;
use crate::support;

/// An answer: status, headers (names lower-cased) and body.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Reply {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The error code of a JSON error body.
    pub(crate) fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
}

pub(crate) fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    try_request(addr, method, path, headers, body).unwrap_or_else(|e| panic!("{e}"))
}

/// One request on a connection of its own; an error says what went wrong
/// with the connection (refused, reset, an answer cut short).
pub(crate) fn try_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Reply, String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("connect to {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())
        .map_err(|e| format!("send {method} {path}: {e}"))?;
    // A server may answer (413) before reading all of a large body.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("{method} {path}: no complete answer ({} bytes)", raw.len()))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("{method} {path}: not an HTTP answer: {head}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v == "chunked")
    {
        body = unchunk(&body).ok_or_else(|| format!("{method} {path}: the body was cut short"))?;
    }
    Ok(Reply {
        status,
        headers,
        body,
    })
}

/// A chunked body's bytes, or `None` if it ends before its last chunk.
fn unchunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let at = raw.windows(2).position(|w| w == b"\r\n")?;
        let size = usize::from_str_radix(std::str::from_utf8(&raw[..at]).ok()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(raw.get(at + 2..at + 2 + size)?);
        raw = raw.get(at + 4 + size..)?;
    }
}

/// A running `warmlane serve`.
pub(crate) struct Serve {
    child: Child,
    pub(crate) addr: String,
    /// What the server has written to stderr since it said it listens.
    log: Arc<Mutex<String>>,
}

impl Serve {
    pub(crate) fn start(config: &str) -> Serve {
        Self::start_with_args(config, &[])
    }

    /// `warmlane serve` with `config` and the further arguments `args`.
    pub(crate) fn start_with_args(config: &str, args: &[&str]) -> Serve {
        Self::start_with_env(config, args, &[])
    }

    /// `warmlane serve` with `config`, the further arguments `args` and the
    /// environment variables `env` added.
    pub(crate) fn start_with_env(config: &str, args: &[&str], env: &[(&str, &str)]) -> Serve {
        // A directory per server: tests run in parallel.
        let dir = support::scratch(&format!("serve-{}", next_server()));
        let path = dir.join("warmlane.toml");
        std::fs::write(&path, config).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_warmlane"))
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&path)
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start warmlane serve");
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut addr = None;
        let mut said = String::new();
        let mut line = String::new();
        while stderr.read_line(&mut line).unwrap_or(0) > 0 {
            if let Some(a) = line.trim().strip_prefix("warmlane: listening on http://") {
                addr = a.split_whitespace().next().map(str::to_string);
                break;
            }
            said.push_str(&line);
            line.clear();
        }
        // Keep draining stderr so the server never blocks on it.
        let log = Arc::new(Mutex::new(String::new()));
        let kept = log.clone();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                let mut log = kept.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        Serve {
            child,
            log,
            addr: addr.unwrap_or_else(|| panic!("warmlane serve did not start: {said}")),
        }
    }

    pub(crate) fn get(&self, path: &str) -> Reply {
        request(&self.addr, "GET", path, &[], b"")
    }

    /// GET, or `None` when the server no longer takes connections.
    pub(crate) fn try_get(&self, path: &str) -> Option<Reply> {
        TcpStream::connect(&self.addr).ok()?;
        Some(self.get(path))
    }

    pub(crate) fn post(&self, path: &str, content_type: &str, body: &[u8]) -> Reply {
        request(
            &self.addr,
            "POST",
            path,
            &[("Content-Type", content_type)],
            body,
        )
    }

    pub(crate) fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.get("/readyz").status != 200 {
            assert!(
                Instant::now() < deadline,
                "never ready: {:?}",
                self.get("/readyz").json()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn submit(&self, name: &str) -> Value {
        let pdf = std::fs::read(support::data(name)).unwrap();
        let r = self.post("/v1/documents", "application/pdf", &pdf);
        assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
        r.json()
    }

    /// What the server has logged since it started listening.
    pub(crate) fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The server's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends signal `name` (`TERM`, `KILL`, `STOP`, `CONT`) to the server.
    pub(crate) fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits up to `limit` for the server to exit; its exit status.
    pub(crate) fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The sum of metric `name`'s samples whose labels contain `labels`.
    pub(crate) fn metric(&self, name: &str, labels: &str) -> f64 {
        let text = String::from_utf8(self.get("/metrics").body).unwrap_or_default();
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| {
                l.split(['{', ' ']).next() == Some(name)
                    && (labels.is_empty() || l.contains(labels))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    pub(crate) fn wait_done(&self, job: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let state = self.get(&format!("/v1/jobs/{job}")).json();
            if state["state"] == "done" || state["state"] == "evicted" {
                return state;
            }
            assert!(Instant::now() < deadline, "{state}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn next_server() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_pdf_goes_in_and_its_chunks_stream_out() {
    let server = Serve::start("");
    server.wait_ready();
    let accepted = server.submit("en-debian-faq.pdf");
    assert_eq!(
        (accepted["lane"].as_str(), accepted["pages"].as_u64()),
        (Some("light"), Some(73))
    );
    let job = accepted["job"].as_str().unwrap().to_string();
    // Streamed while the job runs, to the end.
    let stream = server.get(&format!("/v1/jobs/{job}/chunks"));
    assert_eq!(stream.status, 200);
    assert_eq!(stream.header("content-type"), Some("application/x-ndjson"));
    let records: Vec<Value> = String::from_utf8(stream.body)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let done = server.wait_done(&job);
    assert_eq!(done["pages_done"], 73);
    assert_eq!(records.len() as u64, done["chunks"].as_u64().unwrap());
    assert!(
        records
            .iter()
            .enumerate()
            .all(|(i, r)| r["chunk"] == i as u64)
    );
    assert!(
        records
            .iter()
            .any(|r| r["text"].as_str().unwrap().contains("Debian"))
    );
    // The synchronous variant, with the PDF as a multipart file part.
    let pdf = std::fs::read(support::data("en-lppl.pdf")).unwrap();
    let mut form = b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"lppl.pdf\"\r\nContent-Type: application/pdf\r\n\r\n".to_vec();
    form.extend_from_slice(&pdf);
    form.extend_from_slice(b"\r\n--XyZ--\r\n");
    let r = server.post(
        "/v1/documents?wait=true",
        "multipart/form-data; boundary=XyZ",
        &form,
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(
        (v["state"].as_str(), v["pages"].as_u64()),
        (Some("done"), Some(8))
    );
    assert!(!v["records"].as_array().unwrap().is_empty());
    let m = String::from_utf8(server.get("/metrics").body).unwrap();
    assert!(m.contains("warmlane_pages_processed_total 81"), "{m}");
}

#[test]
fn a_light_upload_finishes_while_a_heavy_one_runs() {
    let server =
        Serve::start("[pipeline]\nworkers = 1\nbatch_pages = 1\n[lanes]\nheavy_from_pages = 50\n");
    server.wait_ready();
    let heavy = server.submit("en-debian-faq.pdf");
    assert_eq!(heavy["lane"], "heavy");
    let light = server.submit("en-lppl.pdf");
    assert_eq!(light["lane"], "light");
    let light_done = server.wait_done(light["job"].as_str().unwrap());
    assert_eq!(light_done["pages_done"], 8);
    let heavy_then = server
        .get(&format!("/v1/jobs/{}", heavy["job"].as_str().unwrap()))
        .json();
    assert_eq!(
        heavy_then["state"], "running",
        "the light job waited: {heavy_then}"
    );
    server.wait_done(heavy["job"].as_str().unwrap());
}

#[test]
fn a_stateful_tool_keeps_its_session_and_accounts_for_it() {
    let server = Serve::start("");
    server.wait_ready();
    let tools = server.get("/v1/tools").json();
    let names: Vec<&str> = tools["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["notes", "text-stats"]);
    assert!(tools["tools"][0]["input_schema"].is_object());
    let created = server.post("/v1/sessions", "application/json", b"");
    assert_eq!(created.status, 201);
    let session = created.json()["session"].as_str().unwrap().to_string();
    for text in ["one", "two", "three"] {
        let input = json!({"action": "add", "text": text}).to_string();
        let r = server.post(
            &format!("/v1/tools/notes?session={session}"),
            "application/json",
            input.as_bytes(),
        );
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }
    let r = server.post(
        &format!("/v1/tools/notes?session={session}"),
        "application/json",
        br#"{"action":"list"}"#,
    );
    assert_eq!(r.json()["notes"], json!(["one", "two", "three"]));
    let state = server.get(&format!("/v1/sessions/{session}")).json();
    assert_eq!(state["usage"]["calls"], 4);
    // Its call log: what the agent did, in order, a failed call with why.
    let bad = server.post(
        &format!("/v1/tools/notes?session={session}"),
        "application/json",
        br#"{"action":"shout"}"#,
    );
    assert_eq!(bad.status, 400, "{}", String::from_utf8_lossy(&bad.body));
    let log = server.get(&format!("/v1/sessions/{session}/calls")).json();
    let calls = log["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 5, "{log}");
    assert!(calls.iter().all(|c| c["tool"] == "notes"), "{log}");
    assert!(
        calls[..4]
            .iter()
            .all(|c| c["ok"] == true && c["micros"].as_u64() > Some(0))
    );
    assert_eq!(calls[4]["ok"], false);
    assert!(
        calls[4]["error"].as_str().unwrap().contains("action"),
        "{log}"
    );
    let last = server
        .get(&format!("/v1/sessions/{session}/calls?limit=2"))
        .json();
    assert_eq!(last["calls"].as_array().unwrap()[..], calls[3..]);
    let wrong = server.get(&format!("/v1/sessions/{session}/calls?limit=0"));
    assert_eq!((wrong.status, wrong.code()), (400, "bad-limit".to_string()));
    let gone = request(
        &server.addr,
        "DELETE",
        &format!("/v1/sessions/{session}"),
        &[],
        b"",
    );
    assert_eq!(gone.status, 204);
    assert_eq!(server.get(&format!("/v1/sessions/{session}")).status, 404);
    assert_eq!(
        server.get(&format!("/v1/sessions/{session}/calls")).status,
        404
    );
}

#[test]
fn bad_input_gets_a_clear_4xx_and_the_server_keeps_serving() {
    let server = Serve::start("[server]\nmax_upload_mib = 1\n");
    server.wait_ready();
    let mut cases: Vec<(Reply, u16, &str)> = vec![
        (
            server.post("/v1/tools/text-stats", "application/json", b"{not json"),
            400,
            "malformed-json",
        ),
        (
            server.post("/v1/tools/no-such-tool", "application/json", b"{}"),
            404,
            "unknown-tool",
        ),
        (
            server.post(
                "/v1/tools/notes",
                "application/json",
                br#"{"action":"list"}"#,
            ),
            400,
            "session-required",
        ),
        (
            server.post(
                "/v1/tools/text-stats",
                "application/json",
                br#"{"text": 42}"#,
            ),
            400,
            "invalid-input",
        ),
        (
            server.post(
                "/v1/tools/notes?session=never-made",
                "application/json",
                br#"{"action":"list"}"#,
            ),
            404,
            "unknown-session",
        ),
        (
            server.post(
                "/v1/tools/notes?session=bad%20id",
                "application/json",
                br#"{"action":"list"}"#,
            ),
            400,
            "bad-session-id",
        ),
        (
            server.post(
                "/v1/documents",
                "application/pdf",
                &vec![b'%'; 2 * 1024 * 1024],
            ),
            413,
            "upload-too-large",
        ),
        (
            server.post(
                "/v1/documents",
                "application/pdf",
                &std::fs::read(support::data("not-a-pdf.pdf")).unwrap(),
            ),
            400,
            "not-a-pdf",
        ),
        (
            server.post("/v1/documents", "application/pdf", b""),
            400,
            "empty-upload",
        ),
        (server.get("/v1/jobs/j-nope"), 404, "unknown-job"),
        (server.get("/v1/nothing-here"), 404, "not-found"),
    ];
    // text-stats itself ignores extra fields; the host checks the schema.
    let extra = server.post(
        "/v1/tools/text-stats",
        "application/json",
        br#"{"text":"a","extra":1}"#,
    );
    assert!(
        extra.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("schema"),
        "{}",
        extra.json()
    );
    cases.push((extra, 400, "invalid-input"));
    for (reply, status, code) in cases {
        assert_eq!(
            (reply.status, reply.code().as_str()),
            (status, code),
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
        assert!(
            !reply.json()["error"]["message"]
                .as_str()
                .unwrap()
                .is_empty()
        );
    }
    assert_eq!(server.get("/livez").status, 200);
    let r = server.post(
        "/v1/tools/text-stats",
        "application/json",
        br#"{"text":"still here"}"#,
    );
    assert_eq!(r.status, 200);
}

#[test]
fn a_session_is_continued_by_a_second_server_and_readiness_follows_redis() {
    let mut redis = RedisServer::start();
    let config = format!(
        "[redis]\nurl = \"{}\"\ntimeout_ms = 200\n[budgets.calls]\ncapacity = 1000\nburst = 100\n",
        redis.url()
    );
    let (first, second) = (Serve::start(&config), Serve::start(&config));
    first.wait_ready();
    second.wait_ready();
    let session = first.post("/v1/sessions", "application/json", b"").json()["session"]
        .as_str()
        .unwrap()
        .to_string();
    let add = first.post(
        &format!("/v1/tools/notes?session={session}"),
        "application/json",
        br#"{"action":"add","text":"kept in redis"}"#,
    );
    assert_eq!(add.status, 200);
    let list = second.post(
        &format!("/v1/tools/notes?session={session}"),
        "application/json",
        br#"{"action":"list"}"#,
    );
    assert_eq!(list.json()["notes"], json!(["kept in redis"]));
    // Redis stopped: not ready (fail-closed), and session calls say why.
    redis.stop();
    let r = second.get("/readyz");
    assert_eq!(r.status, 503);
    assert!(
        r.json()["not_ready"].to_string().contains("budget `calls`"),
        "{}",
        r.json()
    );
    let r = second.post(
        &format!("/v1/tools/notes?session={session}"),
        "application/json",
        br#"{"action":"list"}"#,
    );
    assert_eq!((r.status, r.code().as_str()), (503, "sessions-unavailable"));
    redis.restart();
    second.wait_ready();
}

#[test]
fn readiness_is_false_while_a_pool_is_not_warm_and_says_why() {
    // The chunker needs 49 pages of memory at start; 1 MiB is 16. Its
    // pool can never fill, and the server must not call itself ready.
    let server = Serve::start("[components.chunker]\nmemory_mib = 1\n");
    assert_eq!(server.get("/livez").status, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    let reasons = loop {
        let r = server.get("/readyz");
        assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
        let reasons = r.json()["not_ready"].to_string();
        assert!(reasons.contains("`chunker`"), "{reasons}");
        if reasons.contains("cannot be warmed") || Instant::now() > deadline {
            break reasons;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(reasons.contains("memory"), "{reasons}");
    // Everything else serves.
    let r = server.post(
        "/v1/tools/text-stats",
        "application/json",
        br#"{"text":"a b"}"#,
    );
    assert_eq!(r.status, 200);
    // Still not ready after several retries: the refill keeps failing.
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(server.get("/readyz").status, 503);
}

#[test]
fn sigterm_lets_a_streaming_job_finish_then_stops() {
    let mut server = Serve::start("[pipeline]\nworkers = 1\nbatch_pages = 1\n");
    server.wait_ready();
    let job = server.submit("en-debian-faq.pdf");
    let (addr, path) = (
        server.addr.clone(),
        format!("/v1/jobs/{}/chunks", job["job"].as_str().unwrap()),
    );
    let reader = std::thread::spawn(move || request(&addr, "GET", &path, &[], b""));
    std::thread::sleep(Duration::from_millis(50));
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = server.child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "still running after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "{exit:?}");
    assert!(
        TcpStream::connect(&server.addr).is_err(),
        "still accepting after stopping"
    );
    // The open stream was served to the end of the document.
    let streamed = reader.join().unwrap();
    let last: Value = String::from_utf8(streamed.body)
        .unwrap()
        .lines()
        .last()
        .map(|l| serde_json::from_str(l).unwrap())
        .expect("chunks were streamed");
    assert_eq!(last["last_page"], 73, "{last}");
}
