//! PDF lexical primitives (ISO 32000-1 §7.2–7.3), shared by the host's
//! object reader and the page parser's content-stream lexer: character
//! classes, literal and hexadecimal strings, and `#`-escaped names. Every
//! function is total: malformed input yields what can be read, never a
//! panic. [`limits`] holds the limits on reading a PDF and the one bounded
//! way to decode a stream; [`object`] parses objects into `lopdf`'s types.

pub mod limits;
pub mod object;

/// PDF white space.
pub fn is_white(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n' | b'\x0c' | b'\0')
}

/// White space or a delimiter: where a bare token ends.
pub fn is_delim(c: u8) -> bool {
    is_white(c)
        || matches!(
            c,
            b'(' | b')' | b'<' | b'>' | b'[' | b']' | b'{' | b'}' | b'/' | b'%'
        )
}

/// The position of the first byte at or after `pos` that is neither white
/// space nor part of a `%` comment.
pub fn skip_space(data: &[u8], mut pos: usize) -> usize {
    while let Some(&c) = data.get(pos) {
        if is_white(c) {
            pos += 1;
        } else if c == b'%' {
            while data.get(pos).is_some_and(|&c| c != b'\r' && c != b'\n') {
                pos += 1;
            }
        } else {
            break;
        }
    }
    pos
}

/// Where the bare token (keyword, number, or name body) starting at `pos`
/// ends: the first delimiter, or the end of `data`.
pub fn token_end(data: &[u8], pos: usize) -> usize {
    let pos = pos.min(data.len());
    pos + data[pos..]
        .iter()
        .position(|&c| is_delim(c))
        .unwrap_or(data.len() - pos)
}

/// Decodes the literal string whose `(` is at `data[pos]`; returns its bytes
/// and the position after its closing `)` (or the end of `data`).
pub fn literal_string(data: &[u8], mut pos: usize) -> (Vec<u8>, usize) {
    pos += 1;
    let mut out = Vec::new();
    let mut depth = 1usize;
    while let Some(&c) = data.get(pos) {
        pos += 1;
        match c {
            b'(' => {
                depth += 1;
                out.push(c);
            }
            b')' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
                out.push(c);
            }
            b'\\' => {
                let Some(&e) = data.get(pos) else { break };
                pos += 1;
                match e {
                    b'n' => out.push(b'\n'),
                    b'r' => out.push(b'\r'),
                    b't' => out.push(b'\t'),
                    b'b' => out.push(8),
                    b'f' => out.push(12),
                    b'\r' => {
                        if data.get(pos) == Some(&b'\n') {
                            pos += 1;
                        }
                    }
                    b'\n' => {}
                    b'0'..=b'7' => {
                        let mut v = (e - b'0') as u32;
                        for _ in 0..2 {
                            match data.get(pos) {
                                Some(&d @ b'0'..=b'7') => {
                                    v = v * 8 + (d - b'0') as u32;
                                    pos += 1;
                                }
                                _ => break,
                            }
                        }
                        out.push(v as u8);
                    }
                    other => out.push(other),
                }
            }
            _ => out.push(c),
        }
    }
    (out, pos)
}

/// Decodes the hexadecimal string whose `<` is at `data[pos]`; returns its
/// bytes and the position after its `>`. Non-hex characters are skipped and
/// an odd final digit counts as if followed by 0.
pub fn hex_string(data: &[u8], pos: usize) -> (Vec<u8>, usize) {
    let mut out = Vec::new();
    let end = hex_string_into(data, pos, &mut out);
    (out, end)
}

/// [`hex_string`], appending the bytes to `out`; returns the position after
/// the `>`.
pub fn hex_string_into(data: &[u8], mut pos: usize, out: &mut Vec<u8>) -> usize {
    pos += 1;
    let mut high: Option<u8> = None;
    while let Some(&c) = data.get(pos) {
        pos += 1;
        if c == b'>' {
            break;
        }
        if let Some(v) = (c as char).to_digit(16) {
            match high.take() {
                Some(h) => out.push((h << 4) | v as u8),
                None => high = Some(v as u8),
            }
        }
    }
    if let Some(h) = high {
        out.push(h << 4);
    }
    pos
}

