//! A rolling update and a crash under load, as Kubernetes does them, with
//! real processes: three `warmlane serve` replicas on one harness Redis
//! behind a round-robin proxy (`proxy.rs`), while clients keep uploading
//! documents, reading their jobs and calling a stateful tool in sessions.
//! Each replica in turn is taken out of rotation, given the `preStop`
//! pause, sent SIGTERM, waited for and replaced; then one is SIGKILLed.
//! Every accepted job must complete with warmlane run's records, every
//! session keep its state, and every failed request be one the client was
//! told to retry.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::proxy::Proxy;
use crate::redis_server::RedisServer;
use crate::replicas::{big, expected, one_at_a_time, stop_holding, throttle};
use crate::serve::{Reply, Serve, try_request};

/// What the clients saw.
#[derive(Default, Debug)]
struct Tally {
    requests: u64,
    /// 503 with `Retry-After` (from a replica or the proxy).
    unavailable: u64,
    /// 429 with `Retry-After`.
    busy: u64,
    /// Reads whose answer a killed replica cut short, retried.
    cut_reads: u64,
    /// Anything the client was not told to retry.
    failures: Vec<String>,
}

/// A client of the proxy that does what it is told: waits and retries on
/// 503 and 429 with `Retry-After`, and retries a read that was cut short.
struct Client {
    proxy: String,
    tally: Mutex<Tally>,
}

impl Client {
    fn fail(&self, what: String) {
        self.tally.lock().unwrap().failures.push(what);
    }

