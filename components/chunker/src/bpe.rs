//! A cl100k-compatible byte-pair tokenizer over a static table.
//!
//! The table (token bytes and a hash index over them) is embedded as laid
//! out by `cl100k/generate.py` and read in place, so an instance that lives
//! for one call pays nothing to set it up.
//! Pre-tokenization follows cl100k's pattern by hand (contractions, letter
//! runs with one leading non-letter, up to three digits, punctuation runs,
//! newlines, whitespace), so counts match tiktoken's on ordinary text.

static TABLE: &[u8] = include_bytes!("../cl100k/cl100k.bin");

fn word(i: usize) -> usize {
    let at = i * 4;
    u32::from_le_bytes([TABLE[at], TABLE[at + 1], TABLE[at + 2], TABLE[at + 3]]) as usize
}

fn count() -> usize {
    word(0)
}

fn slots() -> usize {
    word(1)
}

fn token_bytes(rank: usize) -> &'static [u8] {
    let n = count();
    let base = 4 * (2 + (n + 1) + slots());
    &TABLE[base + word(2 + rank)..base + word(3 + rank)]
}

fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811C_9DC5u32, |h, &b| {
        (h ^ b as u32).wrapping_mul(0x0100_0193)
    })
}

/// The rank of `bytes` as one token, if it is one.
fn rank(bytes: &[u8]) -> Option<usize> {
    let n = count();
    let mask = slots() - 1;
    let table = 2 + (n + 1);
    let mut slot = fnv1a(bytes) as usize & mask;
    loop {
        let entry = word(table + slot);
        if entry == 0 {
            return None;
        }
        if token_bytes(entry - 1) == bytes {
            return Some(entry - 1);
        }
        slot = (slot + 1) & mask;
    }
}

/// Token ranks of one pre-tokenized piece, merged pairwise by lowest rank
/// (the leftmost pair among equals), as tiktoken merges. The candidate
/// pairs wait in a heap keyed by (rank, start), so a piece of `n` bytes
/// takes O(n log n), however long it is: a page of ten million letters
/// without a space is one piece.
fn encode_piece(piece: &[u8], out: &mut Vec<u32>) {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;

    if let Some(r) = rank(piece) {
        out.push(r as u32);
        return;
    }
    let n = piece.len();
    // Parts: part `i` (alive) spans `i..next[i]`; `prev` links them back.
    let mut next: Vec<usize> = (1..=n).collect();
    let mut prev: Vec<usize> = (0..n).map(|i| i.wrapping_sub(1)).collect();
    let mut alive = vec![true; n];
    // (rank, start of the pair's left part, end of its right part)
    let mut heap: BinaryHeap<Reverse<(usize, usize, usize)>> = BinaryHeap::new();
    let push = |heap: &mut BinaryHeap<_>, start: usize, end: usize| {
        if let Some(r) = rank(&piece[start..end]) {
            heap.push(Reverse((r, start, end)));
        }
    };
    for i in 0..n.saturating_sub(1) {
        push(&mut heap, i, i + 2);
    }
    while let Some(Reverse((_, i, end))) = heap.pop() {
        // A pair whose parts have changed since it was pushed is stale.
        if !alive[i] || next[i] >= n || next[next[i]] != end {
            continue;
        }
        let j = next[i];
        alive[j] = false;
        next[i] = end;
        if end < n {
            prev[end] = i;
        }
        if let Some(&p) = prev.get(i)
            && p < n
        {
            push(&mut heap, p, end);
        }
        if end < n {
            push(&mut heap, i, next[end]);
        }
    }
    let mut i = 0;
    while i < n {
        // Every single byte is a token in cl100k, so this always finds one.
        if let Some(r) = rank(&piece[i..next[i]]) {
            out.push(r as u32);
        }
        i = next[i];
    }
}

/// Encodes `text` into cl100k token ranks.
pub fn encode(text: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for piece in pieces(text) {
        encode_piece(piece.as_bytes(), &mut out);
    }
    out
}

/// How many cl100k tokens `text` takes.
pub fn count_tokens(text: &str) -> usize {
    let mut n = 0;
    let mut scratch = Vec::new();
    for piece in pieces(text) {
        if piece.len() == 1 || rank(piece.as_bytes()).is_some() {
            n += 1;
            continue;
        }
        scratch.clear();
        encode_piece(piece.as_bytes(), &mut scratch);
        n += scratch.len();
    }
    n
}

fn is_letter(c: char) -> bool {
    c.is_alphabetic()
}

fn is_number(c: char) -> bool {
    c.is_numeric()
}

fn is_newline(c: char) -> bool {
    c == '\r' || c == '\n'
}

