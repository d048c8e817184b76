//! A small PDF object parser producing `lopdf` objects, for reading single
//! objects at known offsets without loading the whole file. Every object it
//! builds is bounded: nesting depth, and the items (array elements and
//! dictionary entries) one object may hold.

use lopdf::{Dictionary, Object, ObjectId, Stream, StringFormat};
pub(crate) use pdf_syntax::is_white;
use pdf_syntax::unescape_name;

/// Nesting deeper than this is treated as damage.
const MAX_DEPTH: usize = 64;
/// Most array elements and dictionary entries one object may hold: real
/// ones hold thousands (a page tree's `/Kids`, a font's `/W`); a crafted
/// one could hold millions, each costing far more memory than its bytes.
pub(crate) const MAX_ITEMS: usize = 1 << 18;

/// A cursor over PDF bytes.
pub(crate) struct Parser<'a> {
    pub(crate) data: &'a [u8],
    pub(crate) pos: usize,
    /// Items the object being parsed may still hold.
    items_left: usize,
}

impl<'a> Parser<'a> {
    /// A cursor at `pos`, or at the end of `data` if `pos` lies beyond it.
    pub(crate) fn new(data: &'a [u8], pos: usize) -> Self {
        Parser {
            data,
            pos: pos.min(data.len()),
            items_left: MAX_ITEMS,
        }
    }

    /// Counts one more item of the object being parsed.
    fn item(&mut self) -> Result<(), String> {
        self.items_left = self.items_left.checked_sub(1).ok_or_else(|| {
            format!("an object holds more than {MAX_ITEMS} items (arrays and dictionaries)")
        })?;
        Ok(())
    }

    pub(crate) fn skip_ws(&mut self) {
        self.pos = pdf_syntax::skip_space(self.data, self.pos);
    }

    /// The next bare word (keyword or number), without consuming it.
    pub(crate) fn peek_word(&mut self) -> &'a [u8] {
        self.skip_ws();
        &self.data[self.pos..pdf_syntax::token_end(self.data, self.pos)]
    }

    pub(crate) fn word(&mut self) -> &'a [u8] {
        let w = self.peek_word();
        self.pos += w.len();
        w
    }

    pub(crate) fn expect(&mut self, keyword: &[u8]) -> Result<(), String> {
        let w = self.word();
        if w == keyword {
            Ok(())
        } else {
            Err(format!(
                "expected `{}` at byte {}, found `{}`",
                lossy(keyword),
                self.pos,
                lossy(w)
            ))
        }
    }

    pub(crate) fn integer(&mut self) -> Result<i64, String> {
        let w = self.word();
        std::str::from_utf8(w)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                format!(
                    "expected an integer at byte {}, found `{}`",
                    self.pos,
                    lossy(w)
                )
            })
    }

    /// Parses one direct object (a reference counts as one), with a fresh
    /// item budget.
    pub(crate) fn object(&mut self) -> Result<Object, String> {
        self.items_left = MAX_ITEMS;
        self.nested(0)
    }

    fn nested(&mut self, depth: usize) -> Result<Object, String> {
        if depth > MAX_DEPTH {
            return Err("objects nested too deeply".into());
        }
        self.skip_ws();
        let Some(&c) = self.data.get(self.pos) else {
            return Err("unexpected end of file".into());
        };
        match c {
            b'/' => {
                self.pos += 1;
                let start = self.pos;
                self.pos = pdf_syntax::token_end(self.data, self.pos);
                Ok(Object::Name(unescape_name(&self.data[start..self.pos])))
            }
            b'<' if self.data.get(self.pos + 1) == Some(&b'<') => {
                self.pos += 2;
                let mut dict = Dictionary::new();
                loop {
                    self.skip_ws();
                    match self.data.get(self.pos) {
                        None => return Err("unterminated dictionary".into()),
                        Some(b'>') if self.data.get(self.pos + 1) == Some(&b'>') => {
                            self.pos += 2;
                            return Ok(Object::Dictionary(dict));
                        }
                        Some(b'/') => {
                            self.item()?;
                            let key = match self.nested(depth + 1)? {
                                Object::Name(key) => key,
                                _ => return Err("expected a name".into()),
                            };
                            let value = self.nested(depth + 1)?;
                            if !matches!(value, Object::Null) {
                                dict.set(key, value);
                            }
                        }
                        Some(_) => {
                            // Junk inside a dictionary: skip one token.
                            let w = self.word();
                            if w.is_empty() {
                                self.pos += 1;
                            }
                        }
                    }
                }
            }
            b'<' => {
                let (bytes, end) = pdf_syntax::hex_string(self.data, self.pos);
                self.pos = end;
                Ok(Object::String(bytes, StringFormat::Hexadecimal))
            }
            b'(' => Ok(Object::String(self.literal(), StringFormat::Literal)),
            b'[' => {
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_ws();
                    match self.data.get(self.pos) {
                        None => return Err("unterminated array".into()),
                        Some(b']') => {
                            self.pos += 1;
                            return Ok(Object::Array(items));
                        }
                        _ => {
                            self.item()?;
                            items.push(self.nested(depth + 1)?);
                        }
                    }
                }
            }
            _ => {
                let w = self.word();
                match w {
                    b"true" => Ok(Object::Boolean(true)),
                    b"false" => Ok(Object::Boolean(false)),
                    b"null" => Ok(Object::Null),
                    b"" => {
                        self.pos += 1;
                        Err(format!(
                            "unexpected `{}` at byte {}",
                            c as char,
                            self.pos - 1
                        ))
                    }
                    _ => self.number_or_reference(w),
                }
            }
        }
    }

    fn number_or_reference(&mut self, w: &[u8]) -> Result<Object, String> {
        let text = std::str::from_utf8(w).map_err(|_| format!("bad token at byte {}", self.pos))?;
        if let Ok(n) = text.parse::<i64>() {
            // `N G R`?
            let save = self.pos;
            if n >= 0 {
                let g = self.word();
                if let Some(g) = std::str::from_utf8(g)
                    .ok()
                    .and_then(|s| s.parse::<u16>().ok())
                    && self.word() == b"R"
                {
                    return Ok(Object::Reference((n as u32, g)));
                }
            }
            self.pos = save;
            return Ok(Object::Integer(n));
        }
        text.parse::<f32>()
            .map(Object::Real)
            .map_err(|_| format!("unexpected `{text}` at byte {}", self.pos))
    }

    fn literal(&mut self) -> Vec<u8> {
        let (bytes, end) = pdf_syntax::literal_string(self.data, self.pos);
        self.pos = end;
        bytes
    }
}

