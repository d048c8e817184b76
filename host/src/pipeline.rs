//! The document pipeline: a document's batches of pages parsed by warm
//! page-parser instances on the lanes' workers, put back in page order,
//! chunked, and streamed out.
//!
//! A job has at most its lane window of batches handed out and not yet
//! consumed, so memory follows the batches, not the document. A batch that
//! fails as a whole is retried page by page, so one bad page costs only
//! itself; each retry is a turn of its own in the lane, allowed only a
//! page's worth of CPU. Every call a document makes is charged to its CPU
//! budget (sized from its page count); once that is spent, its remaining
//! pages are errors that say so. Each attempt draws its cost from the
//! parser's budget, if it has one, and gives it back if it failed before
//! the parser ran.
//!
//! Chunking keeps what it can: long page texts reach the chunker in
//! bounded pieces, and when a call fails, its pages are chunked one by one
//! so only the page that cannot be chunked is lost.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use crate::bindings::chunker::ChunkerComponent;
use crate::bindings::chunker::exports::warmlane::worker::chunker::{Options, PageText, SizeUnit};
use crate::bindings::parser::PageParserComponent;
use crate::bucket::{Draw, WaitLimit};
use crate::config::{ChunkUnit, PipelineConfig};
use crate::error::CallError;
use crate::lanes::{Batches, Lane, Ran, Ticket};
use crate::pool::Pool;
use warmlane_pdf::PdfDocument;

/// How to process one document.
#[derive(Debug, Clone)]
pub struct DocumentOptions {
    /// Pages per batch.
    pub batch_pages: u32,
    /// Largest chunk.
    pub chunk_size: u32,
    /// How much each chunk repeats of the previous one.
    pub chunk_overlap: u32,
    /// What chunk sizes count.
    pub chunk_unit: ChunkUnit,
    /// Whether to report each page's text as [`Event::Page`].
    pub emit_pages: bool,
}

/// A chunk of a document, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkRecord {
    /// Position of the chunk in the document, from 0.
    pub index: u32,
    /// Page the chunk starts on (from 1).
    pub first_page: u32,
    /// Page the chunk ends on.
    pub last_page: u32,
    /// UTF-8 byte offset of the start within `first_page`'s text.
    pub start: u32,
    /// UTF-8 byte offset of the end within `last_page`'s text.
    pub end: u32,
    /// Size in the configured unit.
    pub size: u32,
    /// The text.
    pub text: String,
}

/// What the pipeline reports, in page order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A page's text, in page order, before the chunks that cover it.
    Page {
        /// Page number, from 1.
        page: u32,
        /// The text.
        text: String,
    },
    /// A finished chunk.
    Chunk(ChunkRecord),
    /// A page that could not be read.
    PageError {
        /// Page number, from 1.
        page: u32,
        /// Why.
        error: String,
    },
    /// Pages finished so far, of the total.
    Progress {
        /// Pages done.
        done: u32,
        /// Pages in the document.
        total: u32,
    },
}

/// What a finished document came to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Pages in the document.
    pub pages: u32,
    /// Chunks produced.
    pub chunks: u32,
    /// Pages that failed.
    pub page_errors: u32,
    /// Wall-clock time from submission to the last event.
    pub elapsed: Duration,
}

type PageResult = (u32, Result<String, String>);

/// What every job on a host has come to, for metrics.
#[derive(Default)]
pub(crate) struct DocCounters {
    pub(crate) jobs: AtomicU64,
    pub(crate) pages: AtomicU64,
    pub(crate) page_errors: AtomicU64,
    pub(crate) chunks: AtomicU64,
    /// Pages not parsed because their document had used its CPU budget.
    pub(crate) cpu_budget_pages: AtomicU64,
}

