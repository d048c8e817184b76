//! Documents the server has accepted: their progress, and their results as
//! NDJSON lines that any number of readers can follow while the job runs.
//!
//! Memory is bounded twice: the uploads of accepted jobs not yet finished
//! may hold at most `server.max_pending_mib` (more are refused until some
//! finish), and the results of finished jobs at most
//! `server.max_results_mib` — past it the oldest finished jobs lose their
//! results first, and say so. A sweep every second forgets jobs older than
//! `server.job_retention_secs` and applies the cap, so memory comes back
//! after a flood without waiting for the next upload.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::watch;

use crate::lanes::Lane;
use crate::pipeline::{Event, Job};

/// What one result line costs beside its bytes (its `Arc` and its slot).
const LINE_OVERHEAD: u64 = 40;

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// Accepted; parsing as its lane allows.
    Running,
    /// Every page has been reported.
    Done,
    /// Done, and its results were dropped to keep memory within
    /// `server.max_results_mib`.
    Evicted,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Done => "done",
            Status::Evicted => "evicted",
        }
    }
}

struct Progress {
    status: Status,
    done: u32,
    chunks: u32,
    errors: Vec<(u32, String)>,
    /// Chunk and page-error records, one JSON line each, in page order.
    lines: Vec<Arc<str>>,
    /// What `lines` and `errors` hold, in bytes.
    held: u64,
    finished: Option<Instant>,
}

/// What every job's results and pending uploads hold, in bytes.
#[derive(Default)]
struct Ledger {
    results: AtomicU64,
    pending: AtomicU64,
}

/// One accepted document.
pub(crate) struct JobRecord {
    pub(crate) id: String,
    pub(crate) lane: Lane,
    pub(crate) pages: u32,
    /// The size of its upload, held until it finishes.
    upload: u64,
    progress: Mutex<Progress>,
    /// Bumped whenever progress changes.
    changed: watch::Sender<u64>,
    ledger: Arc<Ledger>,
}

impl JobRecord {
    fn lock(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bump(&self) {
        self.changed.send_modify(|v| *v += 1);
    }

    /// Runs `job` to the end on this (blocking) thread, recording its events.
    pub(crate) fn run(&self, job: Job) {
        let summary = job.run(&mut |event| {
            let mut p = self.lock();
            let line = match event {
                Event::Chunk(c) => {
                    p.chunks += 1;
                    json!({
                        "chunk": c.index, "first_page": c.first_page, "last_page": c.last_page,
                        "start": c.start, "end": c.end, "size": c.size, "text": c.text,
                    })
                }
                Event::PageError { page, error } => {
                    let line = json!({ "page": page, "error": error });
                    let cost = error.len() as u64 + LINE_OVERHEAD;
                    p.held += cost;
                    self.ledger.results.fetch_add(cost, Ordering::Relaxed);
                    p.errors.push((page, error));
                    line
                }
                Event::Progress { done, .. } => {
                    p.done = done;
                    drop(p);
                    self.bump();
                    return;
                }
                Event::Page { .. } => return,
            };
            let line: Arc<str> = line.to_string().into();
            let cost = line.len() as u64 + LINE_OVERHEAD;
            p.held += cost;
            self.ledger.results.fetch_add(cost, Ordering::Relaxed);
            p.lines.push(line);
            drop(p);
            self.bump();
        });
        let mut p = self.lock();
        p.status = Status::Done;
        p.done = summary.pages;
        p.finished = Some(Instant::now());
        drop(p);
        self.ledger
            .pending
            .fetch_sub(self.upload, Ordering::Relaxed);
        self.bump();
    }

    /// The job's state, as the API reports it.
    pub(crate) fn describe(&self) -> serde_json::Value {
        let p = self.lock();
        let mut out = json!({
            "job": self.id, "lane": self.lane.as_str(), "state": p.status.as_str(),
            "pages": self.pages, "pages_done": p.done, "chunks": p.chunks,
            "errors": p.errors.iter().map(|(page, error)| json!({"page": page, "error": error})).collect::<Vec<_>>(),
        });
        if p.status == Status::Evicted {
            out["message"] = json!(
                "the job finished; its results were dropped to keep memory within server.max_results_mib (the oldest finished jobs' go first)"
            );
        }
        out
    }

    /// Lines from `from` on, and whether the job is done; `None` once its
    /// results are evicted.
    pub(crate) fn lines_from(&self, from: usize) -> Option<(Vec<Arc<str>>, bool)> {
        let p = self.lock();
        match p.status {
            Status::Evicted => None,
            status => Some((
                p.lines.get(from..).unwrap_or_default().to_vec(),
                status == Status::Done,
            )),
        }
    }

    /// Waits until the job changes after `seen`.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    pub(crate) fn is_done(&self) -> bool {
        self.lock().status != Status::Running
    }

    /// Drops the results of a finished job; what that freed.
    fn evict(&self) -> u64 {
        let mut p = self.lock();
        if p.status != Status::Done {
            return 0;
        }
        p.status = Status::Evicted;
        p.lines = Vec::new();
        p.errors = Vec::new();
        std::mem::take(&mut p.held)
    }
}

/// Every job the server knows, until its results expire.
pub(crate) struct Jobs {
    map: Mutex<HashMap<String, Arc<JobRecord>>>,
    retention: Duration,
    max_results: u64,
    max_pending: u64,
    ledger: Arc<Ledger>,
}

/// Why an upload was not taken.
pub(crate) struct Busy {
    /// Bytes of uploads held by jobs not yet finished.
    pub(crate) pending: u64,
}