/// Token counts of `text` for any span, from one pass over it: BPE never
/// merges across pre-tokenizer pieces, so a span's count is the sum of its
/// whole pieces' counts plus the counts of the partial pieces at its ends.
pub struct TokenIndex {
    /// Byte offset where each piece starts, and `text.len()` at the end.
    starts: Vec<usize>,
    /// `prefix[i]`: tokens in pieces `0..i`.
    prefix: Vec<usize>,
}

impl TokenIndex {
    /// Indexes `text`.
    pub fn new(text: &str) -> TokenIndex {
        let mut starts = Vec::new();
        let mut prefix = vec![0];
        let base = text.as_ptr() as usize;
        for piece in pieces(text) {
            starts.push(piece.as_ptr() as usize - base);
            let n = prefix.last().copied().unwrap_or(0) + count_tokens(piece);
            prefix.push(n);
        }
        starts.push(text.len());
        TokenIndex { starts, prefix }
    }

    /// Exactly the tokens `text[start..end]` takes on its own: from the
    /// index where that is provably the same, else by tokenizing the span.
    /// It is the same when the span starts where a piece does, or inside a
    /// run of letters that is not a contraction (tokenized alone, such a
    /// head is one piece ending where the run does), and does not end in
    /// white space (whose split into pieces looks at what follows it).
    pub fn count_exact(&self, text: &str, start: usize, end: usize) -> usize {
        if start >= end || text[..end].ends_with(char::is_whitespace) {
            return count_tokens(&text[start..end]);
        }
        let piece = self
            .starts
            .partition_point(|&s| s <= start)
            .saturating_sub(1);
        let at_boundary = self.starts.get(piece) == Some(&start);
        let letter_head = || {
            let (from, to) = (self.starts[piece], self.starts[piece + 1].min(end));
            !text[from..].starts_with('\'')
                && text[start..to]
                    .chars()
                    .all(|c| is_letter(c) && !is_number(c))
        };
        if at_boundary || letter_head() {
            self.count(text, start, end)
        } else {
            count_tokens(&text[start..end])
        }
    }

    /// Tokens in `text[start..end]` (`text` as given to [`TokenIndex::new`]),
    /// from its whole pieces' counts and its partial ends tokenized alone:
    /// the size the splitter works with, which can differ from what the span
    /// takes on its own where it starts inside a piece (see
    /// [`TokenIndex::count_exact`]).
    pub fn count(&self, text: &str, start: usize, end: usize) -> usize {
        if start >= end {
            return 0;
        }
        // First piece starting at or after `start`; last piece ending at or before `end`.
        let first = self.starts.partition_point(|&s| s < start);
        let last = self.starts.partition_point(|&s| s <= end).saturating_sub(1);
        if first >= last {
            return count_tokens(&text[start..end]);
        }
        let whole = self.prefix[last] - self.prefix[first];
        whole
            + count_tokens(&text[start..self.starts[first]])
            + count_tokens(&text[self.starts[last]..end])
    }
}

