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
mod listen;
mod mcp;
mod sessions;
mod tools;
mod trace;

pub use mcp::serve_stdio as serve_mcp_stdio;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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

use crate::config::{Role, ServerConfig};
use crate::host::Host;
use crate::jobs::Board;
use crate::jobs::memory::MemoryBoard;
use crate::jobs::redis::{RedisBoard, RedisJobs};
use crate::jobs::worker::Workers;
use crate::lanes::Lane;
use error::ApiError;

struct App {
    host: Arc<Host>,
    /// Where the server's jobs live: here, or in Redis.
    board: Option<Arc<dyn Board>>,
    /// This replica's workers, when it parses jobs kept in Redis.
    workers: Option<Arc<Workers>>,
    /// The jobs in Redis, when they are kept there.
    store: Option<Arc<RedisJobs>>,
    /// Permits for uploads being received and opened.
    uploads: Arc<Semaphore>,
    settings: ServerConfig,
    /// Set at SIGTERM: readiness says no, uploads are refused.
    draining: AtomicBool,
}

type Shared = State<Arc<App>>;

impl App {
    /// The board, or the answer of a replica that has none (a worker).
    fn board(&self) -> Result<&Arc<dyn Board>, ApiError> {
        self.board.as_ref().ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not-found",
                "a worker replica serves only /livez, /readyz and /metrics",
            )
        })
    }
}

/// Serves `host` on `listener` until `shutdown` resolves, then drains: no
/// new uploads or batches, readiness says so; open requests, running jobs
/// and batches in flight get `server.shutdown_grace_secs` to finish.
///
/// What the process serves follows `server.role`: `all` (every route; its
/// jobs in this process, or, with `redis.url`, in Redis and parsed here
/// too), `api` (every route; jobs in Redis, parsed elsewhere) or `worker`
/// (parses the jobs of `server.lanes` kept in Redis; serves only `/livez`,
/// `/readyz` and `/metrics`, and keeps serving them while it drains).
pub async fn serve(
    host: Arc<Host>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let settings = host.config().server.clone();
    let grace = Duration::from_secs(settings.shutdown_grace_secs);
    let (board, workers, store) = places(&host).map_err(std::io::Error::other)?;
    let role = settings.role;
    let app = Arc::new(App {
        board,
        workers,
        store,
        uploads: Arc::new(Semaphore::new(settings.max_uploads)),
        host,
        settings,
        draining: AtomicBool::new(false),
    });
    // Stopping ends MCP sessions and their open streams, which would
    // otherwise hold the graceful shutdown until the grace period ends.
    let mcp_stop = tokio_util::sync::CancellationToken::new();
    let router = router(app.clone(), mcp_stop.clone())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let draining = app.clone();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("stopping: draining");
        draining.draining.store(true, Ordering::Release);
        if let Some(w) = &draining.workers {
            w.drain();
        }
        if role == Role::Worker {
            // Keep answering probes and metrics until the batches in
            // flight are done, or the grace runs out.
            let workers = draining.workers.clone();
            let until = Instant::now() + grace;
            let _ = tokio::task::spawn_blocking(move || workers.map(|w| w.join(until))).await;
        }
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
    // Jobs accepted without anyone streaming them, and batches in flight,
    // still get their time.
    let until = Instant::now() + grace;
    let running = || {
        app.board.as_ref().map_or(0, |b| b.running_here())
            + app.workers.as_ref().map_or(0, |w| w.busy())
    };
    while running() > 0 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if running() > 0 {
        tracing::warn!(jobs = running(), "stopping with work unfinished");
    }
    sweeper.abort();
    Ok(())
}

/// Where `host`'s jobs live, and whether it parses them here, by its role.
type Places = (
    Option<Arc<dyn Board>>,
    Option<Arc<Workers>>,
    Option<Arc<RedisJobs>>,
);

fn places(host: &Arc<Host>) -> Result<Places, String> {
    let config = host.config();
    let s = &config.server;
    let Some(url) = &config.redis.url else {
        let board = MemoryBoard::new(
            host.clone(),
            Duration::from_secs(s.job_retention_secs),
            s.max_results_mib << 20,
            s.max_pending_mib << 20,
        );
        return Ok((Some(Arc::new(board)), None, None));
    };
    let store = Arc::new(
        RedisJobs::new(
            url,
            &config.redis.key_prefix,
            Duration::from_millis(config.redis.timeout_ms),
        )
        .map_err(|e| format!("redis.url is not a Redis URL: {e}"))?,
    );
    if let Err(e) = store.ensure_groups() {
        // The workers make them when Redis answers.
        tracing::warn!("cannot prepare the lanes' streams yet: {e}");
    }
    let board: Option<Arc<dyn Board>> = (s.role != Role::Worker)
        .then(|| Arc::new(RedisBoard::new(host.clone(), store.clone())) as Arc<dyn Board>);
    let workers = if s.role == Role::Api {
        None
    } else {
        let lanes = if s.role == Role::All {
            Lane::ALL.to_vec()
        } else {
            s.lanes.clone()
        };
        let both = lanes.len() > 1;
        let threads = config.pipeline.worker_count() + usize::from(both);
        Some(Arc::new(
            Workers::start(host.clone(), store.clone(), lanes, threads)
                .map_err(|e| format!("cannot start the worker threads: {e}"))?,
        ))
    };
    Ok((board, workers, Some(store)))
}

