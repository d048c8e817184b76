//! Parsing a document's pages: one try at a range of pages in one call to
//! the page parser, under the range's share of the document's CPU budget —
//! the same whether the job runs in this process ([`Parsing`], turns on the
//! lanes' workers) or on a worker replica (`jobs::worker`).
//!
//! Each call may use the share of what is left of the document's parsing
//! budget that its pages are of the pages not yet parsed — for a batch,
//! half of it and at most `batch_cpu_per_page` a page, so that a slow batch
//! soon gives its worker back and, having failed as a whole, can hand
//! itself back as one turn per page, each of which waits for its turn and
//! may use its own share (at most `retry_cpu`): a page that spun in its
//! batch is not retried at full price, and a good page beside it still gets
//! the CPU it needs.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use warmlane_pdf::PdfDocument;

use super::budget::Budget;
use super::{DocCounters, PageResult};
use crate::bindings::parser::PageParserComponent;
use crate::bucket::{Draw, WaitLimit};
use crate::error::CallError;
use crate::lanes::{Batches, Lane, Ran};
use crate::pool::Pool;

/// What one try at a range of pages came to.
pub(crate) enum Outcome {
    /// Every page of the range, with its text or its own error.
    Parsed(Vec<PageResult>),
    /// The range failed as a whole: to be retried page by page.
    Split,
    /// The try was called off (its cancel flag) before the parser ran.
    Abandoned,
}

/// What a try needs to call the parser for a document.
pub(crate) struct ParserCtx<'a> {
    pub(crate) pool: &'a Pool<PageParserComponent>,
    pub(crate) draw: Option<&'a Draw>,
    pub(crate) lane: Lane,
    pub(crate) job: &'a Arc<str>,
    pub(crate) cancel: &'a AtomicBool,
    /// The document's parsing budget.
    pub(crate) budget: &'a dyn Budget,
    pub(crate) counters: &'a DocCounters,
    /// CPU time a page retried alone may use, at most.
    pub(crate) retry_cpu: Duration,
    /// CPU time per page a batch's first try may use, at most.
    pub(crate) batch_cpu_per_page: Duration,
    /// Whether the job's batches may reuse the instance its last batch
    /// used (its owner calls [`Pool::forget_job`] when it is done).
    pub(crate) reuse: bool,
}

/// One try at pages `range` (0-based) of a document of which `unfinished`
/// pages are not parsed yet; `retry` when it is a page of a batch that
/// failed. `pdf` cuts the range out of the document.
pub(crate) fn attempt(
    ctx: &ParserCtx<'_>,
    range: Range<usize>,
    retry: bool,
    unfinished: usize,
    pdf: impl FnOnce() -> Result<Vec<u8>, String>,
) -> Outcome {
    let error_all = |why: &str| {
        range
            .clone()
            .map(|p| (p as u32 + 1, Err(why.to_string())))
            .collect()
    };
    if ctx.cancel.load(Ordering::Relaxed) {
        return Outcome::Abandoned;
    }
    let budget = ctx.budget;
    let over_budget = || {
        ctx.counters
            .cpu_budget_pages
            .fetch_add(range.len() as u64, Ordering::Relaxed);
        Outcome::Parsed(error_all(&budget.spent("this page was parsed")))
    };
    let left = budget.left();
    if left.is_zero() {
        return over_budget();
    }
    // The range's fair share of what is left. A batch gets half of it, and
    // at most `batch_cpu_per_page` a page, so that a slow batch soon gives
    // its worker back, and its pages can still be retried one by one, each
    // with its own share.
    let unfinished = unfinished.max(range.len());
    let share = left.mul_f64(range.len() as f64 / unfinished as f64);
    let allowance = if retry {
        share.min(ctx.retry_cpu)
    } else {
        (share / 2).min(ctx.batch_cpu_per_page * range.len() as u32)
    };
    let started = crate::meter::thread_cpu();
    let parsed = call(ctx, range.clone(), allowance, pdf);
    if let (Some(a), Some(b)) = (started, crate::meter::thread_cpu()) {
        budget.spend(b.saturating_sub(a));
    }
    match parsed {
        Ok(pages) => Outcome::Parsed(pages),
        Err(Failure::Cancelled) => Outcome::Abandoned,
        Err(Failure::Other(_) | Failure::Cpu) if range.len() > 1 => Outcome::Split,
        // The budget, not the page, ran out.
        Err(Failure::Cpu) if budget.left().is_zero() => over_budget(),
        Err(Failure::Cpu) => Outcome::Parsed(error_all(&format!(
            "the page used its share of the document's CPU budget ({} ms; pipeline.cpu_ms_per_page, pipeline.page_retry_cpu_ms) and was stopped",
            allowance.as_millis()
        ))),
        Err(Failure::Other(why)) => Outcome::Parsed(error_all(&why)),
    }
}

/// Why a call failed.
enum Failure {
    /// The try was called off while it waited for its budget.
    Cancelled,
    /// The parser ran out of the CPU time it was allowed.
    Cpu,
    /// Anything else: the range could not be cut, the parser trapped, ran
    /// out of memory or time, or failed the batch as a whole.
    Other(String),
}

