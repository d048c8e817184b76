//! The tool routes: `GET /v1/tools` (each with its JSON Schema) and
//! `POST /v1/tools/NAME?session=ID` (a call, in a session if given; the
//! body at most `server.max_request_kib`).

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::error::ApiError;
use super::sessions::session_id;
use super::{Shared, blocking, body};

pub(super) async fn list(State(app): Shared) -> Json<serde_json::Value> {
    let tools: Vec<_> = app
        .host
        .tools()
        .into_iter()
        .map(|t| json!({ "name": t.name, "description": t.description, "input_schema": t.input_schema }))
        .collect();
    Json(json!({ "tools": tools }))
}

#[derive(Deserialize)]
pub(super) struct SessionQuery {
    session: Option<String>,
}

pub(super) async fn call(
    State(app): Shared,
    Path(name): Path<String>,
    Query(q): Query<SessionQuery>,
    request: Request,
) -> Result<Response, ApiError> {
    let limit = app.settings.max_request_kib << 10;
    let body = body::read(
        request.into_body(),
        usize::try_from(limit).unwrap_or(usize::MAX),
        Duration::from_secs(app.settings.body_timeout_secs),
        "the request",
        || {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request-too-large",
                format!(
                    "the request is larger than server.max_request_kib ({} KiB)",
                    app.settings.max_request_kib
                ),
            )
        },
    )
    .await?;
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
