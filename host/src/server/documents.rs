//! The document routes: uploads in (`POST /v1/documents`, raw or
//! multipart), jobs out (`GET /v1/jobs/ID`, `GET /v1/jobs/ID/chunks`).
//!
//! At most `server.max_uploads` uploads are received and opened at once
//! (more get 503 and `Retry-After`); each is at most `server.max_upload_mib`
//! in either form, and must keep arriving (`server.body_timeout_secs`).

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;

use super::error::{ApiError, document_error};
use super::{App, Shared, blocking, body};
use crate::jobs::{BoardError, Follow};

#[derive(Deserialize)]
pub(super) struct SubmitQuery {
    #[serde(default)]
    wait: bool,
    password: Option<String>,
}

/// The uploaded document: the body itself, or the first file part of a
/// multipart form.
async fn upload(app: &App, request: Request) -> Result<Vec<u8>, ApiError> {
    let limit = usize::try_from(app.settings.max_upload_mib << 20).unwrap_or(usize::MAX);
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
        let mut e = too_large();
        e.close = true;
        return Err(e);
    }
    let multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("multipart/form-data"));
    let (parts, body) = request.into_parts();
    let idle = Duration::from_secs(app.settings.body_timeout_secs);
    // A form's boundaries and headers come on top of the file itself.
    let form_room = if multipart { 64 << 10 } else { 0 };
    let bytes = body::read(body, limit + form_room, idle, "the upload", too_large).await?;
    if !multipart {
        return Ok(bytes.to_vec());
    }
    let request = Request::from_parts(parts, Body::from(bytes));
    let bad_form = |e: axum::extract::multipart::MultipartError| {
        let too_large = e.status() == StatusCode::PAYLOAD_TOO_LARGE;
        ApiError::new(
            if too_large {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::BAD_REQUEST
            },
            if too_large {
                "upload-too-large"
            } else {
                "bad-multipart"
            },
            format!("the multipart form cannot be read: {}", e.body_text()),
        )
    };
    let mut form = Multipart::from_request(request, &())
        .await
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad-multipart", e.body_text()))?;
    while let Some(field) = form.next_field().await.map_err(bad_form)? {
        if field.file_name().is_some() || field.name() == Some("file") {
            let file = field.bytes().await.map_err(bad_form)?;
            if file.len() > limit {
                return Err(too_large());
            }
            return Ok(file.to_vec());
        }
    }
    Err(ApiError::new(
        StatusCode::BAD_REQUEST,
        "no-file",
        "the multipart form has no file part (send the PDF as a part named `file`)",
    ))
}

pub(super) async fn submit(
    State(app): Shared,
    Query(q): Query<SubmitQuery>,
    request: Request,
) -> Result<Response, ApiError> {
    let board = app.board()?.clone();
    if app.draining.load(Ordering::Acquire) {
        let mut e = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "draining",
            "this replica is stopping; send the upload to another",
        )
        .retry_after(Duration::from_secs(1));
        e.close = true;
        return Err(e);
    }
    let Ok(_permit) = app.uploads.clone().try_acquire_owned() else {
        let mut e = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too-many-uploads",
            format!(
                "{} uploads are being received already (server.max_uploads); try again shortly",
                app.settings.max_uploads
            ),
        )
        .retry_after(Duration::from_secs(1));
        e.close = true;
        return Err(e);
    };
    let bytes = upload(&app, request).await?;
    if bytes.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "empty-upload",
            "the upload is empty: send a PDF as the body",
        ));
    }
    let size = bytes.len() as u64;
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
    let accepted = board
        .submit(doc, size)
        .await
        .map_err(|e| board_error(&app, e))?;
    let id = accepted.id.clone();
    tracing::info!(job = %id, lane = %accepted.lane, pages = accepted.pages, "document accepted");
    if !q.wait {
        let body = json!({
            "job": id, "lane": accepted.lane.as_str(), "pages": accepted.pages,
            "status": format!("/v1/jobs/{id}"), "chunks": format!("/v1/jobs/{id}/chunks"),
        });
        return Ok((StatusCode::ACCEPTED, Json(body)).into_response());
    }
    // Synchronous: every record, then the final state.
    let mut records = Vec::new();
    let mut cursor = "0".to_string();
    loop {
        match board
            .follow(&id, &cursor)
            .await
            .map_err(|e| board_error(&app, e))?
        {
            Follow::Lines { lines, next, ended } => {
                records.extend(
                    lines
                        .iter()
                        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()),
                );
                cursor = next;
                if ended {
                    break;
                }
            }
            Follow::Evicted | Follow::Unknown | Follow::Lost => return Err(lost(&id)),
        }
    }
    let mut body = board
        .describe(&id)
        .await
        .map_err(|e| board_error(&app, e))?
        .ok_or_else(|| lost(&id))?;
    body["records"] = records.into();
    Ok(Json(body).into_response())
}