/// The CPU time one document may use for one kind of work, in the host
/// and its instances together: what keeps a small hostile file from
/// holding workers for minutes. Every call made for that work is charged to
/// it. A document has two: one for parsing, one for chunking, so that
/// chunking a page of absurd length cannot starve the parsing of the pages
/// after it.
pub(crate) struct CpuBudget {
    limit: Duration,
    used_nanos: AtomicU64,
    /// The settings that size it, for its errors.
    sized_by: &'static str,
}

impl CpuBudget {
    /// For parsing: `pipeline.cpu_ms_per_document` plus
    /// `pipeline.cpu_ms_per_page` for each of `pages`.
    pub(crate) fn parsing(config: &PipelineConfig, pages: u32) -> Self {
        let ms = config
            .cpu_ms_per_document
            .saturating_add(config.cpu_ms_per_page.saturating_mul(u64::from(pages)));
        CpuBudget {
            limit: Duration::from_millis(ms),
            used_nanos: AtomicU64::new(0),
            sized_by: "pipeline.cpu_ms_per_document + pipeline.cpu_ms_per_page for each page",
        }
    }

    /// For chunking: `pipeline.cpu_ms_per_page` for each of `pages`.
    pub(crate) fn chunking(config: &PipelineConfig, pages: u32) -> Self {
        let ms = config
            .cpu_ms_per_page
            .saturating_mul(u64::from(pages.max(1)));
        CpuBudget {
            limit: Duration::from_millis(ms),
            used_nanos: AtomicU64::new(0),
            sized_by: "pipeline.cpu_ms_per_page for each page",
        }
    }

    /// What is left.
    pub(crate) fn left(&self) -> Duration {
        self.limit.saturating_sub(Duration::from_nanos(
            self.used_nanos.load(Ordering::Relaxed),
        ))
    }

    /// Charges `cpu` to the document.
    pub(crate) fn spend(&self, cpu: Duration) {
        let nanos = u64::try_from(cpu.as_nanos()).unwrap_or(u64::MAX);
        self.used_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Why `what` was not done once the budget is spent.
    fn spent(&self, what: &str) -> String {
        format!(
            "the document used up its CPU budget of {:.1} s ({}) before {what}",
            self.limit.as_secs_f64(),
            self.sized_by
        )
    }
}

/// What one turn of parsing came to.
enum Outcome {
    /// Every page of the range, with its text or its own error.
    Parsed(Vec<PageResult>),
    /// The range failed as a whole: to be retried page by page.
    Split,
}

/// Which pages are left to hand out, and which turn runs which.
struct Work {
    /// The next batch of `Parsing::ranges` not yet handed out.
    next: usize,
    /// Single pages of failed batches, in page order, waiting for a turn.
    retries: VecDeque<Range<usize>>,
    /// The range each running turn holds, to report it if it is lost.
    running: HashMap<usize, (Range<usize>, bool)>,
}

/// The parsing half of a job, run batch by batch on the lanes' workers.
///
/// Each call may use the share of what is left of the document's
/// [`CpuBudget`] that its pages are of the pages not yet parsed — for a
/// batch, half of it and at most `batch_cpu_per_page` a page, so that a
/// slow batch soon gives its worker back and, having failed as a whole,
/// can hand itself back as one turn per page, each of which waits for its
/// turn in the lane and may use its own share (at most `retry_cpu`): a page
/// that spun in its batch is not retried at full price, and a good page
/// beside it still gets the CPU it needs.
pub(crate) struct Parsing {
    pub(crate) doc: Arc<PdfDocument>,
    pub(crate) parser: Arc<Pool<PageParserComponent>>,
    pub(crate) draw: Option<Draw>,
    pub(crate) ranges: Vec<Range<usize>>,
    pub(crate) job: Arc<str>,
    pub(crate) lane: Lane,
    pub(crate) cancel: Arc<AtomicBool>,
    pub(crate) cpu: Arc<CpuBudget>,
    pub(crate) retry_cpu: Duration,
    /// CPU time per page a batch's first attempt may use, at most.
    pub(crate) batch_cpu_per_page: Duration,
    pub(crate) counters: Arc<DocCounters>,
    pub(crate) results: mpsc::Sender<(usize, Vec<PageResult>)>,
    work: Mutex<Work>,
    /// Pages not yet reported: what the CPU budget left is shared among.
    unfinished: AtomicUsize,
}

impl Parsing {
    /// The parsing of `doc` in batches of `ranges`; see the fields.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        doc: Arc<PdfDocument>,
        parser: Arc<Pool<PageParserComponent>>,
        draw: Option<Draw>,
        ranges: Vec<Range<usize>>,
        job: Arc<str>,
        lane: Lane,
        cancel: Arc<AtomicBool>,
        cpu: Arc<CpuBudget>,
        retry_cpu: Duration,
        batch_cpu_per_page: Duration,
        counters: Arc<DocCounters>,
        results: mpsc::Sender<(usize, Vec<PageResult>)>,
    ) -> Parsing {
        Parsing {
            doc,
            parser,
            draw,
            job,
            lane,
            cancel,
            cpu,
            retry_cpu,
            batch_cpu_per_page,
            counters,
            results,
            unfinished: AtomicUsize::new(ranges.iter().map(|r| r.len()).sum()),
            work: Mutex::new(Work {
                next: 0,
                retries: VecDeque::new(),
                running: HashMap::new(),
            }),
            ranges,
        }
    }

