//! The server against clients that abuse it: uploads as large as the limit
//! says in both forms, bodies past the limits, clients that stop sending,
//! too many uploads at once, and the memory a flood of jobs leaves behind.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use lopdf::{Dictionary, Document, LoadOptions, Object, Stream};

use crate::serve::{Reply, Serve, request};
use crate::support;

/// `en-lppl.pdf` grown to about `size` bytes by an unreferenced stream of
/// incompressible bytes: a valid PDF that is just large.
fn pdf_of_size(size: usize) -> Vec<u8> {
    let mut doc = Document::load_with_options(support::data("en-lppl.pdf"), LoadOptions::default())
        .expect("load en-lppl.pdf");
    let mut seed = 0x2545_F491_4F6C_DD1D_u64;
    let base = std::fs::read(support::data("en-lppl.pdf")).unwrap().len();
    let junk: Vec<u8> = (0..size.saturating_sub(base))
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect();
    doc.add_object(Object::Stream(Stream::new(Dictionary::new(), junk)));
    let mut out = Vec::new();
    doc.save_to(&mut out).unwrap();
    out
}

fn multipart(pdf: &[u8]) -> (String, Vec<u8>) {
    let boundary = "warmlane-test-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.pdf\"\r\nContent-Type: application/pdf\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(pdf);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn assert_json_error(r: &Reply, status: u16, code: &str) {
    assert_eq!(
        (r.status, r.code().as_str()),
        (status, code),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert!(
        r.header("content-type")
            .is_some_and(|t| t.starts_with("application/json")),
        "{:?}",
        r.headers
    );
}

#[test]
fn uploads_of_either_form_are_taken_up_to_the_limit_and_refused_past_it_in_json() {
    let server = Serve::start("");
    server.wait_ready();
    for mib in [3, 60] {
        let pdf = pdf_of_size(mib << 20);
        let (kind, body) = multipart(&pdf);
        let r = server.post("/v1/documents", &kind, &body);
        assert_eq!(
            r.status,
            202,
            "{mib} MiB multipart: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.json()["pages"], 8);
        let r = server.post("/v1/documents", "application/pdf", &pdf);
        assert_eq!(r.status, 202, "{mib} MiB raw");
    }
    let pdf = pdf_of_size(65 << 20);
    let (kind, body) = multipart(&pdf);
    assert_json_error(
        &server.post("/v1/documents", &kind, &body),
        413,
        "upload-too-large",
    );
    assert_json_error(
        &server.post("/v1/documents", "application/pdf", &pdf),
        413,
        "upload-too-large",
    );
    // A tool call past server.max_request_kib, and a method a route does
    // not take: JSON like every other error.
    let big = format!("{{\"text\":\"{}\"}}", "a".repeat(2 << 20));
    assert_json_error(
        &server.post("/v1/tools/text-stats", "application/json", big.as_bytes()),
        413,
        "request-too-large",
    );
    assert_json_error(
        &request(&server.addr, "DELETE", "/v1/tools", &[], b""),
        405,
        "method-not-allowed",
    );
    assert_eq!(server.get("/livez").status, 200);
}

/// Reads from `s` until it is closed; how long that took.
fn until_closed(s: &mut TcpStream, within: Duration) -> (Duration, Vec<u8>) {
    let start = Instant::now();
    s.set_read_timeout(Some(within)).unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    (start.elapsed(), got)
}

#[test]
fn slow_clients_are_cut_off_while_others_are_served() {
    let server =
        Serve::start("[server]\nheader_timeout_secs = 1\nbody_timeout_secs = 1\nmax_uploads = 1\n");
    server.wait_ready();
    // Half a request line, then nothing.
    let mut half = TcpStream::connect(&server.addr).unwrap();
    half.write_all(b"GET /liv").unwrap();
    // Headers, and a body that stops a tenth of the way in.
    let mut stalled = TcpStream::connect(&server.addr).unwrap();
    stalled
        .write_all(
            b"POST /v1/documents HTTP/1.1\r\nHost: x\r\nContent-Type: application/pdf\r\nContent-Length: 100000\r\n\r\n%PDF-1.4 ",
        )
        .unwrap();
    // While that upload holds the only permit, another is turned away.
    std::thread::sleep(Duration::from_millis(200));
    let pdf = std::fs::read(support::data("en-lppl.pdf")).unwrap();
    let busy = server.post("/v1/documents", "application/pdf", &pdf);
    assert_json_error(&busy, 503, "too-many-uploads");
    assert!(busy.header("retry-after").is_some());
    // Everyone else is served meanwhile.
    assert_eq!(server.get("/livez").status, 200);

    let (took, got) = until_closed(&mut half, Duration::from_secs(10));
    assert!(
        took < Duration::from_secs(5),
        "half a request line held for {took:?}"
    );
    assert!(
        got.is_empty() || String::from_utf8_lossy(&got).contains("408"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    let (took, got) = until_closed(&mut stalled, Duration::from_secs(10));
    assert!(
        took < Duration::from_secs(5),
        "a stalled body held for {took:?}"
    );
    let answer = String::from_utf8_lossy(&got);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body-timeout"), "{answer}");
    // The permit is back.
    let r = server.post("/v1/documents", "application/pdf", &pdf);
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
}

/// The server's resident memory, in MiB.
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib / 1024.0
}

#[test]
fn retained_results_are_capped_and_memory_comes_back_after_a_flood() {
    let server = Serve::start("[server]\nmax_results_mib = 4\n[lanes.light]\nqueue = 256\n");
    server.wait_ready();
    let faq = std::fs::read(support::data("en-debian-faq.pdf")).unwrap();
    let submit = || {
        let r = server.post("/v1/documents", "application/pdf", &faq);
        assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
        r.json()["job"].as_str().unwrap().to_string()
    };
    // Warm: a few jobs at once through, read, so every worker, pool and
    // allocator arena a flood uses exists before the idle figure.
    let warm: Vec<String> = (0..6).map(|_| submit()).collect();
    for job in &warm {
        server.wait_done(job);
        let r = server.get(&format!("/v1/jobs/{job}/chunks"));
        assert!(r.status == 200 || r.status == 410, "{}", r.status);
    }
    std::thread::sleep(Duration::from_millis(1500));
    let idle = rss_mib(server.pid());
    // A flood: 40 documents at once (2,920 pages), every one read.
    let jobs: Vec<String> = (0..40).map(|_| submit()).collect();
    let mut peak = idle;
    for job in &jobs {
        server.wait_done(job);
        peak = peak.max(rss_mib(server.pid()));
        let r = server.get(&format!("/v1/jobs/{job}/chunks"));
        assert!(r.status == 200 || r.status == 410, "{}", r.status);
    }
    // The first to finish gave their results up, and say so; the last to
    // finish kept them. (The cap is kept by a sweep every second: a flood
    // that finished within one has not been swept yet.)
    let read_states = || -> Vec<(String, String)> {
        jobs.iter()
            .map(|j| {
                let s = server.get(&format!("/v1/jobs/{j}")).json();
                (j.clone(), s["state"].as_str().unwrap().to_string())
            })
            .collect()
    };
    let swept = Instant::now() + Duration::from_secs(5);
    let mut states = read_states();
    while !states.iter().any(|(_, s)| s == "evicted") && Instant::now() < swept {
        std::thread::sleep(Duration::from_millis(100));
        states = read_states();
    }
    // Results that finished after the sweep that evicted are swept by the
    // next: read the states again once it has run.
    std::thread::sleep(Duration::from_millis(1500));
    states = read_states();
    let evicted: Vec<&String> = states
        .iter()
        .filter(|(_, s)| s == "evicted")
        .map(|(j, _)| j)
        .collect();
    assert!(
        !evicted.is_empty() && evicted.len() < jobs.len(),
        "{states:?}"
    );
    let gone = server.get(&format!("/v1/jobs/{}/chunks", evicted[0]));
    assert_json_error(&gone, 410, "results-evicted");
    let (kept, _) = states.iter().rfind(|(_, s)| s == "done").unwrap();
    assert_eq!(server.get(&format!("/v1/jobs/{kept}/chunks")).status, 200);
    // Within a few sweeps, memory is back near its idle figure.
    std::thread::sleep(Duration::from_secs(3));
    let after = rss_mib(server.pid());
    let metrics = String::from_utf8(server.get("/metrics").body).unwrap();
    let held: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("warmlane_job_results_bytes "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    eprintln!(
        "flood of 40 x 73 pages: RSS idle {idle:.1} MiB, peak {peak:.1} MiB, after {after:.1} MiB; results held {:.1} MiB",
        held / 1048576.0
    );
    assert!(held <= 4.0 * 1048576.0, "results hold {held} bytes");
    // Most of what the flood took is given back (the allocator keeps some
    // of what it once held, more on some machines than others).
    let allowed = idle + f64::max(24.0, (peak - idle) / 2.0);
    assert!(
        after <= allowed,
        "RSS idle {idle:.1} MiB, peak {peak:.1} MiB, after the flood {after:.1} MiB (allowed {allowed:.1})"
    );
}
