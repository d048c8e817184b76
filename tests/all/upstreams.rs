//! Components calling paid APIs through the host: a real HTTP upstream on
//! loopback (started here) that keeps its own request and token limits,
//! answers chat completions with a `usage` block and parses page batches;
//! the `llm-chat` and `hosted-parser` example components calling it.

use std::io::BufReader;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use warmlane_host::{Config, Host, SessionId, ToolError};

use crate::loopback_http::{read_request, respond};
use crate::redis_server::RedisServer;
use crate::serve::Serve;
use crate::support::{open, plugin_dir};

/// What the upstream saw and said.
#[derive(Default)]
struct Seen {
    /// Every request: when it arrived, its path, the status answered.
    requests: Vec<(Instant, String, u16)>,
    /// The `usage.total_tokens` of every chat completion answered.
    usage: u64,
    /// The `Authorization` headers requests carried.
    authorizations: Vec<String>,
    /// The `messages` of the last chat completion.
    last_messages: Value,
    /// The limiter's theoretical arrival time (GCRA), if it has a limit.
    tat: Option<Instant>,
}

/// The upstream's own limit: `rate` requests a second, at most `burst` at
/// once (a token bucket, as APIs' per-minute limits are kept).
#[derive(Clone, Copy)]
struct Limit {
    rate: f64,
    burst: f64,
}

/// A small HTTP/1.1 upstream on loopback: one thread per connection.
struct Upstream {
    port: u16,
    seen: Arc<Mutex<Seen>>,
    /// Requests still to be answered 429 with `Retry-After: 2`.
    refuse: Arc<AtomicU32>,
    /// Connections accepted.
    connections: Arc<AtomicU32>,
    /// Whether a connection that answered once closes on reading its next
    /// request, unanswered: a server whose idle timeout fires as a request
    /// arrives, as the client sees it.
    hang_up: Arc<AtomicBool>,
}

impl Upstream {
    fn start(limit: Option<Limit>) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the upstream");
        let port = listener.local_addr().unwrap().port();
        let seen: Arc<Mutex<Seen>> = Arc::default();
        let refuse: Arc<AtomicU32> = Arc::default();
        let connections: Arc<AtomicU32> = Arc::default();
        let hang_up: Arc<AtomicBool> = Arc::default();
        let (s, r, c, h) = (
            seen.clone(),
            refuse.clone(),
            connections.clone(),
            hang_up.clone(),
        );
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                c.fetch_add(1, Ordering::SeqCst);
                let (s, r, h) = (s.clone(), r.clone(), h.clone());
                std::thread::spawn(move || serve(stream, &s, &r, &h, limit));
            }
        });
        Upstream {
            port,
            seen,
            refuse,
            connections,
            hang_up,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn statuses(&self) -> Vec<u16> {
        let seen = self.seen.lock().unwrap();
        seen.requests.iter().map(|r| r.2).collect()
    }
}

/// Answers one connection's requests.
fn serve(
    stream: TcpStream,
    seen: &Mutex<Seen>,
    refuse: &AtomicU32,
    hang_up: &AtomicBool,
    limit: Option<Limit>,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut stream = stream;
    let mut answered = 0;
    while let Some(r) = read_request(&mut reader) {
        if answered > 0 && hang_up.load(Ordering::SeqCst) {
            return;
        }
        let (status, extra, answer) = answer(&r.target, &r.headers, &r.body, seen, refuse, limit);
        if !respond(&mut stream, status, &extra, &answer) {
            return;
        }
        answered += 1;
    }
}

