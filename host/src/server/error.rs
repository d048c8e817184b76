//! Errors as the API answers them: a status, and a JSON body naming what
//! was wrong (`{"error": {"code", "message"}}`), with `Retry-After` where
//! trying again later will work. Every answer of the API that is an error
//! has this shape, including those of extractors and of the router itself
//! ([`json_errors`] rewrites them).

use std::time::Duration;

use axum::Json;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::{BudgetError, CallError, DocumentError, SubmitError, ToolError};
use crate::session::StoreError;

/// An error as the API returns it: a status and a JSON body naming what
/// was wrong.
pub(super) struct ApiError {
    pub(super) status: StatusCode,
    pub(super) code: &'static str,
    pub(super) message: String,
    pub(super) retry_after: Option<Duration>,
    /// Whether the connection is closed after the answer (the request's
    /// body was not read to its end).
    pub(super) close: bool,
}

impl ApiError {
    pub(super) fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
            close: false,
        }
    }

    /// The same error, telling the client when to try again.
    pub(super) fn retry_after(mut self, after: Duration) -> ApiError {
        self.retry_after = Some(after);
        self
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
        if self.close {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> Self {
        match e {
            SubmitError::LaneFull { .. } => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "lane-full", e.to_string())
                    .retry_after(Duration::from_secs(1))
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
                return ApiError::new(StatusCode::TOO_MANY_REQUESTS, "budget-exhausted", message)
                    .retry_after(*retry_after);
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

pub(super) fn document_error(e: &anyhow::Error) -> ApiError {
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

/// Rewrites an error answer that is not JSON (a rejection from an
/// extractor, a method the route does not take) into the API's JSON error.
pub(super) async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let retry_after = response.headers().get(header::RETRY_AFTER).cloned();
    let text = axum::body::to_bytes(response.into_body(), 64 << 10)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let code = match status {
        StatusCode::BAD_REQUEST => "bad-request",
        StatusCode::NOT_FOUND => "not-found",
        StatusCode::METHOD_NOT_ALLOWED => "method-not-allowed",
        StatusCode::REQUEST_TIMEOUT => "request-timeout",
        StatusCode::PAYLOAD_TOO_LARGE => "too-large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported-media-type",
        StatusCode::UNPROCESSABLE_ENTITY => "unprocessable",
        StatusCode::TOO_MANY_REQUESTS => "too-many-requests",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        s if s.is_client_error() => "bad-request",
        _ => "internal",
    };
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    let mut out = ApiError::new(status, code, message).into_response();
    if let Some(v) = retry_after {
        out.headers_mut().insert(header::RETRY_AFTER, v);
    }
    out
}
