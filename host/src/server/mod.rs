//! `warmlane serve`: the host over HTTP — documents in, chunks out as
//! NDJSON; tools and sessions; metrics, liveness and readiness; a graceful
//! stop. Every blocking call into the host runs off the async threads.

mod jobs;
mod mcp;

pub use mcp::serve_stdio as serve_mcp_stdio;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::config::ServerConfig;
use crate::error::{BudgetError, CallError, DocumentError, SubmitError, ToolError};
use crate::host::Host;
use crate::session::{SessionId, StoreError};
use jobs::{JobRecord, Jobs};

struct App {
    host: Arc<Host>,
    jobs: Jobs,
    settings: ServerConfig,
}

type Shared = State<Arc<App>>;

/// Serves `host` on `listener` until `shutdown` resolves, then stops
/// accepting, lets open requests and running jobs finish within
/// `server.shutdown_grace_secs`, and returns.
pub async fn serve(
    host: Arc<Host>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let settings = host.config().server.clone();
    let grace = Duration::from_secs(settings.shutdown_grace_secs);
    let app = Arc::new(App {
        jobs: Jobs::new(Duration::from_secs(settings.job_retention_secs)),
        host,
        settings,
    });
    // Stopping ends MCP sessions and their open streams, which would
    // otherwise hold the graceful shutdown until the grace period ends.
    let mcp_stop = tokio_util::sync::CancellationToken::new();
    let router = router(app.clone(), mcp_stop.clone())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
        mcp_stop.cancel();
    });
    let stopping = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    // Answers are small and written at once: without TCP_NODELAY, Nagle's
    // algorithm and delayed ACKs hold some of them back by tens of ms.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY: {e}");
        }
    });
    let server = axum::serve(listener, router).with_graceful_shutdown(stopping(stop_rx.clone()));
    let deadline = async {
        stopping(stop_rx.clone()).await;
        tracing::info!("stopping: no new connections; finishing what is running");
        let until = Instant::now() + grace;
        tokio::time::sleep(grace).await;
        until
    };
    tokio::select! {
        served = server => served?,
        _ = deadline => {
            tracing::warn!("the grace period ran out with requests still open");
            return Ok(());
        }
    }
    // Jobs accepted without anyone streaming them still get their time.
    let until = Instant::now() + grace;
    while app.jobs.running() > 0 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if app.jobs.running() > 0 {
        tracing::warn!(jobs = app.jobs.running(), "stopping with jobs unfinished");
    }
    Ok(())
}

fn router(app: Arc<App>, mcp_stop: tokio_util::sync::CancellationToken) -> Result<Router, String> {
    let mcp = mcp::http_service(app.host.clone(), &app.settings.mcp_allowed_hosts, mcp_stop)?;
    Ok(Router::new()
        .route("/v1/documents", post(submit_document))
        .route("/v1/jobs/{id}", get(job))
        .route("/v1/jobs/{id}/chunks", get(job_chunks))
        .route("/v1/tools", get(tools))
        .route("/v1/tools/{name}", post(call_tool))
        .route("/v1/sessions", post(create_session))
        .route("/v1/sessions/{id}", get(session).delete(delete_session))
        .route("/metrics", get(metrics))
        .route("/livez", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .merge(
            Router::new()
                .route_service("/mcp", mcp)
                .layer(axum::middleware::from_fn(mcp_edges)),
        )
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not-found", "no such endpoint")
        })
        .with_state(app))
}