    /// The batches of `pages` pages, `batch` at a time.
    pub(crate) fn ranges(pages: u32, batch: u32) -> Vec<Range<usize>> {
        let (total, batch) = (pages as usize, batch.max(1) as usize);
        (0..total)
            .step_by(batch)
            .map(|s| s..(s + batch).min(total))
            .collect()
    }

    fn work(&self) -> std::sync::MutexGuard<'_, Work> {
        self.work.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Parses `range`: `retry` when it is a page of a batch that failed.
    fn attempt(&self, range: Range<usize>, retry: bool) -> Outcome {
        let error_all = |why: &str| {
            range
                .clone()
                .map(|p| (p as u32 + 1, Err(why.to_string())))
                .collect()
        };
        if self.cancel.load(Ordering::Relaxed) {
            return Outcome::Parsed(error_all("the job was cancelled"));
        }
        let left = self.cpu.left();
        if left.is_zero() {
            self.counters
                .cpu_budget_pages
                .fetch_add(range.len() as u64, Ordering::Relaxed);
            return Outcome::Parsed(error_all(&self.cpu.spent("this page was parsed")));
        }
        // The range's fair share of what is left. A batch gets half of it,
        // and at most a quarter of `cpu_ms_per_page` a page, so that a slow
        // batch soon gives its worker back, and its pages can still be
        // retried one by one, each with its own share.
        let unfinished = self.unfinished.load(Ordering::Relaxed).max(range.len());
        let share = left.mul_f64(range.len() as f64 / unfinished as f64);
        let allowance = if retry {
            share.min(self.retry_cpu)
        } else {
            (share / 2).min(self.batch_cpu_per_page * range.len() as u32)
        };
        let started = crate::meter::thread_cpu();
        let parsed = parse_batch(self, range.clone(), allowance);
        if let (Some(a), Some(b)) = (started, crate::meter::thread_cpu()) {
            self.cpu.spend(b.saturating_sub(a));
        }
        match parsed {
            Ok(pages) => Outcome::Parsed(pages),
            Err(Failure::Cancelled(why)) => Outcome::Parsed(error_all(&why)),
            Err(Failure::Other(_) | Failure::Cpu) if range.len() > 1 => Outcome::Split,
            // The budget, not the page, ran out.
            Err(Failure::Cpu) if self.cpu.left().is_zero() => {
                self.counters
                    .cpu_budget_pages
                    .fetch_add(range.len() as u64, Ordering::Relaxed);
                Outcome::Parsed(error_all(&self.cpu.spent("this page was parsed")))
            }
            Err(Failure::Cpu) => Outcome::Parsed(error_all(&format!(
                "the page used its share of the document's CPU budget ({} ms; pipeline.cpu_ms_per_page, pipeline.page_retry_cpu_ms) and was stopped",
                allowance.as_millis()
            ))),
            Err(Failure::Other(why)) => Outcome::Parsed(error_all(&why)),
        }
    }
}

