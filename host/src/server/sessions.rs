//! The session routes: `POST /v1/sessions` (a new session),
//! `GET /v1/sessions/ID` (its keys and usage), `GET /v1/sessions/ID/calls`
//! (its last calls), `DELETE /v1/sessions/ID`.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::error::ApiError;
use super::{Shared, blocking, mcp};
use crate::session::{SessionId, StoreError};

/// A session id from a path or query, or a 400 naming what is wrong.
pub(super) fn session_id(id: &str) -> Result<SessionId, ApiError> {
    SessionId::parse(id).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad-session-id", e))
}

pub(super) async fn create(State(app): Shared) -> Result<Response, ApiError> {
    let host = app.host.clone();
    let id = blocking(move || host.create_session()).await??;
    Ok((StatusCode::CREATED, Json(json!({ "session": id.as_str() }))).into_response())
}

pub(super) async fn show(State(app): Shared, Path(id): Path<String>) -> Result<Response, ApiError> {
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

/// `?limit=N` on a session's calls.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CallsQuery {
    limit: Option<u64>,
}

pub(super) async fn calls(
    State(app): Shared,
    Path(id): Path<String>,
    Query(query): Query<CallsQuery>,
) -> Result<Response, ApiError> {
    let id = session_id(&id)?;
    let limit = match query.limit {
        None => mcp::DEFAULT_CALLS_SHOWN,
        Some(n) if (1..=mcp::MAX_CALLS_SHOWN).contains(&n) => n as usize,
        Some(_) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad-limit",
                format!("limit must be from 1 to {}", mcp::MAX_CALLS_SHOWN),
            ));
        }
    };
    let host = app.host.clone();
    let shown = id.clone();
    let calls = blocking(move || host.session_calls(&id, limit)).await??;
    Ok(
        Json(json!({ "session": shown.as_str(), "calls": mcp::calls_json(&calls) }))
            .into_response(),
    )
}

pub(super) async fn delete(
    State(app): Shared,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = session_id(&id)?;
    let host = app.host.clone();
    if blocking(move || host.delete_session(&id)).await?? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(StoreError::NoSession.into())
    }
}
