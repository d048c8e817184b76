//! A small PDF object parser producing `lopdf` objects, for reading single
//! objects at known offsets without loading the whole file (the host's
//! reader) or a batch the host wrote (the page parser). Every object it
//! builds is bounded: nesting depth, and the items (array elements and
//! dictionary entries) one object may hold.

pub use crate::is_white;
use crate::unescape_name;
use lopdf::{Dictionary, Document, Object, ObjectId, Stream, StringFormat};

/// Nesting deeper than this is treated as damage.
const MAX_DEPTH: usize = 64;
/// Most array elements and dictionary entries one object may hold: real
/// ones hold thousands (a page tree's `/Kids`, a font's `/W`); a crafted
/// one could hold millions, each costing far more memory than its bytes.
pub const MAX_ITEMS: usize = 1 << 18;

/// A cursor over PDF bytes.
pub struct Parser<'a> {
    pub data: &'a [u8],
    pub pos: usize,
    /// Items the object being parsed may still hold.
    items_left: usize,
}

impl<'a> Parser<'a> {
    /// A cursor at `pos`, or at the end of `data` if `pos` lies beyond it.
    pub fn new(data: &'a [u8], pos: usize) -> Self {
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

    pub fn skip_ws(&mut self) {
        self.pos = crate::skip_space(self.data, self.pos);
    }

    /// The next bare word (keyword or number), without consuming it.
    pub fn peek_word(&mut self) -> &'a [u8] {
        self.skip_ws();
        &self.data[self.pos..crate::token_end(self.data, self.pos)]
    }

    pub fn word(&mut self) -> &'a [u8] {
        let w = self.peek_word();
        self.pos += w.len();
        w
    }

    pub fn expect(&mut self, keyword: &[u8]) -> Result<(), String> {
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

    pub fn integer(&mut self) -> Result<i64, String> {
        let w = self.word();
        integer(w).ok_or_else(|| {
            format!(
                "expected an integer at byte {}, found `{}`",
                self.pos,
                lossy(w)
            )
        })
    }

    /// Parses one direct object (a reference counts as one), with a fresh
    /// item budget.
    pub fn object(&mut self) -> Result<Object, String> {
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
                self.pos = crate::token_end(self.data, self.pos);
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
                let (bytes, end) = crate::hex_string(self.data, self.pos);
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
        if let Some(n) = integer(w) {
            // `N G R`?
            let save = self.pos;
            if let Ok(n) = u32::try_from(n) {
                let g = self.word();
                if let Some(g) = integer(g).and_then(|g| u16::try_from(g).ok())
                    && self.word() == b"R"
                {
                    return Ok(Object::Reference((n, g)));
                }
            }
            self.pos = save;
            return Ok(Object::Integer(n));
        }
        crate::real(w)
            .map(Object::Real)
            .ok_or_else(|| format!("unexpected `{}` at byte {}", lossy(w), self.pos))
    }

    fn literal(&mut self) -> Vec<u8> {
        let (bytes, end) = crate::literal_string(self.data, self.pos);
        self.pos = end;
        bytes
    }
}

/// A decimal integer token (`-12`, `+7`, `0`) that fits an `i64`; what
/// `str::parse::<i64>` accepts, without the UTF-8 check.
fn integer(w: &[u8]) -> Option<i64> {
    let (negative, digits) = match w {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, w),
    };
    if digits.is_empty() {
        return None;
    }
    // Eighteen digits cannot overflow: no checked arithmetic (a 128-bit
    // multiply in WebAssembly) for the numbers real files hold.
    if digits.len() <= 18 && digits.iter().all(u8::is_ascii_digit) {
        let n = digits
            .iter()
            .fold(0i64, |n, &d| n * 10 + i64::from(d - b'0'));
        return Some(if negative { -n } else { n });
    }
    let mut n: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        let d = i64::from(d - b'0');
        n = n.checked_mul(10)?;
        n = if negative {
            n.checked_sub(d)?
        } else {
            n.checked_add(d)?
        };
    }
    Some(n)
}

pub fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(40)]).into_owned()
}

/// Parses the indirect object `N G obj … endobj` at `offset`. `length`
/// resolves a stream's `/Length` when it is a reference.
pub fn indirect_object(
    data: &[u8],
    offset: usize,
    length: impl FnOnce(ObjectId) -> Option<i64>,
) -> Result<(ObjectId, Object), String> {
    object_at(data, offset, length).map(|(id, object, _)| (id, object))
}

