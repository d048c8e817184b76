//! A recursive splitter in the spirit of LangChain's
//! `RecursiveCharacterTextSplitter`, working on byte ranges so every chunk
//! knows where it came from.
//!
//! The text is cut at the coarsest boundary that yields pieces no larger
//! than the maximum (paragraphs, then lines, sentences, clauses, words, and
//! single characters as a last resort); neighbouring pieces are then merged
//! back into chunks as large as allowed, each new chunk repeating up to
//! `overlap` of the previous one's end. Cuts always fall on character
//! boundaries.

use crate::bpe;

/// What sizes count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// cl100k tokens.
    Tokens,
    /// Unicode scalar values.
    Characters,
}

/// Measures spans of one text, tokenizing it only once.
struct Measure<'a> {
    text: &'a str,
    tokens: Option<bpe::TokenIndex>,
}

impl Measure<'_> {
    fn span(&self, start: usize, end: usize) -> usize {
        match &self.tokens {
            Some(index) => index.count(self.text, start, end),
            None => self.text[start..end].chars().count(),
        }
    }

    /// The size of `text[start..end]` on its own (its cl100k tokens, or its
    /// characters), without tokenizing it again where the index knows it.
    fn exact(&self, start: usize, end: usize) -> usize {
        match &self.tokens {
            Some(index) => index.count_exact(self.text, start, end),
            None => self.text[start..end].chars().count(),
        }
    }
}

/// Boundaries, coarsest first. Each separator stays with the text before it.
const SEPARATORS: &[&str] = &[
    "\n\n", "\n", ". ", "? ", "! ", "。", "！", "？", "; ", "；", ", ", "，", "、", " ",
];

/// Splits `text` into chunks `(start, end, size)`, in order; `size` is
/// that of `text[start..end]` on its own, in `unit`.
pub fn split(text: &str, max: usize, overlap: usize, unit: Unit) -> Vec<(usize, usize, usize)> {
    let measure = Measure {
        text,
        tokens: (unit == Unit::Tokens).then(|| bpe::TokenIndex::new(text)),
    };
    let mut pieces = Vec::new();
    cut(&measure, 0, text.len(), 0, max, &mut pieces);
    merge(text, &pieces, max, overlap)
        .into_iter()
        .map(|(s, e)| (s, e, measure.exact(s, e)))
        .collect()
}

/// Cuts `text[start..end]` into pieces no larger than `max`, each with its size.
fn cut(
    m: &Measure<'_>,
    start: usize,
    end: usize,
    level: usize,
    max: usize,
    out: &mut Vec<(usize, usize, usize)>,
) {
    let text = m.text;
    let size = m.span(start, end);
    if size <= max {
        out.push((start, end, size));
        return;
    }
    let Some(sep) = SEPARATORS[level.min(SEPARATORS.len())..]
        .iter()
        .position(|s| text[start..end].contains(s))
        .map(|i| level + i)
    else {
        // No boundary left: cut between characters.
        for (i, c) in text[start..end].char_indices() {
            let s = start + i;
            let e = s + c.len_utf8();
            out.push((s, e, m.span(s, e).max(1)));
        }
        return;
    };
    let pattern = SEPARATORS[sep];
    let mut from = start;
    for (i, _) in text[start..end].match_indices(pattern) {
        let to = start + i + pattern.len();
        if to > from {
            cut(m, from, to, sep + 1, max, out);
        }
        from = to;
    }
    if from < end {
        cut(m, from, end, sep + 1, max, out);
    }
}

/// Merges consecutive pieces into chunks of at most `max`, carrying up to
/// `overlap` of each chunk's end into the next.
fn merge(
    text: &str,
    pieces: &[(usize, usize, usize)],
    max: usize,
    overlap: usize,
) -> Vec<(usize, usize)> {
    let mut chunks = Vec::new();
    let mut window: std::collections::VecDeque<(usize, usize, usize)> =
        std::collections::VecDeque::new();
    let mut total = 0usize;
    let emit = |window: &std::collections::VecDeque<(usize, usize, usize)>,
                chunks: &mut Vec<(usize, usize)>| {
        if let (Some(first), Some(last)) = (window.front(), window.back())
            && let Some(range) = trimmed(text, first.0, last.1)
            && chunks.last() != Some(&range)
        {
            chunks.push(range);
        }
    };
    for &piece in pieces {
        if total + piece.2 > max && !window.is_empty() {
            emit(&window, &mut chunks);
            // Keep at most `overlap` at the end, and make room for the piece.
            while let Some(front) = window.front() {
                if total > overlap || total + piece.2 > max {
                    total -= front.2;
                    window.pop_front();
                } else {
                    break;
                }
            }
        }
        window.push_back(piece);
        total += piece.2;
    }
    emit(&window, &mut chunks);
    chunks
}

