//! Turns positioned glyphs into lines and paragraphs.
//!
//! Glyphs arrive in content-stream order, which for almost every producer is
//! reading order. A glyph joins the current line when its baseline is within
//! half a font size of the line's; a horizontal gap wider than a fraction of
//! the font size becomes a space; a drop of more than about one and a half
//! lines, or a jump back up the page, starts a new paragraph. A line with
//! right-to-left letters is rebuilt when it ends, from its glyphs sorted
//! left to right, into logical order ([`crate::bidi`]).

use crate::bidi;

/// One shown glyph, in the page's device space (y grows upwards).
pub(crate) struct Placed<'a> {
    pub(crate) x: f32,
    pub(crate) y: f32,
    /// Font size in device units.
    pub(crate) size: f32,
    /// Advance width in device units.
    pub(crate) advance: f32,
    pub(crate) text: &'a str,
}

struct Line {
    y: f32,
    size: f32,
    x_end: f32,
    last_x: f32,
    last_text_len: usize,
    /// Where its text starts in the page's.
    start: usize,
    /// Whether it has right-to-left letters.
    rtl: bool,
    /// Whether it has more glyphs than are kept to rebuild it.
    overfull: bool,
}

/// Most glyphs of one line kept to rebuild it: a line longer than this is
/// not text anyone reads, and is left in drawing order.
const MAX_LINE_GLYPHS: usize = 10_000;

/// A glyph of the current line: where it stands, and its text's place in
/// the page's.
struct Span {
    x: f32,
    x_end: f32,
    size: f32,
    start: usize,
    end: usize,
}

/// Collects a page's text, up to a limit.
pub(crate) struct Layout {
    out: String,
    line: Option<Line>,
    /// The current line's glyphs, kept to rebuild it if it is right to left.
    spans: Vec<Span>,
    /// Glyphs shown, and how many of them had no Unicode text.
    pub(crate) glyphs: usize,
    pub(crate) unmapped: usize,
    /// Longest text kept, in bytes; past it glyphs are dropped.
    max_bytes: u64,
    overflowed: bool,
}

impl Layout {
    /// A layout that keeps at most `max_bytes` of text.
    pub(crate) fn new(max_bytes: u64) -> Self {
        Layout {
            out: String::new(),
            line: None,
            spans: Vec::new(),
            glyphs: 0,
            unmapped: 0,
            max_bytes,
            overflowed: false,
        }
    }

    /// Whether the text has passed its limit.
    pub(crate) fn overflow_pending(&self) -> bool {
        self.overflowed
    }

    /// Why the page's text was cut short, if it was.
    pub(crate) fn overflow(&self) -> Option<String> {
        self.overflowed.then(|| {
            format!(
                "the page's text is longer than {} MiB (pdf.max_page_text_mib; at most an eighth of pipeline.memory_mib)",
                self.max_bytes >> 20
            )
        })
    }

    pub(crate) fn push(&mut self, g: Placed<'_>) {
        if self.out.len() as u64 > self.max_bytes {
            self.overflowed = true;
            return;
        }
        self.glyphs += 1;
        if g.text.is_empty() {
            self.unmapped += 1;
            return;
        }
        let size = g.size.abs().max(0.1);
        match &mut self.line {
            Some(line)
                if (g.y - line.y).abs() < 0.5 * size.max(line.size)
                    && g.x > line.last_x - 4.0 * size =>
            {
                // Fake bold: the same glyph struck again at (almost) the same place.
                if (g.x - line.last_x).abs() < 0.1 * size
                    && self.out.len() >= line.last_text_len
                    && self.out[self.out.len() - line.last_text_len..] == *g.text
                {
                    return;
                }
                let gap = g.x - line.x_end;
                let prev = self.out.chars().next_back();
                let next = g.text.chars().next();
                if gap > space_threshold(prev, next) * size
                    && prev.is_some_and(|c| !c.is_whitespace())
                    && next.is_some_and(|c| !c.is_whitespace())
                {
                    self.out.push(' ');
                }
                line.size = line.size.max(size);
                line.x_end = g.x + g.advance;
                line.last_x = g.x;
            }
            Some(line) => {
                let drop = line.y - g.y;
                let gap = if drop > 1.7 * size.max(line.size) || drop < -0.5 * size {
                    "\n\n"
                } else {
                    "\n"
                };
                self.end_line();
                trim_end_spaces(&mut self.out);
                self.out.push_str(gap);
                self.start_line(&g, size);
            }
            None => self.start_line(&g, size),
        }
        let start = self.out.len();
        self.out.push_str(g.text);
        if let Some(line) = &mut self.line {
            line.last_text_len = g.text.len();
            line.rtl = line.rtl || g.text.chars().any(bidi::is_rtl);
            if self.spans.len() < MAX_LINE_GLYPHS {
                self.spans.push(Span {
                    x: g.x,
                    x_end: g.x + g.advance,
                    size,
                    start,
                    end: self.out.len(),
                });
            } else {
                line.overfull = true;
            }
        }
    }

