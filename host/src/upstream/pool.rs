//! Kept-alive connections to one upstream: HTTP/1.1 connections reused by
//! the requests of every call (no connect, no TLS handshake per request),
//! idle ones closed after the upstream's `idle_timeout_ms`, and one TLS
//! configuration for the whole process.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::Scheme;
use http::{Request, Response, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use wasmtime_wasi_http::{Error, RequestOptions};

/// The TLS client every upstream connection uses: the webpki roots, set up
/// once (building the root store takes longer than a request on loopback).
static TLS: LazyLock<tokio_rustls::TlsConnector> = LazyLock::new(|| {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.into(),
    };
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
});

/// Where a connection goes: scheme and `host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    tls: bool,
    authority: String,
}

impl Origin {
    fn of(uri: &Uri) -> Result<Origin, Error> {
        let authority = uri.authority().ok_or(Error::HttpRequestUriInvalid)?;
        let tls = uri.scheme() == Some(&Scheme::HTTPS);
        let authority = match authority.port_u16() {
            Some(_) => authority.to_string(),
            None => format!("{}:{}", authority.host(), if tls { 443 } else { 80 }),
        };
        Ok(Origin { tls, authority })
    }
}

/// A connection ready for one request at a time.
pub(super) struct Connection {
    origin: Origin,
    sender: SendRequest<Full<Bytes>>,
    /// Whether it served a request before (a reused connection the upstream
    /// closed meanwhile fails without having been read).
    reused: bool,
}

struct Idle {
    connection: Connection,
    since: Instant,
}

/// One upstream's idle connections.
pub(super) struct Pool {
    idle: Mutex<Vec<Idle>>,
    /// How long a connection may wait unused; zero keeps none.
    keep: Duration,
    /// How many may wait at once.
    most: usize,
    /// Connections opened so far.
    opened: AtomicU64,
}

/// What a sent request came back with: the response and the connection to
/// hand back once its body is read.
pub(super) struct Sent {
    pub(super) response: Response<Incoming>,
    pub(super) connection: Connection,
}

impl Pool {
    pub(super) fn new(keep: Duration, most: usize) -> Pool {
        Pool {
            idle: Mutex::new(Vec::new()),
            keep,
            most,
            opened: AtomicU64::new(0),
        }
    }

    /// Connections opened so far (a kept one serves many requests).
    pub(super) fn opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// Sends the request `parts` + `body` on an idle connection to its
    /// origin, or a new one. A reused connection that turns out closed
    /// before the request was read is set aside and the request sent on
    /// another: an upstream closing idle connections is not an error.
    pub(super) async fn send(
        &self,
        parts: &http::request::Parts,
        body: &Bytes,
        options: &RequestOptions,
    ) -> Result<Sent, Error> {
        let origin = Origin::of(&parts.uri)?;
        let first_byte = options.first_byte_timeout.unwrap_or(Duration::MAX);
        loop {
            let mut connection = match self.take(&origin) {
                Some(c) => c,
                None => {
                    let c = connect(origin.clone(), options).await?;
                    self.opened.fetch_add(1, Ordering::Relaxed);
                    c
                }
            };
            let reused = connection.reused;
            if connection.sender.ready().await.is_err() {
                if reused {
                    continue;
                }
                return Err(Error::HttpProtocolError);
            }
            let request = origin_form(parts, body)?;
            let sent = tokio::time::timeout(first_byte, connection.sender.send_request(request));
            match sent.await {
                Err(_) => return Err(Error::ConnectionReadTimeout),
                Ok(Ok(response)) => {
                    connection.reused = true;
                    return Ok(Sent {
                        response,
                        connection,
                    });
                }
                // Closed under us before a byte of an answer: the upstream
                // dropped a connection it had kept idle. Not on a new one.
                Ok(Err(e))
                    if reused
                        && (e.is_incomplete_message() || e.is_closed() || e.is_canceled()) =>
                {
                    tracing::debug!("a kept-alive connection was closed by the upstream: {e}");
                    continue;
                }
                Ok(Err(e)) => return Err(e.into()),
            }
        }
    }

