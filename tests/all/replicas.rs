//! Many replicas, one set of jobs: real `warmlane serve` processes of the
//! `api` and `worker` roles on one harness-started `redis-server`, killed,
//! stopped, drained and restarted while they work, and the jobs' records
//! compared with `warmlane run` on the same file.
//!
//! The tests here run one at a time (they start several processes each, on
//! two cores), and keep the parser to a page budget in Redis so a job
//! lasts long enough to be interfered with.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use lopdf::{Document, LoadOptions, Object, dictionary};
use serde_json::Value;

use crate::redis_server::RedisServer;
use crate::serve::{Serve, request, try_request};
use crate::support;

/// One cluster test at a time.
pub(crate) fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// `en-debian-faq.pdf` (73 pages) `times` over, as one document.
pub(crate) fn big(times: usize) -> Vec<u8> {
    let load = || {
        Document::load_with_options(support::data("en-debian-faq.pdf"), LoadOptions::default())
            .expect("load en-debian-faq.pdf")
    };
    let mut doc = load();
    let pages_of = |d: &Document| {
        let catalog = d.catalog().unwrap();
        catalog.get(b"Pages").unwrap().as_reference().unwrap()
    };
    let root_pages = pages_of(&doc);
    let mut kids = vec![Object::Reference(root_pages)];
    for _ in 1..times {
        let mut copy = load();
        copy.renumber_objects_with(doc.max_id + 1);
        let pages = pages_of(&copy);
        doc.max_id = copy.max_id;
        doc.objects.extend(copy.objects);
        kids.push(Object::Reference(pages));
    }
    let top = doc.add_object(dictionary! {
        "Type" => "Pages",
        "Kids" => kids.clone(),
        "Count" => (73 * times) as i64,
    });
    for kid in kids {
        if let Object::Reference(id) = kid
            && let Ok(Object::Dictionary(d)) = doc.get_object_mut(id)
        {
            d.set("Parent", Object::Reference(top));
        }
    }
    let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => top });
    doc.trailer.set("Root", Object::Reference(catalog));
    let mut out = Vec::new();
    doc.save_to(&mut out).unwrap();
    out
}

/// The configuration every replica of a test shares.
fn config(redis: &RedisServer, extra: &str) -> String {
    // A short lease, so that takeovers happen within the tests' patience,
    // unless the test sets its own.
    let jobs = if extra.contains("[jobs]") {
        ""
    } else {
        "[jobs]\nlease_ms = 1000\n"
    };
    format!(
        "[redis]\nurl = \"{}\"\n{jobs}[lanes]\nheavy_from_pages = 100\n[server]\nshutdown_grace_secs = 10\n{extra}",
        redis.url()
    )
}

/// A page budget for the parser, shared through Redis: a job of `pages`
/// pages then takes about `pages / rate` seconds whatever the replicas.
pub(crate) fn throttle(rate: u32) -> String {
    format!(
        "[budgets.pages]\ncapacity = {rate}\nburst = 16\nperiod_secs = 1\nlight_share = 0.2\n[components.pdf-pages]\nbudget = \"pages\"\n"
    )
}

/// A replica of `role` with one parse worker (and a light one, for a worker).
pub(crate) fn start(redis: &RedisServer, role: &str, extra: &str) -> Serve {
    start_with(redis, role, 1, extra)
}

fn start_with(redis: &RedisServer, role: &str, workers: usize, extra: &str) -> Serve {
    let mut text =
        config(redis, extra).replace("[server]\n", &format!("[server]\nrole = \"{role}\"\n"));
    if text.contains("[pipeline]\n") {
        text = text.replace(
            "[pipeline]\n",
            &format!("[pipeline]\nworkers = {workers}\n"),
        );
    } else {
        text.push_str(&format!("[pipeline]\nworkers = {workers}\n"));
    }
    // At `info`, a replica logs its takeovers and the batches it loses.
    let s = Serve::start_with_env(&text, &[], &[("WARMLANE_LOG", "info")]);
    s.wait_ready();
    s
}