impl Batches for Parsing {
    fn run(&self, index: usize, worker: Lane) -> Ran {
        let taken = {
            let mut work = self.work();
            let taken = match work.retries.pop_front() {
                Some(page) => Some((page, true)),
                None => self.ranges.get(work.next).map(|r| (r.clone(), false)),
            };
            if let Some((range, retry)) = &taken {
                if !retry {
                    work.next += 1;
                }
                work.running.insert(index, (range.clone(), *retry));
            }
            taken
        };
        let Some((range, retry)) = taken else {
            return Ran::default();
        };
        let span = tracing::debug_span!(
            "batch",
            job = %self.job,
            lane = %self.lane,
            worker = %worker,
            first_page = range.start + 1,
            pages = range.len(),
            retry,
        );
        let _enter = span.enter();
        let started = crate::meter::thread_cpu();
        let outcome = self.attempt(range.clone(), retry);
        let cpu = started
            .zip(crate::meter::thread_cpu())
            .map_or(Duration::ZERO, |(a, b)| b.saturating_sub(a));
        let mut work = self.work();
        work.running.remove(&index);
        match outcome {
            Outcome::Parsed(pages) => {
                drop(work);
                self.unfinished.fetch_sub(pages.len(), Ordering::Relaxed);
                let _ = self.results.send((range.start, pages));
                Ran { cpu, split_into: 0 }
            }
            Outcome::Split => {
                tracing::debug!("the batch failed as a whole; retrying it page by page");
                work.retries.extend(range.clone().map(|p| p..p + 1));
                work.retries.make_contiguous().sort_by_key(|r| r.start);
                Ran {
                    cpu,
                    split_into: range.len(),
                }
            }
        }
    }

    fn lost(&self, index: usize, why: String) {
        let Some((range, _)) = self.work().running.remove(&index) else {
            return;
        };
        let pages = range
            .map(|p| {
                (
                    p as u32 + 1,
                    Err(format!("the host failed on this page: {why}")),
                )
            })
            .collect::<Vec<_>>();
        let first = pages.first().map_or(0, |p: &PageResult| p.0 as usize - 1);
        let _ = self.results.send((first, pages));
    }
}

/// A document accepted into a lane. Its batches are parsed on the lanes'
/// workers as soon as it has its turn; [`Job::run`] collects them in page
/// order, chunks them, and reports them. Dropping a job abandons it.
pub struct Job {
    pub(crate) id: Arc<str>,
    pub(crate) pages: u32,
    pub(crate) submitted: Instant,
    pub(crate) ticket: Ticket,
    /// Parsed pages, by the index of the first page of each report.
    pub(crate) results: mpsc::Receiver<(usize, Vec<PageResult>)>,
    pub(crate) chunker: Arc<Pool<ChunkerComponent>>,
    pub(crate) chunk_draw: Option<Draw>,
    pub(crate) options: DocumentOptions,
    pub(crate) cancel: Arc<AtomicBool>,
    /// The document's CPU budget for chunking.
    pub(crate) chunk_cpu: CpuBudget,
    /// Longest text a page may have, in bytes.
    pub(crate) max_page_text: u64,
    /// Most text one call to the chunker is given, in bytes.
    pub(crate) chunk_input: usize,
    pub(crate) counters: Arc<DocCounters>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("id", &self.id)
            .field("lane", &self.lane())
            .field("pages", &self.pages)
            .finish_non_exhaustive()
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        // Workers stop drawing budget for it; the ticket leaves the lane.
        self.cancel.store(true, Ordering::Relaxed);
    }
}

impl Job {
    /// The job's id, as given at submission.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The lane it was put in.
    pub fn lane(&self) -> Lane {
        self.ticket.lane()
    }

