//! Traces over OTLP/HTTP: a receiver on loopback decodes what warmlane
//! sends, and the tests follow a tool call and an upload through their
//! span trees, across replicas.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use prost::Message;

use crate::redis_server::RedisServer;
use crate::replicas::{done, one_at_a_time, start};
use crate::serve::{Serve, request};
use crate::support;

/// A span as received.
#[derive(Debug, Clone)]
struct Span {
    name: String,
    trace: String,
    id: String,
    parent: String,
    service: String,
    attributes: HashMap<String, String>,
}

impl Span {
    fn attr(&self, key: &str) -> &str {
        self.attributes.get(key).map_or("", String::as_str)
    }
}

/// An OTLP/HTTP receiver on a free loopback port: what it was sent.
struct Receiver {
    addr: String,
    spans: Arc<Mutex<Vec<Span>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let spans = Arc::new(Mutex::new(Vec::new()));
        let sink = spans.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let sink = sink.clone();
                std::thread::spawn(move || serve_exports(conn, &sink));
            }
        });
        Receiver { addr, spans }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits until `ok` holds for the spans received; them.
    fn wait(&self, what: &str, ok: impl Fn(&[Span]) -> bool) -> Vec<Span> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let spans = self.spans.lock().unwrap().clone();
            if ok(&spans) {
                return spans;
            }
            assert!(
                Instant::now() < deadline,
                "never received {what}; received: {:#?}",
                spans
                    .iter()
                    .map(|s| (&s.name, &s.trace, &s.parent))
                    .collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Answers the export requests of one connection.
fn serve_exports(conn: TcpStream, sink: &Mutex<Vec<Span>>) {
    let mut writer = conn.try_clone().unwrap();
    let mut reader = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let request_line = line.trim().to_string();
        let mut length = 0;
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let l = line.trim();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        assert!(
            request_line.starts_with("POST /v1/traces "),
            "{request_line}"
        );
        let export = ExportTraceServiceRequest::decode(body.as_slice()).expect("OTLP protobuf");
        let mut spans = sink.lock().unwrap();
        for rs in export.resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .map(|a| text(a.value.as_ref().and_then(|v| v.value.as_ref())))
                .unwrap_or_default();
            for span in rs.scope_spans.into_iter().flat_map(|s| s.spans) {
                spans.push(Span {
                    name: span.name,
                    trace: hex(&span.trace_id),
                    id: hex(&span.span_id),
                    parent: hex(&span.parent_span_id),
                    service: service.clone(),
                    attributes: span
                        .attributes
                        .iter()
                        .map(|a| {
                            (
                                a.key.clone(),
                                text(a.value.as_ref().and_then(|v| v.value.as_ref())),
                            )
                        })
                        .collect(),
                });
            }
        }
        drop(spans);
        let _ = writer.write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n",
        );
    }
}