/// A board's refusal as the API answers it.
fn board_error(app: &App, e: BoardError) -> ApiError {
    match e {
        BoardError::Submit(e) => e.into(),
        BoardError::Busy { pending } => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "server-busy",
            format!(
                "accepted documents not yet finished hold {} MiB (server.max_pending_mib is {}); try again when some are done",
                pending >> 20,
                app.settings.max_pending_mib
            ),
        )
        .retry_after(Duration::from_secs(2)),
        BoardError::Unavailable(why) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "jobs-unavailable",
            format!("the job store cannot be reached: {why}"),
        )
        .retry_after(Duration::from_secs(1)),
    }
}

fn unknown(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown-job",
        format!("no job `{id}` (never submitted, or its results expired)"),
    )
}

fn lost(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::GONE,
        "job-lost",
        format!(
            "job `{id}` is no longer held by the job store (Redis was restarted without persistence, or flushed)"
        ),
    )
}

fn evicted(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::GONE,
        "results-evicted",
        format!(
            "job `{id}` finished, and its results were dropped to keep memory within server.max_results_mib"
        ),
    )
}

pub(super) async fn job(State(app): Shared, Path(id): Path<String>) -> Result<Response, ApiError> {
    let board = app.board()?;
    match board
        .describe(&id)
        .await
        .map_err(|e| board_error(&app, e))?
    {
        Some(state) => Ok(Json(state).into_response()),
        None => Err(unknown(&id)),
    }
}

pub(super) async fn list(State(app): Shared) -> Result<Response, ApiError> {
    let board = app.board()?;
    let jobs = board.list().await.map_err(|e| board_error(&app, e))?;
    Ok(Json(json!({ "jobs": jobs })).into_response())
}

pub(super) async fn cancel(
    State(app): Shared,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let board = app.board()?;
    match board.cancel(&id).await.map_err(|e| board_error(&app, e))? {
        None => Err(unknown(&id)),
        Some(was_running) => {
            Ok(Json(json!({ "job": id, "cancelled": was_running })).into_response())
        }
    }
}

/// A stream of NDJSON lines fed by a task following the job.
struct Lines(mpsc::Receiver<String>);

impl futures_core::Stream for Lines {
    type Item = Result<Bytes, std::convert::Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0
            .poll_recv(cx)
            .map(|line| line.map(|l| Ok(Bytes::from(format!("{l}\n")))))
    }
}

pub(super) async fn chunks(
    State(app): Shared,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let board = app.board()?.clone();
    // The first page: whether the job is there at all.
    let first = board
        .follow(&id, "0")
        .await
        .map_err(|e| board_error(&app, e))?;
    let (lines, mut cursor, ended) = match first {
        Follow::Lines { lines, next, ended } => (lines, next, ended),
        Follow::Evicted => return Err(evicted(&id)),
        Follow::Unknown => return Err(unknown(&id)),
        Follow::Lost => return Err(lost(&id)),
    };
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        for line in lines {
            if tx.send(line).await.is_err() {
                return;
            }
        }
        if ended {
            return;
        }
        loop {
            match board.follow(&id, &cursor).await {
                Ok(Follow::Lines { lines, next, ended }) => {
                    for line in lines {
                        if tx.send(line).await.is_err() {
                            return;
                        }
                    }
                    cursor = next;
                    if ended {
                        return;
                    }
                }
                // Evicted while streaming: what was sent stays sent; stop.
                Ok(Follow::Evicted) => return,
                // It was there when the stream began: it is lost.
                Ok(Follow::Lost | Follow::Unknown) => {
                    let line = json!({ "error": "the job was lost: the job store no longer holds it (Redis was restarted without persistence, or flushed)" });
                    let _ = tx.send(line.to_string()).await;
                    return;
                }
                Err(e) => {
                    tracing::debug!(job = %id, "following the job: {e:?}");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
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