/// The status, extra header lines and body for one request.
fn answer(
    target: &str,
    headers: &[(String, String)],
    body: &[u8],
    seen: &Mutex<Seen>,
    refuse: &AtomicU32,
    limit: Option<Limit>,
) -> (u16, String, Vec<u8>) {
    let now = Instant::now();
    let path = target.split('?').next().unwrap_or("").to_string();
    let authorization = headers
        .iter()
        .find(|(n, _)| n == "authorization")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            v["messages"].as_array()?.last()?["content"]
                .as_str()
                .map(String::from)
        })
        .unwrap_or_default();
    if message == "hang" {
        std::thread::sleep(Duration::from_secs(30));
    }
    let mut s = seen.lock().unwrap();
    s.authorizations.push(authorization.clone());
    // Told to refuse, or over the limit: 429 with Retry-After.
    let told = refuse
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let over = !told
        && limit.is_some_and(|l| {
            let interval = Duration::from_secs_f64(1.0 / l.rate);
            let tolerance = interval.mul_f64(l.burst - 1.0);
            let tat = s.tat.unwrap_or(now).max(now);
            if tat.duration_since(now) > tolerance {
                return true;
            }
            s.tat = Some(tat + interval);
            false
        });
    if over || told {
        s.requests.push((now, path, 429));
        return (
            429,
            "retry-after: 2\r\n".into(),
            b"{\"error\":\"rate limited\"}".to_vec(),
        );
    }
    let (status, out) = match path.as_str() {
        "/v1/chat/completions" => {
            let request: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            let max = request["max_tokens"].as_u64().unwrap_or(16);
            let content = match message.as_str() {
                "echo" => format!("you sent authorization {authorization}"),
                "big" => "x".repeat(2 << 20),
                m => format!("reply to {m}"),
            };
            // Prompt tokens: one per 8 bytes; completion: at most max.
            let used = body.len() as u64 / 8 + max.min(12);
            s.usage += used;
            s.last_messages = request["messages"].clone();
            let reply = json!({
                "choices": [{ "message": { "role": "assistant", "content": content } }],
                "usage": { "total_tokens": used },
            });
            (200, reply.to_string())
        }
        "/parse" => {
            let first: u32 = target
                .split("first_page=")
                .nth(1)
                .and_then(|n| n.parse().ok())
                .unwrap_or(1);
            match pdf_pages::parse_batch(body, first) {
                Ok(pages) => {
                    let pages: Vec<Value> = pages
                        .into_iter()
                        .map(|(number, text)| match text {
                            Ok(text) => json!({ "number": number, "text": text }),
                            Err(error) => json!({ "number": number, "error": error }),
                        })
                        .collect();
                    (200, json!({ "pages": pages }).to_string())
                }
                Err(e) => (422, json!({ "error": e }).to_string()),
            }
        }
        _ => (404, "{}".into()),
    };
    s.requests.push((now, path, status));
    (status, String::new(), out.into_bytes())
}

/// A host running `llm-chat` (and `hosted-parser` as the pipeline's
/// parser) against `llm` at `url`, with `extra` configuration.
fn host(url: &str, timeout_ms: u64, extra: &str) -> Host {
    static HOSTS: AtomicU32 = AtomicU32::new(0);
    let n = HOSTS.fetch_add(1, Ordering::Relaxed);
    let dir = plugin_dir(
        &format!("upstreams-{n}"),
        &[("llm_chat", "llm-chat"), ("hosted_parser", "hosted-parser")],
    );
    let key = dir.join("api-key");
    std::fs::write(&key, format!("{SECRET}\n")).unwrap();
    let text = format!(
        "[upstreams.llm]\nurls = [\"{url}/v1\"]\nplain_http = true\n\
         headers.authorization = {{ file = \"{}\", prefix = \"Bearer \" }}\n\
         budget = \"tokens\"\ncost = {{ tokens = {{ estimate = \"/max_tokens\", usage = \"/usage/total_tokens\" }} }}\n\
         max_response_kib = 1024\ntotal_timeout_ms = {timeout_ms}\n\
         [budgets.tokens]\ncapacity = 1000000\nburst = 100000\nlight_share = 0.0\n\
         [components.llm-chat]\nupstreams = [\"llm\"]\n{extra}",
        key.display()
    );
    let mut config = Config::from_toml(&text).expect("config");
    config.plugins.dir = Some(dir);
    let host = Host::new(config).expect("start the host");
    assert!(host.wait_warm(Duration::from_secs(60)));
    host
}

const SECRET: &str = "sk-test-5e3ac7e1b0d94f2a";

fn chat(host: &Host, message: &str, session: Option<&SessionId>) -> Result<Value, ToolError> {
    let input = json!({ "message": message, "max_tokens": 20 }).to_string();
    host.call_tool("chat", &input, session)
        .map(|out| serde_json::from_str(&out).unwrap())
}

