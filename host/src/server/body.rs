//! Reading request bodies: at most a given size, with a deadline for each
//! piece to arrive, so a client that stops sending half-way is answered
//! (408) and its connection closed instead of holding a task forever.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use http_body_util::BodyExt;

use super::error::ApiError;

/// The whole of `body`, if it holds at most `limit` bytes and no pause
/// between its pieces lasts `idle` or longer. `what` names the body in
/// errors ("the upload", "the request").
pub(super) async fn read(
    body: Body,
    limit: usize,
    idle: Duration,
    what: &str,
    too_large: impl FnOnce() -> ApiError,
) -> Result<Bytes, ApiError> {
    let mut body = body;
    let mut out: Vec<u8> = Vec::new();
    loop {
        let frame = match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => {
                let mut e = ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "body-timeout",
                    format!(
                        "{what} stopped arriving for {} s (server.body_timeout_secs)",
                        idle.as_secs()
                    ),
                );
                e.close = true;
                return Err(e);
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                let mut e = ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "body-unreadable",
                    format!("{what} could not be read: {e}"),
                );
                e.close = true;
                return Err(e);
            }
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > limit {
                let mut e = too_large();
                e.close = true;
                return Err(e);
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(out))
}