    fn call(&self, method: &str, path: &str, json: bool, body: &[u8]) -> Reply {
        let headers: &[(&str, &str)] = if json {
            &[("Content-Type", "application/json")]
        } else {
            &[("Content-Type", "application/pdf")]
        };
        loop {
            self.tally.lock().unwrap().requests += 1;
            match try_request(&self.proxy, method, path, headers, body) {
                Ok(r) if r.status == 503 || r.status == 429 => {
                    let Some(wait) = r.header("retry-after").and_then(|s| s.parse::<u64>().ok())
                    else {
                        self.fail(format!("{method} {path}: {} without Retry-After", r.status));
                        return r;
                    };
                    {
                        let mut t = self.tally.lock().unwrap();
                        if r.status == 503 {
                            t.unavailable += 1;
                        } else {
                            t.busy += 1;
                        }
                    }
                    std::thread::sleep(Duration::from_secs(wait.min(2)));
                }
                Ok(r) => return r,
                Err(e) if method == "GET" => {
                    self.tally.lock().unwrap().cut_reads += 1;
                    eprintln!("retrying a read: {e}");
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => {
                    self.fail(format!("{method} {path}: {e}"));
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    }
}

/// A job the uploader had accepted: its id and which document it is.
struct Accepted {
    id: String,
    doc: usize,
    pages: u64,
}

/// Uploads one document at a time, up to 4 unfinished, alternating a light
/// and a heavy one, and reads each finished job's records; returns the
/// jobs it saw completed.
fn upload_and_read(
    client: &Client,
    docs: &[(Vec<u8>, Vec<Value>)],
    stop: &AtomicBool,
) -> Vec<Accepted> {
    let mut open: Vec<Accepted> = Vec::new();
    let mut completed = Vec::new();
    let mut n = 0usize;
    let deadline = || Instant::now() + Duration::from_secs(180);
    let mut finish_by = None;
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        if stopping && open.is_empty() {
            return completed;
        }
        if stopping && finish_by.is_none() {
            finish_by = Some(deadline());
        }
        if let Some(by) = finish_by
            && Instant::now() > by
        {
            client.fail(format!("{} jobs unfinished after 180 s", open.len()));
            return completed;
        }
        if !stopping && open.len() < 4 {
            let doc = n % docs.len();
            n += 1;
            let r = client.call("POST", "/v1/documents", false, &docs[doc].0);
            if r.status == 202 {
                let v = r.json();
                open.push(Accepted {
                    id: v["job"].as_str().unwrap().to_string(),
                    doc,
                    pages: v["pages"].as_u64().unwrap(),
                });
            } else {
                client.fail(format!(
                    "upload: {} {}",
                    r.status,
                    String::from_utf8_lossy(&r.body)
                ));
            }
        }
        let mut still = Vec::new();
        for job in open.drain(..) {
            let r = client.call("GET", &format!("/v1/jobs/{}", job.id), true, b"");
            let state = if r.status == 200 {
                r.json()
            } else {
                json!({"state": r.status})
            };
            match state["state"].as_str() {
                Some("running") => still.push(job),
                Some("done") if state["pages_done"].as_u64() == Some(job.pages) => {
                    let r = client.call("GET", &format!("/v1/jobs/{}/chunks", job.id), true, b"");
                    if records(&r) != docs[job.doc].1 {
                        client.fail(format!(
                            "job {}: records differ from warmlane run's",
                            job.id
                        ));
                    }
                    completed.push(job);
                }
                _ => client.fail(format!("job {}: {state}", job.id)),
            }
        }
        open = still;
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A job's records as the API streams them, without `size`.
fn records(r: &Reply) -> Vec<Value> {
    String::from_utf8_lossy(&r.body)
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap_or(Value::Null);
            if let Some(o) = v.as_object_mut() {
                o.remove("size");
            }
            v
        })
        .collect()
}

/// Keeps adding notes in a session of its own, checking now and then that
/// every note acknowledged is still there, in order; returns the calls
/// acknowledged.
fn keep_notes(client: &Client, who: usize, stop: &AtomicBool) -> usize {
    let created = client.call("POST", "/v1/sessions", true, b"");
    if created.status != 201 {
        client.fail(format!("session: {}", created.status));
        return 0;
    }
    let session = created.json()["session"].as_str().unwrap().to_string();
    let path = format!("/v1/tools/notes?session={session}");
    let mut acked: Vec<String> = Vec::new();
    let check = |acked: &[String]| {
        let r = client.call("POST", &path, true, br#"{"action":"list"}"#);
        let list: Vec<String> = if r.status == 200 {
            serde_json::from_value(r.json()["notes"].clone()).unwrap_or_default()
        } else {
            Vec::new()
        };
        // A note whose answer was lost may be there twice; none may be lost.
        let mut at = list.iter();
        if !acked.iter().all(|a| at.any(|l| l == a)) {
            client.fail(format!(
                "session {session} lost notes: has {list:?}, acknowledged {acked:?}"
            ));
        }
    };
    let mut k = 0;
    while !stop.load(Ordering::Relaxed) {
        let text = format!("s{who}-{k}");
        let input = json!({"action": "add", "text": text}).to_string();
        let r = client.call("POST", &path, true, input.as_bytes());
        if r.status == 200 {
            acked.push(text);
        } else {
            client.fail(format!(
                "notes add: {} {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            ));
        }
        k += 1;
        if k % 4 == 0 {
            check(&acked);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    check(&acked);
    acked.len()
}

/// The page budget the replicas share: enough to keep jobs in flight at
/// every step, not so much that the test takes both cores from the others.
const PAGES_PER_SEC: u32 = 250;

fn replica(redis: &RedisServer) -> Serve {
    let s = Serve::start(&format!(
        "[redis]\nurl = \"{}\"\n[jobs]\nlease_ms = 1000\n[lanes]\nheavy_from_pages = 100\n[server]\nshutdown_grace_secs = 10\n[pipeline]\nworkers = 1\n{}",
        redis.url(),
        throttle(PAGES_PER_SEC)
    ));
    s.wait_ready();
    s
}

fn wait_serving(proxy: &Proxy, s: &Serve) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !proxy.serving(&s.addr) {
        assert!(
            Instant::now() < deadline,
            "{} never came into rotation",
            s.addr
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_rolling_update_and_a_crash_under_load_drop_nothing() {
    let _one = one_at_a_time();
    let redis = RedisServer::start();
    let light = std::fs::read(crate::support::data("en-debian-faq.pdf")).unwrap();
    let heavy = big(2);
    let config = throttle(PAGES_PER_SEC);
    let docs = Arc::new(vec![
        (light.clone(), expected(&light, &config)),
        (heavy.clone(), expected(&heavy, &config)),
    ]);
    let proxy = Proxy::start();
    let mut replicas: Vec<Serve> = (0..3).map(|_| replica(&redis)).collect();
    for r in &replicas {
        proxy.add(&r.addr);
        wait_serving(&proxy, r);
    }
    let client = Arc::new(Client {
        proxy: proxy.addr.clone(),
        tally: Mutex::default(),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let uploader = {
        let (client, docs, stop) = (client.clone(), docs.clone(), stop.clone());
        std::thread::spawn(move || upload_and_read(&client, &docs, &stop))
    };
    let sessions: Vec<_> = (0..2)
        .map(|who| {
            let (client, stop) = (client.clone(), stop.clone());
            std::thread::spawn(move || keep_notes(&client, who, &stop))
        })
        .collect();
    std::thread::sleep(Duration::from_secs(3));

    // The rolling update: one replica at a time, as a Deployment does.
    for (i, slot) in replicas.iter_mut().enumerate() {
        proxy.remove(&slot.addr);
        std::thread::sleep(Duration::from_secs(1)); // the preStop pause
        slot.signal("TERM");
        let status = slot
            .wait_exit(Duration::from_secs(30))
            .expect("a replica stops within twice its grace");
        assert!(status.success(), "replica {i} stopped with {status}");
        *slot = replica(&redis);
        proxy.add(&slot.addr);
        wait_serving(&proxy, slot);
        std::thread::sleep(Duration::from_secs(2));
    }
    let told_during_update = {
        let t = client.tally.lock().unwrap();
        t.unavailable + t.busy
    };
    // A crash: killed while it serves and parses, found out by its failing
    // readiness; its batches are taken over once their lease runs out.
    stop_holding(&redis, &replicas[1], Duration::from_secs(30));
    replicas[1].signal("KILL");
    replicas[1]
        .wait_exit(Duration::from_secs(10))
        .expect("killed");
    replicas[1] = replica(&redis);
    proxy.add(&replicas[1].addr);
    wait_serving(&proxy, &replicas[1]);
    // Load goes on until the batches it held are taken over (a lease on),
    // and a few seconds besides.
    let reclaimed = || -> f64 {
        replicas
            .iter()
            .map(|r| r.metric("warmlane_worker_reclaims_total", ""))
            .sum()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while reclaimed() < 1.0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(3));

    stop.store(true, Ordering::Relaxed);
    let reclaimed = reclaimed();
    let completed = uploader.join().unwrap();
    let calls: Vec<usize> = sessions.into_iter().map(|s| s.join().unwrap()).collect();
    let tally = client.tally.lock().unwrap();
    let pages: u64 = completed.iter().map(|j| j.pages).sum();
    eprintln!(
        "rolling update of 3 replicas and one SIGKILL under load: {} jobs ({pages} pages) accepted and completed with warmlane run's records; \
         {reclaimed} batches of the killed replica taken over; {} sessions kept {:?} acknowledged notes; {} requests: {} answered 503 (of them {} by the proxy), {} answered 429 ({told_during_update} of these during the rolling update), {} reads cut and retried, {} failures",
        completed.len(),
        calls.len(),
        calls,
        tally.requests,
        tally.unavailable,
        proxy.refused.lock().unwrap(),
        tally.busy,
        tally.cut_reads,
        tally.failures.len()
    );
    assert!(tally.failures.is_empty(), "{:#?}", tally.failures);
    assert!(
        completed.len() >= 6,
        "too few jobs went through: {}",
        completed.len()
    );
    assert!(
        completed.iter().any(|j| j.doc == 1),
        "no heavy job went through"
    );
    assert!(calls.iter().all(|&c| c >= 20), "{calls:?}");
    assert!(
        reclaimed >= 1.0,
        "the killed replica's batch was not taken over"
    );
}