/// `start..end` without surrounding white space, or `None` if nothing is left.
fn trimmed(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let slice = &text[start..end];
    let lead = slice.len() - slice.trim_start().len();
    let trail = slice.len() - slice.trim_end().len();
    (lead + trail < slice.len()).then(|| (start + lead, end - trail))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts<'a>(text: &'a str, chunks: &[(usize, usize, usize)]) -> Vec<&'a str> {
        chunks.iter().map(|&(s, e, _)| &text[s..e]).collect()
    }

    #[test]
    fn prefers_paragraphs_then_sentences() {
        let text = "First paragraph is here.\n\nSecond one. It has two sentences.";
        let chunks = split(text, 30, 0, Unit::Characters);
        assert_eq!(
            texts(text, &chunks),
            vec![
                "First paragraph is here.",
                "Second one.",
                "It has two sentences."
            ]
        );
    }

    #[test]
    fn overlap_repeats_the_end_of_the_previous_chunk() {
        let text = "one two three four five six seven eight";
        let chunks = split(text, 14, 6, Unit::Characters);
        let t = texts(text, &chunks);
        assert_eq!(t[0], "one two three");
        assert!(t[1].starts_with("three"), "{t:?}");
        for c in &t {
            assert!(c.chars().count() <= 14, "{c:?}");
        }
    }

    #[test]
    fn never_cuts_inside_a_character() {
        let text = "中文没有空格所以只能按字切分".repeat(3);
        let chunks = split(&text, 5, 1, Unit::Characters);
        for &(s, e, _) in &chunks {
            assert!(text.is_char_boundary(s) && text.is_char_boundary(e));
            assert!(text[s..e].chars().count() <= 5);
        }
        assert!(chunks.len() >= 9);
    }

    #[test]
    fn token_sizes_are_respected() {
        let text = "The quick brown fox jumps over the lazy dog. ".repeat(40);
        let chunks = split(&text, 50, 10, Unit::Tokens);
        assert!(chunks.len() > 5);
        for &(s, e, size) in &chunks {
            assert_eq!(size, bpe::count_tokens(&text[s..e]));
            assert!(size <= 50);
        }
    }

    #[test]
    fn sizes_are_those_of_the_chunks_alone() {
        // Starts inside words, numbers, contractions, punctuation and runs
        // of white space, in several scripts.
        let text = "It's 1234567 o'clock; they're 'quoted' and we'll see. \
            Ünïcödé wörds, 中文没有空格，한국어 띄어쓰기. مرحبا بالعالم 12,345.67!!\n\n  \
            x=y+z; f(x)=42 -- done...\r\n\tTabs\tand  double  spaces "
            .repeat(30);
        for max in [3, 7, 16, 50, 200] {
            for overlap in [0, 1, max / 3] {
                for (s, e, size) in split(&text, max, overlap, Unit::Tokens) {
                    assert_eq!(size, bpe::count_tokens(&text[s..e]), "{:?}", &text[s..e]);
                }
            }
        }
        // And at every start and end on a short text.
        let index = bpe::TokenIndex::new(&text[..400]);
        let short = &text[..400];
        let bounds: Vec<usize> = (0..=short.len())
            .filter(|&i| short.is_char_boundary(i))
            .collect();
        for &s in &bounds {
            for &e in bounds.iter().filter(|&&e| e > s).step_by(7) {
                assert_eq!(
                    index.count_exact(short, s, e),
                    bpe::count_tokens(&short[s..e]),
                    "{:?}",
                    &short[s..e]
                );
            }
        }
    }
}
