//! MCP, end to end: the real binary (`warmlane serve` at `/mcp`, and
//! `warmlane mcp` on stdio) driven by the Python `mcp` package's client in
//! both its modes: `auto` speaks 2026-07-28 (stateless; sessions are
//! handles passed as the `session` argument), `legacy` the 2025-11-25
//! handshake (the `Mcp-Session-Id` is the warmlane session).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::redis_server::RedisServer;
use crate::serve::{Serve, request};
use crate::support;

/// The Python client version the tests are written against.
const MCP_REQUIREMENT: &str = "mcp>=2.3,<3";

/// A `PYTHONPATH` under which `import mcp` gives a 2.3+ client.
fn python() -> &'static Option<PathBuf> {
    static PATH: OnceLock<Option<PathBuf>> = OnceLock::new();
    PATH.get_or_init(|| {
        support::python_path(
            "mcp",
            "import mcp.client.client, mcp.types; mcp.client.client.Client",
            MCP_REQUIREMENT,
        )
    })
}

/// Runs `steps` through the Python client; its report.
pub(crate) fn client(transport: &[&str], steps: Value) -> Value {
    let path = python();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/all/mcp_client.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script).args(transport);
    if let Some(p) = path {
        cmd.env("PYTHONPATH", p);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(steps.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the MCP client failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "the MCP client's report is not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The `code` of a failed call's structured error.
pub(crate) fn error_code(step: &Value) -> &str {
    assert_eq!(step["is_error"], true, "expected a failed call: {step}");
    step["structured"]["error"]["code"].as_str().unwrap_or("")
}

/// The stateless revision, where a session is a handle the client passes.
fn stateless_steps() -> Value {
    json!([
        {"list": true},
        {"call": "text-stats", "args": {"text": "hello world"}},
        {"call": "notes", "args": {"action": "list"}},
        {"call": "session-start", "save": "s"},
        {"call": "notes", "args": {"action": "add", "text": "one", "session": "$s"}},
        {"call": "notes", "args": {"action": "add", "text": "two", "session": "$s"}},
        {"call": "notes", "args": {"action": "list", "session": "$s"}},
        {"call": "session-usage", "args": {"session": "$s"}},
        {"call": "session-end", "args": {"session": "$s"}},
        {"call": "notes", "args": {"action": "list", "session": "$s"}},
        {"call": "text-stats", "args": {"text": 5}},
        {"call": "text-stats", "args": {"text": "a", "session": 7}},
        {"call": "session-usage", "args": {}},
        {"call": "no-such-tool", "args": {}},
        {"call": "text-stats", "args": {"text": "still serving"}},
        {"call": "session-start", "save": "c"},
        {"call": "notes", "args": {"action": "add", "text": "x", "session": "$c"}},
        {"call": "notes", "args": {"action": "nope", "session": "$c"}},
        {"call": "session-calls", "args": {"session": "$c", "limit": 5}},
        {"call": "session-calls", "args": {"session": "$c", "limit": 0}},
    ])
}

fn check_stateless(report: &Value) {
    assert_eq!(report["protocol_version"], "2026-07-28", "{report}");
    let s = report["steps"].as_array().unwrap();
    // The tools as they are, with the optional `session` argument, and the
    // session tools.
    let tools = s[0]["tools"].as_array().unwrap();
    let names: Vec<&str> = tools.iter().filter_map(|t| t["name"].as_str()).collect();
    for name in [
        "text-stats",
        "notes",
        "session-start",
        "session-end",
        "session-usage",
        "session-calls",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    let stats = tools.iter().find(|t| t["name"] == "text-stats").unwrap();
    let props = &stats["inputSchema"]["properties"];
    assert!(
        props["text"].is_object() && props["session"]["type"] == "string",
        "{stats}"
    );
    assert!(
        !stats["inputSchema"]["required"]
            .to_string()
            .contains("session")
    );
    // A stateless call answers with text and structured content.
    assert_eq!(s[1]["is_error"], false, "{}", s[1]);
    assert_eq!(s[1]["structured"]["words"], 2);
    assert_eq!(
        serde_json::from_str::<Value>(s[1]["text"].as_str().unwrap()).unwrap(),
        s[1]["structured"]
    );
    // A stateful tool without a session fails as a tool, not the protocol.
    assert_eq!(error_code(&s[2]), "session-required", "{}", s[2]);
    assert!(
        s[2]["text"].as_str().unwrap().contains("`session-start`"),
        "{}",
        s[2]
    );
    // A session by handle keeps state between stateless calls.
    let handle = s[3]["structured"]["session"].as_str().unwrap();
    assert_eq!(s[4]["structured"]["notes"], 1, "{}", s[4]);
    assert_eq!(s[5]["structured"]["notes"], 2, "{}", s[5]);
    assert_eq!(
        s[6]["structured"]["notes"],
        json!(["one", "two"]),
        "{}",
        s[6]
    );
    let usage = &s[7]["structured"];
    assert_eq!(usage["session"], handle);
    assert_eq!(usage["usage"]["calls"], 3, "{usage}");
    assert!(usage["usage"]["micros"].as_u64().unwrap() > 0, "{usage}");
    assert!(usage["keys"].as_array().unwrap().len() >= 2, "{usage}");
    assert_eq!(s[8]["structured"]["ended"], true, "{}", s[8]);
    assert_eq!(s[8]["structured"]["usage"]["calls"], 3);
    // Ended means gone.
    assert_eq!(error_code(&s[9]), "unknown-session", "{}", s[9]);
    // Input the schema refuses, and a session that is not a handle.
    assert_eq!(error_code(&s[10]), "invalid-input", "{}", s[10]);
    assert!(
        s[10]["text"].as_str().unwrap().contains("text"),
        "{}",
        s[10]
    );
    assert_eq!(error_code(&s[11]), "invalid-input", "{}", s[11]);
    assert!(
        s[11]["text"].as_str().unwrap().contains("session"),
        "{}",
        s[11]
    );
    // No connection session to fall back on in this revision.
    assert_eq!(error_code(&s[12]), "invalid-input", "{}", s[12]);
    // An unknown tool is a protocol error: invalid params.
    assert_eq!(s[13]["protocol_error"]["code"], -32602, "{}", s[13]);
    assert!(
        s[13]["protocol_error"]["message"]
            .as_str()
            .unwrap()
            .contains("no-such-tool")
    );
    assert_eq!(s[14]["structured"]["words"], 2, "{}", s[14]);
    // A session's call log: each call, in order, the failed one with why.
    let calls = s[18]["structured"]["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2, "{}", s[18]);
    assert_eq!(
        (&calls[0]["tool"], &calls[0]["ok"]),
        (&json!("notes"), &json!(true))
    );
    assert_eq!(
        (&calls[1]["tool"], &calls[1]["ok"]),
        (&json!("notes"), &json!(false))
    );
    assert!(
        calls[1]["error"].as_str().unwrap().contains("action"),
        "{}",
        s[18]
    );
    assert!(calls[0]["at_ms"].as_u64() <= calls[1]["at_ms"].as_u64());
    assert_eq!(error_code(&s[19]), "invalid-input", "{}", s[19]);
}

/// The handshake revision, where the connection has a session of its own
/// (and an explicit handle still works beside it).
fn session_steps() -> Vec<Value> {
    vec![
        json!({"call": "notes", "args": {"action": "add", "text": "implicit"}}),
        json!({"call": "notes", "args": {"action": "list"}}),
        json!({"call": "session-start", "save": "s"}),
        json!({"call": "notes", "args": {"action": "list", "session": "$s"}}),
        json!({"call": "session-usage", "args": {}, "save": "implicit"}),
    ]
}

/// Checks the outcome of [`session_steps`]; the connection's session.
fn check_sessions(report: &Value) -> String {
    assert_eq!(report["protocol_version"], "2025-11-25", "{report}");
    let s = &report["steps"].as_array().unwrap()[..5];
    assert_eq!(s[0]["structured"]["notes"], 1, "{}", s[0]);
    assert_eq!(s[1]["structured"]["notes"], json!(["implicit"]), "{}", s[1]);
    // The explicit handle is a different session.
    assert_eq!(s[3]["structured"]["notes"], json!([]), "{}", s[3]);
    let usage = &s[4]["structured"];
    assert_eq!(usage["usage"]["calls"], 2, "{usage}");
    // The session also keeps the MCP handshake (over HTTP), out of sight.
    let keys = usage["keys"].as_array().unwrap();
    assert!(!keys.is_empty(), "{usage}");
    assert!(
        keys.iter().all(|k| !k.as_str().unwrap().starts_with('\0')),
        "{usage}"
    );
    assert_ne!(usage["session"], s[2]["structured"]["session"]);
    usage["session"].as_str().unwrap().to_string()
}

#[test]
fn a_python_mcp_client_uses_the_tools_over_http_in_both_revisions() {
    let server = Serve::start("");
    server.wait_ready();
    let url = format!("http://{}/mcp", server.addr);
    let report = client(&["http", &url, "auto"], stateless_steps());
    check_stateless(&report);

    // The connection's session is an ordinary warmlane session while the
    // MCP session lasts...
    let mut steps = session_steps();
    steps.push(json!({"http_get": "/v1/sessions/$implicit"}));
    let report = client(&["http", &url, "legacy"], Value::Array(steps));
    let implicit = check_sessions(&report);
    let seen = &report["steps"][5];
    assert_eq!(seen["status"], 200, "{seen}");
    assert_eq!(seen["body"]["usage"]["calls"], 2, "{seen}");
    // ...and ends with it: the client closed it with DELETE /mcp.
    let r = server.get(&format!("/v1/sessions/{implicit}"));
    assert_eq!(
        (r.status, r.code().as_str()),
        (404, "unknown-session"),
        "{implicit} outlived its MCP session"
    );
    // MCP calls are in the tool figures: three answered `notes` calls per
    // revision; the one made outside a session failed (the call in the
    // ended session was refused before the tool ran).
    let metrics = String::from_utf8(server.get("/metrics").body).unwrap();
    let count = |outcome: &str| {
        let series = format!("warmlane_tool_calls_total{{tool=\"notes\",outcome=\"{outcome}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series.as_str()))
            .unwrap_or_else(|| panic!("no {series}in {metrics}"))
            .trim()
            .to_string()
    };
    assert_eq!((count("ok").as_str(), count("error").as_str()), ("7", "2"));
}

#[test]
fn a_python_mcp_client_uses_the_tools_over_stdio_in_both_revisions() {
    let dir = support::scratch("mcp-stdio");
    let config = dir.join("warmlane.toml");
    std::fs::write(&config, "").unwrap();
    let binary = env!("CARGO_BIN_EXE_warmlane");
    let config = config.to_str().unwrap();
    let report = client(&["stdio", binary, config, "auto"], stateless_steps());
    check_stateless(&report);
    let report = client(
        &["stdio", binary, config, "legacy"],
        Value::Array(session_steps()),
    );
    check_sessions(&report);
}

/// A JSON-RPC POST to `/mcp`.
fn rpc(addr: &str, session: Option<&str>, body: &Value) -> crate::serve::Reply {
    let mut headers = vec![
        ("Content-Type", "application/json"),
        ("Accept", "application/json, text/event-stream"),
        ("MCP-Protocol-Version", "2025-11-25"),
    ];
    if let Some(id) = session {
        headers.push(("Mcp-Session-Id", id));
    }
    request(addr, "POST", "/mcp", &headers, body.to_string().as_bytes())
}

/// The JSON-RPC message of an answer: a JSON body, or the first event of
/// an event stream that carries one (sessions open with an empty priming
/// event).
fn message(reply: &crate::serve::Reply) -> Value {
    let body = String::from_utf8_lossy(&reply.body);
    let json = body
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim)
        .find(|d| !d.is_empty())
        .unwrap_or(&body)
        .trim()
        .to_string();
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("not JSON-RPC ({e}): {body}"))
}

#[test]
fn an_mcp_session_is_continued_by_another_replica_on_the_same_redis() {
    let redis = RedisServer::start();
    let config = format!("[redis]\nurl = \"{}\"\n", redis.url());
    let (a, b) = (Serve::start(&config), Serve::start(&config));
    a.wait_ready();
    b.wait_ready();
    let init = rpc(
        &a.addr,
        None,
        &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "warmlane-test", "version": "1"}}}),
    );
    assert_eq!(init.status, 200, "{}", String::from_utf8_lossy(&init.body));
    let id = init
        .header("mcp-session-id")
        .expect("an Mcp-Session-Id")
        .to_string();
    assert_eq!(message(&init)["result"]["protocolVersion"], "2025-11-25");
    let ack = rpc(
        &a.addr,
        Some(&id),
        &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    );
    assert_eq!(ack.status, 202);
    let call = |addr: &str, n: u32, args: Value| {
        message(&rpc(
            addr,
            Some(&id),
            &json!({"jsonrpc": "2.0", "id": n, "method": "tools/call",
                    "params": {"name": "notes", "arguments": args}}),
        ))
    };
    let added = call(&a.addr, 2, json!({"action": "add", "text": "on a"}));
    assert_eq!(added["result"]["structuredContent"]["notes"], 1, "{added}");
    // Replica b has never seen this MCP session: it takes it over from
    // the store, and the warmlane session with it.
    let listed = call(&b.addr, 3, json!({"action": "list"}));
    assert_eq!(
        listed["result"]["structuredContent"]["notes"],
        json!(["on a"]),
        "{listed}"
    );
    // Ending it on b ends it everywhere.
    let end = request(
        &b.addr,
        "DELETE",
        "/mcp",
        &[
            ("Mcp-Session-Id", id.as_str()),
            ("MCP-Protocol-Version", "2025-11-25"),
        ],
        b"",
    );
    assert!(matches!(end.status, 200 | 204), "{}", end.status);
    let r = a.get(&format!("/v1/sessions/{id}"));
    assert_eq!(r.status, 404);
    // Protocol errors carry the spec's codes; the server keeps serving.
    let bad = rpc(&a.addr, None, &json!("not a request"));
    assert_eq!(bad.status, 400);
    assert_eq!(message(&bad)["error"]["code"], -32600, "invalid request");
    // Replica a still holds the MCP session in memory, but its warmlane
    // session is gone: its tools say so rather than start a fresh one.
    let after = call(&a.addr, 10, json!({"action": "list"}));
    assert_eq!(after["result"]["isError"], true, "{after}");
    assert_eq!(
        after["result"]["structuredContent"]["error"]["code"], "unknown-session",
        "{after}"
    );
    let garbled = request(
        &a.addr,
        "POST",
        "/mcp",
        &[
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
        ],
        b"{\"jsonrpc\": \"2.0\", \"id\": 9, \"method\"",
    );
    assert_eq!(garbled.status, 400);
    assert_eq!(message(&garbled)["error"]["code"], -32700, "parse error");
    let method = rpc(
        &a.addr,
        Some(&id),
        &json!({"jsonrpc": "2.0", "id": 11, "method": "no/such-method"}),
    );
    assert_eq!(
        message(&method)["error"]["code"],
        -32601,
        "method not found"
    );
    assert_eq!(a.get("/livez").status, 200);
}
