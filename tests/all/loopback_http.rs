//! The HTTP/1.1 side of the upstreams the tests and the `upstream` bench
//! start on loopback: requests read off a connection, answers written to it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

/// One request as read.
pub(crate) struct Request {
    /// The request target: path and query.
    pub(crate) target: String,
    /// Header names lowercased, values trimmed.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

/// The next request on `reader`'s connection; `None` once it closes.
pub(crate) fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let target = line.split(' ').nth(1).unwrap_or("/").to_string();
    let mut headers = Vec::new();
    let mut length = 0;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((name, value)) = h.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
            headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        target,
        headers,
        body,
    })
}

/// Writes a JSON answer with `status`, `extra` header lines (each ending in
/// CRLF) and `body`; whether the connection took it.
pub(crate) fn respond(stream: &mut TcpStream, status: u16, extra: &str, body: &[u8]) -> bool {
    let head = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{extra}\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).is_ok() && stream.write_all(body).is_ok()
}
