//! MCP: the host's tools for Model Context Protocol clients, over
//! Streamable HTTP (`/mcp` in `warmlane serve`) and over stdio
//! (`warmlane mcp`), through the `rmcp` crate.
//!
//! Sessions follow the protocol revision the client speaks:
//! - 2026-07-28 is stateless. `session-start` issues a session handle and
//!   the client passes it to any tool as the ordinary argument `session`
//!   (the spec's guidance for stateful tools); `session-end` ends it.
//! - Before that (2025-11-25 and older), a client's MCP session *is* a
//!   warmlane session: over HTTP the warmlane session's id is the
//!   `Mcp-Session-Id` (so any replica sharing the Redis session store can
//!   continue it, and `DELETE /mcp` ends it); over stdio the connection
//!   has one, ended with the connection. A `session` argument still wins.
//!
//! Tool failures (bad input, a trap, a spent budget, an unknown session)
//! are results with `isError` and the same error codes as the HTTP API;
//! only requests the protocol itself cannot serve (an unknown tool) are
//! JSON-RPC errors.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::request::Parts;
use rmcp::model::{
    CacheScope, CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock,
    Implementation, JsonObject, ListToolsResult, PaginatedRequestParams, ProtocolVersion,
    ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::session::{
    SessionState, SessionStore as McpSessionStore, SessionStoreError,
};
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::ApiError;
use crate::error::ToolError;
use crate::host::Host;
use crate::session::{CallRecord, SessionId, StoreError, Usage};

/// The argument that carries a session handle.
const SESSION_ARG: &str = "session";
/// The tools MCP adds beside the components' own.
const SESSION_START: &str = "session-start";
const SESSION_END: &str = "session-end";
const SESSION_USAGE: &str = "session-usage";
const SESSION_CALLS: &str = "session-calls";
const RESERVED: [&str; 4] = [SESSION_START, SESSION_END, SESSION_USAGE, SESSION_CALLS];

/// The largest JSON-RPC message `/mcp` reads.
pub(super) const MAX_REQUEST_BYTES: usize = 4 << 20;

/// How long an idle HTTP MCP session stays in a replica's memory at most.
const MCP_KEEP_ALIVE: Duration = Duration::from_secs(300);

/// How long a client may keep the tool list: it is fixed for the process.
const TOOL_LIST_TTL_MS: u64 = 60_000;

/// The tool list as MCP shows it, built once per server.
struct Catalog {
    tools: Vec<Tool>,
    /// Tools whose schema got the `session` argument from us (so it is taken
    /// out of their input before the call); a tool that declares its own
    /// `session` property keeps it.
    with_session_arg: Vec<String>,
}

impl Catalog {
    fn new(host: &Host) -> Result<Catalog, String> {
        let mut tools = session_tools();
        let mut with_session_arg = Vec::new();
        for info in host.tools() {
            if RESERVED.contains(&info.name.as_str()) {
                return Err(format!(
                    "tool `{}` (component `{}`) has a name MCP reserves for sessions ({}); rename it",
                    info.name,
                    info.component,
                    RESERVED.join(", ")
                ));
            }
            let mut schema = object(info.input_schema);
            if add_session_arg(&mut schema) {
                with_session_arg.push(info.name.clone());
            }
            tools.push(Tool::new(info.name, info.description, schema));
        }
        Ok(Catalog {
            tools,
            with_session_arg,
        })
    }
}

/// Adds the optional `session` argument to an object schema that does not
/// name one itself; whether it did.
fn add_session_arg(schema: &mut JsonObject) -> bool {
    schema
        .entry("type")
        .or_insert_with(|| Value::String("object".into()));
    let properties = schema
        .entry("properties")
        .or_insert_with(|| Value::Object(JsonObject::new()));
    match properties {
        Value::Object(p) if !p.contains_key(SESSION_ARG) => {
            p.insert(SESSION_ARG.into(), session_property(false));
            true
        }
        _ => false,
    }
}

fn session_property(for_session_tools: bool) -> Value {
    let description = if for_session_tools {
        "The session handle from `session-start`. Optional on connections that keep an MCP \
         session (protocol 2025-11-25 and older): the connection's own session."
    } else {
        "A session handle from `session-start`: the call reads and writes that session's \
         state, and its cost is counted there. Optional."
    };
    json!({ "type": "string", "description": description })
}

/// `value` if it is a JSON object, else an empty one.
fn object(value: Value) -> JsonObject {
    match value {
        Value::Object(o) => o,
        _ => JsonObject::new(),
    }
}

fn session_tools() -> Vec<Tool> {
    let handle_only = object(json!({
        "type": "object",
        "properties": { SESSION_ARG: session_property(true) },
        "additionalProperties": false,
    }));
    let no_input =
        object(json!({ "type": "object", "properties": {}, "additionalProperties": false }));
    vec![
        Tool::new(
            SESSION_START,
            "Starts a session and returns its handle as `session`. Pass that handle as the \
             `session` argument of other tools to keep state between calls; end it with \
             `session-end`. Idle sessions expire.",
            no_input,
        ),
        Tool::new(
            SESSION_END,
            "Ends a session, forgetting its state, and returns what its calls cost.",
            handle_only.clone(),
        ),
        Tool::new(
            SESSION_USAGE,
            "What a session holds (its keys) and what its calls have cost so far: calls, \
             wall time, CPU time and budget tokens.",
            handle_only,
        ),
        Tool::new(
            SESSION_CALLS,
            "A session's last tool calls, oldest first: the tool, when it started, its wall \
             and CPU time, the budget tokens it drew, and whether it failed and why.",
            object(json!({
                "type": "object",
                "properties": {
                    SESSION_ARG: session_property(true),
                    "limit": {
                        "type": "integer", "minimum": 1, "maximum": MAX_CALLS_SHOWN,
                        "description": "How many of the last calls (default 20).",
                    },
                },
                "additionalProperties": false,
            })),
        ),
    ]
}

/// Where the session a call runs in comes from when it names none.
#[derive(Clone)]
enum Implicit {
    /// Streamable HTTP: the `Mcp-Session-Id` of a pre-2026 client.
    HttpHeader,
    /// Stdio: one session for the connection, made on first use.
    Connection(Arc<Mutex<Option<SessionId>>>),
}

/// The MCP server handler: one per HTTP MCP session (or stateless request)
/// and one per stdio connection; all share the host and the catalog.
#[derive(Clone)]
pub(crate) struct McpTools {
    host: Arc<Host>,
    catalog: Arc<Catalog>,
    implicit: Implicit,
}

impl McpTools {
    fn info() -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("warmlane", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "warmlane runs sandboxed tools. Stateful tools keep their state in a session: \
                 call `session-start` and pass the handle it returns as the `session` argument.",
            )
    }

    /// The session a call without a `session` argument runs in, if any:
    /// the connection's, for clients older than 2026-07-28.
    fn implicit_session(&self, context: &RequestContext<RoleServer>) -> Option<SessionId> {
        // Sessions were removed from the protocol in 2026-07-28.
        let stateless = context
            .protocol_version()
            .is_some_and(|v| v.as_str() >= ProtocolVersion::V_2026_07_28.as_str());
        if stateless {
            return None;
        }
        match &self.implicit {
            Implicit::HttpHeader => context
                .extensions
                .get::<Parts>()
                .and_then(|parts| parts.headers.get("mcp-session-id"))
                .and_then(|v| v.to_str().ok())
                .and_then(|v| SessionId::parse(v).ok()),
            Implicit::Connection(slot) => Some(
                slot.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get_or_insert_with(SessionId::random)
                    .clone(),
            ),
        }
    }

    /// The session a call runs in: its `session` argument (taken out of
    /// the arguments when `take_argument`) or the connection's.
    fn session_for(
        &self,
        arguments: &mut JsonObject,
        take_argument: bool,
        context: &RequestContext<RoleServer>,
    ) -> Result<Option<Bound>, ToolError> {
        let argument = if take_argument {
            arguments.remove(SESSION_ARG)
        } else {
            None
        };
        match argument {
            Some(Value::String(handle)) => SessionId::parse(&handle)
                .map(|id| Some(Bound { id, reopen: false }))
                .map_err(ToolError::InvalidInput),
            Some(Value::Null) | None => Ok(self.implicit_session(context).map(|id| Bound {
                id,
                reopen: matches!(self.implicit, Implicit::Connection(_)),
            })),
            Some(other) => Err(ToolError::InvalidInput(format!(
                "`session` must be a session handle (a string), not {other}"
            ))),
        }
    }

    /// Runs a blocking call into the host off the async threads.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Host) -> T + Send + 'static,
    ) -> Result<T, ErrorData> {
        let host = self.host.clone();
        crate::telemetry::spawn_blocking(move || f(&host))
            .await
            .map_err(|e| ErrorData::internal_error(format!("the call's worker failed: {e}"), None))
    }

    async fn call(
        &self,
        name: String,
        mut arguments: JsonObject,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        // A tool that declares its own `session` property keeps it; only
        // the connection's session applies to it.
        let take_argument =
            RESERVED.contains(&name.as_str()) || self.catalog.with_session_arg.contains(&name);
        let session = match self.session_for(&mut arguments, take_argument, &context) {
            Ok(s) => s,
            Err(e) => return Ok(failure(e)),
        };
        let report = match name.as_str() {
            SESSION_START => {
                self.blocking(|host| {
                    host.create_session()
                        .map(|id| json!({ "session": id.as_str() }))
                })
                .await?
            }
            SESSION_CALLS => {
                let limit = match arguments.get("limit") {
                    None => DEFAULT_CALLS_SHOWN,
                    Some(v) => match v.as_u64().filter(|n| (1..=MAX_CALLS_SHOWN).contains(n)) {
                        Some(n) => n as usize,
                        None => {
                            return Ok(failure(ToolError::InvalidInput(format!(
                                "/limit: must be an integer from 1 to {MAX_CALLS_SHOWN}"
                            ))));
                        }
                    },
                };
                let Some(bound) = session else {
                    return Ok(failure(ToolError::InvalidInput(
                        "name the session: `session` is required on connections without an MCP \
                         session (protocol 2026-07-28)"
                            .into(),
                    )));
                };
                self.blocking(move |host| {
                    let calls = host.session_calls(&bound.id, limit)?;
                    Ok(json!({ "session": bound.id.as_str(), "calls": calls_json(&calls) }))
                })
                .await?
            }
            SESSION_END | SESSION_USAGE => {
                let Some(bound) = session else {
                    return Ok(failure(ToolError::InvalidInput(
                        "name the session: `session` is required on connections without an MCP \
                         session (protocol 2026-07-28)"
                            .into(),
                    )));
                };
                let end = name == SESSION_END;
                self.blocking(move |host| {
                    if bound.reopen {
                        host.open_session(&bound.id)?;
                    }
                    session_report(host, &bound.id, end)
                })
                .await?
            }
            _ => {
                let input = Value::Object(arguments).to_string();
                let output = self
                    .blocking(move |host| call_in(host, &name, &input, session))
                    .await?;
                return match output {
                    Ok(text) => Ok(success(text)),
                    // An unknown tool is the protocol's business: the client
                    // named something `tools/list` never showed.
                    Err(ToolError::UnknownTool(tool)) => Err(ErrorData::invalid_params(
                        format!("Unknown tool: {tool}"),
                        Some(json!({ "tool": tool })),
                    )),
                    Err(e) => Ok(failure(e)),
                };
            }
        };
        Ok(match report {
            Ok(value) => CallToolResult::structured(value),
            Err(e) => failure(ToolError::Session(e)),
        })
    }
}