/// `warmlane run` on `pdf` with `extra` configuration: its records, without
/// the `doc` field.
pub(crate) fn expected(pdf: &[u8], extra: &str) -> Vec<Value> {
    let dir = support::scratch("replicas-expected");
    let file = dir.join("doc.pdf");
    std::fs::write(&file, pdf).unwrap();
    let cfg = dir.join("warmlane.toml");
    std::fs::write(&cfg, format!("[lanes]\nheavy_from_pages = 100\n{extra}")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_warmlane"))
        .args(["run", "--quiet", "--config"])
        .arg(&cfg)
        .arg(&file)
        .output()
        .expect("run warmlane run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("doc");
            v
        })
        .collect()
}

/// A job's records as a replica streams them, without `size`.
fn records(server: &Serve, job: &str) -> Vec<Value> {
    let r = server.get(&format!("/v1/jobs/{job}/chunks"));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    String::from_utf8(r.body)
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("size");
            v
        })
        .collect()
}

fn submit(server: &Serve, pdf: &[u8]) -> Value {
    let r = server.post("/v1/documents", "application/pdf", pdf);
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Stops worker `w` (SIGSTOP) at a moment it holds a lane entry, as Redis
/// sees it, and leaves it stopped. A metric read before a signal would not
/// do: the batch may be reported in between.
pub(crate) fn stop_holding(redis: &RedisServer, w: &Serve, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        w.signal("STOP");
        // A report sent just before the stop reaches Redis meanwhile.
        std::thread::sleep(Duration::from_millis(100));
        if pending_of(redis, w.pid()) > 0 {
            return;
        }
        w.signal("CONT");
        assert!(Instant::now() < deadline, "the worker never held a batch");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The lane entries the consumers of process `pid` hold, in Redis.
fn pending_of(redis: &RedisServer, pid: u32) -> usize {
    // A consumer is named `host-pid-random`.
    let tag = format!("-{pid}-");
    ["light", "heavy"]
        .into_iter()
        .map(|lane| {
            let stream = format!("warmlane:{{{lane}}}:stream");
            match redis.command(&["XPENDING", &stream, "workers", "-", "+", "1000"]) {
                redis::Value::Array(rows) => rows
                    .iter()
                    .filter(|row| match row {
                        redis::Value::Array(fields) => matches!(
                            fields.get(1),
                            Some(redis::Value::BulkString(c)) if String::from_utf8_lossy(c).contains(&tag)
                        ),
                        _ => false,
                    })
                    .count(),
                _ => 0,
            }
        })
        .sum()
}

pub(crate) fn done(server: &Serve, job: &str, limit: Duration) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let state = server.get(&format!("/v1/jobs/{job}")).json();
        if state["state"] != "running" {
            return state;
        }
        assert!(
            Instant::now() < deadline,
            "job not done in {limit:?}: {state}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_killed_worker_loses_no_page_and_any_replica_serves_the_job() {
    let _one = one_at_a_time();
    let redis = RedisServer::start();
    let pdf = big(4);
    let slow = throttle(150);
    let api = start(&redis, "api", "");
    let reader = start(&redis, "api", "");
    let mut w1 = start(&redis, "worker", &slow);
    let w2 = start(&redis, "worker", &slow);
    let job = submit(&api, &pdf);
    assert_eq!(
        (job["lane"].as_str(), job["pages"].as_u64()),
        (Some("heavy"), Some(292))
    );
    let id = job["job"].as_str().unwrap().to_string();
    // Read it live from another replica while it runs.
    let follower = {
        let addr = reader.addr.clone();
        let id = id.clone();
        std::thread::spawn(move || {
            request(&addr, "GET", &format!("/v1/jobs/{id}/chunks"), &[], b"")
        })
    };
    // Half-way, kill the first worker while it holds batches.
    wait_for("half the pages", Duration::from_secs(60), || {
        reader.get(&format!("/v1/jobs/{id}")).json()["pages_done"].as_u64() >= Some(100)
    });
    stop_holding(&redis, &w1, Duration::from_secs(30));
    w1.signal("KILL");
    w1.wait_exit(Duration::from_secs(10)).expect("killed");
    let state = done(&reader, &id, Duration::from_secs(120));
    assert_eq!(state["state"], "done", "{state}");
    assert_eq!(state["pages_done"], 292);
    assert_eq!(state["errors"], serde_json::json!([]));
    // Every page reported once: the records are warmlane run's, byte for
    // byte (the API adds only `size`).
    let want = expected(&pdf, &slow);
    let live: Vec<Value> = String::from_utf8(follower.join().unwrap().body)
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("size");
            v
        })
        .collect();
    assert_eq!(live.len(), want.len());
    assert!(live == want, "the live stream differs from warmlane run");
    assert!(records(&api, &id) == want);
    // The dead worker's batches were taken over; nothing took the other's
    // (its heartbeat renews only the batches it has not yet reported).
    assert!(w2.metric("warmlane_worker_reclaims_total", "") >= 1.0);
    assert!(
        !w2.log().contains("works on was taken over"),
        "{}",
        w2.log()
    );
    eprintln!(
        "292 pages, worker killed half-way: {} batches taken over by the other",
        w2.metric("warmlane_worker_reclaims_total", "")
    );
}

