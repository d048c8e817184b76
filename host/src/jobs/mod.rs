//! Document jobs as the server keeps them: accepted, followed, cancelled,
//! and their results held — in this process ([`memory`]), or in Redis so
//! that any replica serves any job and any worker replica parses any batch
//! ([`redis`], [`worker`]).
//!
//! The rules that make replicas safe to kill, all enforced by Redis itself
//! (`jobs.lua`):
//!
//! - **Batches, not documents, are shared.** The replica that accepts a
//!   document cuts it once into its self-contained batches and stores them;
//!   each lane is a stream of batch entries read by one consumer group, and
//!   a job has at most `jobs.window` batches in its lane at a time, so
//!   several documents progress together.
//! - **Leases.** A worker holds each entry it claimed while a heartbeat,
//!   independent of the WebAssembly work, renews it every third of
//!   `jobs.lease_ms`. An entry idle past the lease belongs to a worker that
//!   is gone, and the next idle worker anywhere takes it over.
//! - **Fencing.** A result is recorded only from the claim that holds the
//!   entry now (its consumer and delivery count): a stalled worker that
//!   wakes up after a takeover records nothing. Chunking, in page order, is
//!   fenced by the job's chunk lock and cursor. A batch may run more than
//!   once; each page is reported exactly once.
//! - **Dead letters.** An entry delivered more than `jobs.max_attempts`
//!   times is given up: its pages become errors that say why, and the job
//!   goes on.
//! - **Drain.** A worker told to stop takes no new entry, finishes those it
//!   works on, and hands back at once any it holds but has not started.

pub(crate) mod memory;
pub(crate) mod redis;
pub(crate) mod worker;

use std::collections::HashMap;
use std::fmt;

use async_trait::async_trait;
use warmlane_pdf::PdfDocument;

use serde_json::json;

use crate::error::SubmitError;
use crate::lanes::Lane;
use crate::pipeline::Event;
use crate::session::SessionId;

/// A job's id: its lane, and a random part (`jl-…` light, `jh-…` heavy).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct JobId {
    lane: Lane,
    id: String,
}

impl JobId {
    /// A new random id for a job in `lane`.
    pub(crate) fn new(lane: Lane) -> JobId {
        let tag = match lane {
            Lane::Light => "jl",
            Lane::Heavy => "jh",
        };
        JobId {
            lane,
            id: format!("{tag}-{}", &SessionId::random().as_str()[2..]),
        }
    }

    /// The id in `s`, if it is one.
    pub(crate) fn parse(s: &str) -> Option<JobId> {
        let lane = match s.get(..3)? {
            "jl-" => Lane::Light,
            "jh-" => Lane::Heavy,
            _ => return None,
        };
        let rest = &s[3..];
        (!rest.is_empty() && rest.len() <= 64 && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
            .then(|| JobId {
                lane,
                id: s.to_string(),
            })
    }

    /// Its lane.
    pub(crate) fn lane(&self) -> Lane {
        self.lane
    }

    /// Its text.
    pub(crate) fn as_str(&self) -> &str {
        &self.id
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

/// What a lane entry asks for: a batch, or one page of a batch that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    /// Batch `n` (from 0).
    Batch(u32),
    /// Page `n` (from 0), alone.
    Page(u32),
}

impl Unit {
    fn parse(s: &str) -> Option<Unit> {
        let n = s.get(1..)?.parse().ok()?;
        match s.as_bytes().first()? {
            b'b' => Some(Unit::Batch(n)),
            b'p' => Some(Unit::Page(n)),
            _ => None,
        }
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unit::Batch(b) => write!(f, "b{b}"),
            Unit::Page(p) => write!(f, "p{p}"),
        }
    }
}

/// A lane entry a worker holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) lane: Lane,
    /// The stream entry's id.
    pub(crate) id: String,
    pub(crate) job: JobId,
    pub(crate) unit: Unit,
    /// Times it has been delivered, this claim included: with the consumer,
    /// what fences its result.
    pub(crate) deliveries: u32,
}