fn text(v: Option<&Any>) -> String {
    match v {
        Some(Any::StringValue(s)) => s.clone(),
        Some(Any::IntValue(i)) => i.to_string(),
        Some(Any::DoubleValue(d)) => d.to_string(),
        Some(Any::BoolValue(b)) => b.to_string(),
        _ => String::new(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The caller's trace: its trace id, its span id, and the header.
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER: &str = "00f067aa0ba902b7";

fn traceparent() -> String {
    format!("00-{TRACE}-{CALLER}-01")
}

/// Uploads en-lppl.pdf in the caller's trace: the job's id and pages.
fn upload(server: &Serve) -> (String, u64) {
    let pdf = std::fs::read(support::data("en-lppl.pdf")).unwrap();
    let r = request(
        &server.addr,
        "POST",
        "/v1/documents",
        &[
            ("Content-Type", "application/pdf"),
            ("traceparent", &traceparent()),
        ],
        &pdf,
    );
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    let job = r.json()["job"].as_str().unwrap().to_string();
    (job, r.json()["pages"].as_u64().unwrap())
}

/// Checks an upload's spans, batches of 2 pages: request ← caller, job ←
/// request, every batch ← job, its pages counted once; the job's span.
fn upload_tree<'a>(spans: &'a [Span], job: &str, pages: u64) -> &'a Span {
    let upload = one(spans, "upload request", |s| s.name == "POST /v1/documents");
    assert_eq!(upload.parent, CALLER);
    let job_span = one(spans, "job", |s| s.name == "job");
    assert_eq!(job_span.parent, upload.id);
    assert_eq!(job_span.attr("job"), job);
    let batch: Vec<&Span> = spans.iter().filter(|s| s.name == "batch").collect();
    assert_eq!(batch.len(), pages.div_ceil(2) as usize, "{batch:#?}");
    for b in &batch {
        assert_eq!(b.parent, job_span.id, "{b:#?}");
        assert_eq!((b.attr("job"), b.attr("lane")), (job, "light"), "{b:#?}");
    }
    let counted: u64 = batch
        .iter()
        .map(|b| b.attr("pages").parse::<u64>().unwrap())
        .sum();
    assert_eq!(counted, pages);
    job_span
}

/// Whether `span` is `ancestor`'s descendant.
fn descends(spans: &[Span], span: &Span, ancestor: &str) -> bool {
    let mut at = span;
    for _ in 0..spans.len() {
        if at.parent == ancestor {
            return true;
        }
        match spans.iter().find(|s| s.id == at.parent) {
            Some(parent) => at = parent,
            None => return false,
        }
    }
    false
}

/// The spans of the caller's trace.
fn in_trace(spans: Vec<Span>) -> Vec<Span> {
    spans.into_iter().filter(|s| s.trace == TRACE).collect()
}

fn one<'a>(spans: &'a [Span], what: &str, pick: impl Fn(&Span) -> bool) -> &'a Span {
    let found: Vec<&Span> = spans.iter().filter(|s| pick(s)).collect();
    assert_eq!(found.len(), 1, "one {what} span, not {found:#?}");
    found[0]
}

