//! The document pipeline: a document's batches of pages parsed by warm
//! page-parser instances on the lanes' workers, put back in page order,
//! chunked, and streamed out.
//!
//! A job has at most its lane window of batches handed out and not yet
//! consumed, so memory follows the batches, not the document. A batch that
//! fails as a whole is retried page by page, so one bad page costs only
//! itself. Each attempt draws its cost from the parser's budget, if it has
//! one, and gives it back if it failed before the parser ran.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use crate::bindings::chunker::ChunkerComponent;
use crate::bindings::chunker::exports::warmlane::worker::chunker::{Options, PageText, SizeUnit};
use crate::bindings::parser::PageParserComponent;
use crate::bucket::{Draw, WaitLimit};
use crate::config::ChunkUnit;
use crate::error::CallError;
use crate::lanes::{Batches, Lane, Ticket};
use crate::pdf::PdfDocument;
use crate::pool::Pool;

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
}

/// The parsing half of a job, run batch by batch on the lanes' workers.
pub(crate) struct Parsing {
    pub(crate) doc: Arc<PdfDocument>,
    pub(crate) parser: Arc<Pool<PageParserComponent>>,
    pub(crate) draw: Option<Draw>,
    pub(crate) ranges: Vec<Range<usize>>,
    pub(crate) job: Arc<str>,
    pub(crate) lane: Lane,
    pub(crate) cancel: Arc<AtomicBool>,
    pub(crate) results: mpsc::Sender<(usize, Vec<PageResult>)>,
}

impl Parsing {
    /// The batches of `pages` pages, `batch` at a time.
    pub(crate) fn ranges(pages: u32, batch: u32) -> Vec<Range<usize>> {
        let (total, batch) = (pages as usize, batch.max(1) as usize);
        (0..total)
            .step_by(batch)
            .map(|s| s..(s + batch).min(total))
            .collect()
    }
}

impl Batches for Parsing {
    fn run(&self, index: usize, worker: Lane) {
        let Some(range) = self.ranges.get(index) else {
            return;
        };
        let span = tracing::debug_span!(
            "batch",
            job = %self.job,
            lane = %self.lane,
            worker = %worker,
            first_page = range.start + 1,
            pages = range.len()
        );
        let _enter = span.enter();
        let pages = parse_range(self, range.clone());
        let _ = self.results.send((index, pages));
    }

    fn lost(&self, index: usize, why: String) {
        if let Some(range) = self.ranges.get(index) {
            let pages = range
                .clone()
                .map(|p| {
                    (
                        p as u32 + 1,
                        Err(format!("the host failed on this page: {why}")),
                    )
                })
                .collect();
            let _ = self.results.send((index, pages));
        }
    }
}

