//! What the benches that run the real binary share: free ports, processes
//! killed when dropped, and a minimal HTTP/1.1 client.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Child;
use std::time::{Duration, Instant};

/// A process of ours, killed when dropped.
pub(crate) struct Proc {
    pub(crate) child: Child,
    pub(crate) addr: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One request on a fresh connection: the status (0 when nothing answered)
/// and the body.
pub(crate) fn http(addr: &str, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return (0, String::new());
    };
    let sent = write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/pdf\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .and_then(|()| s.write_all(body));
    if sent.is_err() {
        return (0, String::new());
    }
    let mut raw = String::new();
    let _ = s.read_to_string(&mut raw);
    let status = raw
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = raw
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

/// A line of `/proc/PID/status`, in MiB (`VmRSS`, `VmHWM`).
pub(crate) fn status_mib(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// The median time of one call of `f` over `calls` calls, after a
/// twentieth as many to warm up.
pub(crate) fn median(calls: usize, mut f: impl FnMut()) -> Duration {
    for _ in 0..calls / 20 {
        f();
    }
    let mut times: Vec<Duration> = (0..calls)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}
