//! A worker replica: threads that take batches from the lanes' streams in
//! Redis, parse them, record their pages, and chunk each job in page order;
//! a heartbeat that renews what they hold; and a drain that lets them stop
//! without losing anything.
//!
//! Light work is taken before heavy work: one thread serves only the light
//! lane (while this replica serves it), the others look at the light lane
//! first. An idle thread takes over entries whose worker is gone (idle past
//! the lease) before it reads new ones, and now and then starts waiting
//! jobs and resumes chunking that a killed replica left half done.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use warmlane_pdf::PdfDocument;

use super::redis::{Append, Appended, Completed, Completion, RedisJobs, Unlocked, What};
use super::{Entry, JobId, JobsError, Unit};
use crate::config::ChunkUnit;
use crate::host::Host;
use crate::lanes::Lane;
use crate::pipeline::budget::{Budget, Size, nanos};
use crate::pipeline::chunking::{ChunkState, ChunkerCtx};
use crate::pipeline::parsing::{Outcome, ParserCtx, attempt};
use crate::pipeline::{DocumentOptions, Event, PageResult, Summary};
use crate::session::SessionId;

/// How long an idle worker waits on its lane before it looks around.
const BLOCK: Duration = Duration::from_millis(200);
/// How often, at most, a replica looks for entries whose worker is gone,
/// while it finds none.
const RECLAIM: Duration = Duration::from_millis(100);
/// How often idle workers start waiting jobs and resume stalled chunking.
const MAINTENANCE: Duration = Duration::from_secs(1);

/// What a job's workers need to know of it, as stored when it was
/// accepted, so every replica treats it alike whatever its own settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct JobSpec {
    pub(crate) pages: u32,
    pub(crate) batch_pages: u32,
    pub(crate) chunk_size: u32,
    pub(crate) chunk_overlap: u32,
    pub(crate) chunk_unit: ChunkUnit,
    /// The parsing and chunking budgets, in nanoseconds.
    pub(crate) cpu_limit: u64,
    pub(crate) chunk_limit: u64,
    pub(crate) max_page_text: u64,
    pub(crate) chunk_input: usize,
}

impl JobSpec {
    /// The spec of a job of `pages` pages accepted by `host`.
    pub(crate) fn new(host: &Host, pages: u32) -> JobSpec {
        let c = host.config();
        let o = host.document_options();
        JobSpec {
            pages,
            batch_pages: o.batch_pages,
            chunk_size: o.chunk_size,
            chunk_overlap: o.chunk_overlap,
            chunk_unit: o.chunk_unit,
            cpu_limit: nanos(Size::parsing(&c.pipeline, pages).limit),
            chunk_limit: nanos(Size::chunking(&c.pipeline, pages).limit),
            max_page_text: host.pdf_limits().page_text_bytes,
            chunk_input: usize::try_from(c.pipeline.chunk_input_kib << 10).unwrap_or(usize::MAX),
        }
    }

    fn options(&self) -> DocumentOptions {
        DocumentOptions {
            batch_pages: self.batch_pages,
            chunk_size: self.chunk_size,
            chunk_overlap: self.chunk_overlap,
            chunk_unit: self.chunk_unit,
            emit_pages: false,
        }
    }

    /// Pages `range` of unit `unit` (0-based).
    fn range(&self, unit: Unit) -> std::ops::Range<usize> {
        let (pages, bp) = (self.pages as usize, self.batch_pages.max(1) as usize);
        match unit {
            Unit::Batch(b) => {
                let start = (b as usize * bp).min(pages);
                start..(start + bp).min(pages)
            }
            Unit::Page(p) => {
                let p = (p as usize).min(pages);
                p..(p + 1).min(pages)
            }
        }
    }
}

/// A budget kept in a job's state in Redis: `field` counts what is spent.
/// What it last read or wrote there is remembered, so a call that follows
/// its own charge costs no round trip (a batch's, or the chunk lock
/// holder's: other replicas' charges show at the next batch).
struct RedisBudget<'a> {
    store: &'a RedisJobs,
    job: &'a JobId,
    field: &'static str,
    size: Size,
    spent: std::cell::Cell<Option<u64>>,
}