/// A name's bytes with `#xx` escapes decoded (without the leading `/`).
pub fn unescape_name(raw: &[u8]) -> Vec<u8> {
    if !raw.contains(&b'#') {
        return raw.to_vec();
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'#'
            && let Some(v) = raw
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(raw[i]);
        i += 1;
    }
    out
}

/// The number a token holds, exactly as `str::parse::<f32>` reads it:
/// directly for the common form (an optional sign, at most nine digits and
/// one point, the digits as an integer exact in an `f32`), through the
/// standard library otherwise.
pub fn real(word: &[u8]) -> Option<f32> {
    /// Powers of ten, each exact in an `f32`.
    const POW10: [f32; 11] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10];
    let (negative, body) = match word {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, word),
    };
    let mut mantissa: u32 = 0;
    let mut digits = 0;
    let mut scale: Option<usize> = None;
    let mut common = !body.is_empty();
    for &c in body {
        match c {
            b'0'..=b'9' if digits < 9 => {
                mantissa = mantissa * 10 + u32::from(c - b'0');
                digits += 1;
                if let Some(s) = scale.as_mut() {
                    *s += 1;
                }
            }
            b'.' if scale.is_none() => scale = Some(0),
            _ => {
                common = false;
                break;
            }
        }
    }
    let scale = scale.unwrap_or(0);
    if common && digits > 0 && mantissa <= 1 << 24 && scale < POW10.len() {
        // Both exact, so the one rounding is the division's: correct.
        let v = mantissa as f32 / POW10[scale];
        return Some(if negative { -v } else { v });
    }
    std::str::from_utf8(word).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_strings_with_escapes_and_nesting() {
        let (s, end) = literal_string(b"(a(b)\\)\\101\\\nc) rest", 0);
        assert_eq!(s, b"a(b))Ac");
        assert_eq!(end, 15);
        assert_eq!(literal_string(b"(unterminated", 0).0, b"unterminated");
    }

    #[test]
    fn hex_strings_skip_junk_and_pad() {
        assert_eq!(hex_string(b"<41 4 2z3>", 0), (b"AB0".to_vec(), 10));
        assert_eq!(hex_string(b"<4", 0).0, vec![0x40]);
    }

    #[test]
    fn space_comments_and_tokens() {
        let data = b"  % note\r\n 12.5/Name(x)";
        let at = skip_space(data, 0);
        assert_eq!(at, 11);
        assert_eq!(token_end(data, at), 15);
        assert_eq!(token_end(data, 16), 20);
        assert_eq!(skip_space(b"% only a comment", 0), 16);
        assert_eq!(token_end(b"x", 9), 1);
    }

    #[test]
    fn reals_read_as_str_parse_reads_them() {
        let mut words: Vec<String> = [
            "0",
            "-0",
            "+0",
            ".5",
            "5.",
            "-.5",
            "+.5",
            ".",
            "-",
            "+",
            "",
            "1.5",
            "562.5",
            "-12.375",
            "0.1",
            "0.3",
            "16777216",
            "16777217",
            "123456789",
            "1234567890",
            "0.0000000001",
            "0.00000000001",
            "1.2.3",
            "--5",
            "1e5",
            "inf",
            "NaN",
            "12a",
            "3.14159265",
            "99999.9999",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // A deterministic spread of decimal forms.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let digits = (x % 11) as usize;
            let n = x >> 8;
            let body = format!(
                "{:0width$}",
                n % 10u64.pow(digits as u32 + 1),
                width = digits + 1
            );
            let point = (x >> 4) as usize % (body.len() + 2);
            let body = if point <= body.len() {
                format!("{}.{}", &body[..point], &body[point..])
            } else {
                body
            };
            words.push(if x & 1 == 1 { format!("-{body}") } else { body });
        }
        for w in words {
            let ours = real(w.as_bytes());
            let std = w.parse::<f32>().ok();
            assert_eq!(
                ours.map(f32::to_bits),
                std.map(f32::to_bits),
                "{w}: {ours:?} against {std:?}"
            );
        }
    }

    #[test]
    fn names_unescape() {
        assert_eq!(unescape_name(b"A#20B"), b"A B");
        assert_eq!(unescape_name(b"bad#zz"), b"bad#zz");
    }
}
