//! A small round-robin HTTP proxy for end-to-end tests, doing what a
//! Kubernetes Service and an ingress do in front of replicas: requests go
//! to ready replicas in turn; a replica is taken out of rotation once its
//! `/readyz` fails, or at once when it is told to stop (the endpoint update
//! a `preStop` waits for); and, like an ingress, a request whose replica
//! cannot be reached or goes away before answering gets 503 with
//! `Retry-After`. A replica that dies half-way through an answer cuts it,
//! as a real connection would.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::serve::try_request;

/// A replica the proxy knows.
struct Member {
    addr: String,
    /// Its last `/readyz` said 200.
    ready: bool,
    /// Told to stop: never in rotation again.
    leaving: bool,
}

#[derive(Default)]
struct Rotation {
    members: Vec<Member>,
    next: usize,
}

impl Rotation {
    fn pick(&mut self) -> Option<String> {
        let ready: Vec<&Member> = self
            .members
            .iter()
            .filter(|m| m.ready && !m.leaving)
            .collect();
        if ready.is_empty() {
            return None;
        }
        self.next = self.next.wrapping_add(1);
        Some(ready[self.next % ready.len()].addr.clone())
    }
}

/// A running proxy; stops when dropped.
pub(crate) struct Proxy {
    pub(crate) addr: String,
    rotation: Arc<Mutex<Rotation>>,
    stop: Arc<AtomicBool>,
    /// Requests it answered 503 itself.
    pub(crate) refused: Arc<Mutex<u64>>,
}

impl Proxy {
    pub(crate) fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port for the proxy");
        let addr = listener.local_addr().unwrap().to_string();
        let rotation = Arc::new(Mutex::new(Rotation::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let refused = Arc::new(Mutex::new(0));
        {
            let rotation = rotation.clone();
            let refused = refused.clone();
            std::thread::spawn(move || {
                for client in listener.incoming().flatten() {
                    let backend = rotation.lock().unwrap().pick();
                    let refused = refused.clone();
                    std::thread::spawn(move || forward(client, backend, &refused));
                }
            });
        }
        {
            // Readiness, as the kubelet probes it.
            let rotation = rotation.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let addrs: Vec<String> = rotation
                        .lock()
                        .unwrap()
                        .members
                        .iter()
                        .filter(|m| !m.leaving)
                        .map(|m| m.addr.clone())
                        .collect();
                    for addr in addrs {
                        let ready = matches!(
                            try_request(&addr, "GET", "/readyz", &[], b""),
                            Ok(r) if r.status == 200
                        );
                        let mut r = rotation.lock().unwrap();
                        if let Some(m) = r.members.iter_mut().find(|m| m.addr == addr) {
                            m.ready = ready;
                        }
                    }
                    std::thread::sleep(Duration::from_millis(250));
                }
            });
        }
        Proxy {
            addr,
            rotation,
            stop,
            refused,
        }
    }

    /// Adds a replica; it takes requests once its `/readyz` says 200.
    pub(crate) fn add(&self, addr: &str) {
        self.rotation.lock().unwrap().members.push(Member {
            addr: addr.to_string(),
            ready: false,
            leaving: false,
        });
    }

    /// Whether the replica at `addr` is in rotation.
    pub(crate) fn serving(&self, addr: &str) -> bool {
        self.rotation
            .lock()
            .unwrap()
            .members
            .iter()
            .any(|m| m.addr == addr && m.ready && !m.leaving)
    }

    /// Takes a replica out of rotation for good (it is being stopped).
    pub(crate) fn remove(&self, addr: &str) {
        let mut r = self.rotation.lock().unwrap();
        for m in r.members.iter_mut().filter(|m| m.addr == addr) {
            m.leaving = true;
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Relays one connection to `backend`: the request as it comes, the
/// answer once its head is whole.
fn forward(mut client: TcpStream, backend: Option<String>, refused: &Mutex<u64>) {
    let unavailable = |client: &mut TcpStream, why: &str| {
        *refused.lock().unwrap() += 1;
        let body = format!(r#"{{"error":{{"code":"unavailable","message":"proxy: {why}"}}}}"#);
        let _ = write!(
            client,
            "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = client.shutdown(Shutdown::Both);
    };
    let Some(backend) = backend else {
        return unavailable(&mut client, "no replica is ready");
    };
    let Ok(mut upstream) = TcpStream::connect(&backend) else {
        return unavailable(&mut client, "the replica refused the connection");
    };
    let (Ok(mut from_client), Ok(mut to_upstream)) = (client.try_clone(), upstream.try_clone())
    else {
        return unavailable(&mut client, "out of sockets");
    };
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_client, &mut to_upstream);
        let _ = to_upstream.shutdown(Shutdown::Write);
    });
    // Hold the answer back until its head is whole: a replica that goes
    // away before that has not answered, and the client is told to retry.
    let mut head = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match upstream.read(&mut buf) {
            Ok(n) if n > 0 => head.extend_from_slice(&buf[..n]),
            _ => return unavailable(&mut client, "the replica went away before answering"),
        }
    }
    if client.write_all(&head).is_ok() {
        let _ = std::io::copy(&mut upstream, &mut client);
    }
    let _ = client.shutdown(Shutdown::Both);
}