/// A session a call is bound to.
struct Bound {
    id: SessionId,
    /// Whether the session is the stdio connection's, which the host starts
    /// when it does not exist (yet, or any more).
    reopen: bool,
}

/// Calls tool `name`. A stdio connection's own session is started on first
/// use, and again if it expired while the connection stayed open. Any other
/// session that is gone is an error the client must see: a handle it passed
/// that ended, or an HTTP MCP session that expired or was ended (perhaps
/// through another replica), which the client must start anew.
fn call_in(
    host: &Host,
    name: &str,
    input: &str,
    session: Option<Bound>,
) -> Result<String, ToolError> {
    let Some(bound) = session else {
        return host.call_tool(name, input, None);
    };
    match host.call_tool(name, input, Some(&bound.id)) {
        Err(ToolError::Session(StoreError::NoSession)) if bound.reopen => {
            host.open_session(&bound.id).map_err(ToolError::Session)?;
            host.call_tool(name, input, Some(&bound.id))
        }
        other => other,
    }
}

fn session_report(host: &Host, id: &SessionId, end: bool) -> Result<Value, StoreError> {
    let keys = host.session_keys(id)?;
    let usage = host.session_usage(id)?;
    if end {
        host.delete_session(id)?;
    }
    Ok(json!({
        "session": id.as_str(),
        "ended": end,
        "keys": keys,
        "usage": usage_json(&usage),
    }))
}