#[test]
fn a_draining_worker_hands_its_waiting_batches_back_at_once() {
    let _one = one_at_a_time();
    let redis = RedisServer::start();
    let pdf = big(3);
    // Slow enough that a worker spends nearly all its time waiting on the
    // budget, holding a batch it has not started; and a lease far longer
    // than the handover may take, so that the handover cannot be mistaken
    // for a takeover after the lease ran out.
    let slow = format!("{}[jobs]\nlease_ms = 20000\n", throttle(50));
    let api = start(&redis, "api", "");
    let mut w1 = start(&redis, "worker", &slow);
    let job = submit(&api, &pdf);
    let id = job["job"].as_str().unwrap().to_string();
    wait_for(
        "the first worker to hold a batch",
        Duration::from_secs(30),
        || w1.metric("warmlane_worker_batches_taken_total", "") >= 2.0,
    );
    // The second worker arrives while the first holds batches, waiting on
    // the page budget; it has a thread free to take what is handed back.
    let w2 = start_with(&redis, "worker", 2, &slow);
    let before = w2.metric("warmlane_worker_reclaims_total", "");
    let stop = Instant::now();
    w1.signal("TERM");
    // Taken over after its lease, it would wait 20 s; handed back, it waits
    // only for one of the second worker's threads, which may be waiting on
    // the budget with a batch of its own (over 2 s on a loaded machine).
    wait_for(
        "the batch handed back to be taken",
        Duration::from_secs(10),
        || w2.metric("warmlane_worker_reclaims_total", "") > before,
    );
    let taken = stop.elapsed();
    // Ready no more, while it finishes what it started.
    if let Some(r) = w1.try_get("/readyz") {
        assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    }
    let status = w1
        .wait_exit(Duration::from_secs(15))
        .expect("exits within the grace");
    assert!(status.success(), "{status:?}");
    eprintln!(
        "SIGTERM: its waiting batch was taken by the other worker {taken:?} later (the lease is 20 s); it exited after {:?}",
        stop.elapsed()
    );
    assert!(
        taken < Duration::from_secs(10),
        "{taken:?}: not handed back, taken over after half the lease or more"
    );
    let state = done(&api, &id, Duration::from_secs(120));
    assert_eq!(
        (state["state"].as_str(), state["pages_done"].as_u64()),
        (Some("done"), Some(219))
    );
    assert!(records(&api, &id) == expected(&pdf, &slow));
}