fn metric(host: &Host, name: &str, labels: &str) -> f64 {
    host.metrics()
        .lines()
        .find(|l| l.starts_with(&format!("{name}{{")) && l.contains(labels))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn an_llm_tool_talks_through_the_host_keeps_its_conversation_and_its_tokens_balance() {
    let upstream = Upstream::start(None);
    let host = host(&upstream.url(), 1500, "");
    let session = host.create_session().unwrap();
    let first = chat(&host, "hello", Some(&session)).unwrap();
    assert_eq!(first["reply"], "reply to hello");
    let second = chat(&host, "and again", Some(&session)).unwrap();
    assert_eq!(second["reply"], "reply to and again");
    assert_eq!(second["turns"], 2);
    // The conversation went with the second request, from the session.
    let messages = upstream.seen.lock().unwrap().last_messages.clone();
    assert_eq!(messages.as_array().unwrap().len(), 3, "{messages}");
    assert_eq!(messages[0]["content"], "hello");
    assert_eq!(messages[1]["content"], "reply to hello");
    // The host injected the key; the component never had it.
    for a in &upstream.seen.lock().unwrap().authorizations {
        assert_eq!(a, &format!("Bearer {SECRET}"));
    }
    // The books balance: what was settled is what the upstream reported,
    // and the budget was charged exactly that.
    let reported = upstream.seen.lock().unwrap().usage;
    assert!(reported > 0);
    assert_eq!(
        metric(
            &host,
            "warmlane_upstream_tokens_used_total",
            "upstream=\"llm\""
        ),
        reported as f64
    );
    let b = host.budget_stats().into_iter().next().unwrap();
    assert_eq!(b.drawn_light - b.refunded - b.forfeited, reported);
    // The session's usage counts the requests and their tokens.
    let usage = host.session_usage(&session).unwrap();
    assert_eq!(
        (usage.calls, usage.requests, usage.tokens),
        (2, 2, reported)
    );
    assert_eq!(
        metric(
            &host,
            "warmlane_upstream_requests_total",
            "component=\"llm-chat\",status=\"200\""
        ),
        2.0
    );
}

#[test]
fn connections_are_kept_alive_and_one_the_upstream_dropped_costs_a_reconnect_not_an_error() {
    let upstream = Upstream::start(None);
    let host = host(&upstream.url(), 10_000, "");
    for i in 0..10 {
        chat(&host, &format!("kept {i}"), None).expect("a call on a kept connection");
    }
    assert_eq!(
        upstream.connections.load(Ordering::SeqCst),
        1,
        "ten sequential requests share one connection"
    );
    assert_eq!(
        metric(
            &host,
            "warmlane_upstream_connections_total",
            "upstream=\"llm\""
        ),
        1.0
    );
    // From now on the upstream drops a connection that answered once as
    // the next request arrives on it: every request's kept connection
    // fails without an answer, and the request goes out on a new one.
    upstream.hang_up.store(true, Ordering::SeqCst);
    for i in 0..10 {
        chat(&host, &format!("dropped {i}"), None).expect("a dropped connection is no error");
    }
    assert_eq!(
        upstream.connections.load(Ordering::SeqCst),
        11,
        "each request dropped on its kept connection went out on a new one"
    );
    assert_eq!(
        metric(
            &host,
            "warmlane_upstream_connections_total",
            "upstream=\"llm\""
        ),
        11.0
    );
    assert!(upstream.statuses().iter().all(|&s| s == 200));
    assert_eq!(upstream.statuses().len(), 20, "every request answered once");

    // No keeping: a connection per request.
    let fresh = Upstream::start(None);
    let text = format!(
        "[upstreams.llm]\nurls = [\"{}/v1\"]\nplain_http = true\nidle_timeout_ms = 0\n\
         [components.llm-chat]\nupstreams = [\"llm\"]\n",
        fresh.url()
    );
    let mut config = Config::from_toml(&text).expect("config");
    config.plugins.dir = Some(plugin_dir("upstreams-fresh", &[("llm_chat", "llm-chat")]));
    let host = Host::new(config).expect("start the host");
    for i in 0..3 {
        chat(&host, &format!("fresh {i}"), None).expect("a call on a fresh connection");
    }
    assert_eq!(fresh.connections.load(Ordering::SeqCst), 3);
}

#[test]
fn secrets_denials_limits_timeouts_and_a_down_upstream_are_clear_errors_and_the_host_serves_on() {
    let upstream = Upstream::start(None);
    let host = host(&upstream.url(), 1500, "");
    // An upstream that echoes what it was sent: the key is taken out.
    let echoed = chat(&host, "echo", None).unwrap();
    let reply = echoed["reply"].as_str().unwrap();
    assert!(!reply.contains(SECRET), "{reply}");
    assert!(reply.contains("Bearer [redacted]"), "{reply}");
    // A response over max_response_kib.
    let e = chat(&host, "big", None).unwrap_err().to_string();
    assert!(
        e.contains("over the upstream's limit of 1048576 bytes"),
        "{e}"
    );
    // An upstream that never answers: stopped at total_timeout_ms.
    let started = Instant::now();
    let e = chat(&host, "hang", None).unwrap_err().to_string();
    assert!(e.contains("did not answer in time"), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        metric(
            &host,
            "warmlane_upstream_requests_total",
            "status=\"timeout\""
        ),
        1.0
    );
    // And the host serves on.
    assert_eq!(
        chat(&host, "still there?", None).unwrap()["reply"],
        "reply to still there?"
    );

    // A component without the upstream is denied, and told so.
    let denied = self::host(&upstream.url(), 1500, "").config().clone();
    let mut config = denied;
    config
        .components
        .get_mut("llm-chat")
        .unwrap()
        .upstreams
        .clear();
    let closed = Host::new(config).unwrap();
    let session = closed.create_session().unwrap();
    let e = chat(&closed, "hello", Some(&session))
        .unwrap_err()
        .to_string();
    assert!(e.contains("denied"), "{e}");
    assert_eq!(
        metric(
            &closed,
            "warmlane_upstream_denied_total",
            "component=\"llm-chat\""
        ),
        1.0
    );

    // An upstream that is down.
    let gone = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = gone.local_addr().unwrap().port();
    drop(gone);
    let down = self::host(&format!("http://127.0.0.1:{port}"), 1500, "");
    let session = down.create_session().unwrap();
    let e = chat(&down, "hello", Some(&session))
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot be reached"), "{e}");
    assert_eq!(
        metric(
            &down,
            "warmlane_upstream_requests_total",
            "status=\"unreachable\""
        ),
        1.0
    );
}

#[test]
fn a_hosted_parser_is_metered_by_pages_and_its_requests_draw_in_their_documents_lane() {
    let upstream = Upstream::start(None);
    // Every document is heavy here; the parser's requests draw from a budget
    // whose light reserve heavy work may not take.
    let extra = format!(
        "[upstreams.parser]\nurls = [\"{}\"]\nplain_http = true\nbudget = \"requests\"\n\
         [budgets.requests]\ncapacity = 10\nburst = 10\nlight_share = 0.5\n\
         [budgets.pages]\ncapacity = 100000\nburst = 1000\nlight_share = 0.0\n\
         [components.hosted-parser]\nupstreams = [\"parser\"]\nbudget = \"pages\"\n\
         [pipeline]\nparser = \"hosted-parser\"\nbatch_pages = 2\n[lanes]\nheavy_from_pages = 1\n",
        upstream.url()
    );
    let host = host(&upstream.url(), 1500, &extra);
    let doc = open("en-lppl.pdf", None);
    let pages = doc.page_count() as u64;
    let summary = host
        .process(doc, &host.document_options(), "hosted", &mut |_| {})
        .expect("process");
    assert!(summary.pages > 0 && summary.page_errors == 0, "{summary:?}");
    // The service parsed every batch, and the text is the real one.
    let batches = pages.div_ceil(2);
    let parsed = upstream.statuses().iter().filter(|s| **s == 200).count() as u64;
    assert_eq!(parsed, batches);
    assert!(summary.chunks > 0, "{summary:?}");
    let stats = host.budget_stats();
    let by = |name: &str| stats.iter().find(|b| b.name == name).unwrap().clone();
    // The component's cost: its pages, in the document's lane.
    assert_eq!(
        (by("pages").drawn_heavy, by("pages").drawn_light),
        (pages, 0)
    );
    // Its requests: one per batch, heavy, none from the light reserve.
    let requests = by("requests");
    assert_eq!((requests.drawn_heavy, requests.drawn_light), (batches, 0));
    let (_, reserved) = host
        .budgets()
        .find(|b| b.name() == "requests")
        .unwrap()
        .levels()
        .unwrap();
    // Heavy work may skim the light reserve only above half full.
    assert!(
        reserved >= 2.5,
        "heavy work drained the light reserve: {reserved}"
    );
}

#[test]
fn a_429_pauses_the_budget_for_every_host_sharing_it() {
    let redis = RedisServer::start();
    let upstream = Upstream::start(None);
    let extra = format!(
        "[redis]\nurl = \"{}\"\nkey_prefix = \"pause-{}\"\n",
        redis.url(),
        std::process::id()
    );
    let a = host(&upstream.url(), 8000, &extra);
    let b = host(&upstream.url(), 8000, &extra);
    upstream.refuse.store(1, Ordering::SeqCst);
    // The first host's request is refused with Retry-After: 2, which the
    // component gets (the upstream is not marked safe to retry).
    let e = chat(&a, "first", None).unwrap_err().to_string();
    assert!(e.contains("429") && e.contains("retry after 2"), "{e}");
    let refused_at = Instant::now();
    // The other host sends nothing until the pause is over.
    let _ = chat(&b, "second", None);
    let seen = upstream.seen.lock().unwrap();
    let t429 = seen.requests.iter().find(|r| r.2 == 429).unwrap().0;
    let next = seen
        .requests
        .iter()
        .find(|r| r.0 > t429)
        .map(|r| r.0)
        .expect("the second host's request arrived");
    let gap = next.duration_since(t429);
    assert!(
        gap >= Duration::from_millis(1900),
        "sent {gap:?} after the 429"
    );
    assert!(refused_at.elapsed() < Duration::from_secs(5));
    assert_eq!(
        metric(&a, "warmlane_budget_pauses_total", "budget=\"tokens\""),
        1.0
    );
}

/// The upstream's limit in the replicas' test, and the budget kept for it:
/// a little under the rate, a burst of one, so that requests granted on
/// time still fit the upstream's burst when the network delays some more
/// than others.
const LIMIT: Limit = Limit {
    rate: 50.0,
    burst: 5.0,
};
const BUDGET_RATE: u32 = 48;

#[test]
fn three_replicas_keep_a_shared_upstream_inside_its_limit_and_pause_together() {
    let _one = crate::replicas::one_at_a_time();
    let redis = RedisServer::start();
    let upstream = Upstream::start(Some(LIMIT));
    let dir = plugin_dir(
        "upstreams-replicas",
        &[("llm_chat", "llm-chat"), ("hosted_parser", "hosted-parser")],
    );
    let url = upstream.url();
    let config = format!(
        "[redis]\nurl = \"{}\"\n[plugins]\ndir = {:?}\n\
         [upstreams.llm]\nurls = [\"{url}/v1\"]\nplain_http = true\nbudget = \"account\"\nretry = true\n\
         headers.authorization = {{ env = \"TEST_LLM_API_KEY\", prefix = \"Bearer \" }}\n\
         [upstreams.parser]\nurls = [\"{url}\"]\nplain_http = true\nbudget = \"account\"\nretry = true\n\
         [budgets.account]\ncapacity = {BUDGET_RATE}\nburst = 1\nperiod_secs = 1\nlight_share = 0.0\n\
         [components.llm-chat]\nupstreams = [\"llm\"]\n\
         [components.hosted-parser]\nupstreams = [\"parser\"]\n\
         [pipeline]\nparser = \"hosted-parser\"\nbatch_pages = 1\n",
        redis.url(),
        dir.display().to_string()
    );
    let servers: Vec<Serve> = (0..3)
        .map(|_| Serve::start_with_env(&config, &[], &[("TEST_LLM_API_KEY", SECRET)]))
        .collect();
    for s in &servers {
        s.wait_ready();
    }
    let pdf = std::fs::read(crate::support::data("en-lppl.pdf")).unwrap();
    let stop = AtomicBool::new(false);
    // Tool calls from 8 callers a replica, and a document on each replica,
    // for `secs` seconds; what the callers got back.
    let load = |secs: u64, during: &dyn Fn()| {
        let failures = Mutex::new(Vec::new());
        stop.store(false, Ordering::SeqCst);
        std::thread::scope(|scope| {
            for server in &servers {
                for _ in 0..8 {
                    scope.spawn(|| {
                        while !stop.load(Ordering::SeqCst) {
                            let r = server.post(
                                "/v1/tools/chat",
                                "application/json",
                                br#"{"message":"hi","max_tokens":5}"#,
                            );
                            if r.status != 200 {
                                failures.lock().unwrap().push(r.json().to_string());
                            }
                        }
                    });
                }
            }
            let jobs: Vec<(usize, String)> = servers
                .iter()
                .enumerate()
                .map(|(i, server)| {
                    let r = server.post("/v1/documents", "application/pdf", &pdf);
                    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
                    (i, r.json()["job"].as_str().unwrap().to_string())
                })
                .collect();
            during();
            std::thread::sleep(Duration::from_secs(secs));
            stop.store(true, Ordering::SeqCst);
            for (i, job) in jobs {
                let state = servers[i].wait_done(&job);
                assert_eq!(state["errors"], json!([]), "{state}");
            }
        });
        failures.into_inner().unwrap()
    };

    // Under a load well past its limit, the upstream never has to refuse,
    // and the replicas use nearly all it allows.
    let failures = load(8, &|| {});
    assert!(failures.is_empty(), "{failures:?}");
    let (served, refused, rate) = {
        let seen = upstream.seen.lock().unwrap();
        let first = seen.requests[0].0 + Duration::from_secs(1);
        let last = seen.requests.last().unwrap().0;
        let steady = seen
            .requests
            .iter()
            .filter(|r| r.0 >= first && r.2 != 429)
            .count();
        let refused = seen.requests.iter().filter(|r| r.2 == 429).count();
        (
            seen.requests.len(),
            refused,
            steady as f64 / last.duration_since(first).as_secs_f64(),
        )
    };
    eprintln!(
        "three replicas against an upstream allowing {} requests/s (burst {}): {served} requests, {refused} answered 429, {rate:.1} requests/s in the steady state = {:.1}% of the allowed rate",
        LIMIT.rate,
        LIMIT.burst,
        100.0 * rate / LIMIT.rate
    );
    assert_eq!(refused, 0, "the upstream had to refuse requests");
    assert!(
        rate >= 0.95 * LIMIT.rate,
        "only {rate:.1} of {} requests/s used",
        LIMIT.rate
    );
    // The key was injected on every request.
    assert!(
        upstream
            .seen
            .lock()
            .unwrap()
            .authorizations
            .iter()
            .all(|a| a == &format!("Bearer {SECRET}") || a.is_empty())
    );

    // The upstream answers one request 429 with Retry-After: 2: no replica
    // sends anything more until the pause is over (bar requests already on
    // the wire when the 429 was sent), and the refused call is retried.
    let before = upstream.seen.lock().unwrap().requests.len();
    let failures = load(4, &|| {
        std::thread::sleep(Duration::from_millis(500));
        upstream.refuse.store(1, Ordering::SeqCst);
    });
    assert!(failures.is_empty(), "{failures:?}");
    let seen = upstream.seen.lock().unwrap();
    let after = &seen.requests[before..];
    let t429 = after.iter().find(|r| r.2 == 429).expect("a 429").0;
    let on_the_wire = Duration::from_millis(50);
    let during: Vec<Duration> = after
        .iter()
        .map(|r| r.0.saturating_duration_since(t429))
        .filter(|d| *d > on_the_wire && *d < Duration::from_millis(1950))
        .collect();
    let resumed = after
        .iter()
        .filter(|r| r.0 > t429 + Duration::from_secs(2))
        .count();
    let in_flight = after
        .iter()
        .filter(|r| r.0 > t429 && r.0 <= t429 + on_the_wire)
        .count();
    eprintln!(
        "after a 429 with Retry-After: 2, the upstream saw {in_flight} request(s) already on the wire within 50 ms, {} during the pause, {resumed} after it",
        during.len()
    );
    assert!(during.is_empty(), "requests during the pause at {during:?}");
    assert!(resumed > 0, "nothing was sent after the pause");
    let pauses: f64 = servers
        .iter()
        .map(|s| s.metric("warmlane_budget_pauses_total", "budget=\"account\""))
        .sum();
    assert!(pauses >= 1.0, "{pauses}");
}
