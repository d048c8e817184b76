//! One request through the door: its body read within its limit, the
//! upstream's headers injected over the component's, its budget drawn
//! (reserved on an estimate and settled, for tokens), sent, paused and sent
//! again when the upstream pushes back and may be retried, and its
//! response read within its limit with every injected secret taken out.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

use super::gate::Traffic;
use super::{Counting, Upstream};
use crate::bucket::{Cost, Grant, WaitLimit};
use crate::error::BudgetError;
use crate::lanes::Lane;

/// The longest pause an upstream's `Retry-After` may ask for; longer ones
/// are taken as this (a misconfigured upstream must not stop a budget for
/// a day).
const MAX_PAUSE: Duration = Duration::from_secs(300);
/// The pause a 429 or 503 without a usable `Retry-After` gets.
const DEFAULT_PAUSE: Duration = Duration::from_secs(1);
/// What an injected secret is replaced with in what comes back.
const REDACTED: &[u8] = b"[redacted]";

/// The future a hook hands back to drive the connection; ours is done by
/// the time the response is, the body being read already.
type Io = Box<dyn Future<Output = Result<(), Error>> + Send>;

/// One outgoing request of one call.
pub(super) struct Exchange {
    pub(super) upstream: Arc<Upstream>,
    pub(super) component: Arc<str>,
    pub(super) lane: Lane,
    pub(super) deadline: Instant,
    pub(super) traffic: Option<Arc<Traffic>>,
    pub(super) span: tracing::Span,
}

/// Why a request got no response from the upstream.
#[derive(Debug)]
enum Failure {
    /// The request body is over `max_request_kib`.
    RequestTooLarge(u64),
    /// The response body is over `max_response_kib`.
    ResponseTooLarge(u64),
    /// The whole exchange ran past `total_timeout_ms` or the call's deadline.
    Timeout(Duration),
    /// The budget could not grant the request in time, or is unreachable.
    Budget(BudgetError),
    /// The request lacks what its cost is read from.
    Uncountable(String),
    /// Connecting, sending or receiving failed.
    Http(Error),
}

impl Failure {
    /// The metric label.
    fn kind(&self) -> &'static str {
        match self {
            Failure::RequestTooLarge(_) | Failure::ResponseTooLarge(_) => "too-large",
            Failure::Timeout(_) => "timeout",
            Failure::Budget(_) => "budget",
            Failure::Uncountable(_) => "uncountable",
            Failure::Http(Error::ConnectionTimeout | Error::ConnectionReadTimeout) => "timeout",
            Failure::Http(Error::ConnectionRefused | Error::Connect(_)) => "unreachable",
            Failure::Http(_) => "error",
        }
    }

    /// What the component gets: a `wasi:http` error code.
    fn into_error(self) -> Error {
        match self {
            Failure::RequestTooLarge(limit) => Error::HttpRequestBodySize(Some(limit)),
            Failure::ResponseTooLarge(limit) => Error::HttpResponseBodySize(Some(limit)),
            Failure::Timeout(_) => Error::HttpResponseTimeout,
            Failure::Budget(e) => Error::InternalError(Some(e.to_string())),
            Failure::Uncountable(why) => Error::InternalError(Some(why)),
            Failure::Http(Error::Connect(e))
                if e.kind() == std::io::ErrorKind::ConnectionRefused =>
            {
                Error::ConnectionRefused
            }
            Failure::Http(Error::Connect(_)) => Error::DestinationUnavailable,
            Failure::Http(e) => e,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::RequestTooLarge(n) => write!(f, "the request body is over {n} bytes"),
            Failure::ResponseTooLarge(n) => write!(f, "the response body is over {n} bytes"),
            Failure::Timeout(d) => write!(f, "no response within {} ms", d.as_millis()),
            Failure::Budget(e) => write!(f, "{e}"),
            Failure::Uncountable(why) => f.write_str(why),
            Failure::Http(e) => write!(f, "{e}"),
        }
    }
}