/// Mends two answers of rmcp's `/mcp` service for clients: a `DELETE`
/// that ended a session gets 204, not 202 (the Python SDK, among others,
/// expects 200 or 204); a JSON body that is not JSON-RPC gets the spec's
/// JSON-RPC error (-32700 parse error, -32600 invalid request) with 400,
/// not a plain-text 415.
async fn mcp_edges(request: Request, next: axum::middleware::Next) -> Response {
    use axum::http::Method;
    if request.method() == Method::DELETE {
        let mut response = next.run(request).await;
        if response.status() == StatusCode::ACCEPTED {
            *response.status_mut() = StatusCode::NO_CONTENT;
        }
        return response;
    }
    let json_post = request.method() == Method::POST
        && request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().starts_with("application/json"));
    if !json_post {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let jsonrpc_error = |status, code: i32, message: String| {
        let body =
            json!({ "jsonrpc": "2.0", "id": null, "error": { "code": code, "message": message } });
        (status, Json(body)).into_response()
    };
    let bytes = match axum::body::to_bytes(body, mcp::MAX_REQUEST_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            return jsonrpc_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                -32600,
                format!(
                    "Invalid Request: larger than {} bytes, or cut short",
                    mcp::MAX_REQUEST_BYTES
                ),
            );
        }
    };
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes.clone())))
        .await;
    if response.status() != StatusCode::UNSUPPORTED_MEDIA_TYPE {
        return response;
    }
    match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Err(e) => jsonrpc_error(StatusCode::BAD_REQUEST, -32700, format!("Parse error: {e}")),
        Ok(_) => jsonrpc_error(
            StatusCode::BAD_REQUEST,
            -32600,
            "Invalid Request: not a JSON-RPC request, notification or response".into(),
        ),
    }
}

/// An error as the API returns it: a status and a JSON body naming what
/// was wrong.
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<Duration>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        let mut response = (self.status, Json(body)).into_response();
        if let Some(after) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&after.as_secs_f64().ceil().max(1.0).to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    }
}

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> Self {
        match e {
            SubmitError::LaneFull { .. } => {
                let mut err =
                    ApiError::new(StatusCode::TOO_MANY_REQUESTS, "lane-full", e.to_string());
                err.retry_after = Some(Duration::from_secs(1));
                err
            }
            SubmitError::ShuttingDown => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting-down",
                e.to_string(),
            ),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let (status, code) = match e {
            StoreError::NoSession => (StatusCode::NOT_FOUND, "unknown-session"),
            StoreError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "session-too-large"),
            StoreError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "sessions-unavailable"),
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl From<ToolError> for ApiError {
    fn from(e: ToolError) -> Self {
        let message = e.to_string();
        let (status, code) = match &e {
            ToolError::UnknownTool(_) => (StatusCode::NOT_FOUND, "unknown-tool"),
            ToolError::InvalidInput(_) => (StatusCode::BAD_REQUEST, "invalid-input"),
            ToolError::Failed(_) => (StatusCode::UNPROCESSABLE_ENTITY, "tool-failed"),
            ToolError::BadOutput(_) => (StatusCode::BAD_GATEWAY, "bad-output"),
            ToolError::Call(CallError::Timeout { .. }) => (StatusCode::GATEWAY_TIMEOUT, "timeout"),
            ToolError::Call(CallError::CpuLimit { .. }) => {
                (StatusCode::GATEWAY_TIMEOUT, "cpu-limit")
            }
            ToolError::Call(CallError::OutOfMemory { .. }) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "out-of-memory")
            }
            ToolError::Call(CallError::Trap { .. }) => (StatusCode::INTERNAL_SERVER_ERROR, "trap"),
            ToolError::Call(CallError::PoolExhausted { .. }) => {
                (StatusCode::SERVICE_UNAVAILABLE, "no-instance")
            }
            ToolError::Budget(BudgetError::Exhausted { retry_after, .. }) => {
                let mut err =
                    ApiError::new(StatusCode::TOO_MANY_REQUESTS, "budget-exhausted", message);
                err.retry_after = Some(*retry_after);
                return err;
            }
            ToolError::Budget(_) => (StatusCode::SERVICE_UNAVAILABLE, "budget-unavailable"),
            ToolError::Session(s) => return ApiError::from(s.clone()),
            ToolError::NeedsSession(_) => {
                return ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "session-required",
                    format!(
                        "{message}: create one with POST /v1/sessions and call with ?session=ID"
                    ),
                );
            }
        };
        ApiError::new(status, code, message)
    }
}