#[test]
fn a_tool_call_and_an_upload_are_spans_of_the_callers_trace() {
    let receiver = Receiver::start();
    // The standard variable names the collector here (the replicas' test
    // uses the configuration).
    let endpoint = receiver.endpoint();
    let server = Serve::start_with_env(
        "[pipeline]\nbatch_pages = 2\n",
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("WARMLANE_LOG", "info"),
            ("WARMLANE_LOG_FORMAT", "json"),
        ],
    );
    server.wait_ready();
    let tp = traceparent();
    let r = request(
        &server.addr,
        "POST",
        "/v1/tools/text-stats",
        &[("Content-Type", "application/json"), ("traceparent", &tp)],
        br#"{"text":"one two three"}"#,
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let (job, pages) = upload(&server);
    server.wait_done(&job);
    let batches = pages.div_ceil(2) as usize;
    let spans = receiver.wait("the tool call's and the job's spans", |spans| {
        spans.iter().filter(|s| s.name == "batch").count() >= batches
            && spans.iter().any(|s| s.name == "job")
            && spans.iter().any(|s| s.name == "tool text-stats")
    });
    assert!(spans.iter().all(|s| s.service == "warmlane"), "{spans:#?}");
    // The job's polling requests are traces of their own.
    let spans = in_trace(spans);
    // The tool call: request ← caller, tool ← request.
    let call = one(&spans, "tool request", |s| {
        s.name == "POST /v1/tools/{name}"
    });
    assert_eq!(call.parent, CALLER);
    assert_eq!(call.attr("http.response.status_code"), "200");
    let tool = one(&spans, "tool", |s| s.name == "tool text-stats");
    assert_eq!(tool.parent, call.id);
    assert_eq!(tool.attr("tool"), "text-stats");
    assert_eq!(tool.attr("outcome"), "ok");
    for key in ["duration_ms", "cpu_ms", "tokens", "component"] {
        assert!(!tool.attr(key).is_empty(), "{key}: {tool:#?}");
    }
    let job_span = upload_tree(&spans, &job, pages);
    assert_eq!(job_span.attr("pages"), pages.to_string());
    // An MCP tool call (stateless, 2026-07-28): its span, then the tool's.
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"text-stats","arguments":{"text":"four five"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#;
    let r = request(
        &server.addr,
        "POST",
        "/mcp",
        &[
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
            ("MCP-Protocol-Version", "2026-07-28"),
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", "text-stats"),
            ("traceparent", &tp),
        ],
        body.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let spans = in_trace(receiver.wait("the MCP call's spans", |spans| {
        spans.iter().any(|s| s.name == "tools/call text-stats")
            && spans.iter().filter(|s| s.name == "tool text-stats").count() >= 2
    }));
    let mcp = one(&spans, "MCP call", |s| s.name == "tools/call text-stats");
    let post = one(&spans, "MCP request", |s| s.name == "POST /mcp");
    assert_eq!(post.parent, CALLER);
    // Under the request's span (rmcp's own `serve_inner` may come between).
    assert!(descends(&spans, mcp, &post.id), "{spans:#?}");
    assert_eq!(mcp.attr("rpc.method"), "tools/call");
    one(&spans, "tool under MCP", |s| {
        s.name == "tool text-stats" && s.parent == mcp.id
    });
    // Logs carry the trace id.
    let log = server.log();
    let accepted = log
        .lines()
        .find(|l| l.contains("document accepted"))
        .unwrap_or_else(|| panic!("no log of the upload: {log}"));
    assert!(
        accepted.contains(&format!("\"trace_id\":\"{TRACE}\"")),
        "{accepted}"
    );
    // A request without a `traceparent` starts a trace of its own; probes
    // are not traced.
    let r = server.post(
        "/v1/tools/text-stats",
        "application/json",
        br#"{"text":"x"}"#,
    );
    assert_eq!(r.status, 200);
    let spans = receiver.wait("a trace of its own", |spans| {
        spans
            .iter()
            .any(|s| s.trace != TRACE && s.name == "tool text-stats")
    });
    let own = one(&spans, "new request", |s| {
        s.trace != TRACE && s.name.starts_with("POST")
    });
    assert!(own.parent.is_empty(), "{own:#?}");
    assert!(
        !spans.iter().any(|s| s.name.contains("readyz")),
        "{spans:#?}"
    );
}

#[test]
fn an_upload_is_one_trace_across_the_api_and_worker_replicas() {
    let _one = one_at_a_time();
    let receiver = Receiver::start();
    let redis = RedisServer::start();
    let telemetry = format!(
        "[telemetry]\notlp_endpoint = \"{}\"\n[pipeline]\nbatch_pages = 2\n",
        receiver.endpoint()
    );
    let api = start(&redis, "api", &telemetry);
    let _w1 = start(&redis, "worker", &telemetry);
    let _w2 = start(&redis, "worker", &telemetry);
    let (job, pages) = upload(&api);
    let state = done(&api, &job, Duration::from_secs(60));
    assert_eq!(state["state"], "done", "{state}");
    let batches = pages.div_ceil(2) as usize;
    let spans = receiver.wait("every batch's span", |spans| {
        spans.iter().filter(|s| s.name == "batch").count() >= batches
            && spans.iter().any(|s| s.name == "chunk")
    });
    let spans = in_trace(spans);
    let job_span = upload_tree(&spans, &job, pages);
    // The batches were parsed by the workers.
    for b in spans.iter().filter(|s| s.name == "batch") {
        assert!(!b.attr("replica").is_empty(), "{b:#?}");
    }
    let chunks: Vec<&Span> = spans.iter().filter(|s| s.name == "chunk").collect();
    assert!(
        chunks.iter().all(|c| c.parent == job_span.id),
        "{chunks:#?}"
    );
}