/// A session's usage as the API shows it.
pub(super) fn usage_json(usage: &Usage) -> Value {
    json!({
        "calls": usage.calls, "micros": usage.micros,
        "cpu_nanos": usage.cpu_nanos, "tokens": usage.tokens,
        "requests": usage.requests,
    })
}

/// The most calls one read of a session's log shows, and how many when the
/// reader does not say.
pub(super) const MAX_CALLS_SHOWN: u64 = 1000;
pub(super) const DEFAULT_CALLS_SHOWN: usize = 20;

/// A session's calls as the API shows them.
pub(super) fn calls_json(calls: &[CallRecord]) -> Value {
    calls
        .iter()
        .map(|c| {
            let mut v = json!({
                "tool": c.tool, "at_ms": c.at_ms, "micros": c.micros,
                "cpu_nanos": c.cpu_nanos, "tokens": c.tokens, "requests": c.requests,
                "ok": c.error.is_none(),
            });
            if let Some(e) = &c.error {
                v["error"] = json!(e);
            }
            v
        })
        .collect()
}

/// A tool's JSON output as an MCP result: the text, and the value as
/// structured content when it is an object.
fn success(text: String) -> CallToolResult {
    let structured = match serde_json::from_str::<Value>(&text) {
        Ok(v @ Value::Object(_)) => Some(v),
        _ => None,
    };
    let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
    result.structured_content = structured;
    result
}