    /// Pages in the document.
    pub fn pages(&self) -> u32 {
        self.pages
    }

    /// Collects the job's pages in order, chunks them, and sends events to
    /// `sink` as they are ready; returns when the document is done.
    pub fn run(self, sink: &mut dyn FnMut(Event)) -> Summary {
        let span =
            tracing::info_span!("job", job = %self.id, lane = %self.lane(), pages = self.pages);
        let _enter = span.enter();
        let total = self.pages as usize;
        let mut summary = Summary {
            pages: self.pages,
            ..Summary::default()
        };
        let mut chunking = Chunking::new(&self, self.options.emit_pages);
        let mut waiting: BTreeMap<usize, Vec<PageResult>> = BTreeMap::new();
        let mut done = 0;
        while done < total {
            let (first, pages) = match self.results.recv() {
                Ok(r) => r,
                Err(_) => {
                    // The host shut down: say what will not come.
                    let lost = (done as u32 + 1..=self.pages).map(|page| Event::PageError {
                        page,
                        error: "the host shut down before this page was parsed".into(),
                    });
                    for event in lost {
                        summary.page_errors += 1;
                        self.counters.page_errors.fetch_add(1, Ordering::Relaxed);
                        sink(event);
                    }
                    break;
                }
            };
            waiting.insert(first, pages);
            while let Some(mut pages) = waiting.remove(&done) {
                if pages.is_empty() {
                    // Nothing to show for it: never expected, never stuck on.
                    self.ticket.consumed();
                    continue;
                }
                done += pages.len();
                for (_, text) in &mut pages {
                    if let Ok(t) = text
                        && t.len() as u64 > self.max_page_text
                    {
                        *text = Err(format!(
                            "the page's text is longer than {} MiB (pdf.max_page_text_mib; at most an eighth of pipeline.memory_mib)",
                            self.max_page_text >> 20
                        ));
                    }
                }
                let last = done >= total;
                let c = &self.counters;
                c.pages.fetch_add(pages.len() as u64, Ordering::Relaxed);
                let before = (summary.chunks, summary.page_errors);
                chunking.feed(pages, last, &mut summary, sink);
                c.chunks
                    .fetch_add(u64::from(summary.chunks - before.0), Ordering::Relaxed);
                c.page_errors
                    .fetch_add(u64::from(summary.page_errors - before.1), Ordering::Relaxed);
                sink(Event::Progress {
                    done: done as u32,
                    total: self.pages,
                });
                self.ticket.consumed();
            }
        }
        summary.elapsed = self.submitted.elapsed();
        self.counters.jobs.fetch_add(1, Ordering::Relaxed);
        summary
    }
}

/// Why parsing a range failed.
enum Failure {
    /// The job was cancelled while it waited for its budget.
    Cancelled(String),
    /// The parser ran out of the CPU time it was allowed.
    Cpu,
    /// Anything else: the range could not be cut, the parser trapped, ran
    /// out of memory or time, or failed the batch as a whole.
    Other(String),
}