    /// Hands `connection` back for the next request, unless the response
    /// said the connection ends, or nothing is kept.
    pub(super) fn put(&self, connection: Connection, closing: bool) {
        if closing || self.keep.is_zero() || connection.sender.is_closed() {
            return;
        }
        let mut idle = self.idle();
        if idle.len() >= self.most {
            idle.remove(0);
        }
        idle.push(Idle {
            connection,
            since: Instant::now(),
        });
    }

    /// The idle connections, those past their keep or closed by the
    /// upstream dropped.
    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        idle.retain(|i| {
            now.duration_since(i.since) < self.keep && !i.connection.sender.is_closed()
        });
        idle
    }

    /// The most recently used idle connection to `origin` that is still
    /// open and not past its keep.
    fn take(&self, origin: &Origin) -> Option<Connection> {
        let mut idle = self.idle();
        let at = idle.iter().rposition(|i| i.connection.origin == *origin)?;
        Some(idle.remove(at).connection)
    }
}

/// A new connection to `origin`, TLS where it is `https`, within the
/// connect timeout; its I/O is driven by a task of its own, which ends when
/// the connection does.
async fn connect(origin: Origin, options: &RequestOptions) -> Result<Connection, Error> {
    let limit = options.connect_timeout.unwrap_or(Duration::MAX);
    let opened = async {
        let tcp = TcpStream::connect(&origin.authority)
            .await
            .map_err(Error::Connect)?;
        tcp.set_nodelay(true).map_err(Error::Connect)?;
        if origin.tls {
            let name = server_name(&origin.authority)?;
            let tls = TLS.connect(name, tcp).await.map_err(Error::Tls)?;
            handshake(tls).await
        } else {
            handshake(tcp).await
        }
    };
    let sender = tokio::time::timeout(limit, opened)
        .await
        .map_err(|_| Error::ConnectionTimeout)??;
    Ok(Connection {
        origin,
        sender,
        reused: false,
    })
}

async fn handshake(
    io: impl AsyncRead + AsyncWrite + Send + Unpin + 'static,
) -> Result<SendRequest<Full<Bytes>>, Error> {
    let (sender, connection) = http1::Builder::new().handshake(TokioIo::new(io)).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!("upstream connection ended: {e}");
        }
    });
    Ok(sender)
}

/// The request as sent on the wire: its target in origin form (the scheme
/// and authority go only to a proxy), the `Host` header carrying the rest.
fn origin_form(parts: &http::request::Parts, body: &Bytes) -> Result<Request<Full<Bytes>>, Error> {
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = Request::new(Full::new(body.clone()));
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = target.parse().map_err(|_| Error::HttpRequestUriInvalid)?;
    *request.headers_mut() = parts.headers.clone();
    Ok(request)
}

/// The name a TLS server's certificate is checked against: an IP literal
/// or the host name of `authority` (`host:port`, IPv6 in brackets).
fn server_name(authority: &str) -> Result<rustls::pki_types::ServerName<'static>, Error> {
    use rustls::pki_types::ServerName;
    if let Ok(addr) = authority.parse::<std::net::SocketAddr>() {
        return Ok(ServerName::from(addr.ip()));
    }
    let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
    ServerName::try_from(host)
        .map(|n| n.to_owned())
        .map_err(|_| Error::HttpRequestUriInvalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_name_their_port_and_server_names_their_host() {
        let o = Origin::of(&"https://api.example.com/v1/x".parse().unwrap()).unwrap();
        assert_eq!((o.tls, o.authority.as_str()), (true, "api.example.com:443"));
        let o = Origin::of(&"http://127.0.0.1:8080/".parse().unwrap()).unwrap();
        assert_eq!((o.tls, o.authority.as_str()), (false, "127.0.0.1:8080"));
        assert!(Origin::of(&"/no/authority".parse().unwrap()).is_err());
        use rustls::pki_types::ServerName;
        assert_eq!(
            server_name("api.example.com:443").unwrap(),
            ServerName::try_from("api.example.com").unwrap()
        );
        assert_eq!(
            server_name("[::1]:443").unwrap(),
            ServerName::from(std::net::Ipv6Addr::LOCALHOST)
        );
    }
}