/// A response read whole.
struct Answer {
    parts: http::response::Parts,
    body: Bytes,
}

impl Exchange {
    /// Sends `request` and reads its response, within the upstream's total
    /// timeout and the call's deadline.
    pub(super) async fn run(
        self,
        request: Request<WasiBody>,
        asked: Option<RequestOptions>,
    ) -> Result<(Response<WasiBody>, Io), Error> {
        let started = Instant::now();
        let u = &*self.upstream;
        let limit = u
            .total
            .min(self.deadline.saturating_duration_since(started));
        let result = match tokio::time::timeout(limit, self.exchange(request, asked, limit)).await {
            Ok(result) => result,
            Err(_) => Err(Failure::Timeout(limit)),
        };
        u.counters.latency.record(started.elapsed());
        let span = &self.span;
        span.record("duration_ms", started.elapsed().as_secs_f64() * 1e3);
        match result {
            Ok(answer) => {
                let status = answer.parts.status;
                u.counters.outcome(&self.component, status.as_str());
                span.record("status", status.as_u16());
                if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
                    tracing::warn!(status = status.as_u16(), "the upstream answered {status}");
                } else {
                    tracing::debug!(status = status.as_u16(), "answered");
                }
                let body = Full::new(answer.body)
                    .map_err(|never| match never {})
                    .boxed_unsync();
                let io: Io = Box::new(async { Ok(()) });
                Ok((Response::from_parts(answer.parts, body), io))
            }
            Err(failure) => {
                u.counters.outcome(&self.component, failure.kind());
                span.record("error", tracing::field::display(&failure));
                tracing::warn!(
                    upstream = u.name(),
                    "request to upstream `{}` failed: {failure}",
                    u.name()
                );
                Err(failure.into_error())
            }
        }
    }

    async fn exchange(
        &self,
        request: Request<WasiBody>,
        asked: Option<RequestOptions>,
        limit: Duration,
    ) -> Result<Answer, Failure> {
        let u = &*self.upstream;
        let started = Instant::now();
        let left = || limit.saturating_sub(started.elapsed());
        let (mut parts, body) = request.into_parts();
        let body = read_whole(body, u.max_request, Failure::RequestTooLarge, Duration::MAX).await?;
        for h in &u.headers {
            parts.headers.insert(h.name.clone(), h.value.clone());
        }
        let estimate = self.estimate(&body)?;
        let _slot = u
            .slots
            .acquire()
            .await
            .map_err(|_| Failure::Http(Error::ConnectionLimitReached))?;
        let options = u.options(asked);
        let mut retries = 0;
        loop {
            let grant = self.draw(estimate, left()).await?;
            self.count(|t| &t.requests, 1);
            u.counters
                .sent_bytes
                .fetch_add(body.len() as u64, Ordering::Relaxed);
            let sent = self.send(&parts, &body, options).await;
            let answer = match sent {
                Ok(answer) => answer,
                Err(failure) => {
                    // Nothing came back: a token estimate used nothing.
                    self.settle(grant, &[]);
                    return Err(failure);
                }
            };
            u.counters
                .received_bytes
                .fetch_add(answer.body.len() as u64, Ordering::Relaxed);
            let status = answer.parts.status;
            let pushed_back = status == StatusCode::TOO_MANY_REQUESTS
                || status == StatusCode::SERVICE_UNAVAILABLE;
            if !pushed_back {
                self.settle(grant, &answer.body);
                return Ok(self.redacted(answer));
            }
            self.settle(grant, &[]);
            let pause = retry_after(&answer.parts.headers).unwrap_or(DEFAULT_PAUSE);
            if let Some(budget) = &u.budget {
                tracing::warn!(
                    budget = budget.name(),
                    pause_ms = pause.as_millis() as u64,
                    "upstream `{}` answered {status}: pausing budget `{}` for every replica",
                    u.name(),
                    budget.name()
                );
                if let Err(e) = budget.pause(pause) {
                    tracing::warn!("the pause could not be recorded: {e}");
                }
            }
            // Sent again only where that is safe, and only if the pause
            // ends in time for an answer.
            if !u.retry || pause + Duration::from_millis(50) >= left() {
                return Ok(self.redacted(answer));
            }
            retries += 1;
            u.counters.retries.fetch_add(1, Ordering::Relaxed);
            self.span.record("retries", retries);
            if u.budget.is_none() {
                tokio::time::sleep(pause).await;
            }
        }
    }

    /// Sends one request on a kept-alive connection and reads its response
    /// whole, each piece within the between-bytes timeout; the connection
    /// goes back to the pool once the body is read.
    async fn send(
        &self,
        parts: &http::request::Parts,
        body: &Bytes,
        options: RequestOptions,
    ) -> Result<Answer, Failure> {
        let u = &*self.upstream;
        let sent = u
            .pool
            .send(parts, body, &options)
            .await
            .map_err(Failure::Http)?;
        let (parts, incoming) = sent.response.into_parts();
        let closing = parts
            .headers
            .get(http::header::CONNECTION)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
        let between = options.between_bytes_timeout.unwrap_or(Duration::MAX);
        let incoming = incoming.map_err(Error::from);
        let body = read_whole(incoming, u.max_response, Failure::ResponseTooLarge, between).await?;
        u.pool.put(sent.connection, closing);
        Ok(Answer { parts, body })
    }

    /// What a request with `body` is reserved at.
    fn estimate(&self, body: &[u8]) -> Result<Cost, Failure> {
        let u = &*self.upstream;
        let Counting::Tokens {
            estimate,
            prompt_bytes_per_token,
            ..
        } = &u.counting
        else {
            return Ok(Cost(1));
        };
        let uncountable = || {
            Failure::Uncountable(format!(
                "upstream `{}` counts tokens from `{estimate}` in the request's JSON body, which the request lacks or is not a non-negative number",
                u.name()
            ))
        };
        let value: serde_json::Value = serde_json::from_slice(body).map_err(|_| uncountable())?;
        let completion = value
            .pointer(estimate)
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(uncountable)?;
        let prompt = match *prompt_bytes_per_token {
            0 => 0,
            n => (body.len() as u64).div_ceil(n),
        };
        Ok(Cost((completion + prompt).max(1)))
    }

    /// Draws `cost` from the upstream's budget, if it has one, waiting no
    /// longer than `left`.
    async fn draw(&self, cost: Cost, left: Duration) -> Result<Option<Grant>, Failure> {
        let u = &*self.upstream;
        let Some(budget) = u.budget.clone() else {
            return Ok(None);
        };
        let lane = self.lane;
        // The budget's waits are a thread's sleeps: off the runtime.
        let grant = tokio::task::spawn_blocking(move || {
            budget.acquire(lane, cost, WaitLimit::AtMost(left))
        })
        .await
        .map_err(|e| Failure::Http(Error::InternalError(Some(e.to_string()))))?
        .map_err(Failure::Budget)?;
        if matches!(u.counting, Counting::Tokens { .. }) {
            u.counters
                .tokens_reserved
                .fetch_add(cost.0, Ordering::Relaxed);
        }
        Ok(Some(grant))
    }

    /// Settles a grant against the response `body` (empty: nothing came
    /// back): a token estimate is charged or refunded to what the upstream
    /// reported using; a request, once sent, stays counted.
    fn settle(&self, grant: Option<Grant>, body: &[u8]) {
        let u = &*self.upstream;
        let (Some(grant), Some(budget)) = (grant, &u.budget) else {
            return;
        };
        let Counting::Tokens { usage, .. } = &u.counting else {
            self.count(|t| &t.tokens, grant.cost().0);
            return;
        };
        let used = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.pointer(usage).and_then(serde_json::Value::as_u64))
            .unwrap_or(0);
        budget.settle(grant, self.lane, Cost(used));
        u.counters.tokens_used.fetch_add(used, Ordering::Relaxed);
        self.count(|t| &t.tokens, used);
        self.span.record("tokens", used);
    }

    /// Adds `n` to the call's count that `which` picks, if it is counted.
    fn count(&self, which: fn(&Traffic) -> &std::sync::atomic::AtomicU64, n: u64) {
        if let Some(t) = &self.traffic {
            which(t).fetch_add(n, Ordering::Relaxed);
        }
    }

    /// `answer` with every injected secret replaced, in its headers and
    /// its body: an upstream that echoes what it was sent must not hand
    /// the component the key.
    fn redacted(&self, mut answer: Answer) -> Answer {
        for secret in self
            .upstream
            .headers
            .iter()
            .filter_map(|h| h.secret.as_deref())
        {
            if let Some(body) = replace_all(&answer.body, secret) {
                answer.body = Bytes::from(body);
            }
            for value in answer.parts.headers.values_mut() {
                if let Some(clean) = replace_all(value.as_bytes(), secret)
                    && let Ok(clean) = http::HeaderValue::from_bytes(&clean)
                {
                    *value = clean;
                }
            }
        }
        answer
    }
}