impl<'a> RedisBudget<'a> {
    /// Job `job`'s budget of `size` counted in `field`, of which `spent` is
    /// spent if it was read already.
    fn new(
        store: &'a RedisJobs,
        (job, field): (&'a JobId, &'static str),
        size: Size,
        spent: Option<u64>,
    ) -> Self {
        RedisBudget {
            store,
            job,
            field,
            size,
            spent: std::cell::Cell::new(spent),
        }
    }
}

impl Budget for RedisBudget<'_> {
    fn left(&self) -> Duration {
        let spent = match self.spent.get() {
            Some(n) => n,
            None => match self.store.fields(self.job, &[self.field]) {
                Ok(v) => {
                    let n = v.first().and_then(|n| n.parse().ok()).unwrap_or(0);
                    self.spent.set(Some(n));
                    n
                }
                // Redis is unreachable: the result could not be recorded anyway.
                Err(_) => return Duration::ZERO,
            },
        };
        self.size.left(Duration::from_nanos(spent))
    }

    fn spend(&self, cpu: Duration) {
        match self.store.add(self.job, self.field, nanos(cpu)) {
            Ok(total) => self.spent.set(total),
            Err(e) => {
                self.spent.set(None);
                tracing::debug!(job = %self.job, "CPU time not charged: {e}");
            }
        }
    }

    fn spent(&self, what: &str) -> String {
        self.size.spent(what)
    }
}

/// What a worker replica has done, for metrics.
#[derive(Default)]
struct Counters {
    taken: [AtomicU64; 2],
    finished: [AtomicU64; 2],
    reclaimed: [AtomicU64; 2],
    dead: [AtomicU64; 2],
    fenced: [AtomicU64; 2],
    handed_back: [AtomicU64; 2],
}

/// An entry a thread holds, for the heartbeat.
struct Held {
    lane: Lane,
    deliveries: u32,
}

struct Shared {
    host: Arc<Host>,
    store: Arc<RedisJobs>,
    /// This replica's name in the consumer group.
    consumer: String,
    lanes: Vec<Lane>,
    lease: Duration,
    max_attempts: u32,
    window: u32,
    retention: Duration,
    draining: AtomicBool,
    /// Threads working on an entry, or chunking after one, now.
    busy: AtomicUsize,
    /// The entries threads hold now: taken, not yet reported.
    held: Mutex<HashMap<String, Held>>,
    /// Chunk locks held, by job, with their tokens.
    locks: Mutex<HashMap<JobId, String>>,
    last_maintenance: Mutex<Instant>,
    /// When a thread last looked for entries whose worker is gone and
    /// found none (`None`: look now).
    last_reclaim: Mutex<Option<Instant>>,
    /// Whether Redis failed at the last try (logged once per outage).
    unreachable: AtomicBool,
    counters: Counters,
}

/// The worker threads of this replica.
pub(crate) struct Workers {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Workers {
    /// Starts `threads` workers on `lanes` (light first), and the heartbeat.
    pub(crate) fn start(
        host: Arc<Host>,
        store: Arc<RedisJobs>,
        lanes: Vec<Lane>,
        threads: usize,
    ) -> std::io::Result<Workers> {
        let config = host.config().clone();
        let consumer = format!(
            "{}-{}-{}",
            hostname(),
            std::process::id(),
            &SessionId::random().as_str()[2..10]
        );
        let shared = Arc::new(Shared {
            host,
            store,
            consumer,
            lanes: lanes.clone(),
            lease: config.jobs.lease(),
            max_attempts: config.jobs.max_attempts,
            window: config.jobs.window,
            retention: Duration::from_secs(config.server.job_retention_secs),
            draining: AtomicBool::new(false),
            busy: AtomicUsize::new(0),
            held: Mutex::default(),
            locks: Mutex::default(),
            last_maintenance: Mutex::new(Instant::now()),
            last_reclaim: Mutex::default(),
            unreachable: AtomicBool::new(false),
            counters: Counters::default(),
        });
        let mut handles = Vec::new();
        let light_first: Vec<Lane> = Lane::ALL
            .into_iter()
            .filter(|l| lanes.contains(l))
            .collect();
        for n in 0..threads.max(1) {
            // The first thread keeps the light lane's capacity, when there
            // is other work to lend the rest to.
            let reads = if n == 0 && light_first.len() > 1 {
                vec![Lane::Light]
            } else {
                light_first.clone()
            };
            let s = shared.clone();
            handles.push(
                std::thread::Builder::new()
                    .name(format!("warmlane-worker-{n}"))
                    .spawn(move || s.work(&reads))?,
            );
        }
        let s = shared.clone();
        handles.push(
            std::thread::Builder::new()
                .name("warmlane-heartbeat".into())
                .spawn(move || s.heartbeat())?,
        );
        tracing::info!(consumer = %shared.consumer, lanes = ?lanes, threads, "worker started");
        Ok(Workers {
            shared,
            threads: Mutex::new(handles),
        })
    }