/// Every second: forgets expired jobs and keeps retained results within
/// their cap.
async fn sweep(app: Arc<App>) {
    let Some(board) = app.board.clone() else {
        return;
    };
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let freed = board.sweep().await;
        if freed > 0 {
            tracing::debug!(freed, "dropped retained job results");
            crate::memory::release_freed();
        }
    }
}

fn router(app: Arc<App>, mcp_stop: tokio_util::sync::CancellationToken) -> Result<Router, String> {
    let probes = Router::new()
        .route("/metrics", get(metrics))
        .route("/livez", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz));
    let not_found =
        || async { ApiError::new(StatusCode::NOT_FOUND, "not-found", "no such endpoint") };
    if app.board.is_none() {
        // A worker replica.
        return Ok(probes
            .fallback(not_found)
            .layer(from_fn(error::json_errors))
            .with_state(app));
    }
    let mcp = mcp::http_service(app.host.clone(), &app.settings.mcp_allowed_hosts, mcp_stop)?;
    let api = probes
        .route(
            "/v1/documents",
            // The upload's own limit applies (see `documents`).
            post(documents::submit).layer(DefaultBodyLimit::disable()),
        )
        .route("/v1/jobs", get(documents::list))
        .route(
            "/v1/jobs/{id}",
            get(documents::job).delete(documents::cancel),
        )
        .route("/v1/jobs/{id}/chunks", get(documents::chunks))
        .route("/v1/tools", get(tools::list))
        .route("/v1/tools/{name}", post(tools::call))
        .route("/v1/sessions", post(sessions::create))
        .route(
            "/v1/sessions/{id}",
            get(sessions::show).delete(sessions::delete),
        )
        .route("/v1/sessions/{id}/calls", get(sessions::calls))
        .fallback(not_found)
        .layer(from_fn(error::json_errors));
    Ok(api
        .merge(
            Router::new()
                .route_service("/mcp", mcp)
                .layer(from_fn_with_state(app.clone(), mcp_edges)),
        )
        .layer(from_fn(trace::request))
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

/// Runs blocking host work off the async threads, in the request's span.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    crate::telemetry::spawn_blocking(f).await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("the request's worker failed: {e}"),
        )
    })
}

/// `/metrics`: the host's, the jobs' and the workers' families, in the
/// format the scraper asks for (OpenMetrics by `Accept`, else 0.0.4).
async fn metrics(State(app): Shared, headers: axum::http::HeaderMap) -> Response {
    use crate::metrics::{Format, HostReport, Report, expose};
    let format = Format::for_accept(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let mut reports: Vec<Box<dyn Report>> = vec![Box::new(HostReport::of(&app.host))];
    if let Some(board) = &app.board {
        reports.push(board.metrics().await);
    }
    if let Some(workers) = &app.workers {
        reports.push(Box::new(workers.metrics()));
        if app.board.is_none() {
            // A worker replica reports its lanes' streams too.
            if let Some(store) = app.store.clone() {
                reports.push(crate::jobs::redis::lanes_metrics(store).await);
            }
        }
    }
    let text = expose(reports, format);
    ([(header::CONTENT_TYPE, format.content_type())], text).into_response()
}

async fn readyz(State(app): Shared) -> Result<Response, ApiError> {
    let host = app.host.clone();
    let store = app.store.clone();
    let mut r = blocking(move || {
        let mut r = host.readiness();
        if let Some(store) = store
            && let Err(e) = store.ping()
        {
            r.not_ready.push(format!("jobs: {e}"));
        }
        r
    })
    .await?;
    if app.draining.load(Ordering::Acquire) {
        r.not_ready
            .push("draining: the process is stopping (SIGTERM)".into());
    }
    let status = if r.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let skipped: Vec<_> = r
        .skipped
        .iter()
        .map(|p| {
            json!({
                "plugin": p.name,
                "path": p.path,
                "stage": p.stage.as_str(),
                "reason": p.reason,
            })
        })
        .collect();
    Ok((
        status,
        Json(json!({ "ready": r.is_ready(), "not_ready": r.not_ready, "skipped": skipped })),
    )
        .into_response())
}