/// `body` read whole, or `too_large(limit)` once it passes `limit` bytes;
/// no more than `between` waiting for any one piece.
async fn read_whole(
    body: impl http_body::Body<Data = Bytes, Error = Error>,
    limit: u64,
    too_large: fn(u64) -> Failure,
    between: Duration,
) -> Result<Bytes, Failure> {
    let mut body = std::pin::pin!(body);
    let mut buf = Vec::new();
    loop {
        let frame = match tokio::time::timeout(between, body.frame()).await {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(_) => return Err(Failure::Http(Error::ConnectionReadTimeout)),
        };
        let frame = frame.map_err(Failure::Http)?;
        if let Ok(data) = frame.into_data() {
            if (buf.len() + data.len()) as u64 > limit {
                return Err(too_large(limit));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(buf))
}

/// `haystack` with every `needle` replaced by [`REDACTED`], if it has one.
fn replace_all(haystack: &[u8], needle: &[u8]) -> Option<Vec<u8>> {
    if needle.is_empty() || !haystack.windows(needle.len()).any(|w| w == needle) {
        return None;
    }
    let mut out = Vec::with_capacity(haystack.len());
    let mut i = 0;
    while i < haystack.len() {
        if haystack[i..].starts_with(needle) {
            out.extend_from_slice(REDACTED);
            i += needle.len();
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    Some(out)
}

/// The pause a `Retry-After` asks for: seconds, or an HTTP date.
fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    let pause = match value.parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs >= 0.0 => Duration::from_secs_f64(secs),
        Ok(_) => return None,
        Err(_) => httpdate::parse_http_date(value)
            .ok()?
            .duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    };
    Some(pause.min(MAX_PAUSE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_copy_of_a_secret_is_redacted() {
        let out = replace_all(b"key=abc123;again abc123!", b"abc123").unwrap();
        assert_eq!(out, b"key=[redacted];again [redacted]!");
        assert_eq!(replace_all(b"nothing here", b"abc123"), None);
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_a_date_and_bounded() {
        let mut h = http::HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(http::header::RETRY_AFTER, "2".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert(http::header::RETRY_AFTER, "86400".parse().unwrap());
        assert_eq!(retry_after(&h), Some(MAX_PAUSE));
        let soon = std::time::SystemTime::now() + Duration::from_secs(30);
        h.insert(
            http::header::RETRY_AFTER,
            httpdate::fmt_http_date(soon).parse().unwrap(),
        );
        let d = retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(27) && d <= Duration::from_secs(30),
            "{d:?}"
        );
        h.insert(http::header::RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }
}