pub(crate) fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(40)]).into_owned()
}

/// Parses the indirect object `N G obj … endobj` at `offset`. `length`
/// resolves a stream's `/Length` when it is a reference.
pub(crate) fn indirect_object(
    data: &[u8],
    offset: usize,
    length: impl FnOnce(ObjectId) -> Option<i64>,
) -> Result<(ObjectId, Object), String> {
    let mut p = Parser::new(data, offset);
    let n = p.integer()?;
    let g = p.integer()?;
    p.expect(b"obj")?;
    let id = (
        u32::try_from(n).map_err(|_| "negative object number")?,
        g as u16,
    );
    let object = p.object()?;
    let Object::Dictionary(dict) = object else {
        return Ok((id, object));
    };
    if p.peek_word() != b"stream" {
        return Ok((id, Object::Dictionary(dict)));
    }
    p.pos += b"stream".len();
    // The data starts after CRLF or LF.
    if data.get(p.pos) == Some(&b'\r') {
        p.pos += 1;
    }
    if data.get(p.pos) == Some(&b'\n') {
        p.pos += 1;
    }
    let start = p.pos;
    let declared = match dict.get(b"Length") {
        Ok(Object::Integer(n)) => Some(*n),
        Ok(Object::Reference(r)) => length(*r),
        _ => None,
    };
    let end = declared
        .and_then(|n| usize::try_from(n).ok())
        .and_then(|n| start.checked_add(n))
        .filter(|&end| end <= data.len() && ends_stream(data, end))
        .or_else(|| find_endstream(data, start))
        .ok_or_else(|| format!("stream of object {} {} has no end", id.0, id.1))?;
    Ok((
        id,
        Object::Stream(Stream::new(dict, data[start..end].to_vec())),
    ))
}

fn ends_stream(data: &[u8], end: usize) -> bool {
    let mut p = Parser::new(data, end);
    p.peek_word() == b"endstream"
}

fn find_endstream(data: &[u8], start: usize) -> Option<usize> {
    let at = data[start..].windows(9).position(|w| w == b"endstream")? + start;
    let mut end = at;
    if end > start && data[end - 1] == b'\n' {
        end -= 1;
    }
    if end > start && data[end - 1] == b'\r' {
        end -= 1;
    }
    Some(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nested_objects_and_references() {
        let mut p = Parser::new(
            b"<< /Type /Page /Kids [1 0 R 2 0 R] /N -3 /R 1.5 /S (a\\)b) /H <4142> /Z null >>",
            0,
        );
        let Object::Dictionary(d) = p.object().unwrap() else {
            panic!()
        };
        assert_eq!(d.get(b"Type").unwrap().as_name().unwrap(), b"Page");
        assert_eq!(
            d.get(b"Kids").unwrap().as_array().unwrap()[1],
            Object::Reference((2, 0))
        );
        assert_eq!(d.get(b"N").unwrap(), &Object::Integer(-3));
        assert_eq!(d.get(b"S").unwrap().as_str().unwrap(), b"a)b");
        assert_eq!(d.get(b"H").unwrap().as_str().unwrap(), b"AB");
        assert!(d.get(b"Z").is_err());
    }

    #[test]
    fn reads_streams_with_wrong_lengths() {
        let data = b"7 0 obj << /Length 99 >> stream\nhello\nendstream endobj";
        let (id, obj) = indirect_object(data, 0, |_| None).unwrap();
        assert_eq!(id, (7, 0));
        assert_eq!(obj.as_stream().unwrap().content, b"hello");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(indirect_object(b"", 0, |_| None).is_err());
        assert!(indirect_object(b"1 0 obj << /A [ ", 0, |_| None).is_err());
        assert!(indirect_object(b"1 0 obj >>", 0, |_| None).is_err());
        let deep = "[".repeat(1000);
        assert!(Parser::new(deep.as_bytes(), 0).object().is_err());
    }

    #[test]
    fn an_object_may_hold_only_so_many_items() {
        let big = format!("[{}]", "0 ".repeat(MAX_ITEMS + 1));
        let err = Parser::new(big.as_bytes(), 0).object().unwrap_err();
        assert!(err.contains("more than"), "{err}");
        let fits = format!("[{}]", "0 ".repeat(MAX_ITEMS));
        assert!(Parser::new(fits.as_bytes(), 0).object().is_ok());
    }
}