    fn start_line(&mut self, g: &Placed<'_>, size: f32) {
        self.line = Some(Line {
            y: g.y,
            size,
            x_end: g.x + g.advance,
            last_x: g.x,
            last_text_len: 0,
            start: self.out.len(),
            rtl: false,
            overfull: false,
        });
    }

    /// Ends the current line: a right-to-left one is rebuilt from its
    /// glyphs, sorted left to right (the order they are seen in, whatever
    /// order they were drawn in), into logical order.
    fn end_line(&mut self) {
        let mut spans = std::mem::take(&mut self.spans);
        if let Some(line) = self.line.as_ref().filter(|l| l.rtl && !l.overfull) {
            let placed = Self::placed(&self.out, &spans);
            let mut visual = bidi::Visual::default();
            // The right edge so far, and the glyph that reaches it.
            let mut right: Option<(f32, &Span)> = None;
            for span in placed {
                let text = &self.out[span.start..span.end];
                let spaced = right.is_some_and(|(edge, p)| {
                    let before = self.out[p.start..p.end].chars().next_back();
                    span.x - edge
                        > space_threshold(before, text.chars().next()) * span.size.max(p.size)
                });
                visual.push(text, spaced);
                if right.is_none_or(|(edge, _)| span.x_end > edge) {
                    right = Some((span.x_end, span));
                }
            }
            self.out.truncate(line.start);
            self.out.push_str(&visual.logical());
        }
        spans.clear();
        self.spans = spans;
    }

    /// A right-to-left line's glyphs from left to right, each mark right
    /// after the letter it sits on. Where a mark's own position puts it
    /// varies with the font, so it goes with the letter drawn next to it:
    /// the next one when the line is drawn from the left (visual order,
    /// where a mark comes before its letter), else the one before.
    fn placed<'s>(out: &str, spans: &'s [Span]) -> Vec<&'s Span> {
        let marks: Vec<bool> = spans
            .iter()
            .map(|s| bidi::is_mark(&out[s.start..s.end]))
            .collect();
        let rightwards = spans.windows(2).filter(|w| w[1].x > w[0].x).count() * 2 >= spans.len();
        // The first letter at or after each glyph, found in one pass from
        // the end (a line of 10,000 marks searched for it from each: 50
        // million steps, fuzzing run 40's slow input).
        let mut next = vec![None; spans.len()];
        let mut letter = None;
        for i in (0..spans.len()).rev() {
            if !marks[i] {
                letter = Some(i);
            }
            next[i] = letter;
        }
        let mut before = None;
        let mut placed: Vec<(f32, bool, &Span)> = Vec::with_capacity(spans.len());
        for (i, span) in spans.iter().enumerate() {
            if !marks[i] {
                before = Some(i);
                placed.push((span.x, false, span));
                continue;
            }
            let at = if rightwards {
                next[i].or(before)
            } else {
                before.or(next[i])
            };
            placed.push((at.map_or(span.x, |j| spans[j].x), true, span));
        }
        placed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        placed.into_iter().map(|(_, _, span)| span).collect()
    }

    /// Ends the page: the text, with lines trimmed and at most one blank
    /// line between paragraphs.
    pub(crate) fn finish(mut self) -> (String, usize, usize) {
        self.end_line();
        trim_end_spaces(&mut self.out);
        let mut text = String::with_capacity(self.out.len());
        let mut blank_run = 0;
        for line in self.out.split('\n') {
            let line = line.trim_end();
            if line.trim().is_empty() {
                blank_run += 1;
                continue;
            }
            if !text.is_empty() {
                text.push_str(if blank_run > 0 { "\n\n" } else { "\n" });
            }
            blank_run = 0;
            text.push_str(line);
        }
        (text, self.glyphs, self.unmapped)
    }
}

