//! A blocking HTTP POST over `wasi:http/outgoing-handler`, for guests whose
//! world imports it (their bindings generated at the crate's root). Shared
//! by the `hosted-parser` and `llm-chat` examples.

use crate::wasi::http::outgoing_handler;
use crate::wasi::http::types::{ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, Scheme};
use crate::wasi::io::streams::StreamError;

/// The largest write one `blocking-write-and-flush` takes.
const WRITE: usize = 4096;

/// What came back: the status, the `retry-after` header if any, the body.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) retry_after: Option<String>,
    pub(crate) body: Vec<u8>,
}

/// POSTs `body` to `url` (`http://NAME/path` addresses upstream `NAME` as
/// the host has it configured) and reads the whole response.
pub(crate) fn post(url: &str, content_type: &str, body: &[u8]) -> Result<Answer, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("{url:?} is not a URL"))?;
    let (authority, path) = rest.find('/').map_or((rest, "/"), |i| rest.split_at(i));
    let headers = Fields::from_list(&[("content-type".into(), content_type.as_bytes().to_vec())])
        .map_err(|e| format!("bad header: {e:?}"))?;
    let request = OutgoingRequest::new(headers);
    let scheme = if scheme == "https" {
        Scheme::Https
    } else {
        Scheme::Http
    };
    let set = |ok: Result<(), ()>, what: &str| ok.map_err(|()| format!("bad {what} in {url:?}"));
    set(request.set_method(&Method::Post), "method")?;
    set(request.set_scheme(Some(&scheme)), "scheme")?;
    set(request.set_authority(Some(authority)), "authority")?;
    set(request.set_path_with_query(Some(path)), "path")?;
    let outgoing = request.body().map_err(|()| "the request body was taken")?;
    let stream = outgoing.write().map_err(|()| "the body stream was taken")?;
    // A body the stream takes in one write goes before the request: the
    // host then finds it whole and nothing waits on anything. A longer one
    // is written after, as the host reads it.
    let whole =
        stream.check_write().is_ok_and(|n| n >= body.len() as u64) && stream.write(body).is_ok();
    let future = if whole {
        drop(stream);
        OutgoingBody::finish(outgoing, None).map_err(describe)?;
        outgoing_handler::handle(request, None).map_err(describe)?
    } else {
        let future = outgoing_handler::handle(request, None).map_err(describe)?;
        let written = body
            .chunks(WRITE)
            .try_for_each(|chunk| stream.blocking_write_and_flush(chunk));
        drop(stream);
        if let Err(e) = written {
            // The host stopped reading: its answer says why.
            drop(outgoing);
            future.subscribe().block();
            return Err(match future.get() {
                Some(Ok(Err(code))) => describe(code),
                _ => format!("sending the request failed: {e:?}"),
            });
        }
        OutgoingBody::finish(outgoing, None).map_err(describe)?;
        future
    };
    let response = loop {
        match future.get() {
            Some(Ok(result)) => break result.map_err(describe)?,
            Some(Err(())) => return Err("the response was taken twice".into()),
            None => future.subscribe().block(),
        }
    };
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .first()
        .map(|v| String::from_utf8_lossy(v).into_owned());
    let incoming = response
        .consume()
        .map_err(|()| "the response body was taken")?;
    let stream = incoming
        .stream()
        .map_err(|()| "the response stream was taken")?;
    let mut body = Vec::new();
    loop {
        match stream.blocking_read(64 << 10) {
            Ok(chunk) => body.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(format!(
                    "reading the response failed: {}",
                    e.to_debug_string()
                ));
            }
        }
    }
    Ok(Answer {
        status,
        retry_after,
        body,
    })
}

/// The host's error, as a sentence.
fn describe(e: ErrorCode) -> String {
    match e {
        ErrorCode::HttpRequestDenied => {
            "the host denied the request: its URL is none of this component's upstreams".into()
        }
        ErrorCode::HttpResponseBodySize(Some(n)) => {
            format!("the response is over the upstream's limit of {n} bytes")
        }
        ErrorCode::HttpRequestBodySize(Some(n)) => {
            format!("the request is over the upstream's limit of {n} bytes")
        }
        ErrorCode::HttpResponseTimeout | ErrorCode::ConnectionTimeout => {
            "the upstream did not answer in time".into()
        }
        ErrorCode::ConnectionRefused | ErrorCode::DestinationUnavailable => {
            "the upstream cannot be reached".into()
        }
        ErrorCode::InternalError(Some(why)) => why,
        other => format!("the request failed: {other:?}"),
    }
}