/// Runs blocking host work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("the request's worker failed: {e}"),
        )
    })
}

#[derive(Deserialize)]
struct SubmitQuery {
    #[serde(default)]
    wait: bool,
    password: Option<String>,
}

/// The uploaded document: the body itself, or the first file part of a
/// multipart form.
async fn upload(app: &App, request: Request) -> Result<Vec<u8>, ApiError> {
    let limit = (app.settings.max_upload_mib * 1024 * 1024) as usize;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "upload-too-large",
            format!(
                "the upload is larger than server.max_upload_mib ({} MiB)",
                app.settings.max_upload_mib
            ),
        )
    };
    if let Some(n) = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        && n > limit
    {
        return Err(too_large());
    }
    let multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("multipart/form-data"));
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large())?;
    if !multipart {
        return Ok(bytes.to_vec());
    }
    let request = Request::from_parts(parts, Body::from(bytes));
    let bad_form = |e: axum::extract::multipart::MultipartError| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad-multipart",
            format!("the multipart form cannot be read: {e}"),
        )
    };
    let mut form = Multipart::from_request(request, &()).await.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad-multipart",
            format!("the multipart form cannot be read: {e}"),
        )
    })?;
    while let Some(field) = form.next_field().await.map_err(bad_form)? {
        if field.file_name().is_some() || field.name() == Some("file") {
            return Ok(field.bytes().await.map_err(bad_form)?.to_vec());
        }
    }
    Err(ApiError::new(
        StatusCode::BAD_REQUEST,
        "no-file",
        "the multipart form has no file part (send the PDF as a part named `file`)",
    ))
}

fn document_error(e: &anyhow::Error) -> ApiError {
    let message = format!("{e:#}");
    match e.downcast_ref::<DocumentError>() {
        Some(DocumentError::NotPdf(_)) => {
            ApiError::new(StatusCode::BAD_REQUEST, "not-a-pdf", message)
        }
        Some(DocumentError::PasswordRequired { .. }) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "password-required",
            message,
        ),
        Some(DocumentError::Limit(_)) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "pdf-over-limit", message)
        }
        _ => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unreadable-pdf", message),
    }
}

async fn submit_document(
    State(app): Shared,
    Query(q): Query<SubmitQuery>,
    request: Request,
) -> Result<Response, ApiError> {
    let bytes = upload(&app, request).await?;
    if bytes.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "empty-upload",
            "the upload is empty: send a PDF as the body",
        ));
    }
    let password = q.password.clone();
    let host = app.host.clone();
    let doc = blocking(move || {
        host.open_document(bytes, password.as_deref())
            .map_err(anyhow::Error::from)
    })
    .await?
    .map_err(|e| document_error(&e))?;
    if q.wait && doc.page_count() > app.settings.sync_max_pages {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-many-pages-for-wait",
            format!(
                "the document has {} pages; ?wait=true takes at most {} (server.sync_max_pages): submit it without wait and stream /v1/jobs/ID/chunks",
                doc.page_count(),
                app.settings.sync_max_pages
            ),
        ));
    }
    let id = format!("j-{}", &SessionId::random().as_str()[2..]);
    let options = app.host.document_options();
    let job = app.host.submit(doc, &options, &id)?;
    let record = app.jobs.add(id.clone(), job.lane(), job.pages());
    tracing::info!(job = %id, lane = %job.lane(), pages = job.pages(), "document accepted");
    let running = record.clone();
    let done = tokio::task::spawn_blocking(move || running.run(job));
    if !q.wait {
        let body = json!({
            "job": id, "lane": record.lane.as_str(), "pages": record.pages,
            "status": format!("/v1/jobs/{id}"), "chunks": format!("/v1/jobs/{id}/chunks"),
        });
        return Ok((StatusCode::ACCEPTED, Json(body)).into_response());
    }
    let _ = done.await;
    let mut body = record.describe();
    let (lines, _) = record.lines_from(0);
    body["records"] = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .collect();
    Ok(Json(body).into_response())
}