#[test]
fn a_batch_that_keeps_killing_its_worker_becomes_a_dead_letter() {
    let _one = one_at_a_time();
    let redis = RedisServer::start();
    // Page 2 runs for as long as it is let: its forms fan out to 10^12.
    let spin = "[pipeline]\nbatch_pages = 2\ncpu_ms_per_document = 600000\ncpu_ms_per_page = 600000\n[instances]\ncpu_ms = 600000\ndeadline_ms = 600000\n[pdf]\nmax_page_operators = 1000000000000\n";
    let pdf = crate::hostile::spinning_pdf();
    let api = start(&redis, "api", spin);
    let job = submit(&api, &pdf);
    let id = job["job"].as_str().unwrap().to_string();
    // Kill whoever holds it, three times over.
    for round in 1..=3 {
        let mut w = start(&redis, "worker", spin);
        wait_for(
            "a worker on the spinning batch",
            Duration::from_secs(30),
            || {
                w.metric("warmlane_worker_busy", "") > 0.0
                    && w.metric("warmlane_worker_batches_taken_total", "") >= 1.0
            },
        );
        // Give it time to be on the spinning page, not the good batch.
        std::thread::sleep(Duration::from_millis(1500));
        if w.metric("warmlane_worker_busy", "") == 0.0 {
            continue;
        }
        w.signal("KILL");
        w.wait_exit(Duration::from_secs(10)).expect("killed");
        eprintln!("killed the worker holding the spinning batch ({round})");
    }
    // The next one finds it delivered too often, and gives it up.
    let w = start(&redis, "worker", spin);
    let state = done(&api, &id, Duration::from_secs(60));
    assert_eq!(state["state"], "done", "{state}");
    let errors = state["errors"].as_array().unwrap();
    assert_eq!(
        errors
            .iter()
            .map(|e| e["page"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        vec![1, 2],
        "{state}"
    );
    assert!(
        errors[0]["error"]
            .as_str()
            .unwrap()
            .contains("lost its worker"),
        "{state}"
    );
    // The rest of the document is there.
    let recs = records(&api, &id);
    assert!(recs.iter().any(|r| {
        r["text"]
            .as_str()
            .is_some_and(|t| t.contains("Hello page 3"))
    }));
    assert_eq!(w.metric("warmlane_worker_dead_letters_total", ""), 1.0);
    assert_eq!(w.metric("warmlane_lane_dead_letters", "light"), 1.0);
}

#[test]
fn jobs_survive_a_redis_restart_with_persistence_and_a_stalled_worker_cannot_report_twice() {
    let _one = one_at_a_time();
    let mut redis = RedisServer::start_persistent();
    let pdf = big(3);
    let slow = throttle(120);
    let api = start(&redis, "api", "");
    let w1 = start(&redis, "worker", &slow);
    let w2 = start(&redis, "worker", &slow);
    let id = submit(&api, &pdf)["job"].as_str().unwrap().to_string();
    wait_for("some pages", Duration::from_secs(60), || {
        api.get(&format!("/v1/jobs/{id}")).json()["pages_done"].as_u64() >= Some(40)
    });
    // Redis goes away and comes back with what its append-only file holds.
    redis.restart();
    // A worker stalls past its lease while holding a batch, then wakes up.
    stop_holding(&redis, &w1, Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(2400));
    w1.signal("CONT");
    let state = done(&api, &id, Duration::from_secs(120));
    assert_eq!(
        (state["state"].as_str(), state["pages_done"].as_u64()),
        (Some("done"), Some(219)),
        "{state}"
    );
    let (got, want) = (records(&api, &id), expected(&pdf, &slow));
    if let Some(i) = (0..got.len().max(want.len())).find(|&i| got.get(i) != want.get(i)) {
        panic!(
            "records differ from warmlane run ({} against {}); the first at {i}:\n{:?}\n{:?}",
            got.len(),
            want.len(),
            got.get(i),
            want.get(i)
        );
    }
    let fenced = w1.metric("warmlane_worker_fenced_total", "");
    let reclaimed = w2.metric("warmlane_worker_reclaims_total", "");
    eprintln!(
        "Redis restarted mid-job; stalled worker: {fenced} results fenced off, {reclaimed} batches taken over"
    );
    assert!(reclaimed >= 1.0);
}

#[test]
fn admission_is_cluster_wide_cancel_reaches_everywhere_and_a_lost_job_says_so() {
    let _one = one_at_a_time();
    let mut redis = RedisServer::start();
    let lanes = "[lanes.heavy]\nrunning = 1\nqueue = 1\n";
    let slow = throttle(100);
    let a = start(&redis, "api", lanes);
    let b = start(&redis, "api", lanes);
    let pdf = big(2);
    let first = submit(&a, &pdf)["job"].as_str().unwrap().to_string();
    let second = submit(&b, &pdf)["job"].as_str().unwrap().to_string();
    // Full, whichever replica is asked.
    for api in [&a, &b] {
        let r = api.post("/v1/documents", "application/pdf", &pdf);
        assert_eq!(
            (r.status, r.code().as_str()),
            (429, "lane-full"),
            "{}",
            String::from_utf8_lossy(&r.body)
        );
        assert!(r.header("retry-after").is_some());
    }
    // Light work is not held back by a full heavy lane.
    let light = std::fs::read(support::data("en-lppl.pdf")).unwrap();
    let light_job = submit(&b, &light)["job"].as_str().unwrap().to_string();
    assert_eq!(a.get(&format!("/v1/jobs/{second}")).json()["queued"], true);
    let w = start(&redis, "worker", &slow);
    assert_eq!(
        done(&a, &light_job, Duration::from_secs(30))["state"],
        "done"
    );
    // Cancelled from the command line, the queued job never runs; the first
    // is cancelled on the other replica while it runs.
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_warmlane"))
        .args(["jobs", "cancel", &second, "--redis", &redis.url()])
        .output()
        .unwrap();
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    assert_eq!(
        a.get(&format!("/v1/jobs/{second}")).json()["state"],
        "cancelled"
    );
    wait_for("some pages", Duration::from_secs(60), || {
        a.get(&format!("/v1/jobs/{first}")).json()["pages_done"].as_u64() >= Some(16)
    });
    let r = request(&b.addr, "DELETE", &format!("/v1/jobs/{first}"), &[], b"");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let state = done(&a, &first, Duration::from_secs(10));
    assert_eq!(state["state"], "cancelled");
    let stopped_at = state["pages_done"].as_u64().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        a.get(&format!("/v1/jobs/{first}")).json()["pages_done"].as_u64(),
        Some(stopped_at)
    );
    wait_for(
        "the lane's stream to empty",
        Duration::from_secs(10),
        || w.metric("warmlane_lane_stream_length", "heavy") == 0.0,
    );
    // The command line reads the jobs from Redis too.
    let list = std::process::Command::new(env!("CARGO_BIN_EXE_warmlane"))
        .args(["jobs", "list", "--redis", &redis.url()])
        .output()
        .unwrap();
    let listed = String::from_utf8(list.stdout).unwrap();
    for id in [&first, &second, &light_job] {
        assert!(listed.contains(id.as_str()), "{listed}");
    }
    let chunks = std::process::Command::new(env!("CARGO_BIN_EXE_warmlane"))
        .args(["jobs", "chunks", &light_job, "--redis", &redis.url()])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(chunks.stdout).unwrap().lines().count(),
        records(&a, &light_job).len()
    );
    // Redis without persistence forgets everything when it restarts: a job
    // being followed ends with an error that says so; uploads meanwhile
    // get 503.
    let third = submit(&a, &pdf)["job"].as_str().unwrap().to_string();
    wait_for("some of it", Duration::from_secs(30), || {
        a.get(&format!("/v1/jobs/{third}")).json()["chunks"].as_u64() >= Some(1)
    });
    let follower = {
        let addr = b.addr.clone();
        let third = third.clone();
        std::thread::spawn(move || {
            request(&addr, "GET", &format!("/v1/jobs/{third}/chunks"), &[], b"")
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    redis.stop();
    let r = a.post("/v1/documents", "application/pdf", &light);
    assert_eq!(
        (r.status, r.code().as_str()),
        (503, "jobs-unavailable"),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(a.get("/readyz").status, 503);
    redis.restart();
    let r = a.get(&format!("/v1/jobs/{third}"));
    assert_eq!((r.status, r.code().as_str()), (404, "unknown-job"));
    let streamed = String::from_utf8(follower.join().unwrap().body).unwrap();
    let last = streamed.lines().last().unwrap_or_default();
    assert!(last.contains("the job was lost"), "{last}");
    wait_for("ready again", Duration::from_secs(10), || {
        a.get("/readyz").status == 200
    });
    drop(w);
}

#[test]
fn an_api_replica_killed_while_it_stores_a_document_leaves_no_job_behind() {
    let _one = one_at_a_time();
    let redis = RedisServer::start();
    let lanes = "[lanes.heavy]\nrunning = 1\nqueue = 0\n";
    let b = start(&redis, "api", lanes);
    let _w = start(&redis, "worker", &format!("{lanes}{}", throttle(50)));
    let pdf = big(20);
    let listed = || {
        let jobs = b.get("/v1/jobs").json();
        jobs["jobs"].as_array().cloned().unwrap_or_default()
    };
    // Kill the accepting replica once the job is admitted (listed) and
    // before it answered: while it is still storing the batches.
    let mut caught = None;
    for _ in 0..3 {
        let a = start(&redis, "api", lanes);
        let upload = {
            let (addr, pdf) = (a.addr.clone(), pdf.clone());
            std::thread::spawn(move || {
                let headers = [("content-type", "application/pdf")];
                try_request(&addr, "POST", "/v1/documents", &headers, &pdf)
            })
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        let job = loop {
            if let Some(j) = listed().iter().find(|j| j["state"] == "running") {
                break j["job"].as_str().map(str::to_string);
            }
            if upload.is_finished() || Instant::now() > deadline {
                break None;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        a.signal("KILL");
        match (job, upload.join().unwrap()) {
            (Some(job), Err(_)) => {
                caught = Some(job);
                break;
            }
            // Stored whole before the kill: a job like any other.
            (job, answered) => {
                if let Some(job) = job {
                    request(&b.addr, "DELETE", &format!("/v1/jobs/{job}"), &[], b"");
                }
                eprintln!(
                    "missed the storing window: {:?}",
                    answered.map(|r| r.status)
                );
            }
        }
    }
    let job = caught.expect("an API replica killed while it stored a document");
    // The job holds the heavy lane's only place until a worker forgets it.
    let r = b.post("/v1/documents", "application/pdf", &big(2));
    assert_eq!(
        (r.status, r.code().as_str()),
        (429, "lane-full"),
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    // A lease (1 s) without progress, then the next maintenance round.
    wait_for(
        "the half-stored job to be forgotten",
        Duration::from_secs(15),
        || b.get(&format!("/v1/jobs/{job}")).status == 404,
    );
    assert!(listed().iter().all(|j| j["job"] != job.as_str()));
    let next = submit(&b, &big(2))["job"].as_str().unwrap().to_string();
    assert_eq!(done(&b, &next, Duration::from_secs(60))["state"], "done");
}

#[test]
fn a_light_document_is_not_held_back_by_a_heavy_one_across_replicas() {
    let _one = one_at_a_time();
    let redis = RedisServer::start();
    let api = start(&redis, "api", "");
    let _w = start(&redis, "worker", "");
    let light = std::fs::read(support::data("en-lppl.pdf")).unwrap();
    let run_light = || {
        let started = Instant::now();
        let id = submit(&api, &light)["job"].as_str().unwrap().to_string();
        assert_eq!(done(&api, &id, Duration::from_secs(30))["state"], "done");
        started.elapsed()
    };
    let idle = (0..3).map(|_| run_light()).min().unwrap();
    let heavy = submit(&api, &big(6))["job"].as_str().unwrap().to_string();
    wait_for("the heavy job to run", Duration::from_secs(30), || {
        api.get(&format!("/v1/jobs/{heavy}")).json()["pages_done"].as_u64() >= Some(16)
    });
    let beside = run_light();
    // It did not wait for the heavy job: that one is still running.
    let state = api.get(&format!("/v1/jobs/{heavy}")).json();
    assert_eq!(state["state"], "running", "{state}");
    eprintln!(
        "8-page light job through Redis: idle {idle:?}, beside a 438-page heavy job {beside:?} ({:.2}x)",
        beside.as_secs_f64() / idle.as_secs_f64()
    );
}