/// Splits `text` the way cl100k's pre-tokenizer pattern does.
fn pieces(text: &str) -> impl Iterator<Item = &str> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut i = 0;
    std::iter::from_fn(move || {
        if i >= chars.len() {
            return None;
        }
        let start = i;
        let at = |k: usize| chars.get(k).map(|&(_, c)| c);
        let c = chars[i].1;
        let end = 'm: {
            // (?i:'s|'t|'re|'ve|'m|'ll|'d)
            if c == '\'' {
                let lower = |k: usize| at(k).map(|c| c.to_ascii_lowercase());
                match (lower(i + 1), lower(i + 2)) {
                    (Some('r'), Some('e')) | (Some('v'), Some('e')) | (Some('l'), Some('l')) => {
                        break 'm i + 3;
                    }
                    (Some('s' | 't' | 'm' | 'd'), _) => break 'm i + 2,
                    _ => {}
                }
            }
            // [^\r\n\p{L}\p{N}]?\p{L}+
            let mut k = i;
            if !is_newline(c) && !is_letter(c) && !is_number(c) && at(i + 1).is_some_and(is_letter)
            {
                k += 1;
            }
            if at(k).is_some_and(is_letter) {
                while at(k).is_some_and(is_letter) {
                    k += 1;
                }
                break 'm k;
            }
            // \p{N}{1,3}
            if is_number(c) {
                let mut k = i;
                while k < i + 3 && at(k).is_some_and(is_number) {
                    k += 1;
                }
                break 'm k;
            }
            //  ?[^\s\p{L}\p{N}]+[\r\n]*
            let mut k = i;
            if c == ' ' {
                k += 1;
            }
            let other = |c: char| !c.is_whitespace() && !is_letter(c) && !is_number(c);
            if at(k).is_some_and(other) {
                while at(k).is_some_and(other) {
                    k += 1;
                }
                while at(k).is_some_and(is_newline) {
                    k += 1;
                }
                break 'm k;
            }
            // \s*[\r\n]+  |  \s+(?!\S)  |  \s+
            let mut run_end = i;
            let mut last_newline = None;
            while let Some(c) = at(run_end).filter(|c| c.is_whitespace()) {
                if is_newline(c) {
                    last_newline = Some(run_end);
                }
                run_end += 1;
            }
            if let Some(nl) = last_newline {
                break 'm nl + 1;
            }
            if run_end > i + 1 && run_end < chars.len() {
                break 'm run_end - 1;
            }
            run_end.max(i + 1)
        };
        i = end;
        let from = chars[start].0;
        let to = chars.get(end).map_or(text.len(), |&(b, _)| b);
        Some(&text[from..to])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_tiktoken_on_known_strings() {
        assert_eq!(encode("hello world"), vec![15339, 1917]);
        assert_eq!(
            encode("tiktoken is great!"),
            vec![83, 1609, 5963, 374, 2294, 0]
        );
        assert_eq!(count_tokens(""), 0);
    }

    #[test]
    fn pieces_follow_the_pattern() {
        let p: Vec<&str> = pieces("I'm  here, 12345 ok\n\n  x").collect();
        assert_eq!(
            p,
            vec![
                "I", "'m", " ", " here", ",", " ", "123", "45", " ok", "\n\n", " ", " x"
            ]
        );
    }

    #[test]
    fn index_counts_match_direct_counts() {
        let text = "Hello world, this is a test.\n\nAnother paragraph with 12345 numbers and   spaces. 中文也可以。";
        let index = TokenIndex::new(text);
        let bounds: Vec<usize> = (0..=text.len())
            .filter(|&i| text.is_char_boundary(i))
            .collect();
        for (k, &s) in bounds.iter().enumerate().step_by(3) {
            for &e in bounds[k..].iter().step_by(5) {
                let direct = count_tokens(&text[s..e]);
                let indexed = index.count(text, s, e);
                // A cut inside a piece can only split it: never fewer tokens than tiktoken's.
                assert!(
                    indexed >= direct && indexed <= direct + 2,
                    "{s}..{e}: {indexed} vs {direct}"
                );
            }
        }
        assert_eq!(index.count(text, 0, text.len()), count_tokens(text));
    }

    /// The merge as tiktoken writes it: rescan every pair after each merge.
    fn encode_piece_naive(piece: &[u8]) -> Vec<u32> {
        if let Some(r) = rank(piece) {
            return vec![r as u32];
        }
        let mut bounds: Vec<usize> = (0..=piece.len()).collect();
        loop {
            let mut best: Option<(usize, usize)> = None;
            for i in 0..bounds.len().saturating_sub(2) {
                if let Some(r) = rank(&piece[bounds[i]..bounds[i + 2]])
                    && best.is_none_or(|(br, _)| r < br)
                {
                    best = Some((r, i));
                }
            }
            match best {
                Some((_, i)) => {
                    bounds.remove(i + 1);
                }
                None => break,
            }
        }
        bounds
            .windows(2)
            .filter_map(|w| rank(&piece[w[0]..w[1]]).map(|r| r as u32))
            .collect()
    }

    #[test]
    fn the_heap_merges_exactly_as_the_rescan_does() {
        let mut seed = 0x1234_5678_9ABC_DEF0_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let alphabets: [&[u8]; 4] = [b"ab", b"aeiou tnrs", b"AAAAAAAB", b"0123456789.,;!?"];
        for round in 0..3000 {
            let alphabet = alphabets[round % alphabets.len()];
            let len = 1 + (next() % 40) as usize;
            let piece: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let mut fast = Vec::new();
            encode_piece(&piece, &mut fast);
            assert_eq!(
                fast,
                encode_piece_naive(&piece),
                "{:?}",
                String::from_utf8_lossy(&piece)
            );
        }
        for piece in [
            "supercalifragilisticexpialidocious",
            "ééééééé",
            "中文分词没有空格",
        ] {
            let mut fast = Vec::new();
            encode_piece(piece.as_bytes(), &mut fast);
            assert_eq!(fast, encode_piece_naive(piece.as_bytes()), "{piece}");
        }
    }

    #[test]
    fn a_piece_of_a_million_letters_is_quick() {
        let piece = "a".repeat(1_000_000);
        let start = std::time::Instant::now();
        let n = count_tokens(&piece);
        assert!(n > 1000 && n < 1_000_000, "{n}");
        assert!(start.elapsed() < std::time::Duration::from_secs(10));
    }

    #[test]
    fn every_byte_is_a_token() {
        for b in 0..=255u8 {
            assert!(rank(&[b]).is_some(), "byte {b}");
        }
        // Text that is not in the vocabulary still counts, byte by byte at worst.
        assert!(count_tokens("中文分词没有空格") >= 4);
    }
}
