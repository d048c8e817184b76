//! Chunking a document's pages, in page order: reports each page (its
//! text, or its error) and feeds the texts to the chunker once 32 KiB of
//! text wait, holding back the last chunk of each call (it may continue on
//! the next pages). A page text longer than `input_max` is fed in pieces
//! of at most that size, cut at white space where there is some;
//! consecutive pieces of one page are joined as they are by the chunker. When a call fails, its pages are fed
//! one by one, so that only the page that cannot be chunked becomes an
//! error. Chunking is charged to the document's chunking budget: a call may
//! use what is left, and one of an ordinary page's size at least
//! `CHUNK_FLOOR`.
//!
//! What chunking has to remember between calls is a [`ChunkState`], which
//! a job run in this process keeps in memory and a job shared by replicas
//! keeps in Redis: either way the same pages give the same chunks, byte for
//! byte, however they were grouped as they were parsed.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::budget::Budget;
use super::{ChunkRecord, Event, PageResult, Summary};
use crate::bindings::chunker::ChunkerComponent;
use crate::bindings::chunker::exports::warmlane::worker::chunker as wit;
use crate::bucket::{Draw, WaitLimit};
use crate::error::CallError;
use crate::lanes::Lane;
use crate::pool::Pool;

/// One page's text, or the part of it from `offset` on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PageText {
    pub(crate) number: u32,
    pub(crate) offset: u32,
    pub(crate) text: String,
}

impl PageText {
    fn wit(&self) -> wit::PageText {
        wit::PageText {
            number: self.number,
            offset: self.offset,
            text: self.text.clone(),
        }
    }
}

/// What a job's chunking needs to call the chunker.
pub(crate) struct ChunkerCtx<'a> {
    pub(crate) pool: &'a Pool<ChunkerComponent>,
    pub(crate) draw: Option<&'a Draw>,
    pub(crate) lane: Lane,
    pub(crate) job: &'a Arc<str>,
    pub(crate) cancel: &'a AtomicBool,
    /// The document's chunking budget.
    pub(crate) budget: &'a dyn Budget,
    pub(crate) options: wit::Options,
    /// Most text one call is given, in bytes.
    pub(crate) input_max: usize,
    /// Longest text a page may have, in bytes (the parser's word is not
    /// taken for it).
    pub(crate) max_page_text: u64,
    /// Whether to report each page's text as [`Event::Page`].
    pub(crate) emit_pages: bool,
    /// Whether the job's calls may reuse the instance its last call used
    /// (its owner calls [`Pool::forget_job`] when it is done).
    pub(crate) reuse: bool,
}

/// What chunking remembers between feeds: the text of the chunk held back,
/// the text not yet chunked, the next chunk's index, and the page whose
/// chunking failed (the rest of its pieces are dropped).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ChunkState {
    carry: Vec<PageText>,
    #[serde(default)]
    pending: Vec<PageText>,
    next_index: u32,
    failed: Option<u32>,
}