impl Entry {
    /// The entry `id` of `lane` with `fields`, if they name a job and unit.
    pub(crate) fn new(
        lane: Lane,
        id: String,
        fields: &HashMap<String, String>,
        deliveries: u32,
    ) -> Option<Entry> {
        Some(Entry {
            lane,
            id,
            job: JobId::parse(fields.get("job")?)?,
            unit: Unit::parse(fields.get("unit")?)?,
            deliveries,
        })
    }
}

/// Why the jobs could not be reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum JobsError {
    /// Redis did not answer, or failed.
    Unavailable(String),
}

impl fmt::Display for JobsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobsError::Unavailable(why) => write!(f, "the job store is unavailable: {why}"),
        }
    }
}

/// A document just accepted.
#[derive(Debug, Clone)]
pub(crate) struct Accepted {
    pub(crate) id: String,
    pub(crate) lane: Lane,
    pub(crate) pages: u32,
}

/// Why a document was not accepted, or a job could not be read.
#[derive(Debug, Clone)]
pub(crate) enum BoardError {
    /// Its lane refused it.
    Submit(SubmitError),
    /// Accepted documents not yet finished hold too much.
    Busy {
        /// What they hold, in bytes.
        pending: u64,
    },
    /// The store is unreachable.
    Unavailable(String),
}

impl From<JobsError> for BoardError {
    fn from(e: JobsError) -> Self {
        match e {
            JobsError::Unavailable(why) => BoardError::Unavailable(why),
        }
    }
}

/// The records of a job after a cursor.
#[derive(Debug, Clone)]
pub(crate) enum Follow {
    /// Records (NDJSON lines), where to read on from, and whether the job
    /// is over (nothing will come after them).
    Lines {
        lines: Vec<String>,
        next: String,
        ended: bool,
    },
    /// The job finished and its results were dropped.
    Evicted,
    /// No such job (never submitted, or expired).
    Unknown,
    /// The job's state is gone while it was being followed: Redis was
    /// restarted without persistence, or flushed.
    Lost,
}

/// Where the server's jobs live.
#[async_trait]
pub(crate) trait Board: Send + Sync {
    /// Accepts an opened document whose upload took `size` bytes.
    async fn submit(&self, doc: PdfDocument, size: u64) -> Result<Accepted, BoardError>;
    /// A job's state, as the API reports it.
    async fn describe(&self, id: &str) -> Result<Option<serde_json::Value>, BoardError>;
    /// The job's records after `cursor` (`"0"` for all), waiting a little
    /// for some when there are none yet.
    async fn follow(&self, id: &str, cursor: &str) -> Result<Follow, BoardError>;
    /// Cancels a job; whether it was still running.
    async fn cancel(&self, id: &str) -> Result<Option<bool>, BoardError>;
    /// The jobs running, and those finished lately.
    async fn list(&self) -> Result<Vec<serde_json::Value>, BoardError>;
    /// Forgets expired jobs and keeps retained results within their cap;
    /// what that freed.
    async fn sweep(&self) -> u64;
    /// Jobs this process is running itself.
    fn running_here(&self) -> usize;
    /// Its metric families, gathered now.
    async fn metrics(&self) -> Box<dyn crate::metrics::Report>;
}

/// An event as a record of the job's output: whether it is a chunk, and
/// its JSON line; `None` for events that are not records.
pub(crate) fn record(event: &Event) -> Option<(bool, String)> {
    match event {
        Event::Chunk(c) => Some((
            true,
            json!({
                "chunk": c.index, "first_page": c.first_page, "last_page": c.last_page,
                "start": c.start, "end": c.end, "size": c.size, "text": c.text,
            })
            .to_string(),
        )),
        Event::PageError { page, error } => {
            Some((false, json!({ "page": page, "error": error }).to_string()))
        }
        Event::Page { .. } | Event::Progress { .. } => None,
    }
}