fn find_job(app: &App, id: &str) -> Result<Arc<JobRecord>, ApiError> {
    app.jobs.get(id).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown-job",
            format!("no job `{id}` (never submitted, or its results expired)"),
        )
    })
}

async fn job(State(app): Shared, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(Json(find_job(&app, &id)?.describe()).into_response())
}

/// A stream of NDJSON lines fed by a task following the job.
struct Lines(mpsc::Receiver<Arc<str>>);

impl futures_core::Stream for Lines {
    type Item = Result<Bytes, std::convert::Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0
            .poll_recv(cx)
            .map(|line| line.map(|l| Ok(Bytes::from(format!("{l}\n")))))
    }
}

async fn job_chunks(State(app): Shared, Path(id): Path<String>) -> Result<Response, ApiError> {
    let record = find_job(&app, &id)?;
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let mut changed = record.subscribe();
        let mut sent = 0;
        loop {
            let (lines, done) = record.lines_from(sent);
            for line in lines {
                if tx.send(line).await.is_err() {
                    return;
                }
                sent += 1;
            }
            if done || changed.changed().await.is_err() {
                // One last look: the job may have finished between reads.
                let (lines, _) = record.lines_from(sent);
                for line in lines {
                    let _ = tx.send(line).await;
                }
                return;
            }
        }
    });
    let mut response = Body::from_stream(Lines(rx)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(response)
}

async fn tools(State(app): Shared) -> Json<serde_json::Value> {
    let tools: Vec<_> = app
        .host
        .tools()
        .into_iter()
        .map(|t| json!({ "name": t.name, "description": t.description, "input_schema": t.input_schema }))
        .collect();
    Json(json!({ "tools": tools }))
}

#[derive(Deserialize)]
struct SessionQuery {
    session: Option<String>,
}

fn session_id(id: &str) -> Result<SessionId, ApiError> {
    SessionId::parse(id).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad-session-id", e))
}

async fn call_tool(
    State(app): Shared,
    Path(name): Path<String>,
    Query(q): Query<SessionQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let input = std::str::from_utf8(&body)
        .map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed-json",
                "the body is not UTF-8 JSON",
            )
        })?
        .to_string();
    if let Err(e) = serde_json::from_str::<serde_json::Value>(&input) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed-json",
            format!("the body is not JSON: {e}"),
        ));
    }
    let session = q.session.as_deref().map(session_id).transpose()?;
    let host = app.host.clone();
    let output = blocking(move || host.call_tool(&name, &input, session.as_ref())).await??;
    Ok(([(header::CONTENT_TYPE, "application/json")], output).into_response())
}

async fn create_session(State(app): Shared) -> Result<Response, ApiError> {
    let host = app.host.clone();
    let id = blocking(move || host.create_session()).await??;
    Ok((StatusCode::CREATED, Json(json!({ "session": id.as_str() }))).into_response())
}

async fn session(State(app): Shared, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = session_id(&id)?;
    let host = app.host.clone();
    let (keys, usage) = blocking(move || {
        let keys = host.session_keys(&id)?;
        let usage = host.session_usage(&id)?;
        Ok::<_, StoreError>((keys, usage))
    })
    .await??;
    Ok(Json(json!({ "keys": keys, "usage": mcp::usage_json(&usage) })).into_response())
}

async fn delete_session(State(app): Shared, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = session_id(&id)?;
    let host = app.host.clone();
    if blocking(move || host.delete_session(&id)).await?? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(StoreError::NoSession.into())
    }
}

async fn metrics(State(app): Shared) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.host.metrics(),
    )
        .into_response()
}

async fn readyz(State(app): Shared) -> Result<Response, ApiError> {
    let host = app.host.clone();
    let r = blocking(move || host.readiness()).await?;
    let status = if r.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok((
        status,
        Json(json!({ "ready": r.is_ready(), "not_ready": r.not_ready })),
    )
        .into_response())
}