impl ChunkState {
    /// Reports `pages` (the next ones, in order) to `sink` and chunks their
    /// texts; `last` when no page comes after them.
    pub(crate) fn feed(
        &mut self,
        ctx: &ChunkerCtx<'_>,
        mut pages: Vec<PageResult>,
        last: bool,
        summary: &mut Summary,
        sink: &mut dyn FnMut(Event),
    ) {
        for (_, text) in &mut pages {
            if let Ok(t) = text
                && t.len() as u64 > ctx.max_page_text
            {
                *text = Err(format!(
                    "the page's text is longer than {} MiB (pdf.max_page_text_mib; at most an eighth of pipeline.memory_mib)",
                    ctx.max_page_text >> 20
                ));
            }
        }
        let mut texts = Vec::new();
        for (number, result) in pages {
            match result {
                Ok(text) => {
                    if ctx.emit_pages {
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
        // The chunker is called once `FEED_BYTES` of text wait, piece by
        // piece, so the calls do not depend on how the pages came.
        let max = ctx.input_max.max(1);
        let target = FEED_BYTES.min(max);
        let mut waiting: usize = self.pending.iter().map(|p| p.text.len()).sum();
        for piece in texts.into_iter().flat_map(|t| pieces(t, max)) {
            waiting += piece.text.len();
            self.pending.push(piece);
            if waiting >= target {
                self.flush(ctx, false, summary, sink);
                waiting = 0;
            }
        }
        if last {
            self.flush(ctx, true, summary, sink);
        }
    }

    /// Chunks the pending text, in calls of at most `input_max` bytes each
    /// (beside the carry); `last` when no text comes after it.
    fn flush(
        &mut self,
        ctx: &ChunkerCtx<'_>,
        last: bool,
        summary: &mut Summary,
        sink: &mut dyn FnMut(Event),
    ) {
        let max = ctx.input_max.max(1);
        let mut calls: Vec<Vec<PageText>> = vec![Vec::new()];
        let mut size = 0;
        for piece in std::mem::take(&mut self.pending) {
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
            self.call(ctx, call, last && i + 1 == n, summary, sink);
        }
    }

    /// One call on the carry and `texts`; where it fails, page by page.
    fn call(
        &mut self,
        ctx: &ChunkerCtx<'_>,
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
        let error = match split(ctx, &input) {
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
                self.call(ctx, page, last && i + 1 == n, summary, sink);
            }
            return;
        }
        // This page cannot be chunked: keep what came before it, report it.
        if !input.is_empty()
            && let Ok(chunks) = split(ctx, &input)
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
        mut chunks: Vec<wit::Chunk>,
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
}

/// One call to the chunker, paid from its budget if it has one, and
/// charged to the document's chunking budget: a call may use what is left,
/// and one of an ordinary page's size at least `CHUNK_FLOOR`.
fn split(ctx: &ChunkerCtx<'_>, input: &[PageText]) -> Result<Vec<wit::Chunk>, String> {
    let bytes: usize = input.iter().map(|p| p.text.len()).sum();
    let budget = ctx.budget;
    let left = budget.left();
    let allowance = if bytes <= ORDINARY_PAGE {
        left.max(CHUNK_FLOOR)
    } else {
        left
    };
    let spent = || budget.spent("this part of the page was chunked");
    if allowance.is_zero() {
        return Err(spent());
    }
    let limit = WaitLimit::UntilCancelled(ctx.cancel);
    let charge = ctx
        .draw
        .map(|d| d.charge(ctx.lane, d.for_pages(input.len()), limit))
        .transpose()
        .map_err(|e| e.to_string())?;
    let mut lease = ctx
        .pool
        .take_for_job(ctx.job.clone(), ctx.reuse)
        .map_err(|e| {
            if let Some(c) = charge {
                c.refund();
            }
            e.to_string()
        })?;
    lease.in_lane(ctx.lane);
    let input: Vec<wit::PageText> = input.iter().map(PageText::wit).collect();
    let result = lease.call_within(Some(allowance), |world, store| {
        world
            .warmlane_worker_chunker()
            .call_split(store, &input, ctx.options)
    });
    budget.spend(lease.cpu_used());
    match result {
        Err(CallError::CpuLimit { .. }) if budget.left().is_zero() => Err(spent()),
        Err(e) => Err(e.to_string()),
        Ok(chunks) => chunks,
    }
}

/// Text that waits for the chunker before it is called (or less, at the
/// end of the document): the chunks of a document depend on its texts
/// alone, not on how its pages were grouped into batches or reports.
const FEED_BYTES: usize = 32 << 10;

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
        let mut end = s.floor_char_boundary(at + max);
        if end < s.len() {
            // The last quarter's start, at a character's start too (a page
            // of two-byte marks after one newline panicked here).
            let floor = s.floor_char_boundary(at + max * 3 / 4).min(end);
            if let Some(ws) = s[floor..end].rfind(char::is_whitespace) {
                let cut = floor + ws;
                let width = s[cut..].chars().next().map_or(1, char::len_utf8);
                end = cut + width;
            }
            if end <= at {
                end = s.ceil_char_boundary(at + 1);
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
        // Two-byte characters from an odd offset: the last quarter starts
        // inside one.
        let text = "x".to_string() + &"\u{064E}".repeat(3000);
        let parts = pieces(
            PageText {
                number: 2,
                offset: 0,
                text: text.clone(),
            },
            1024,
        );
        assert!(parts.iter().all(|p| p.text.len() <= 1024));
        assert_eq!(
            parts.iter().map(|p| p.text.as_str()).collect::<String>(),
            text
        );
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
