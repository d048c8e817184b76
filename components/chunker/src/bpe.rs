//! A cl100k-compatible byte-pair tokenizer over a static table.
//!
//! The table is embedded as laid out by `cl100k/generate.py` and read in
//! place, so an instance that lives for one call pays nothing to set it up.
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

fn token_bytes(rank: usize) -> &'static [u8] {
    let n = count();
    let base = 4 * (1 + (n + 1) + n);
    &TABLE[base + word(1 + rank)..base + word(2 + rank)]
}

/// The rank of `bytes` as one token, if it is one.
fn rank(bytes: &[u8]) -> Option<usize> {
    let n = count();
    let sorted = |i: usize| word(1 + (n + 1) + i);
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = (lo + hi) / 2;
        let r = sorted(mid);
        match token_bytes(r).cmp(bytes) {
            std::cmp::Ordering::Less => lo = mid + 1,
            std::cmp::Ordering::Greater => hi = mid,
            std::cmp::Ordering::Equal => return Some(r),
        }
    }
    None
}

/// Token ranks of one pre-tokenized piece, merged pairwise by lowest rank.
fn encode_piece(piece: &[u8], out: &mut Vec<u32>) {
    if let Some(r) = rank(piece) {
        out.push(r as u32);
        return;
    }
    // Boundaries between parts; merge the adjacent pair of lowest rank.
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
    for w in bounds.windows(2) {
        // Every single byte is a token in cl100k, so this always finds one.
        if let Some(r) = rank(&piece[w[0]..w[1]]) {
            out.push(r as u32);
        }
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
                    (Some('r'), Some('e')) | (Some('v'), Some('e')) | (Some('l'), Some('l')) => break 'm i + 3,
                    (Some('s' | 't' | 'm' | 'd'), _) => break 'm i + 2,
                    _ => {}
                }
            }
            // [^\r\n\p{L}\p{N}]?\p{L}+
            let mut k = i;
            if !is_newline(c) && !is_letter(c) && !is_number(c) && at(i + 1).is_some_and(is_letter) {
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
        assert_eq!(encode("tiktoken is great!"), vec![83, 1609, 5963, 374, 2294, 0]);
        assert_eq!(count_tokens(""), 0);
    }

    #[test]
    fn pieces_follow_the_pattern() {
        let p: Vec<&str> = pieces("I'm  here, 12345 ok\n\n  x").collect();
        assert_eq!(p, vec!["I", "'m", " ", " here", ",", " ", "123", "45", " ok", "\n\n", " ", " x"]);
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
