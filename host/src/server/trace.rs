//! A span per HTTP request (MCP's included), continuing the caller's trace
//! from its `traceparent` header. Probes and scrapes are not traced: they
//! come every few seconds and say nothing about any agent.

use axum::extract::{MatchedPath, Request};
use axum::http::header::HeaderName;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;
use tracing::field::Empty;

/// Runs the request in its span.
pub(super) async fn request(request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if matches!(path, "/livez" | "/readyz" | "/metrics") {
        return next.run(request).await;
    }
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| path.to_string(), |m| m.as_str().to_string());
    let span = tracing::info_span!(
        "request",
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = %method,
        http.route = %route,
        http.response.status_code = Empty,
        trace_id = Empty,
    );
    let traceparent = request
        .headers()
        .get(HeaderName::from_static("traceparent"))
        .and_then(|v| v.to_str().ok());
    crate::telemetry::continue_from(&span, traceparent);
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    response
}
