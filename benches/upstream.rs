//! One outbound request through the host against the same request made
//! natively, in the same run, to one loopback upstream answering a small
//! chat completion. Through the host: the `http-ping` test tool, whose call
//! is one POST and nothing else (a warm instance, `wasi:http` across the
//! boundary, the gate, the exchange), less a tool call that sends nothing
//! (`text-stats`): that difference against the same HTTP/1.1 request on a
//! kept-alive connection (as the host keeps them) is the request's
//! overhead. A fresh connection per request, natively, for scale.
//! Also the `llm-chat` example's whole call, and the host's side alone (the
//! exchange's mean from its `upstream_request_seconds` histogram).
//!
//! Run: `cargo bench --bench upstream`.

mod support;
// The upstream the tests start speaks the same HTTP; the bench reads no
// request's parts.
#[allow(dead_code)]
#[path = "../tests/all/loopback_http.rs"]
mod loopback_http;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use loopback_http::{read_request, respond};
use support::median;
use warmlane_host::{Config, Host};

const CALLS: usize = 2000;
const REPLY: &str = r#"{"choices":[{"message":{"role":"assistant","content":"reply"}}],"usage":{"total_tokens":12}}"#;

/// A loopback upstream answering every request with `REPLY`.
fn upstream() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || answer(stream));
        }
    });
    port
}

fn answer(stream: TcpStream) {
    stream.set_nodelay(true).ok();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut stream = stream;
    while read_request(&mut reader).is_some() {
        if !respond(&mut stream, 200, "", REPLY.as_bytes()) {
            return;
        }
    }
}

/// A native client's connection: kept alive across requests, or not.
struct Native {
    port: u16,
    keep: bool,
    kept: Option<BufReader<TcpStream>>,
}

impl Native {
    /// The request the tool sends, made natively.
    fn request(&mut self, body: &[u8]) {
        let port = self.port;
        let mut reader = match self.kept.take() {
            Some(r) => r,
            None => {
                let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
                s.set_nodelay(true).ok();
                BufReader::new(s)
            }
        };
        send(reader.get_mut(), port, body);
        receive(&mut reader);
        if self.keep {
            self.kept = Some(reader);
        }
    }
}

fn send(s: &mut TcpStream, port: u16, body: &[u8]) {
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\nauthorization: Bearer sk-bench\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let mut message = head.into_bytes();
    message.extend_from_slice(body);
    s.write_all(&message).unwrap();
}

fn receive(reader: &mut BufReader<TcpStream>) {
    let mut length = 0;
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).unwrap();
        if h.trim_end().is_empty() {
            break;
        }
        if let Some((n, v)) = h.split_once(':')
            && n.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    std::hint::black_box(body);
}

/// Sample `name` of upstream `ping`.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l.contains("upstream=\"ping\""))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

fn main() {
    let port = upstream();
    let dir = std::env::temp_dir().join(format!("warmlane-bench-upstream-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (stem, name) in [("llm_chat", "llm-chat"), ("http_ping", "http-ping")] {
        let guest = std::path::Path::new(warmlane_host::builtin::ARTIFACTS_DIR)
            .join(format!("{stem}.wasm"));
        std::fs::copy(&guest, dir.join(format!("{name}.wasm"))).expect("the guests are built");
    }
    let config = Config::from_toml(&format!(
        "[plugins]\ndir = {:?}\n\
         [upstreams.llm]\nurls = [\"http://127.0.0.1:{port}/v1\"]\nplain_http = true\n\
         headers.authorization = {{ value = \"Bearer sk-bench\" }}\n\
         [upstreams.ping]\nurls = [\"http://127.0.0.1:{port}/v1/chat/completions\"]\nplain_http = true\n\
         [components.llm-chat]\nupstreams = [\"llm\"]\nwarm = 4\n\
         [components.http-ping]\nupstreams = [\"ping\"]\nwarm = 4\n[components.text-stats]\nwarm = 4\n",
        dir.display().to_string()
    ))
    .unwrap();
    let host = Host::new(config).unwrap();
    assert!(host.wait_warm(Duration::from_secs(60)));

    let input = r#"{"message":"hi","max_tokens":5}"#;
    // The body the tool sends, for the native request.
    let body = br#"{"max_tokens":5,"messages":[{"content":"hi","role":"user"}],"model":"default"}"#;
    let mut kept = Native {
        port,
        keep: true,
        kept: None,
    };
    let mut fresh = Native {
        port,
        keep: false,
        kept: None,
    };
    for _ in 0..200 {
        host.call_tool("chat", input, None).unwrap();
        host.call_tool("ping", std::str::from_utf8(body).unwrap(), None)
            .unwrap();
        kept.request(body);
    }
    let chat = median(CALLS, || {
        host.call_tool("chat", input, None).unwrap();
    });
    let before = host.metrics();
    let through_host = median(CALLS, || {
        host.call_tool("ping", std::str::from_utf8(body).unwrap(), None)
            .unwrap();
    });
    let after = host.metrics();
    let exchange_mean = {
        let sum = metric(&after, "warmlane_upstream_request_seconds_sum")
            - metric(&before, "warmlane_upstream_request_seconds_sum");
        let count = metric(&after, "warmlane_upstream_request_seconds_count")
            - metric(&before, "warmlane_upstream_request_seconds_count");
        Duration::from_secs_f64(sum / count)
    };
    let natively = median(CALLS, || kept.request(body));
    let natively_fresh = median(CALLS, || fresh.request(body));
    let no_request = median(CALLS, || {
        host.call_tool("text-stats", r#"{"text":"hi"}"#, None)
            .unwrap();
    });
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!("one request to a loopback upstream, medians of {CALLS}:");
    println!(
        "  natively, kept-alive connection      {:8.1} µs",
        us(natively)
    );
    println!(
        "  natively, a new connection each      {:8.1} µs",
        us(natively_fresh)
    );
    println!(
        "  the http-ping tool call (one POST)   {:8.1} µs",
        us(through_host)
    );
    println!(
        "  a tool call that sends nothing       {:8.1} µs",
        us(no_request)
    );
    println!("  the llm-chat example's call          {:8.1} µs", us(chat));
    println!(
        "  the host's exchange alone (mean)     {:8.1} µs",
        us(exchange_mean)
    );
    println!(
        "overhead of the request through the host: {:.1} µs (tool call - call sending nothing - native); exchange alone {:.1} µs over native; ratio tool/native {:.2}x",
        us(through_host) - us(no_request) - us(natively),
        us(exchange_mean) - us(natively),
        us(through_host) / us(natively)
    );
}