    /// Stops taking batches; the ones being worked on finish, the ones held
    /// but not started are handed back at once.
    pub(crate) fn drain(&self) {
        self.shared.draining.store(true, Ordering::Release);
    }

    /// Threads working now: on a batch, or chunking what it parsed.
    pub(crate) fn busy(&self) -> usize {
        self.shared.busy.load(Ordering::Acquire)
    }

    /// Waits until every thread has stopped (after [`Workers::drain`]), or
    /// `until` passes; whether they all did.
    pub(crate) fn join(&self, until: Instant) -> bool {
        loop {
            let done = self
                .threads
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .all(JoinHandle::is_finished);
            if done {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What the workers have done, gathered for a scrape.
    pub(crate) fn metrics(&self) -> WorkersReport {
        let c = &self.shared.counters;
        let lanes =
            |values: &[AtomicU64; 2]| Lane::ALL.map(|l| values[l as usize].load(Ordering::Relaxed));
        WorkersReport {
            counters: [
                lanes(&c.taken),
                lanes(&c.finished),
                lanes(&c.reclaimed),
                lanes(&c.dead),
                lanes(&c.fenced),
                lanes(&c.handed_back),
            ],
            holding: self.shared.held().len(),
        }
    }
}

/// What a replica's workers have done, by lane, and how many batches
/// they hold now.
pub(crate) struct WorkersReport {
    counters: [[u64; 2]; 6],
    holding: usize,
}

impl crate::metrics::Report for WorkersReport {
    fn report(&self, f: &mut crate::metrics::Families<'_, '_>) -> std::fmt::Result {
        let families = [
            (
                "worker_batches_taken_total",
                "Lane entries (batches and page retries) this replica took.",
            ),
            (
                "worker_batches_finished_total",
                "Lane entries this replica finished and recorded.",
            ),
            (
                "worker_reclaims_total",
                "Lane entries this replica took over from a worker that was gone.",
            ),
            (
                "worker_dead_letters_total",
                "Lane entries this replica gave up as dead letters.",
            ),
            (
                "worker_fenced_total",
                "Results this replica did not record: another claim held the entry by then.",
            ),
            (
                "worker_handed_back_total",
                "Lane entries this replica handed back unstarted while draining.",
            ),
        ];
        let labels = Lane::ALL.map(|l| [("lane", l.as_str())]);
        for ((name, help), values) in families.into_iter().zip(&self.counters) {
            f.counter(
                name,
                help,
                labels.iter().zip(values).map(|(l, n)| (&l[..], *n)),
            )?;
        }
        f.gauge(
            "worker_busy",
            "Worker threads working on a batch now.",
            [(&[][..], self.holding as u64)],
        )
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.drain();
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "warmlane".into())
}

impl Shared {
    fn held(&self) -> MutexGuard<'_, HashMap<String, Held>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn locks(&self) -> MutexGuard<'_, HashMap<JobId, String>> {
        self.locks.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Notes that Redis answered, or failed (logged once per outage).
    fn reached(&self, result: Result<(), &JobsError>) {
        match result {
            Ok(()) => {
                if self.unreachable.swap(false, Ordering::Relaxed) {
                    tracing::info!("the job store answers again");
                }
            }
            Err(e) => {
                if !self.unreachable.swap(true, Ordering::Relaxed) {
                    tracing::warn!("{e}; retrying");
                }
            }
        }
    }

    /// A worker thread: takes entries of `lanes` until drained.
    fn work(&self, lanes: &[Lane]) {
        while !self.draining() {
            let next = self.next(lanes);
            self.reached(next.as_ref().map(|_| ()));
            match next {
                Ok(Some(entry)) => {
                    self.busy.fetch_add(1, Ordering::AcqRel);
                    self.process(entry);
                    self.busy.fetch_sub(1, Ordering::AcqRel);
                }
                Ok(None) => self.maintain(),
                Err(_) => std::thread::sleep(BLOCK),
            }
        }
    }

    /// The next entry: one whose worker is gone, else a new one, of each
    /// lane in turn; waits a little on the last lane when there is none.
    /// Entries whose worker is gone are looked for at most every
    /// [`RECLAIM`] per replica while none turn up (they are idle a lease
    /// before they can be taken over, so this costs a takeover little).
    fn next(&self, lanes: &[Lane]) -> Result<Option<Entry>, JobsError> {
        let due = {
            let mut last = self.last_reclaim.lock().unwrap_or_else(|p| p.into_inner());
            let due = last.is_none_or(|t| t.elapsed() >= RECLAIM);
            if due {
                *last = Some(Instant::now());
            }
            due
        };
        for &lane in if due { lanes } else { &[] } {
            if let Some(e) = self.store.reclaim(lane, &self.consumer, self.lease)? {
                self.counters.reclaimed[lane as usize].fetch_add(1, Ordering::Relaxed);
                tracing::info!(job = %e.job, unit = %e.unit, deliveries = e.deliveries, "took over a batch whose worker is gone");
                // There may be more: the next thread looks again at once.
                *self.last_reclaim.lock().unwrap_or_else(|p| p.into_inner()) = None;
                return Ok(Some(e));
            }
        }
        for (i, &lane) in lanes.iter().enumerate() {
            let block = if i + 1 == lanes.len() {
                BLOCK
            } else {
                Duration::ZERO
            };
            if let Some(e) = self.store.read_new(lane, &self.consumer, block)? {
                return Ok(Some(e));
            }
        }
        Ok(None)
    }

    fn process(&self, entry: Entry) {
        let lane = entry.lane;
        self.counters.taken[lane as usize].fetch_add(1, Ordering::Relaxed);
        self.held().insert(
            entry.id.clone(),
            Held {
                lane,
                deliveries: entry.deliveries,
            },
        );
        let span = tracing::info_span!(
            "batch",
            job = %entry.job,
            unit = %entry.unit,
            lane = %lane,
            deliveries = entry.deliveries,
            replica = %self.consumer,
            first_page = tracing::field::Empty,
            pages = tracing::field::Empty,
            trace_id = tracing::field::Empty,
        );
        self.continue_job_trace(&span, &entry.job);
        let _enter = span.enter();
        let outcome = self.run(&entry);
        // Reported (or left): no longer this replica's to renew or count.
        self.held().remove(&entry.id);
        match outcome {
            Ok(Some(spec)) => {
                if let Err(e) = self.chunk(&entry.job, &spec) {
                    // Its parsed pages are recorded: whoever next finds the
                    // job's chunking behind catches it up.
                    tracing::warn!("chunking left for later: {e}");
                }
            }
            Ok(None) => {}
            // Redis failed on the way: the entry stays pending, and is taken
            // over when its lease runs out.
            Err(e) => tracing::warn!("batch left for another worker: {e}"),
        }
    }

    /// Works on `entry` and reports what became of it; the job's spec when
    /// pages were recorded and the job is to be chunked next.
    fn run(&self, entry: &Entry) -> Result<Option<JobSpec>, JobsError> {
        let lane = entry.lane as usize;
        if self.draining() {
            return self.hand_back(entry).map(|()| None);
        }
        // A batch's bytes come with the job's state, in one round trip.
        let (fields, mut bytes) = self.store.fields_and_batch(
            &entry.job,
            &["status", "spec", "parsed", "cpu"],
            &entry.unit.to_string(),
        )?;
        let spec: Option<JobSpec> = serde_json::from_str(&fields[1]).ok();
        let Some(spec) = spec.filter(|_| fields[0] == "running") else {
            // Cancelled, finished, or forgotten: drop the entry.
            let gone = Completion {
                first: 0,
                pages: 0,
                what: What::Split,
            };
            self.store.complete(entry, &self.consumer, gone)?;
            return Ok(None);
        };
        let range = spec.range(entry.unit);
        let (first, count) = (range.start as u32, range.len() as u32);
        let span = tracing::Span::current();
        span.record("first_page", first + 1);
        span.record("pages", count);
        if entry.deliveries > self.max_attempts {
            let why = format!(
                "this page's batch lost its worker {} times (jobs.max_attempts is {}); it was given up",
                entry.deliveries - 1,
                self.max_attempts
            );
            let results: Vec<PageResult> = range
                .clone()
                .map(|p| (p as u32 + 1, Err(why.clone())))
                .collect();
            let results = serde_json::to_string(&results).unwrap_or_default();
            let done = Completion {
                first,
                pages: count,
                what: What::Dead {
                    results: &results,
                    reason: &why,
                },
            };
            tracing::warn!(job = %entry.job, unit = %entry.unit, "dead letter: {why}");
            self.counters.dead[lane].fetch_add(1, Ordering::Relaxed);
            let recorded = self.store.complete(entry, &self.consumer, done)?;
            return Ok((recorded == Completed::Recorded).then_some(spec));
        }
        let parsed: usize = fields[2].parse().unwrap_or(0);
        let unfinished = (spec.pages as usize).saturating_sub(parsed);
        let host = &self.host;
        let (pool, draw) = host.parser();
        let job: Arc<str> = entry.job.as_str().into();
        let budget = RedisBudget::new(
            &self.store,
            (&entry.job, "cpu"),
            Size::parsing_of(Duration::from_nanos(spec.cpu_limit)),
            fields[3].parse().ok(),
        );
        let pipeline = &host.config().pipeline;
        let ctx = ParserCtx {
            pool,
            draw,
            lane: entry.lane,
            job: &job,
            cancel: &self.draining,
            budget: &budget,
            counters: &host.documents,
            retry_cpu: Duration::from_millis(pipeline.page_retry_cpu_ms),
            batch_cpu_per_page: Duration::from_millis(pipeline.cpu_ms_per_page) / 4,
            // A job's units are spread over replicas, and nothing here
            // knows when its last one is done: every unit gets a fresh
            // instance.
            reuse: false,
        };
        let retry = matches!(entry.unit, Unit::Page(_));
        let outcome = attempt(&ctx, range.clone(), retry, unfinished, || {
            self.cut(entry, &spec, range.clone(), bytes.take())
        });
        let results;
        let what = match outcome {
            Outcome::Abandoned => return self.hand_back(entry).map(|()| None),
            Outcome::Split => What::Split,
            Outcome::Parsed(pages) => {
                results = serde_json::to_string(&pages).unwrap_or_default();
                What::Parsed(&results)
            }
        };
        let split = matches!(what, What::Split);
        match self.store.complete(
            entry,
            &self.consumer,
            Completion {
                first,
                pages: count,
                what,
            },
        )? {
            Completed::Recorded => {
                self.counters.finished[lane].fetch_add(1, Ordering::Relaxed);
                Ok((!split).then_some(spec))
            }
            Completed::Fenced => {
                self.counters.fenced[lane].fetch_add(1, Ordering::Relaxed);
                tracing::info!(job = %entry.job, unit = %entry.unit, "another worker holds this batch now; its result was not recorded");
                Ok(None)
            }
            Completed::JobGone => Ok(None),
        }
    }

    /// The PDF of pages `range` of the entry's job: its batch as stored, or
    /// the page cut alone (when it was accepted, or now from its batch).
    /// `stored` is the unit's field of the job's batches, read already.
    fn cut(
        &self,
        entry: &Entry,
        spec: &JobSpec,
        range: std::ops::Range<usize>,
        stored: Option<Vec<u8>>,
    ) -> Result<Vec<u8>, String> {
        let store = &self.store;
        let job = &entry.job;
        match entry.unit {
            Unit::Batch(_) => stored.ok_or_else(|| {
                "the batch could not be cut whole when the document was accepted".into()
            }),
            Unit::Page(p) => {
                // The page, if it was stored cut alone.
                if let Some(page) = stored {
                    return Ok(page);
                }
                if let Some(why) = store
                    .batch(job, &format!("e{p}"))
                    .map_err(|e| e.to_string())?
                {
                    return Err(String::from_utf8_lossy(&why).into_owned());
                }
                let b = p / spec.batch_pages.max(1);
                let bytes = store
                    .batch(job, &format!("b{b}"))
                    .map_err(|e| e.to_string())?
                    .ok_or("the page's batch is no longer stored")?;
                let batch = PdfDocument::open_with(bytes, None, self.host.pdf_limits())
                    .map_err(|e| e.to_string())?;
                let at = range.start - spec.range(Unit::Batch(b)).start;
                batch.batch(at..at + 1).map_err(|e| e.to_string())
            }
        }
    }

    fn hand_back(&self, entry: &Entry) -> Result<(), JobsError> {
        self.store.hand_back(entry, &self.consumer, self.lease)?;
        self.counters.handed_back[entry.lane as usize].fetch_add(1, Ordering::Relaxed);
        tracing::info!(job = %entry.job, unit = %entry.unit, "handed back unstarted");
        Ok(())
    }

    /// Makes `span` (not yet entered) a child of job `id`'s span, when
    /// traces are recorded and the job has a trace context (one Redis
    /// read; none when the span is not recorded).
    fn continue_job_trace(&self, span: &tracing::Span, id: &JobId) {
        if span.is_disabled() {
            return;
        }
        let trace = self.store.fields(id, &["trace"]).ok();
        let trace = trace.and_then(|f| f.into_iter().next());
        crate::telemetry::continue_from(span, trace.as_deref());
    }

    /// Chunks job `id` as far as its parsed pages go in order, unless
    /// another worker does (it will look again before it lets go).
    fn chunk(&self, id: &JobId, spec: &JobSpec) -> Result<(), JobsError> {
        let token = SessionId::random().as_str()[2..].to_string();
        if !self.store.lock(id, &token, self.lease)? {
            return Ok(());
        }
        let span = tracing::info_span!(
            "chunk",
            job = %id,
            replica = %self.consumer,
            trace_id = tracing::field::Empty,
        );
        self.continue_job_trace(&span, id);
        let _enter = span.enter();
        self.locks().insert(id.clone(), token.clone());
        let result = self.chunk_locked(id, spec, &token);
        self.locks().remove(id);
        result
    }

    fn chunk_locked(&self, id: &JobId, spec: &JobSpec, token: &str) -> Result<(), JobsError> {
        let (pool, draw) = self.host.chunker();
        let job: Arc<str> = id.as_str().into();
        let never = AtomicBool::new(false);
        let budget = RedisBudget::new(
            &self.store,
            (id, "chunk_cpu"),
            Size::chunking_of(Duration::from_nanos(spec.chunk_limit)),
            None,
        );
        let ctx = ChunkerCtx {
            pool,
            draw,
            lane: id.lane(),
            job: &job,
            cancel: &never,
            budget: &budget,
            options: spec.options().wit(),
            input_max: spec.chunk_input,
            max_page_text: spec.max_page_text,
            emit_pages: false,
            reuse: false,
        };
        loop {
            let peek = self.store.peek(id)?;
            if peek.status != "running" {
                return Ok(());
            }
            let cursor = peek.cursor;
            let Some(json) = peek.waiting else {
                match self.store.unlock(id, token)? {
                    Unlocked::Again => continue,
                    Unlocked::Released | Unlocked::Lost => return Ok(()),
                }
            };
            let pages: Vec<PageResult> = serde_json::from_str(&json).unwrap_or_default();
            let next_cursor = cursor + pages.len().max(1) as u32;
            let done = next_cursor >= spec.pages;
            let mut state: ChunkState = serde_json::from_str(&peek.state).unwrap_or_default();
            let mut records = Vec::new();
            let mut summary = Summary::default();
            state.feed(&ctx, pages, done, &mut summary, &mut |event: Event| {
                if let Some(r) = super::record(&event) {
                    records.push(r);
                }
            });
            let state = serde_json::to_string(&state).unwrap_or_default();
            // Batches whose last page is now chunked are not needed again.
            let bp = spec.batch_pages.max(1);
            let drop_batches = (cursor / bp..next_cursor / bp)
                .filter(|b| (b + 1) * bp <= next_cursor)
                .map(|b| format!("b{b}"))
                .collect();
            let appended = self.store.append(
                id,
                &Append {
                    token,
                    cursor,
                    next_cursor,
                    state: &state,
                    done,
                    retention: self.retention,
                    drop_batches,
                    records,
                },
            )?;
            if matches!(appended, Appended::Ok | Appended::Done) {
                let c = &self.host.documents;
                c.pages
                    .fetch_add(u64::from(next_cursor - cursor), Ordering::Relaxed);
                c.chunks
                    .fetch_add(u64::from(summary.chunks), Ordering::Relaxed);
                c.page_errors
                    .fetch_add(u64::from(summary.page_errors), Ordering::Relaxed);
                if appended == Appended::Done {
                    c.jobs.fetch_add(1, Ordering::Relaxed);
                }
            }
            match appended {
                Appended::Ok => {}
                Appended::Done => {
                    tracing::debug!(job = %id, "job done");
                    self.promote(id.lane())?;
                    return Ok(());
                }
                Appended::Fenced | Appended::Gone => return Ok(()),
            }
        }
    }

    /// Starts waiting jobs of `lane` while there is room.
    fn promote(&self, lane: Lane) -> Result<(), JobsError> {
        let settings = self.host.lane_settings().lanes[lane as usize];
        self.store.promote(lane, settings.running, self.window)
    }

    /// Now and then, from an idle thread: starts waiting jobs, resumes
    /// chunking that nobody holds (its worker was killed half-way), and
    /// forgets jobs whose accepting replica stopped while storing them.
    fn maintain(&self) {
        {
            let mut last = self
                .last_maintenance
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if last.elapsed() < MAINTENANCE {
                return;
            }
            *last = Instant::now();
        }
        for &lane in &self.lanes {
            let result = self.promote(lane).and_then(|()| self.resume(lane));
            if let Err(e) = result {
                tracing::debug!("maintenance of the {lane} lane: {e}");
            }
        }
    }

    fn resume(&self, lane: Lane) -> Result<(), JobsError> {
        let stalled_before = super::redis::now_ms().saturating_sub(self.lease.as_millis() as u64);
        for id in self.store.list(lane, 0)? {
            let fields = self.store.fields(
                &id,
                &["status", "cursor", "spec", "stored", "batches", "stored_at"],
            )?;
            let number = |i: usize| fields[i].parse::<u64>().unwrap_or(0);
            // (A job admitted by a replica that stored every batch before
            // admitting it has no `stored` field.)
            let half_stored = !fields[3].is_empty() && number(3) < number(4);
            if half_stored && number(5) < stalled_before {
                // The replica that accepted it stopped while storing it,
                // before it gave anyone the job's id.
                if self.store.discard(&id, stalled_before)? {
                    tracing::warn!(job = %id, "forgot a job whose document was never stored whole: the replica that accepted it stopped");
                }
                continue;
            }
            if fields[0] != "running" {
                continue;
            }
            let cursor: u32 = fields[1].parse().unwrap_or(0);
            if self.store.parsed(&id, cursor)?.is_some()
                && let Ok(spec) = serde_json::from_str::<JobSpec>(&fields[2])
            {
                self.chunk(&id, &spec)?;
            }
        }
        Ok(())
    }

    /// Renews the claims and chunk locks this replica holds, every third of
    /// the lease, until the workers have stopped.
    fn heartbeat(&self) {
        let every = self.lease / 3;
        let mut last = Instant::now();
        loop {
            std::thread::sleep(Duration::from_millis(50).min(every));
            let idle = self.busy.load(Ordering::Acquire) == 0 && self.held().is_empty();
            if self.draining() && idle {
                return;
            }
            if last.elapsed() < every {
                continue;
            }
            last = Instant::now();
            let held: Vec<(String, Lane, u32)> = self
                .held()
                .iter()
                .map(|(id, h)| (id.clone(), h.lane, h.deliveries))
                .collect();
            for lane in Lane::ALL {
                let mine: Vec<(String, u32)> = held
                    .iter()
                    .filter(|(_, l, _)| *l == lane)
                    .map(|(id, _, d)| (id.clone(), *d))
                    .collect();
                match self.store.renew(lane, &self.consumer, &mine) {
                    Ok(lost) => {
                        for id in lost {
                            tracing::info!(entry = %id, "a batch this replica works on was taken over");
                        }
                    }
                    Err(e) => tracing::debug!("heartbeat: {e}"),
                }
            }
            let locks: Vec<(JobId, String)> = self
                .locks()
                .iter()
                .map(|(j, t)| (j.clone(), t.clone()))
                .collect();
            for (job, token) in locks {
                if let Err(e) = self.store.relock(&job, &token, self.lease) {
                    tracing::debug!("heartbeat: {e}");
                }
            }
        }
    }
}