/// A document accepted into a lane. Its batches are parsed on the lanes'
/// workers as soon as it has its turn; [`Job::run`] collects them in page
/// order, chunks them, and reports them. Dropping a job abandons it.
pub struct Job {
    pub(crate) id: Arc<str>,
    pub(crate) pages: u32,
    pub(crate) batches: usize,
    pub(crate) submitted: Instant,
    pub(crate) ticket: Ticket,
    pub(crate) results: mpsc::Receiver<(usize, Vec<PageResult>)>,
    pub(crate) chunker: Arc<Pool<ChunkerComponent>>,
    pub(crate) chunk_draw: Option<Draw>,
    pub(crate) options: DocumentOptions,
    pub(crate) cancel: Arc<AtomicBool>,
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
        let total = self.pages;
        let mut summary = Summary {
            pages: total,
            ..Summary::default()
        };
        let mut chunking = Chunking::new(&self, self.options.emit_pages);
        let mut waiting: BTreeMap<usize, Vec<PageResult>> = BTreeMap::new();
        let mut expected = 0;
        let mut done = 0;
        while expected < self.batches {
            let (i, pages) = match self.results.recv() {
                Ok(r) => r,
                Err(_) => {
                    // The host shut down: say what will not come.
                    let lost = (done + 1..=total).map(|page| Event::PageError {
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
            waiting.insert(i, pages);
            while let Some(pages) = waiting.remove(&expected) {
                expected += 1;
                done += pages.len() as u32;
                let last = expected == self.batches;
                let c = &self.counters;
                c.pages.fetch_add(pages.len() as u64, Ordering::Relaxed);
                let before = (summary.chunks, summary.page_errors);
                chunking.feed(pages, last, &mut summary, sink);
                c.chunks
                    .fetch_add(u64::from(summary.chunks - before.0), Ordering::Relaxed);
                c.page_errors
                    .fetch_add(u64::from(summary.page_errors - before.1), Ordering::Relaxed);
                sink(Event::Progress { done, total });
                self.ticket.consumed();
            }
        }
        summary.elapsed = self.submitted.elapsed();
        self.counters.jobs.fetch_add(1, Ordering::Relaxed);
        summary
    }
}

/// Parses pages `range`: as one batch, and page by page if the batch fails.
fn parse_range(p: &Parsing, range: Range<usize>) -> Vec<PageResult> {
    match parse_batch(p, range.clone()) {
        Ok(pages) => pages,
        Err(_) if range.len() > 1 => range
            .flat_map(|page| parse_range(p, page..page + 1))
            .collect(),
        Err(error) => vec![(range.start as u32 + 1, Err(error))],
    }
}

fn parse_batch(p: &Parsing, range: Range<usize>) -> Result<Vec<PageResult>, String> {
    let first = range.start as u32 + 1;
    let limit = WaitLimit::UntilCancelled(&p.cancel);
    let charge = p
        .draw
        .as_ref()
        .map(|d| d.charge(p.lane, d.for_pages(range.len()), limit))
        .transpose()
        .map_err(|e| e.to_string())?;
    // Failures before the parser runs give the tokens back.
    let refund = |why: String| {
        if let Some(c) = charge {
            c.refund();
        }
        why
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
        .call(|world, store| {
            world
                .warmlane_worker_page_parser()
                .call_parse(store, &pdf, first)
        })
        .map_err(|e: CallError| e.to_string())??;
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
/// the next pages).
struct Chunking<'a> {
    job: &'a Job,
    options: Options,
    emit_pages: bool,
    carry: Vec<PageText>,
    next_index: u32,
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
        }
    }

    fn feed(
        &mut self,
        pages: Vec<PageResult>,
        last: bool,
        summary: &mut Summary,
        sink: &mut dyn FnMut(Event),
    ) {
        let mut input = std::mem::take(&mut self.carry);
        for (number, result) in pages {
            match result {
                Ok(text) => {
                    if self.emit_pages {
                        sink(Event::Page {
                            page: number,
                            text: text.clone(),
                        });
                    }
                    input.push(PageText {
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
        if input.iter().all(|p| p.text.trim().is_empty()) {
            return;
        }
        let mut chunks = match self.split(&input) {
            Ok(chunks) => chunks,
            Err(error) => {
                for page in input.iter().filter(|p| p.offset == 0) {
                    summary.page_errors += 1;
                    sink(Event::PageError {
                        page: page.number,
                        error: format!("chunking failed: {error}"),
                    });
                }
                return;
            }
        };
        if !last && let Some(held) = chunks.pop() {
            self.carry = carry_from(&input, held.first_page, held.start);
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

    /// One call to the chunker, paid from its budget if it has one.
    fn split(
        &self,
        input: &[PageText],
    ) -> Result<Vec<crate::bindings::chunker::exports::warmlane::worker::chunker::Chunk>, String>
    {
        let job = self.job;
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
        lease
            .call(|world, store| {
                world
                    .warmlane_worker_chunker()
                    .call_split(store, input, self.options)
            })
            .map_err(|e| e.to_string())?
    }
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
