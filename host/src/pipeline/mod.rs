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
//!
//! [`parsing`] and [`chunking`] are the two halves, shared by jobs run in
//! this process (here) and jobs shared by replicas (`jobs`); [`budget`]
//! holds what a document may spend.

pub(crate) mod budget;
pub(crate) mod chunking;
pub(crate) mod parsing;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use crate::bindings::chunker::ChunkerComponent;
use crate::bindings::chunker::exports::warmlane::worker::chunker::{Options, SizeUnit};
use crate::bucket::Draw;
use crate::config::ChunkUnit;
use crate::lanes::{Lane, Ticket};
use crate::pool::Pool;
use budget::CpuBudget;
use chunking::{ChunkState, ChunkerCtx};

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

impl DocumentOptions {
    /// The chunker's options.
    pub(crate) fn wit(&self) -> Options {
        Options {
            max_size: self.chunk_size,
            overlap: self.chunk_overlap,
            unit: match self.chunk_unit {
                ChunkUnit::Tokens => SizeUnit::Tokens,
                ChunkUnit::Characters => SizeUnit::Characters,
            },
        }
    }
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

/// A page's number and its text, or why it has none.
pub(crate) type PageResult = (u32, Result<String, String>);

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

/// A document accepted into a lane. Its batches are parsed on the lanes'
/// workers as soon as it has its turn (a light job's, when the light lane
/// has an idle worker, on the thread that runs it instead); [`Job::run`]
/// collects them in page order, chunks them, and reports them. Dropping a
/// job abandons it.
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
    /// The job's span, from its submission to its last chunk.
    pub(crate) span: tracing::Span,
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
        self.chunker.forget_job(&self.id);
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

    /// The flag that cancels the job: its pages not yet parsed become
    /// errors that say so.
    pub(crate) fn canceller(&self) -> Arc<AtomicBool> {
        self.cancel.clone()
    }

    /// Collects the job's pages in order, chunks them, and sends events to
    /// `sink` as they are ready; returns when the document is done.
    pub fn run(self, sink: &mut dyn FnMut(Event)) -> Summary {
        let span = self.span.clone();
        let _enter = span.enter();
        let total = self.pages as usize;
        let mut summary = Summary {
            pages: self.pages,
            ..Summary::default()
        };
        let ctx = ChunkerCtx {
            pool: &self.chunker,
            draw: self.chunk_draw.as_ref(),
            lane: self.lane(),
            job: &self.id,
            cancel: &self.cancel,
            budget: &self.chunk_cpu,
            options: self.options.wit(),
            input_max: self.chunk_input,
            max_page_text: self.max_page_text,
            emit_pages: self.options.emit_pages,
            reuse: true,
        };
        let mut chunking = ChunkState::default();
        let mut waiting: BTreeMap<usize, Vec<PageResult>> = BTreeMap::new();
        let mut done = 0;
        while done < total {
            let (first, pages) = match self.next_report() {
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
            while let Some(pages) = waiting.remove(&done) {
                if pages.is_empty() {
                    // Nothing to show for it: never expected, never stuck on.
                    self.ticket.consumed();
                    continue;
                }
                done += pages.len();
                let last = done >= total;
                let c = &self.counters;
                c.pages.fetch_add(pages.len() as u64, Ordering::Relaxed);
                let before = (summary.chunks, summary.page_errors);
                chunking.feed(&ctx, pages, last, &mut summary, sink);
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

    /// The next report of parsed pages. A light job's caller, with nothing
    /// to chunk, parses its job's next batch itself when the light lane has
    /// an idle worker (a heavy job's caller chunks while workers parse).
    fn next_report(&self) -> Result<(usize, Vec<PageResult>), mpsc::RecvError> {
        loop {
            match self.results.try_recv() {
                Ok(report) => return Ok(report),
                Err(mpsc::TryRecvError::Disconnected) => return Err(mpsc::RecvError),
                Err(mpsc::TryRecvError::Empty) => {}
            }
            if self.lane() != Lane::Light || !self.ticket.run_here() {
                return self.results.recv();
            }
        }
    }
}
