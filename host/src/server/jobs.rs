//! Documents the server has accepted: their progress, and their results as
//! NDJSON lines that any number of readers can follow while the job runs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::watch;

use crate::lanes::Lane;
use crate::pipeline::{Event, Job};

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// Accepted; parsing as its lane allows.
    Running,
    /// Every page has been reported.
    Done,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Done => "done",
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
    finished: Option<Instant>,
}

/// One accepted document.
pub(crate) struct JobRecord {
    pub(crate) id: String,
    pub(crate) lane: Lane,
    pub(crate) pages: u32,
    progress: Mutex<Progress>,
    /// Bumped whenever progress changes.
    changed: watch::Sender<u64>,
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
            match event {
                Event::Chunk(c) => {
                    p.chunks += 1;
                    let line = json!({
                        "chunk": c.index, "first_page": c.first_page, "last_page": c.last_page,
                        "start": c.start, "end": c.end, "size": c.size, "text": c.text,
                    });
                    p.lines.push(line.to_string().into());
                }
                Event::PageError { page, error } => {
                    let line = json!({ "page": page, "error": error });
                    p.lines.push(line.to_string().into());
                    p.errors.push((page, error));
                }
                Event::Progress { done, .. } => p.done = done,
                Event::Page { .. } => return,
            }
            drop(p);
            self.bump();
        });
        let mut p = self.lock();
        p.status = Status::Done;
        p.done = summary.pages;
        p.finished = Some(Instant::now());
        drop(p);
        self.bump();
    }

    /// The job's state, as the API reports it.
    pub(crate) fn describe(&self) -> serde_json::Value {
        let p = self.lock();
        json!({
            "job": self.id, "lane": self.lane.as_str(), "state": p.status.as_str(),
            "pages": self.pages, "pages_done": p.done, "chunks": p.chunks,
            "errors": p.errors.iter().map(|(page, error)| json!({"page": page, "error": error})).collect::<Vec<_>>(),
        })
    }

    /// Lines from `from` on, and whether the job is done.
    pub(crate) fn lines_from(&self, from: usize) -> (Vec<Arc<str>>, bool) {
        let p = self.lock();
        (
            p.lines.get(from..).unwrap_or_default().to_vec(),
            p.status == Status::Done,
        )
    }

    /// Waits until the job changes after `seen`.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    pub(crate) fn is_done(&self) -> bool {
        self.lock().status == Status::Done
    }
}

/// Every job the server knows, until its results expire.
pub(crate) struct Jobs {
    map: Mutex<HashMap<String, Arc<JobRecord>>>,
    retention: Duration,
}

impl Jobs {
    pub(crate) fn new(retention: Duration) -> Jobs {
        Jobs {
            map: Mutex::new(HashMap::new()),
            retention,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<JobRecord>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a job that has just been accepted.
    pub(crate) fn add(&self, id: String, lane: Lane, pages: u32) -> Arc<JobRecord> {
        let record = Arc::new(JobRecord {
            id: id.clone(),
            lane,
            pages,
            progress: Mutex::new(Progress {
                status: Status::Running,
                done: 0,
                chunks: 0,
                errors: Vec::new(),
                lines: Vec::new(),
                finished: None,
            }),
            changed: watch::channel(0).0,
        });
        let mut map = self.lock();
        let retention = self.retention;
        map.retain(|_, j| j.lock().finished.is_none_or(|t| t.elapsed() < retention));
        map.insert(id, record.clone());
        record
    }

    pub(crate) fn get(&self, id: &str) -> Option<Arc<JobRecord>> {
        self.lock().get(id).cloned()
    }

    /// Jobs still running.
    pub(crate) fn running(&self) -> usize {
        self.lock().values().filter(|j| !j.is_done()).count()
    }
}