/// Parses pages `range` in one call allowed `cpu` of CPU time.
fn parse_batch(
    p: &Parsing,
    range: Range<usize>,
    cpu: Duration,
) -> Result<Vec<PageResult>, Failure> {
    let first = range.start as u32 + 1;
    let limit = WaitLimit::UntilCancelled(&p.cancel);
    let charge = p
        .draw
        .as_ref()
        .map(|d| d.charge(p.lane, d.for_pages(range.len()), limit))
        .transpose()
        .map_err(|e| Failure::Cancelled(e.to_string()))?;
    // Failures before the parser runs give the tokens back.
    let refund = |why: String| {
        if let Some(c) = charge {
            c.refund();
        }
        Failure::Other(why)
    };
    let pdf = p
        .doc
        .batch(range.clone())
        .map_err(|e| refund(format!("cannot cut the page out of the document: {e}")))?;
    let mut lease = p
        .parser
        .take(None, Some(p.job.clone()))
        .map_err(|e| refund(e.to_string()))?;
    let parsed = lease
        .call_within(Some(cpu), |world, store| {
            world
                .warmlane_worker_page_parser()
                .call_parse(store, &pdf, first)
        })
        .map_err(|e| match e {
            CallError::CpuLimit { .. } => Failure::Cpu,
            e => Failure::Other(e.to_string()),
        })?
        .map_err(Failure::Other)?;
    drop(lease);
    // Trust nothing: one result per page, in order, whatever the guest said.
    let numbers = first..first + range.len() as u32;
    let mut by_number: BTreeMap<u32, Result<String, String>> = parsed
        .into_iter()
        .filter(|p| numbers.contains(&p.number))
        .map(|p| (p.number, p.text))
        .collect();
    Ok(numbers
        .map(|n| {
            (
                n,
                by_number
                    .remove(&n)
                    .unwrap_or_else(|| Err("the parser returned nothing for this page".into())),
            )
        })
        .collect())
}

/// The chunking stage: reports pages in order and feeds their texts to the
/// chunker, holding back the last chunk of each call (it may continue on
/// the next pages). A page text longer than the job's `chunk_input` is fed
/// in pieces of at most that size, cut at white space where there is some;
/// consecutive pieces of one page are joined as they are by the chunker.
/// When a call fails, its pages are fed one by one, so that only the page
/// that cannot be chunked becomes an error.
struct Chunking<'a> {
    job: &'a Job,
    options: Options,
    emit_pages: bool,
    carry: Vec<PageText>,
    next_index: u32,
    /// The page whose chunking failed: the rest of its pieces are dropped.
    failed: Option<u32>,
}

impl<'a> Chunking<'a> {
    fn new(job: &'a Job, emit_pages: bool) -> Self {
        let o = &job.options;
        let unit = match o.chunk_unit {
            ChunkUnit::Tokens => SizeUnit::Tokens,
            ChunkUnit::Characters => SizeUnit::Characters,
        };
        Chunking {
            job,
            options: Options {
                max_size: o.chunk_size,
                overlap: o.chunk_overlap,
                unit,
            },
            emit_pages,
            carry: Vec::new(),
            next_index: 0,
            failed: None,
        }
    }

    fn feed(
        &mut self,
        pages: Vec<PageResult>,
        last: bool,
        summary: &mut Summary,
        sink: &mut dyn FnMut(Event),
    ) {
        let mut texts = Vec::new();
        for (number, result) in pages {
            match result {
                Ok(text) => {
                    if self.emit_pages {
                        sink(Event::Page {
                            page: number,
                            text: text.clone(),
                        });
                    }
                    texts.push(PageText {
                        number,
                        offset: 0,
                        text,
                    });
                }
                Err(error) => {
                    summary.page_errors += 1;
                    sink(Event::PageError {
                        page: number,
                        error,
                    });
                }
            }
        }
        // Calls of at most `chunk_input` bytes each (beside the carry).
        let max = self.job.chunk_input.max(1);
        let mut calls: Vec<Vec<PageText>> = vec![Vec::new()];
        let mut size = 0;
        for piece in texts.into_iter().flat_map(|t| pieces(t, max)) {
            if size + piece.text.len() > max
                && let Some(call) = calls.last()
                && !call.is_empty()
            {
                calls.push(Vec::new());
                size = 0;
            }
            size += piece.text.len();
            if let Some(call) = calls.last_mut() {
                call.push(piece);
            }
        }
        let n = calls.len();
        for (i, call) in calls.into_iter().enumerate() {
            self.call(call, last && i + 1 == n, summary, sink);
        }
    }