fn trim_end_spaces(s: &mut String) {
    while s.ends_with(' ') {
        s.pop();
    }
}

/// How wide a gap between `prev` and `next` must be, in font sizes, to be
/// a space.
fn space_threshold(prev: Option<char>, next: Option<char>) -> f32 {
    match (prev, next) {
        (Some(p), Some(n)) if is_unspaced(p) && is_unspaced(n) => 0.5,
        _ => 0.15,
    }
}

/// Han, kana and CJK punctuation: scripts written without spaces between
/// words, whose justified lines spread glyphs apart. (Hangul is written
/// with spaces, so it is not one of them.)
fn is_unspaced(c: char) -> bool {
    matches!(c as u32,
        0x2E80..=0x2FFF | 0x3000..=0x30FF | 0x31F0..=0x31FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF
        | 0xF900..=0xFAFF | 0xFF00..=0xFFEF | 0x20000..=0x3FFFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glyph(x: f32, y: f32, text: &str) -> Placed<'_> {
        Placed {
            x,
            y,
            size: 10.0,
            advance: 5.0 * text.chars().count() as f32,
            text,
        }
    }

    #[test]
    fn words_lines_and_paragraphs() {
        let mut l = Layout::new(u64::MAX);
        l.push(glyph(0.0, 100.0, "Hello"));
        l.push(glyph(28.0, 100.0, "world")); // 3 pt gap: a space
        l.push(glyph(0.0, 88.0, "next")); // one line down
        l.push(glyph(0.0, 50.0, "para")); // far down: new paragraph
        l.push(glyph(20.0, 50.5, "graph")); // touching: no space
        let (text, glyphs, unmapped) = l.finish();
        assert_eq!(text, "Hello world\nnext\n\nparagraph");
        assert_eq!((glyphs, unmapped), (5, 0));
    }

    #[test]
    fn cjk_needs_a_wider_gap_for_a_space() {
        let mut l = Layout::new(u64::MAX);
        l.push(glyph(0.0, 0.0, "中"));
        l.push(glyph(7.0, 0.0, "文"));
        assert_eq!(l.finish().0, "中文");
    }

    #[test]
    fn overstruck_bold_is_not_doubled() {
        let mut l = Layout::new(u64::MAX);
        l.push(glyph(0.0, 0.0, "B"));
        l.push(glyph(0.3, 0.0, "B"));
        assert_eq!(l.finish().0, "B");
    }

    #[test]
    fn right_to_left_lines_come_out_in_logical_order_however_drawn() {
        // "שלום עולם" set from the right: each letter 5 units left of the
        // one before it, a word space between the words.
        let placed: Vec<(f32, &str)> = vec![
            (90.0, "ש"),
            (85.0, "ל"),
            (80.0, "ו"),
            (75.0, "ם"),
            (60.0, "ע"),
            (55.0, "ו"),
            (50.0, "ל"),
            (45.0, "ם"),
        ];
        let logical_order = placed.iter();
        let visual_order = placed.iter().rev();
        for order in [
            logical_order.collect::<Vec<_>>(),
            visual_order.collect::<Vec<_>>(),
        ] {
            let mut l = Layout::new(u64::MAX);
            l.push(glyph(0.0, 120.0, "Title"));
            for (x, text) in order {
                l.push(glyph(*x, 100.0, text));
            }
            l.push(glyph(0.0, 88.0, "next"));
            assert_eq!(l.finish().0, "Title\n\nשלום עולם\nnext");
        }
    }

    #[test]
    fn a_line_too_long_to_rebuild_is_left_as_drawn() {
        let mut l = Layout::new(u64::MAX);
        for i in 0..=MAX_LINE_GLYPHS {
            l.push(glyph(i as f32 * 5.0, 0.0, if i == 0 { "א" } else { "ב" }));
        }
        let text = l.finish().0;
        assert!(text.starts_with('א'));
        assert_eq!(text.chars().count(), MAX_LINE_GLYPHS + 1);
    }
}