/// [`indirect_object`], and where the object ends (before `endobj`).
fn object_at(
    data: &[u8],
    offset: usize,
    length: impl FnOnce(ObjectId) -> Option<i64>,
) -> Result<(ObjectId, Object, usize), String> {
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
        return Ok((id, object, p.pos));
    };
    if p.peek_word() != b"stream" {
        return Ok((id, Object::Dictionary(dict), p.pos));
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
    let mut after = Parser::new(data, end);
    after.expect(b"endstream")?;
    Ok((
        id,
        Object::Stream(Stream::new(dict, data[start..end].to_vec())),
        after.pos,
    ))
}

/// Reads a PDF whose objects lie one after another, each whole, as the
/// batches the host writes do: every `N G obj … endobj` in file order (a
/// later one of the same number wins, as the cross-reference table the
/// writer emits last says), and the trailer (a `trailer` dictionary, or a
/// cross-reference stream's). Faster than following the cross-reference
/// table, and enough for such a file; `None` for anything else — compressed
/// object streams, an object that does not parse, no trailer — which a
/// caller reads the general way.
pub fn read_sequential(data: &[u8]) -> Option<Document> {
    let mut doc = Document::new();
    let mut trailer = None;
    let mut p = Parser::new(data, 0);
    loop {
        p.skip_ws();
        let word = p.peek_word();
        match word {
            b"" => return None,
            b"startxref" => break,
            b"xref" => {
                // A classic table: skip it to its trailer.
                let at = data[p.pos..].windows(7).position(|w| w == b"trailer")?;
                p.pos += at + 7;
                trailer = Some(p.object().ok()?.as_dict().ok()?.clone());
            }
            _ if word.first().is_some_and(u8::is_ascii_digit) => {
                let (id, object, end) = object_at(data, p.pos, |_| None).ok()?;
                p.pos = end;
                p.expect(b"endobj").ok()?;
                let kind = match &object {
                    Object::Stream(s) => s.dict.get(b"Type").ok().cloned(),
                    _ => None,
                };
                match kind {
                    Some(Object::Name(k)) if k == b"ObjStm" => return None,
                    Some(Object::Name(k)) if k == b"XRef" => {
                        trailer = Some(object.as_stream().ok()?.dict.clone());
                    }
                    _ => {}
                }
                // Kept as lopdf keeps it, the cross-reference stream too.
                doc.max_id = doc.max_id.max(id.0);
                doc.objects.insert(id, object);
            }
            _ => return None,
        }
    }
    doc.trailer = trailer?;
    Some(doc)
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
    fn a_written_document_reads_back_in_one_pass() {
        use lopdf::dictionary;
        let mut doc = Document::with_version("1.7");
        // Stream data that looks like the end of an object.
        let content = Stream::new(dictionary! {}, b"q endobj 1 0 obj << >> Q".to_vec());
        let content = doc.add_object(content);
        let page = doc.add_object(dictionary! { "Type" => "Page", "Contents" => content });
        let pages = doc.add_object(
            dictionary! { "Type" => "Pages", "Kids" => vec![page.into()], "Count" => 1 },
        );
        let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages });
        doc.trailer.set("Root", catalog);
        for modern in [false, true] {
            let mut out = Vec::new();
            if modern {
                doc.save_modern(&mut out).unwrap();
            } else {
                doc.save_to(&mut out).unwrap();
            }
            let Some(read) = read_sequential(&out) else {
                // Object streams are left to the general reader.
                assert!(modern);
                continue;
            };
            let written =
                Document::load_mem_with_options(&out, lopdf::LoadOptions::default()).unwrap();
            assert_eq!(
                format!("{:?}", read.objects),
                format!("{:?}", written.objects)
            );
            let content = |d: &Document| {
                d.get_object(content)
                    .unwrap()
                    .as_stream()
                    .unwrap()
                    .content
                    .clone()
            };
            assert_eq!(content(&read), content(&doc));
            assert_eq!(
                read.trailer.get(b"Root").unwrap(),
                &Object::Reference(catalog)
            );
            assert_eq!(read.max_id, written.max_id);
            assert_eq!(read.page_iter().count(), 1);
        }
        assert!(read_sequential(b"%PDF-1.7\n1 0 obj << /A [ ").is_none());
        assert!(
            read_sequential(b"%PDF-1.7\n1 0 obj 5 endobj\n").is_none(),
            "no trailer"
        );
        assert!(read_sequential(b"").is_none());
    }

    #[test]
    fn integers_read_as_str_parse_reads_them() {
        for w in [
            "0",
            "-0",
            "+7",
            "-12",
            "9223372036854775807",
            "-9223372036854775808",
            "9223372036854775808",
            "1.5",
            "",
            "-",
            "+",
            "1e3",
            "12a",
        ] {
            assert_eq!(integer(w.as_bytes()), w.parse::<i64>().ok(), "{w}");
        }
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