    /// One call on the carry and `texts`; where it fails, page by page.
    fn call(
        &mut self,
        texts: Vec<PageText>,
        last: bool,
        summary: &mut Summary,
        sink: &mut dyn FnMut(Event),
    ) {
        let mut input = std::mem::take(&mut self.carry);
        let fresh = input.len();
        input.extend(texts.into_iter().filter(|t| Some(t.number) != self.failed));
        if input.iter().all(|p| p.text.trim().is_empty()) {
            return;
        }
        let error = match self.split(&input) {
            Ok(chunks) => {
                self.emit(&input, chunks, last, summary, sink);
                return;
            }
            Err(error) => error,
        };
        let mut pages: Vec<Vec<PageText>> = Vec::new();
        for t in input.drain(fresh..) {
            match pages.last_mut() {
                Some(page) if page[0].number == t.number => page.push(t),
                _ => pages.push(vec![t]),
            }
        }
        if pages.len() > 1 {
            // Find the page that cannot be chunked: one at a time.
            self.carry = input;
            let n = pages.len();
            for (i, page) in pages.into_iter().enumerate() {
                self.call(page, last && i + 1 == n, summary, sink);
            }
            return;
        }
        // This page cannot be chunked: keep what came before it, report it.
        if !input.is_empty()
            && let Ok(chunks) = self.split(&input)
        {
            self.emit(&input, chunks, true, summary, sink);
        }
        if let Some(piece) = pages.first().and_then(|p| p.first()) {
            self.failed = Some(piece.number);
            summary.page_errors += 1;
            let error = if piece.offset > 0 {
                format!(
                    "chunking failed from byte {} of the page on: {error}",
                    piece.offset
                )
            } else {
                format!("chunking failed: {error}")
            };
            sink(Event::PageError {
                page: piece.number,
                error,
            });
        }
    }

    /// Reports `chunks` of `input`, holding back the last unless `last`.
    fn emit(
        &mut self,
        input: &[PageText],
        mut chunks: Vec<WitChunk>,
        last: bool,
        summary: &mut Summary,
        sink: &mut dyn FnMut(Event),
    ) {
        if !last && let Some(held) = chunks.pop() {
            self.carry = carry_from(input, held.first_page, held.start);
        }
        for c in chunks {
            summary.chunks += 1;
            sink(Event::Chunk(ChunkRecord {
                index: self.next_index,
                first_page: c.first_page,
                last_page: c.last_page,
                start: c.start,
                end: c.end,
                size: c.size,
                text: c.text,
            }));
            self.next_index += 1;
        }
    }

    /// One call to the chunker, paid from its budget if it has one, and
    /// charged to the document's CPU: a call may use what the document has
    /// left, and one of an ordinary page's size at least `CHUNK_FLOOR`.
    fn split(&self, input: &[PageText]) -> Result<Vec<WitChunk>, String> {
        let job = self.job;
        let bytes: usize = input.iter().map(|p| p.text.len()).sum();
        let left = job.chunk_cpu.left();
        let allowance = if bytes <= ORDINARY_PAGE {
            left.max(CHUNK_FLOOR)
        } else {
            left
        };
        let spent = || job.chunk_cpu.spent("this part of the page was chunked");
        if allowance.is_zero() {
            return Err(spent());
        }
        let limit = WaitLimit::UntilCancelled(&job.cancel);
        let charge = job
            .chunk_draw
            .as_ref()
            .map(|d| d.charge(job.lane(), d.for_pages(input.len()), limit))
            .transpose()
            .map_err(|e| e.to_string())?;
        let mut lease = job.chunker.take(None, Some(job.id.clone())).map_err(|e| {
            if let Some(c) = charge {
                c.refund();
            }
            e.to_string()
        })?;
        let result = lease.call_within(Some(allowance), |world, store| {
            world
                .warmlane_worker_chunker()
                .call_split(store, input, self.options)
        });
        job.chunk_cpu.spend(lease.cpu_used());
        match result {
            Err(CallError::CpuLimit { .. }) if job.chunk_cpu.left().is_zero() => Err(spent()),
            Err(e) => Err(e.to_string()),
            Ok(chunks) => chunks,
        }
    }
}