/// A failed call as an MCP result with `isError`: the message for the
/// model, and the HTTP API's error code for programs.
fn failure(e: ToolError) -> CallToolResult {
    let api = match e {
        // The HTTP API's advice is not this client's.
        ToolError::NeedsSession(_) => ApiError {
            message: format!(
                "{e}: call `{SESSION_START}` and pass the handle it returns as the \
                 `{SESSION_ARG}` argument"
            ),
            ..ApiError::from(e)
        },
        e => ApiError::from(e),
    };
    let mut error = json!({ "code": api.code, "message": api.message });
    if let Some(after) = api.retry_after {
        error["retry_after_secs"] = json!(after.as_secs_f64());
    }
    let mut result = CallToolResult::error(vec![ContentBlock::text(api.message)]);
    result.structured_content = Some(json!({ "error": error }));
    result
}

impl ServerHandler for McpTools {
    fn get_info(&self) -> ServerConfig {
        McpTools::info()
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.catalog.tools.clone())
            .with_ttl_ms(TOOL_LIST_TTL_MS)
            .with_cache_scope(CacheScope::Public))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.catalog.tools.iter().find(|t| t.name == name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        use tracing::Instrument;
        let arguments = request.arguments.unwrap_or_default();
        let name = request.name.into_owned();
        let span = tracing::info_span!(
            "mcp",
            otel.name = %format_args!("tools/call {name}"),
            rpc.system = "jsonrpc",
            rpc.method = "tools/call",
            tool = %name,
            trace_id = tracing::field::Empty,
        );
        // Over HTTP, the call continues the request's trace: its span if
        // it runs inside it, else the trace its `traceparent` names.
        let traceparent = context
            .extensions
            .get::<Parts>()
            .and_then(|p| p.headers.get("traceparent"))
            .and_then(|v| v.to_str().ok())
            .filter(|_| !crate::telemetry::in_trace())
            .map(str::to_owned);
        crate::telemetry::continue_from(&span, traceparent.as_deref());
        self.call(name, arguments, context)
            .instrument(span)
            .await
            .map(CallToolResponse::from)
    }
}

