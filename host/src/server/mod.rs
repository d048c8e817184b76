//! `warmlane serve`: the host over HTTP — documents in, chunks out as
//! NDJSON; tools and sessions; metrics, liveness and readiness; a graceful
//! stop. Every blocking call into the host runs off the async threads.
//!
//! One module per resource: [`documents`] (uploads and jobs), [`tools`],
//! [`sessions`], [`mcp`]; [`listen`] accepts connections, [`body`] reads
//! request bodies under their limits, and [`error`] is how every error is
//! answered.

mod body;
mod documents;
mod error;
mod jobs;
mod listen;
mod mcp;
mod sessions;
mod tools;

pub use mcp::serve_stdio as serve_mcp_stdio;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::config::ServerConfig;
use crate::host::Host;
use error::ApiError;
use jobs::Jobs;

struct App {
    host: Arc<Host>,
    jobs: Jobs,
    /// Permits for uploads being received and opened.
    uploads: Arc<Semaphore>,
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
        jobs: Jobs::new(
            Duration::from_secs(settings.job_retention_secs),
            settings.max_results_mib << 20,
            settings.max_pending_mib << 20,
        ),
        uploads: Arc::new(Semaphore::new(settings.max_uploads)),
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
    let sweeper = tokio::spawn(sweep(app.clone()));
    let stopping = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let header_timeout = Duration::from_secs(app.settings.header_timeout_secs);
    let server = listen::serve(listener, router, header_timeout, stop_rx.clone());
    let deadline = async {
        stopping(stop_rx.clone()).await;
        tracing::info!("stopping: no new connections; finishing what is running");
        let until = Instant::now() + grace;
        tokio::time::sleep(grace).await;
        until
    };
    tokio::select! {
        () = server => {}
        _ = deadline => {
            tracing::warn!("the grace period ran out with requests still open");
            sweeper.abort();
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
    sweeper.abort();
    Ok(())
}

/// Every second: forgets expired jobs and keeps retained results within
/// their cap.
async fn sweep(app: Arc<App>) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let freed = app.jobs.sweep();
        if freed > 0 {
            tracing::debug!(freed, "dropped retained job results");
            crate::memory::release_freed();
        }
    }
}

fn router(app: Arc<App>, mcp_stop: tokio_util::sync::CancellationToken) -> Result<Router, String> {
    let mcp = mcp::http_service(app.host.clone(), &app.settings.mcp_allowed_hosts, mcp_stop)?;
    let api = Router::new()
        .route(
            "/v1/documents",
            // The upload's own limit applies (see `documents`).
            post(documents::submit).layer(DefaultBodyLimit::disable()),
        )
        .route("/v1/jobs/{id}", get(documents::job))
        .route("/v1/jobs/{id}/chunks", get(documents::chunks))
        .route("/v1/tools", get(tools::list))
        .route("/v1/tools/{name}", post(tools::call))
        .route("/v1/sessions", post(sessions::create))
        .route(
            "/v1/sessions/{id}",
            get(sessions::show).delete(sessions::delete),
        )
        .route("/metrics", get(metrics))
        .route("/livez", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not-found", "no such endpoint")
        })
        .layer(from_fn(error::json_errors));
    Ok(api
        .merge(
            Router::new()
                .route_service("/mcp", mcp)
                .layer(from_fn_with_state(app.clone(), mcp_edges)),
        )
        .with_state(app))
}

/// Mends two answers of rmcp's `/mcp` service for clients: a `DELETE`
/// that ended a session gets 204, not 202 (the Python SDK, among others,
/// expects 200 or 204); a JSON body that is not JSON-RPC gets the spec's
/// JSON-RPC error (-32700 parse error, -32600 invalid request) with 400,
/// not a plain-text 415.
async fn mcp_edges(State(app): Shared, request: Request, next: Next) -> Response {
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
    let idle = Duration::from_secs(app.settings.body_timeout_secs);
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request-too-large",
            format!(
                "Invalid Request: larger than {} bytes",
                mcp::MAX_REQUEST_BYTES
            ),
        )
    };
    let bytes = match body::read(body, mcp::MAX_REQUEST_BYTES, idle, "the request", too_large).await
    {
        Ok(b) => b,
        Err(e) => {
            let mut response = jsonrpc_error(e.status, -32600, e.message);
            if e.close {
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            return response;
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

/// Runs blocking host work off the async threads.
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

async fn metrics(State(app): Shared) -> Response {
    use std::fmt::Write;
    let mut text = app.host.metrics();
    for (name, help, value) in [
        (
            "job_results_bytes",
            "Memory the results of the server's jobs hold (capped by server.max_results_mib).",
            app.jobs.results_bytes(),
        ),
        (
            "pending_upload_bytes",
            "Memory the uploads of accepted jobs not yet finished hold (capped by server.max_pending_mib).",
            app.jobs.pending_bytes(),
        ),
    ] {
        let _ = write!(
            text,
            "# HELP warmlane_{name} {help}\n# TYPE warmlane_{name} gauge\nwarmlane_{name} {value}\n"
        );
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
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
