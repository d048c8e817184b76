//! Jobs kept in this process: documents the server has accepted, run on
//! this host's lanes, their progress, and their results as NDJSON lines
//! that any number of readers can follow while the job runs.
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

use async_trait::async_trait;
use serde_json::json;
use tokio::sync::watch;
use warmlane_pdf::PdfDocument;

use super::{Accepted, Board, BoardError, Follow, JobId};
use crate::host::Host;
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
    /// Cancelled: the pages not parsed by then are errors that say so.
    Cancelled,
    /// Done, and its results were dropped to keep memory within
    /// `server.max_results_mib`.
    Evicted,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Done => "done",
            Status::Cancelled => "cancelled",
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
    /// The running job's cancel flag, while it runs.
    cancel: Mutex<Option<Arc<std::sync::atomic::AtomicBool>>>,
    /// Whether the API cancelled it.
    cancelled: std::sync::atomic::AtomicBool,
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
        *self.cancel.lock().unwrap_or_else(|p| p.into_inner()) = Some(job.canceller());
        let summary = job.run(&mut |event| {
            let mut p = self.lock();
            if let Event::Progress { done, .. } = event {
                p.done = done;
                drop(p);
                self.bump();
                return;
            }
            if let Event::PageError { page, error } = &event {
                let cost = error.len() as u64 + LINE_OVERHEAD;
                p.held += cost;
                self.ledger.results.fetch_add(cost, Ordering::Relaxed);
                p.errors.push((*page, error.clone()));
            }
            let Some((is_chunk, line)) = super::record(&event) else {
                return;
            };
            if is_chunk {
                p.chunks += 1;
            }
            let line: Arc<str> = line.into();
            let cost = line.len() as u64 + LINE_OVERHEAD;
            p.held += cost;
            self.ledger.results.fetch_add(cost, Ordering::Relaxed);
            p.lines.push(line);
            drop(p);
            self.bump();
        });
        self.cancel.lock().unwrap_or_else(|p| p.into_inner()).take();
        let cancelled = self.cancelled.load(Ordering::Relaxed);
        let mut p = self.lock();
        p.status = if cancelled {
            Status::Cancelled
        } else {
            Status::Done
        };
        p.done = summary.pages;
        p.finished = Some(Instant::now());
        drop(p);
        self.ledger
            .pending
            .fetch_sub(self.upload, Ordering::Relaxed);
        self.bump();
    }

    /// Cancels the job if it still runs; whether it did.
    pub(crate) fn cancel(&self) -> bool {
        match &*self.cancel.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(flag) => {
                self.cancelled.store(true, Ordering::Relaxed);
                flag.store(true, Ordering::Relaxed);
                true
            }
            None => false,
        }
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
                status != Status::Running,
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
        if !matches!(p.status, Status::Done | Status::Cancelled) {
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

/// Bytes of uploads held by jobs not yet finished, when there is no room.
pub(crate) struct Busy {
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
            cancel: Mutex::new(None),
            cancelled: std::sync::atomic::AtomicBool::new(false),
        });
        self.lock().insert(id, record.clone());
        record
    }

    pub(crate) fn get(&self, id: &str) -> Option<Arc<JobRecord>> {
        self.lock().get(id).cloned()
    }

    /// Every job known, in no particular order.
    pub(crate) fn all(&self) -> Vec<Arc<JobRecord>> {
        self.lock().values().cloned().collect()
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
                    matches!(p.status, Status::Done | Status::Cancelled)
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

/// The board of a server whose jobs run in this process.
pub(crate) struct MemoryBoard {
    host: Arc<Host>,
    jobs: Jobs,
}

impl MemoryBoard {
    /// A board on `host`'s lanes; see [`Jobs::new`] for the rest.
    pub(crate) fn new(
        host: Arc<Host>,
        retention: Duration,
        max_results: u64,
        max_pending: u64,
    ) -> Self {
        MemoryBoard {
            host,
            jobs: Jobs::new(retention, max_results, max_pending),
        }
    }
}

/// How long a follower waits for news before it looks again.
const FOLLOW_WAIT: Duration = Duration::from_secs(5);

#[async_trait]
impl Board for MemoryBoard {
    async fn submit(&self, doc: PdfDocument, size: u64) -> Result<Accepted, BoardError> {
        self.jobs
            .reserve(size)
            .map_err(|b| BoardError::Busy { pending: b.pending })?;
        let lane = self.host.lane_for(&doc);
        let id = JobId::new(lane);
        let options = self.host.document_options();
        let job = match self.host.submit(doc, &options, id.as_str()) {
            Ok(job) => job,
            Err(e) => {
                self.jobs.release(size);
                return Err(BoardError::Submit(e));
            }
        };
        let record = self.jobs.add(id.to_string(), job.lane(), job.pages(), size);
        let accepted = Accepted {
            id: id.to_string(),
            lane: job.lane(),
            pages: job.pages(),
        };
        tokio::task::spawn_blocking(move || record.run(job));
        Ok(accepted)
    }

    async fn describe(&self, id: &str) -> Result<Option<serde_json::Value>, BoardError> {
        Ok(self.jobs.get(id).map(|r| r.describe()))
    }

    async fn follow(&self, id: &str, cursor: &str) -> Result<Follow, BoardError> {
        let Some(record) = self.jobs.get(id) else {
            return Ok(Follow::Unknown);
        };
        let from: usize = cursor.parse().unwrap_or(0);
        let mut changed = record.subscribe();
        loop {
            let Some((lines, done)) = record.lines_from(from) else {
                return Ok(Follow::Evicted);
            };
            if !lines.is_empty() || done {
                let next = (from + lines.len()).to_string();
                return Ok(Follow::Lines {
                    lines: lines.iter().map(|l| l.to_string()).collect(),
                    next,
                    ended: done,
                });
            }
            if tokio::time::timeout(FOLLOW_WAIT, changed.changed())
                .await
                .is_err()
            {
                return Ok(Follow::Lines {
                    lines: Vec::new(),
                    next: from.to_string(),
                    ended: false,
                });
            }
        }
    }

    async fn cancel(&self, id: &str) -> Result<Option<bool>, BoardError> {
        Ok(self.jobs.get(id).map(|r| r.cancel()))
    }

    async fn list(&self) -> Result<Vec<serde_json::Value>, BoardError> {
        Ok(self.jobs.all().iter().map(|r| r.describe()).collect())
    }

    async fn sweep(&self) -> u64 {
        self.jobs.sweep()
    }

    fn running_here(&self) -> usize {
        self.jobs.running()
    }

    async fn metrics(&self) -> Box<dyn crate::metrics::Report> {
        Box::new(super::Gauges(vec![
            (
                "job_results_bytes",
                "Memory the results of the server's jobs hold (capped by server.max_results_mib).",
                self.jobs.results_bytes(),
            ),
            (
                "pending_upload_bytes",
                "Memory the uploads of accepted jobs not yet finished hold (capped by server.max_pending_mib).",
                self.jobs.pending_bytes(),
            ),
        ]))
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