/// Keeps pre-2026 MCP sessions in the host's session store, so that an MCP
/// session and its warmlane session are one: made at the handshake, ended by
/// `DELETE /mcp`, and found by any replica that shares the store. The
/// client's `initialize` parameters, which a replica needs to take the
/// session over, are kept in the session under a host key (tools cannot
/// see it), so they live exactly as long as the session.
struct HandshakeStore {
    host: Arc<Host>,
}

/// Where a session keeps its MCP handshake.
const HANDSHAKE_KEY: &str = "\u{0}host/mcp-initialize";

impl HandshakeStore {
    async fn run<T: Send + 'static>(
        &self,
        session_id: &str,
        f: impl FnOnce(&Host, SessionId) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, SessionStoreError> {
        let id = SessionId::parse(session_id)?;
        let host = self.host.clone();
        match tokio::task::spawn_blocking(move || f(&host, id)).await {
            Ok(r) => r.map_err(|e| Box::new(e) as SessionStoreError),
            Err(e) => Err(Box::new(e)),
        }
    }
}

#[async_trait::async_trait]
impl McpSessionStore for HandshakeStore {
    async fn load(&self, session_id: &str) -> Result<Option<SessionState>, SessionStoreError> {
        let saved = self
            .run(session_id, |host, id| {
                match host.sessions().get(&id, HANDSHAKE_KEY) {
                    Err(StoreError::NoSession) => Ok(None),
                    other => other,
                }
            })
            .await?;
        match saved {
            None => Ok(None),
            Some(bytes) => Ok(Some(SessionState::new(serde_json::from_slice(&bytes)?))),
        }
    }

    async fn store(&self, session_id: &str, state: &SessionState) -> Result<(), SessionStoreError> {
        let handshake = serde_json::to_vec(&state.initialize_params)?;
        self.run(session_id, move |host, id| {
            host.open_session(&id)?;
            host.sessions().set(&id, HANDSHAKE_KEY, handshake)
        })
        .await
    }

    async fn delete(&self, session_id: &str) -> Result<(), SessionStoreError> {
        self.run(session_id, |host, id| host.delete_session(&id).map(|_| ()))
            .await
    }
}