type WitChunk = crate::bindings::chunker::exports::warmlane::worker::chunker::Chunk;

/// CPU time a call to the chunker for an ordinary page's worth of text may
/// use even once its document's budget is spent: a page that was parsed is
/// not lost for want of chunking, unless its text is out of the ordinary.
const CHUNK_FLOOR: Duration = Duration::from_millis(100);
/// What counts as an ordinary page's text, in bytes (most hold a few KiB).
const ORDINARY_PAGE: usize = 64 << 10;

/// `text` in pieces of at most `max` bytes, each cut after white space
/// where the last quarter of the piece has some, else at a character
/// boundary.
fn pieces(text: PageText, max: usize) -> Vec<PageText> {
    if text.text.len() <= max {
        return vec![text];
    }
    let mut out = Vec::new();
    let mut at = 0;
    let s = text.text.as_str();
    while at < s.len() {
        let mut end = (at + max).min(s.len());
        if end < s.len() {
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            let floor = at + max * 3 / 4;
            if let Some(ws) = s[floor.min(end)..end].rfind(char::is_whitespace) {
                let cut = floor.min(end) + ws;
                let width = s[cut..].chars().next().map_or(1, char::len_utf8);
                end = cut + width;
            }
            if end <= at {
                end = (at + 1..=s.len())
                    .find(|&i| s.is_char_boundary(i))
                    .unwrap_or(s.len());
            }
        }
        out.push(PageText {
            number: text.number,
            offset: text.offset + at as u32,
            text: s[at..end].to_string(),
        });
        at = end;
    }
    out
}

/// The input from (`page`, `offset` within that page's full text) on.
fn carry_from(input: &[PageText], page: u32, offset: u32) -> Vec<PageText> {
    let Some(at) = input.iter().position(|p| p.number == page) else {
        return input.to_vec();
    };
    let mut out = Vec::with_capacity(input.len() - at);
    let first = &input[at];
    let local = (offset.saturating_sub(first.offset) as usize).min(first.text.len());
    let local = (0..=local)
        .rev()
        .find(|&i| first.text.is_char_boundary(i))
        .unwrap_or(0);
    out.push(PageText {
        number: first.number,
        offset: first.offset + local as u32,
        text: first.text[local..].to_string(),
    });
    out.extend(input[at + 1..].iter().cloned());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_texts_become_pieces_cut_after_white_space() {
        let text = "word ".repeat(1000) + &"é".repeat(3000);
        let parts = pieces(
            PageText {
                number: 4,
                offset: 10,
                text: text.clone(),
            },
            1024,
        );
        assert!(parts.iter().all(|p| p.text.len() <= 1024 && p.number == 4));
        assert_eq!(
            parts.iter().map(|p| p.text.as_str()).collect::<String>(),
            text
        );
        // Offsets meet, and cuts fall after a space while there are spaces.
        for w in parts.windows(2) {
            assert_eq!(w[0].offset + w[0].text.len() as u32, w[1].offset);
        }
        assert!(parts[0].text.ends_with(' '), "{:?}", &parts[0].text[1000..]);
        assert_eq!(parts[0].offset, 10);
        let short = pieces(
            PageText {
                number: 1,
                offset: 0,
                text: "short".into(),
            },
            1024,
        );
        assert_eq!(short.len(), 1);
    }

    #[test]
    fn carry_keeps_the_tail_with_its_offset() {
        let input = vec![
            PageText {
                number: 1,
                offset: 0,
                text: "abc".into(),
            },
            PageText {
                number: 2,
                offset: 10,
                text: "héllo world".into(),
            },
            PageText {
                number: 3,
                offset: 0,
                text: "next".into(),
            },
        ];
        let carry = carry_from(&input, 2, 12);
        assert_eq!(carry.len(), 2);
        assert_eq!(
            (carry[0].number, carry[0].offset, carry[0].text.as_str()),
            (2, 11, "éllo world")
        );
        assert_eq!(carry[1].text, "next");
    }
}
