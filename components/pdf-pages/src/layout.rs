//! Turns positioned glyphs into lines and paragraphs.
//!
//! Glyphs arrive in content-stream order, which for almost every producer is
//! reading order. A glyph joins the current line when its baseline is within
//! half a font size of the line's; a horizontal gap wider than a fraction of
//! the font size becomes a space; a drop of more than about one and a half
//! lines, or a jump back up the page, starts a new paragraph.

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
}

/// Collects a page's text, up to a limit.
pub(crate) struct Layout {
    out: String,
    line: Option<Line>,
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
                let threshold = match (prev, next) {
                    (Some(p), Some(n)) if is_unspaced(p) && is_unspaced(n) => 0.5,
                    _ => 0.15,
                };
                if gap > threshold * size
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
                trim_end_spaces(&mut self.out);
                if drop > 1.7 * size.max(line.size) || drop < -0.5 * size {
                    self.out.push_str("\n\n");
                } else {
                    self.out.push('\n');
                }
                *line = Line {
                    y: g.y,
                    size,
                    x_end: g.x + g.advance,
                    last_x: g.x,
                    last_text_len: 0,
                };
            }
            None => {
                self.line = Some(Line {
                    y: g.y,
                    size,
                    x_end: g.x + g.advance,
                    last_x: g.x,
                    last_text_len: 0,
                });
            }
        }
        self.out.push_str(g.text);
        if let Some(line) = &mut self.line {
            line.last_text_len = g.text.len();
        }
    }

    /// Ends the page: the text, with lines trimmed and at most one blank
    /// line between paragraphs.
    pub(crate) fn finish(mut self) -> (String, usize, usize) {
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
}
