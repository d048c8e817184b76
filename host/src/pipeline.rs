//! The document pipeline: batches of pages parsed in parallel by warm
//! page-parser instances, put back in page order, chunked, and streamed out.
//!
//! At most `2 × workers` batches are in flight (built, parsing, or waiting
//! for an earlier batch), so memory follows the batches, not the document.
//! A batch that fails as a whole is retried page by page, so one bad page
//! costs only itself.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::bindings::chunker::ChunkerComponent;
use crate::bindings::chunker::exports::warmlane::worker::chunker::{Options, PageText, SizeUnit};
use crate::bindings::parser::PageParserComponent;
use crate::config::ChunkUnit;
use crate::pdf::PdfDocument;
use crate::pool::Pool;

/// How to process one document.
#[derive(Debug, Clone)]
pub struct DocumentOptions {
    /// Pages per batch.
    pub batch_pages: u32,
    /// Batches parsed at once.
    pub workers: usize,
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
    /// Wall-clock time.
    pub elapsed: Duration,
}

type PageResult = (u32, Result<String, String>);

/// A counting semaphore bounding batches in flight.
struct Permits {
    free: Mutex<usize>,
    returned: Condvar,
}

impl Permits {
    fn acquire(&self) {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        while *free == 0 {
            free = self.returned.wait(free).unwrap_or_else(|p| p.into_inner());
        }
        *free -= 1;
    }

    fn release(&self) {
        *self.free.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.returned.notify_one();
    }
}

/// Runs `doc` through `parser` and `chunker`, sending events to `sink` in
/// page order.
pub(crate) fn run(
    doc: &PdfDocument,
    parser: &Pool<PageParserComponent>,
    chunker: &Pool<ChunkerComponent>,
    options: &DocumentOptions,
    job: Arc<str>,
    sink: &mut dyn FnMut(Event),
) -> Summary {
    let start = Instant::now();
    let total = doc.page_count();
    let batch = options.batch_pages.max(1) as usize;
    let batches: Vec<Range<usize>> = (0..total as usize)
        .step_by(batch)
        .map(|s| s..(s + batch).min(total as usize))
        .collect();
    let workers = options.workers.max(1).min(batches.len().max(1));
    let permits = Permits {
        free: Mutex::new(workers * 2),
        returned: Condvar::new(),
    };
    let next = AtomicUsize::new(0);
    let (results_tx, results_rx) = mpsc::channel::<(usize, Vec<PageResult>)>();
    let mut summary = Summary {
        pages: total,
        ..Summary::default()
    };
    let mut chunking = Chunking::new(chunker, options, job.clone());

    std::thread::scope(|scope| {
        for _ in 0..workers {
            let tx = results_tx.clone();
            let (batches, next, permits, job) = (&batches, &next, &permits, job.clone());
            scope.spawn(move || {
                loop {
                    permits.acquire();
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(range) = batches.get(i) else {
                        permits.release();
                        return;
                    };
                    let span = tracing::debug_span!("batch", job = %job, first_page = range.start + 1, pages = range.len());
                    let _enter = span.enter();
                    let pages = parse_range(doc, parser, range.clone(), &job);
                    if tx.send((i, pages)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(results_tx);

        let mut waiting: BTreeMap<usize, Vec<PageResult>> = BTreeMap::new();
        let mut expected = 0;
        let mut done = 0;
        for (i, pages) in results_rx.iter() {
            waiting.insert(i, pages);
            while let Some(pages) = waiting.remove(&expected) {
                expected += 1;
                done += pages.len() as u32;
                let last = expected == batches.len();
                let mut texts = Vec::with_capacity(pages.len());
                for (number, result) in pages {
                    match result {
                        Ok(text) => {
                            if options.emit_pages {
                                sink(Event::Page {
                                    page: number,
                                    text: text.clone(),
                                });
                            }
                            texts.push((number, text));
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
                chunking.feed(texts, last, &mut summary, sink);
                sink(Event::Progress { done, total });
                permits.release();
            }
        }
    });
    summary.elapsed = start.elapsed();
    summary
}

/// Parses pages `range`: as one batch, and page by page if the batch fails.
fn parse_range(
    doc: &PdfDocument,
    parser: &Pool<PageParserComponent>,
    range: Range<usize>,
    job: &Arc<str>,
) -> Vec<PageResult> {
    match parse_batch(doc, parser, range.clone(), job) {
        Ok(pages) => pages,
        Err(_) if range.len() > 1 => range
            .flat_map(|p| parse_range(doc, parser, p..p + 1, job))
            .collect(),
        Err(error) => vec![(range.start as u32 + 1, Err(error))],
    }
}

fn parse_batch(
    doc: &PdfDocument,
    parser: &Pool<PageParserComponent>,
    range: Range<usize>,
    job: &Arc<str>,
) -> Result<Vec<PageResult>, String> {
    let first = range.start as u32 + 1;
    let pdf = doc
        .batch(range.clone())
        .map_err(|e| format!("cannot cut the page out of the document: {e}"))?;
    let mut lease = parser
        .take(None, Some(job.clone()))
        .map_err(|e| e.to_string())?;
    let parsed = lease
        .call(|world, store| {
            world
                .warmlane_worker_page_parser()
                .call_parse(store, &pdf, first)
        })
        .map_err(|e| e.to_string())??;
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

/// The chunking stage: feeds page texts to the chunker in order, holding
/// back the last chunk of each call (it may continue on the next pages).
struct Chunking<'a> {
    chunker: &'a Pool<ChunkerComponent>,
    options: Options,
    job: Arc<str>,
    carry: Vec<PageText>,
    next_index: u32,
}

impl<'a> Chunking<'a> {
    fn new(chunker: &'a Pool<ChunkerComponent>, options: &DocumentOptions, job: Arc<str>) -> Self {
        let unit = match options.chunk_unit {
            ChunkUnit::Tokens => SizeUnit::Tokens,
            ChunkUnit::Characters => SizeUnit::Characters,
        };
        Chunking {
            chunker,
            options: Options {
                max_size: options.chunk_size,
                overlap: options.chunk_overlap,
                unit,
            },
            job,
            carry: Vec::new(),
            next_index: 0,
        }
    }

    fn feed(
        &mut self,
        pages: Vec<(u32, String)>,
        last: bool,
        summary: &mut Summary,
        sink: &mut dyn FnMut(Event),
    ) {
        let mut input = std::mem::take(&mut self.carry);
        input.extend(pages.into_iter().map(|(number, text)| PageText {
            number,
            offset: 0,
            text,
        }));
        if input.iter().all(|p| p.text.trim().is_empty()) {
            return;
        }
        let result = self
            .chunker
            .take(None, Some(self.job.clone()))
            .map_err(|e| e.to_string())
            .and_then(|mut lease| {
                lease
                    .call(|world, store| {
                        world
                            .warmlane_worker_chunker()
                            .call_split(store, &input, self.options)
                    })
                    .map_err(|e| e.to_string())?
            });
        let mut chunks = match result {
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