/// Parses pages `range` in one call allowed `cpu` of CPU time.
fn call(
    ctx: &ParserCtx<'_>,
    range: Range<usize>,
    cpu: Duration,
    pdf: impl FnOnce() -> Result<Vec<u8>, String>,
) -> Result<Vec<PageResult>, Failure> {
    let first = range.start as u32 + 1;
    let limit = WaitLimit::UntilCancelled(ctx.cancel);
    let charge = ctx
        .draw
        .map(|d| d.charge(ctx.lane, d.for_pages(range.len()), limit))
        .transpose()
        .map_err(|_| Failure::Cancelled)?;
    // Failures before the parser runs give the tokens back.
    let refund = |why: String| {
        if let Some(c) = charge {
            c.refund();
        }
        Failure::Other(why)
    };
    let pdf = pdf().map_err(|e| refund(format!("cannot cut the page out of the document: {e}")))?;
    let mut lease = ctx
        .pool
        .take_for_job(ctx.job.clone(), ctx.reuse)
        .map_err(|e| refund(e.to_string()))?;
    lease.in_lane(ctx.lane);
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

/// Which pages are left to hand out, and which turn runs which.
struct Work {
    /// The next batch of `Parsing::ranges` not yet handed out.
    next: usize,
    /// Single pages of failed batches, in page order, waiting for a turn.
    retries: VecDeque<Range<usize>>,
    /// The range each running turn holds, to report it if it is lost.
    running: HashMap<usize, Range<usize>>,
}

/// The parsing half of a job run in this process, batch by batch on the
/// lanes' workers: a batch that fails as a whole hands itself back as one
/// turn per page.
pub(crate) struct Parsing {
    pub(crate) doc: Arc<PdfDocument>,
    pub(crate) parser: Arc<Pool<PageParserComponent>>,
    pub(crate) draw: Option<Draw>,
    pub(crate) job: Arc<str>,
    pub(crate) lane: Lane,
    pub(crate) cancel: Arc<AtomicBool>,
    pub(crate) budget: Arc<dyn Budget + Send + Sync>,
    pub(crate) retry_cpu: Duration,
    pub(crate) batch_cpu_per_page: Duration,
    pub(crate) counters: Arc<DocCounters>,
    pub(crate) results: mpsc::Sender<(usize, Vec<PageResult>)>,
    /// The job's span: its batches' spans are its children.
    span: tracing::Span,
    ranges: Vec<Range<usize>>,
    work: Mutex<Work>,
    /// Pages not yet reported: what the CPU budget left is shared among.
    unfinished: AtomicUsize,
}

/// What a [`Parsing`] is made of, besides its batches.
pub(crate) struct ParsingParts {
    pub(crate) doc: Arc<PdfDocument>,
    pub(crate) parser: Arc<Pool<PageParserComponent>>,
    pub(crate) draw: Option<Draw>,
    pub(crate) job: Arc<str>,
    pub(crate) lane: Lane,
    pub(crate) cancel: Arc<AtomicBool>,
    pub(crate) budget: Arc<dyn Budget + Send + Sync>,
    pub(crate) retry_cpu: Duration,
    pub(crate) batch_cpu_per_page: Duration,
    pub(crate) counters: Arc<DocCounters>,
    pub(crate) results: mpsc::Sender<(usize, Vec<PageResult>)>,
    pub(crate) span: tracing::Span,
}

impl Parsing {
    /// The parsing of a document in batches of `ranges`.
    pub(crate) fn new(parts: ParsingParts, ranges: Vec<Range<usize>>) -> Parsing {
        let p = parts;
        Parsing {
            doc: p.doc,
            parser: p.parser,
            draw: p.draw,
            job: p.job,
            lane: p.lane,
            cancel: p.cancel,
            budget: p.budget,
            retry_cpu: p.retry_cpu,
            batch_cpu_per_page: p.batch_cpu_per_page,
            counters: p.counters,
            results: p.results,
            span: p.span,
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
}

impl Drop for Parsing {
    fn drop(&mut self) {
        // Its batches are all done: the instance kept for the next one
        // would only hold the room of a ready one.
        self.parser.forget_job(&self.job);
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
                work.running.insert(index, range.clone());
            }
            taken
        };
        let Some((range, retry)) = taken else {
            return Ran::default();
        };
        let span = tracing::info_span!(
            parent: &self.span,
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
        let ctx = ParserCtx {
            pool: &self.parser,
            draw: self.draw.as_ref(),
            lane: self.lane,
            job: &self.job,
            cancel: &self.cancel,
            budget: &*self.budget,
            counters: &self.counters,
            retry_cpu: self.retry_cpu,
            batch_cpu_per_page: self.batch_cpu_per_page,
            reuse: true,
        };
        let unfinished = self.unfinished.load(Ordering::Relaxed);
        let outcome = attempt(&ctx, range.clone(), retry, unfinished, || {
            self.doc.batch(range.clone()).map_err(|e| e.to_string())
        });
        let cpu = started
            .zip(crate::meter::thread_cpu())
            .map_or(Duration::ZERO, |(a, b)| b.saturating_sub(a));
        let mut work = self.work();
        work.running.remove(&index);
        let pages = match outcome {
            Outcome::Split => {
                tracing::debug!("the batch failed as a whole; retrying it page by page");
                work.retries.extend(range.clone().map(|p| p..p + 1));
                work.retries.make_contiguous().sort_by_key(|r| r.start);
                return Ran {
                    cpu,
                    split_into: range.len(),
                };
            }
            Outcome::Parsed(pages) => pages,
            Outcome::Abandoned => range
                .clone()
                .map(|p| (p as u32 + 1, Err("the job was cancelled".to_string())))
                .collect(),
        };
        drop(work);
        self.unfinished.fetch_sub(pages.len(), Ordering::Relaxed);
        let _ = self.results.send((range.start, pages));
        Ran { cpu, split_into: 0 }
    }

    fn lost(&self, index: usize, why: String) {
        let Some(range) = self.work().running.remove(&index) else {
            return;
        };
        let first = range.start;
        let pages = range
            .map(|p| {
                (
                    p as u32 + 1,
                    Err(format!("the host failed on this page: {why}")),
                )
            })
            .collect::<Vec<_>>();
        let _ = self.results.send((first, pages));
    }
}