/// The MCP tower service for `/mcp`: both protocol revisions, JSON answers
/// for plain calls, pre-2026 sessions kept in the host's session store.
/// Cancelling `stop` ends its sessions and open streams.
pub(crate) fn http_service(
    host: Arc<Host>,
    allowed_hosts: &[String],
    stop: CancellationToken,
) -> Result<StreamableHttpService<McpTools, LocalSessionManager>, String> {
    let catalog = Arc::new(Catalog::new(&host)?);
    let mut config = StreamableHttpServerConfig::default()
        .with_json_response(true)
        .with_legacy_session_mode(true)
        .with_max_request_body_bytes(MAX_REQUEST_BYTES)
        .with_cancellation_token(stop);
    config = if allowed_hosts.iter().any(|h| h == "*") {
        config.disable_allowed_hosts()
    } else {
        config.with_allowed_hosts(allowed_hosts.iter().cloned())
    };
    config.session_store = Some(Arc::new(HandshakeStore { host: host.clone() }));
    let tools = McpTools {
        host,
        catalog,
        implicit: Implicit::HttpHeader,
    };
    // A session idle past its keep-alive leaves this replica's memory but
    // not the store: its next request restores it. Letting it leave no
    // later than the warmlane session can expire means an in-memory MCP
    // session always has its warmlane session.
    let mut sessions = LocalSessionManager::default();
    let ttl = Duration::from_secs(tools.host.config().sessions.ttl_secs);
    sessions.session_config.keep_alive = Some(ttl.min(MCP_KEEP_ALIVE));
    Ok(StreamableHttpService::new(
        move || Ok(tools.clone()),
        Arc::new(sessions),
        config,
    ))
}

/// Serves the host's tools over stdin and stdout until the client closes
/// the connection; the connection's session (if a pre-2026 client used
/// one) ends with it.
pub async fn serve_stdio(host: Arc<Host>) -> anyhow::Result<()> {
    let catalog = Arc::new(Catalog::new(&host).map_err(anyhow::Error::msg)?);
    let connection = Arc::new(Mutex::new(None));
    let tools = McpTools {
        host: host.clone(),
        catalog,
        implicit: Implicit::Connection(connection.clone()),
    };
    let running = tools
        .serve(rmcp::transport::stdio_pipes())
        .await
        .map_err(|e| anyhow::anyhow!("the MCP handshake on stdio failed: {e}"))?;
    let ended = running.waiting().await;
    let session = connection.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(id) = session {
        tokio::task::spawn_blocking(move || host.delete_session(&id)).await??;
    }
    ended.map_err(|e| anyhow::anyhow!("the MCP connection on stdio failed: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handshake_is_kept_under_a_host_key() {
        assert!(crate::session::is_host_key(HANDSHAKE_KEY));
    }

    #[test]
    fn tools_get_an_optional_session_argument_unless_they_name_one() {
        let mut plain = object(json!({
            "type": "object",
            "properties": { "text": { "type": "string" } },
            "required": ["text"],
            "additionalProperties": false,
        }));
        assert!(add_session_arg(&mut plain));
        assert_eq!(plain["properties"][SESSION_ARG]["type"], "string");
        assert_eq!(plain["required"], json!(["text"]));

        let mut own = object(json!({
            "type": "object",
            "properties": { "session": { "type": "integer" } },
        }));
        assert!(!add_session_arg(&mut own));
        assert_eq!(own["properties"]["session"]["type"], "integer");

        // A tool without a schema of its own takes an object.
        let mut none = object(Value::Bool(true));
        assert!(add_session_arg(&mut none));
        assert_eq!(none["type"], "object");
    }

    #[test]
    fn the_session_tools_take_the_handle() {
        let tools = session_tools();
        let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
        assert_eq!(names, RESERVED);
        for t in &tools[1..] {
            assert_eq!(t.input_schema["properties"][SESSION_ARG]["type"], "string");
            assert!(t.input_schema.get("required").is_none());
        }
    }

    #[test]
    fn failures_carry_the_api_error_code() {
        let r = failure(ToolError::InvalidInput("`text` is missing".into()));
        assert_eq!(r.is_error, Some(true));
        let s = r.structured_content.unwrap();
        assert_eq!(s["error"]["code"], "invalid-input");
        assert!(s["error"]["message"].as_str().unwrap().contains("`text`"));
        let ok = success(r#"{"words":2}"#.into());
        assert_eq!(ok.structured_content, Some(json!({"words": 2})));
        // Output that is not an object stays text only.
        assert_eq!(success("[1,2]".into()).structured_content, None);
    }
}