/// Gauges without labels, gathered at a scrape: name, help, value.
pub(crate) struct Gauges(pub(crate) Vec<(&'static str, &'static str, u64)>);

impl crate::metrics::Report for Gauges {
    fn report(&self, f: &mut crate::metrics::Families<'_, '_>) -> std::fmt::Result {
        for (name, help, value) in &self.0 {
            f.gauge(name, help, [(&[][..], *value)])?;
        }
        Ok(())
    }
}

/// The jobs kept in Redis, read and cancelled from outside a server (the
/// `warmlane jobs` command).
pub struct SharedJobs {
    store: redis::RedisJobs,
    retention: std::time::Duration,
}

impl SharedJobs {
    /// The jobs in `config`'s Redis (`redis.url`).
    pub fn new(config: &crate::Config) -> anyhow::Result<SharedJobs> {
        let Some(url) = &config.redis.url else {
            anyhow::bail!(
                "without redis.url a job lives in the process that took it; give --redis URL (or redis.url) to read the jobs replicas share"
            );
        };
        let store = redis::RedisJobs::new(
            url,
            &config.redis.key_prefix,
            std::time::Duration::from_millis(config.redis.timeout_ms),
        )
        .map_err(|e| anyhow::anyhow!("redis.url is not a Redis URL: {e}"))?;
        Ok(SharedJobs {
            store,
            retention: std::time::Duration::from_secs(config.server.job_retention_secs),
        })
    }

    /// The jobs running, and those finished lately, as the API reports
    /// them.
    pub fn list(&self) -> anyhow::Result<Vec<serde_json::Value>> {
        let mut out = Vec::new();
        for lane in Lane::ALL {
            for id in self.store.list(lane, 100).map_err(anyhow::Error::msg)? {
                if let Some(state) = self.store.state(&id).map_err(anyhow::Error::msg)? {
                    out.push(redis::describe(&id, &state, &[]));
                }
            }
        }
        Ok(out)
    }

    /// Job `id`'s state, as the API reports it; `None` if there is none.
    pub fn show(&self, id: &str) -> anyhow::Result<Option<serde_json::Value>> {
        let Some(id) = JobId::parse(id) else {
            return Ok(None);
        };
        let Some(state) = self.store.state(&id).map_err(anyhow::Error::msg)? else {
            return Ok(None);
        };
        let errors = self.store.errors(&id).map_err(anyhow::Error::msg)?;
        Ok(Some(redis::describe(&id, &state, &errors)))
    }

    /// Sends job `id`'s records to `sink` as they come, until it is over;
    /// `false` if there is no such job (or its results were dropped).
    pub fn chunks(&self, id: &str, sink: &mut dyn FnMut(&str)) -> anyhow::Result<bool> {
        let Some(id) = JobId::parse(id) else {
            return Ok(false);
        };
        let mut cursor = "0".to_string();
        loop {
            let page = self
                .store
                .out(&id, &cursor, std::time::Duration::from_secs(2))
                .map_err(anyhow::Error::msg)?;
            for line in &page.lines {
                sink(line);
            }
            if page.ended {
                return Ok(true);
            }
            if page.lines.is_empty() {
                let status = self
                    .store
                    .fields(&id, &["status"])
                    .map_err(anyhow::Error::msg)?;
                match status[0].as_str() {
                    "" if cursor == "0" => return Ok(false),
                    "" => anyhow::bail!("the job was lost: Redis no longer holds it"),
                    "evicted" => return Ok(false),
                    _ => {}
                }
            }
            cursor = page.next;
        }
    }

    /// Cancels job `id`; `None` if there is none, else whether it was
    /// still running.
    pub fn cancel(&self, id: &str) -> anyhow::Result<Option<bool>> {
        let Some(id) = JobId::parse(id) else {
            return Ok(None);
        };
        if self.store.state(&id).map_err(anyhow::Error::msg)?.is_none() {
            return Ok(None);
        }
        Ok(Some(
            self.store
                .cancel(&id, self.retention)
                .map_err(anyhow::Error::msg)?,
        ))
    }
}