impl Jobs {
    pub(crate) fn new(retention: Duration, max_results: u64, max_pending: u64) -> Jobs {
        Jobs {
            map: Mutex::new(HashMap::new()),
            retention,
            max_results,
            max_pending,
            ledger: Arc::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<JobRecord>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes room for an upload of `size` bytes among the pending ones, or
    /// says it does not fit now. Give it back with [`Jobs::release`] if the
    /// job is not added after all.
    pub(crate) fn reserve(&self, size: u64) -> Result<(), Busy> {
        let ledger = &self.ledger;
        let mut current = ledger.pending.load(Ordering::Relaxed);
        loop {
            // One upload always fits, however large: the cap is for floods.
            if current > 0 && current + size > self.max_pending {
                return Err(Busy { pending: current });
            }
            match ledger.pending.compare_exchange(
                current,
                current + size,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(()),
                Err(now) => current = now,
            }
        }
    }

    /// Gives back a reservation whose job was not added.
    pub(crate) fn release(&self, size: u64) {
        self.ledger.pending.fetch_sub(size, Ordering::Relaxed);
    }

    /// Records a job that has just been accepted, with the size of its
    /// (reserved) upload.
    pub(crate) fn add(&self, id: String, lane: Lane, pages: u32, upload: u64) -> Arc<JobRecord> {
        let record = Arc::new(JobRecord {
            id: id.clone(),
            lane,
            pages,
            upload,
            progress: Mutex::new(Progress {
                status: Status::Running,
                done: 0,
                chunks: 0,
                errors: Vec::new(),
                lines: Vec::new(),
                held: 0,
                finished: None,
            }),
            changed: watch::channel(0).0,
            ledger: self.ledger.clone(),
        });
        self.lock().insert(id, record.clone());
        record
    }

    pub(crate) fn get(&self, id: &str) -> Option<Arc<JobRecord>> {
        self.lock().get(id).cloned()
    }

    /// Jobs still running.
    pub(crate) fn running(&self) -> usize {
        self.lock().values().filter(|j| !j.is_done()).count()
    }

    /// Bytes the uploads of accepted jobs not yet finished hold now.
    pub(crate) fn pending_bytes(&self) -> u64 {
        self.ledger.pending.load(Ordering::Relaxed)
    }

    /// Bytes the results of every job hold now.
    pub(crate) fn results_bytes(&self) -> u64 {
        self.ledger.results.load(Ordering::Relaxed)
    }

    /// Forgets jobs past their retention, then drops the results of the
    /// oldest finished jobs while results hold more than the cap; how many
    /// bytes that freed.
    pub(crate) fn sweep(&self) -> u64 {
        let mut freed = 0;
        let mut map = self.lock();
        let retention = self.retention;
        map.retain(|_, j| {
            let p = j.lock();
            let keep = p.finished.is_none_or(|t| t.elapsed() < retention);
            if !keep {
                freed += p.held;
            }
            keep
        });
        self.ledger.results.fetch_sub(freed, Ordering::Relaxed);
        if self.results_bytes() > self.max_results {
            let mut finished: Vec<(Instant, Arc<JobRecord>)> = map
                .values()
                .filter_map(|j| {
                    let p = j.lock();
                    (p.status == Status::Done)
                        .then(|| p.finished.map(|t| (t, j.clone())))
                        .flatten()
                })
                .collect();
            drop(map);
            finished.sort_by_key(|(t, _)| *t);
            for (_, job) in finished {
                if self.results_bytes() <= self.max_results {
                    break;
                }
                let n = job.evict();
                self.ledger.results.fetch_sub(n, Ordering::Relaxed);
                freed += n;
            }
        }
        freed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished(jobs: &Jobs, id: &str, bytes: usize) -> Arc<JobRecord> {
        let r = jobs.add(id.into(), Lane::Light, 1, 0);
        let mut p = r.lock();
        p.lines.push("x".repeat(bytes).into());
        p.held = bytes as u64 + LINE_OVERHEAD;
        jobs.ledger.results.fetch_add(p.held, Ordering::Relaxed);
        p.status = Status::Done;
        p.finished = Some(Instant::now());
        drop(p);
        std::thread::sleep(Duration::from_millis(2));
        r
    }

    #[test]
    fn the_oldest_finished_results_go_first_and_say_so() {
        let jobs = Jobs::new(Duration::from_secs(600), 2500, 1 << 30);
        let a = finished(&jobs, "a", 1000);
        let b = finished(&jobs, "b", 1000);
        let c = finished(&jobs, "c", 1000);
        assert!(jobs.sweep() > 0);
        assert!(jobs.results_bytes() <= 2500);
        assert!(a.lines_from(0).is_none());
        assert_eq!(a.describe()["state"], "evicted");
        assert!(b.lines_from(0).is_some() && c.lines_from(0).is_some());
        // Past its retention a job is forgotten.
        let jobs = Jobs::new(Duration::ZERO, 1 << 30, 1 << 30);
        finished(&jobs, "d", 10);
        jobs.sweep();
        assert!(jobs.get("d").is_none());
        assert_eq!(jobs.results_bytes(), 0);
    }

    #[test]
    fn pending_uploads_are_bounded_but_one_always_fits() {
        let jobs = Jobs::new(Duration::from_secs(600), 1 << 30, 100);
        assert!(jobs.reserve(500).is_ok());
        assert_eq!(jobs.reserve(1).err().map(|b| b.pending), Some(500));
        jobs.release(500);
        assert!(jobs.reserve(60).is_ok() && jobs.reserve(40).is_ok());
        assert!(jobs.reserve(1).is_err());
    }
}
