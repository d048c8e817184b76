//! CMaps: the embedded ones a PDF carries (`/ToUnicode`, or an `/Encoding`
//! stream of a Type0 font), and Adobe's CID → Unicode tables for the CJK
//! character collections, embedded in the component.

use std::collections::HashMap;
use std::rc::Rc;

use lopdf::{Object, ObjectId};
use pdf_syntax::{is_delim, is_white};

use crate::{Batch, truetype};

/// Most code → Unicode entries one CMap keeps: real ones (a CJK font's)
/// hold tens of thousands; more are dropped rather than filling memory.
const MAX_ENTRIES: usize = 1 << 18;

/// Longest target one entry maps a code to, in bytes: the limit on a
/// ToUnicode `dstString` (PDF Reference 1.7, 5.9.2: "a string of up to 512
/// bytes"). A longer one keeps its first 512 bytes: a range of 65,536
/// codes each mapped to a 50 KB target would otherwise be billions of
/// characters.
const MAX_TARGET_BYTES: usize = 512;

/// Most text, in UTF-8 bytes, the entries of one CMap map codes to
/// together: a CJK font's map of 65,536 codes holds about 200 KB. Entries
/// past it are dropped, as past [`MAX_ENTRIES`].
const MAX_TEXT_BYTES: usize = 4 << 20;

/// A parsed CMap: how to cut a string into codes, and what each code means.
#[derive(Default)]
pub(crate) struct CMap {
    /// `begincodespacerange` entries: (byte length, low, high).
    codespace: Vec<(u8, u32, u32)>,
    /// `bfchar` / `bfrange` targets: code → Unicode text, as (code, start,
    /// end) in `text`; sorted by code (the last entry for a code wins) once
    /// parsed. A sorted list, not a hash map: cheaper to build for the few
    /// hundred entries of a font's map, and no input makes it slow.
    unicode: Vec<(u32, u32, u32)>,
    text: String,
    /// `cidchar` / `cidrange` targets: code → CID.
    cids: Vec<(u32, u32, u32)>,
}

impl CMap {
    /// Parses a CMap stream's decoded content. Unknown operators are skipped,
    /// so a partially broken CMap still yields what it can.
    pub(crate) fn parse(data: &[u8]) -> CMap {
        let mut cmap = CMap::default();
        let (tokens, hex) = tokenize(data);
        let bytes = |span: &Span| &hex[span.0 as usize..span.1 as usize];
        let be = |span: &Span| be(bytes(span));
        // One buffer for every target's UTF-16 units, reused.
        let mut units = Vec::new();
        let mut i = 0;
        while i < tokens.len() {
            match &tokens[i] {
                Tok::Op(op) if *op == b"begincodespacerange" => {
                    i += 1;
                    while i + 1 < tokens.len() {
                        match (&tokens[i], &tokens[i + 1]) {
                            (Tok::Hex(lo), Tok::Hex(hi)) => {
                                cmap.codespace.push((
                                    bytes(lo).len().clamp(1, 4) as u8,
                                    be(lo),
                                    be(hi),
                                ));
                                i += 2;
                            }
                            _ => break,
                        }
                    }
                }
                Tok::Op(op) if *op == b"beginbfchar" => {
                    i += 1;
                    while i + 1 < tokens.len() {
                        match (&tokens[i], &tokens[i + 1]) {
                            (Tok::Hex(src), Tok::Hex(dst)) => {
                                utf16_units(bytes(dst), &mut units);
                                cmap.map(be(src), &units, true);
                                i += 2;
                            }
                            (Tok::Hex(src), Tok::Name(name)) => {
                                if let Some(c) = crate::fonts::glyph_name_to_char(name) {
                                    let mut units = [0; 2];
                                    cmap.map(be(src), c.encode_utf16(&mut units), true);
                                }
                                i += 2;
                            }
                            _ => break,
                        }
                    }
                }
                Tok::Op(op) if *op == b"beginbfrange" => {
                    i += 1;
                    while i + 2 < tokens.len() {
                        let (Tok::Hex(lo), Tok::Hex(hi)) = (&tokens[i], &tokens[i + 1]) else {
                            break;
                        };
                        let (lo, hi) = (be(lo), be(hi));
                        // Guard against absurd ranges in broken files.
                        let hi = hi.min(lo.saturating_add(0xFFFF));
                        match &tokens[i + 2] {
                            Tok::Hex(dst) => {
                                utf16_units(bytes(dst), &mut units);
                                for code in lo..=hi {
                                    if cmap.is_full() {
                                        break;
                                    }
                                    cmap.map(code, &units, false);
                                    if let Some(last) = units.last_mut() {
                                        *last = last.wrapping_add(1);
                                    }
                                }
                                i += 3;
                            }
                            Tok::ArrayStart => {
                                let mut j = i + 3;
                                let mut code = lo;
                                while j < tokens.len() {
                                    match &tokens[j] {
                                        Tok::Hex(dst) => {
                                            if code <= hi {
                                                utf16_units(bytes(dst), &mut units);
                                                cmap.map(code, &units, true);
                                            }
                                            code = code.saturating_add(1);
                                        }
                                        Tok::ArrayEnd => break,
                                        _ => {}
                                    }
                                    j += 1;
                                }
                                i = j + 1;
                            }
                            _ => break,
                        }
                    }
                }
                Tok::Op(op) if *op == b"begincidchar" => {
                    i += 1;
                    while i + 1 < tokens.len() {
                        match (&tokens[i], &tokens[i + 1]) {
                            (Tok::Hex(src), Tok::Int(cid)) => {
                                let code = be(src);
                                if cmap.cids.len() < MAX_ENTRIES {
                                    cmap.cids.push((code, code, *cid));
                                }
                                i += 2;
                            }
                            _ => break,
                        }
                    }
                }
                Tok::Op(op) if *op == b"begincidrange" => {
                    i += 1;
                    while i + 2 < tokens.len() {
                        match (&tokens[i], &tokens[i + 1], &tokens[i + 2]) {
                            (Tok::Hex(lo), Tok::Hex(hi), Tok::Int(cid)) => {
                                if cmap.cids.len() < MAX_ENTRIES {
                                    cmap.cids.push((be(lo), be(hi), *cid));
                                }
                                i += 3;
                            }
                            _ => break,
                        }
                    }
                }
                _ => i += 1,
            }
        }
        cmap.cids.sort_unstable();
        // By code; of several entries for one code the last stands (the
        // sort is stable, so reversed first, the last comes first).
        cmap.unicode.reverse();
        cmap.unicode.sort_by_key(|e| e.0);
        cmap.unicode.dedup_by_key(|e| e.0);
        cmap.unicode.shrink_to_fit();
        cmap.cids.shrink_to_fit();
        cmap.text.shrink_to_fit();
        cmap
    }

    /// Maps `code` to the text of UTF-16 `units`, while the map has room;
    /// unpaired surrogates become U+FFFD where `lossy`, else the entry is
    /// dropped.
    fn map(&mut self, code: u32, units: &[u16], lossy: bool) {
        if self.is_full() {
            return;
        }
        let start = self.text.len();
        for c in char::decode_utf16(units.iter().copied()) {
            match c {
                Ok(c) => self.text.push(c),
                Err(_) if lossy => self.text.push(char::REPLACEMENT_CHARACTER),
                Err(_) => {
                    self.text.truncate(start);
                    return;
                }
            }
        }
        self.unicode
            .push((code, start as u32, self.text.len() as u32));
    }

    /// Whether the code → Unicode entries have no more room: past
    /// [`MAX_ENTRIES`] entries or [`MAX_TEXT_BYTES`] of text.
    fn is_full(&self) -> bool {
        self.unicode.len() >= MAX_ENTRIES || self.text.len() >= MAX_TEXT_BYTES
    }

    /// Roughly the memory it holds, in bytes.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.codespace.capacity() * size_of::<(u8, u32, u32)>()
            + (self.unicode.capacity() + self.cids.capacity()) * size_of::<(u32, u32, u32)>()
            + self.text.capacity()
    }

    /// Whether the CMap declares its own code space.
    pub(crate) fn has_codespace(&self) -> bool {
        !self.codespace.is_empty()
    }

    /// Length in bytes of the code that starts `bytes`, by the code space;
    /// falls back to `default` where the code space says nothing.
    pub(crate) fn code_len(&self, bytes: &[u8], default: usize) -> usize {
        for len in 1..=4usize {
            if len > bytes.len() {
                break;
            }
            let code = be(&bytes[..len]);
            if self
                .codespace
                .iter()
                .any(|&(l, lo, hi)| l as usize == len && code >= lo && code <= hi)
            {
                return len;
            }
        }
        default.min(bytes.len()).max(1)
    }

    /// The Unicode text for `code`, if the CMap maps it.
    pub(crate) fn unicode(&self, code: u32) -> Option<&str> {
        let at = self.unicode.binary_search_by_key(&code, |e| e.0).ok()?;
        let (_, start, end) = self.unicode[at];
        self.text.get(start as usize..end as usize)
    }

    /// Whether the CMap maps any code to text.
    pub(crate) fn has_unicode(&self) -> bool {
        !self.unicode.is_empty()
    }

    /// The CID for `code`, if the CMap has `cidchar`/`cidrange` entries for it.
    pub(crate) fn cid(&self, code: u32) -> Option<u32> {
        let i = self.cids.partition_point(|&(lo, _, _)| lo <= code);
        let &(lo, hi, cid) = self.cids.get(i.checked_sub(1)?)?;
        (code >= lo && code <= hi).then(|| cid + (code - lo))
    }

    /// Whether the CMap maps codes to CIDs.
    pub(crate) fn has_cids(&self) -> bool {
        !self.cids.is_empty()
    }
}

/// The CMaps one batch has read, by stream: fonts that name the same
/// `/ToUnicode` or `/Encoding` stream share one map, and fonts that embed
/// the same TrueType program share what its `cmap` gives each glyph.
#[derive(Default)]
pub(crate) struct CMaps {
    by_id: HashMap<ObjectId, Rc<CMap>>,
    glyphs_by_id: HashMap<ObjectId, Rc<GlyphText>>,
    /// What every map read so far holds, shared or not, in bytes.
    bytes: usize,
}

/// Glyph id → its text, from a TrueType program's `cmap`.
pub(crate) type GlyphText = HashMap<u16, char>;

impl CMaps {
    /// The map in the stream `obj` refers to, read the first time it is
    /// asked for; `None` when there is no such stream, or it cannot be
    /// decoded (a limit it passed is noted in `limit`).
    pub(crate) fn read(
        &mut self,
        batch: &Batch,
        obj: Option<&Object>,
        limit: &mut Option<String>,
    ) -> Option<Rc<CMap>> {
        once(
            &mut self.by_id,
            &mut self.bytes,
            obj,
            CMap::heap_bytes,
            || Some(CMap::parse(&batch.stream(obj, limit)?)),
        )
    }

    /// What the TrueType program in the stream `obj` refers to gives each
    /// glyph (see [`truetype::glyph_to_char`]), read the first time it is
    /// asked for: forty fonts embedding one program walk its `cmap` once.
    /// `None` as for [`CMaps::read`].
    pub(crate) fn glyph_text(
        &mut self,
        batch: &Batch,
        obj: Option<&Object>,
        limit: &mut Option<String>,
    ) -> Option<Rc<GlyphText>> {
        let size = |text: &GlyphText| text.capacity() * size_of::<(u16, char)>();
        once(&mut self.glyphs_by_id, &mut self.bytes, obj, size, || {
            Some(truetype::glyph_to_char(&batch.stream(obj, limit)?))
        })
    }

    /// What the maps read so far hold, in bytes.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.bytes
    }
}

/// What the stream `obj` refers to gives, made by `make` the first time
/// and kept in `by_id` (a stream given inline is made each time); what
/// each one made holds, by `size`, is added to `bytes`.
fn once<T>(
    by_id: &mut HashMap<ObjectId, Rc<T>>,
    bytes: &mut usize,
    obj: Option<&Object>,
    size: impl Fn(&T) -> usize,
    make: impl FnOnce() -> Option<T>,
) -> Option<Rc<T>> {
    let id = match obj {
        Some(Object::Reference(id)) => Some(*id),
        _ => None,
    };
    if let Some(kept) = id.and_then(|id| by_id.get(&id)) {
        return Some(Rc::clone(kept));
    }
    let new = Rc::new(make()?);
    *bytes += size(&new);
    if let Some(id) = id {
        by_id.insert(id, Rc::clone(&new));
    }
    Some(new)
}

/// Adobe's CID → Unicode table for a character collection (`/Ordering`).
pub(crate) fn collection_table(ordering: &[u8]) -> Option<&'static [u8]> {
    Some(match ordering {
        b"GB1" => include_bytes!("../cmaps/GB1.bin"),
        b"CNS1" => include_bytes!("../cmaps/CNS1.bin"),
        b"Japan1" => include_bytes!("../cmaps/Japan1.bin"),
        b"Korea1" => include_bytes!("../cmaps/Korea1.bin"),
        b"KR" => include_bytes!("../cmaps/KR.bin"),
        _ => return None,
    })
}

/// Looks `cid` up in a table from [`collection_table`].
pub(crate) fn collection_char(table: &[u8], cid: u32) -> Option<char> {
    let at = cid as usize * 4;
    let bytes = table.get(at..at + 4)?;
    let u = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if u == 0 { None } else { char::from_u32(u) }
}

fn be(bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .take(4)
        .fold(0u32, |acc, &b| (acc << 8) | b as u32)
}

/// Replaces `units` with the UTF-16 code units of big-endian `bytes` (a
/// single byte is one unit), of at most [`MAX_TARGET_BYTES`] of them.
fn utf16_units(bytes: &[u8], units: &mut Vec<u16>) {
    units.clear();
    let bytes = &bytes[..bytes.len().min(MAX_TARGET_BYTES)];
    if bytes.len() == 1 {
        units.push(bytes[0] as u16);
        return;
    }
    units.extend(
        bytes
            .chunks(2)
            .map(|c| ((c[0] as u16) << 8) | *c.get(1).unwrap_or(&0) as u16),
    );
}

/// Where a hexadecimal string's decoded bytes are in the buffer
/// [`tokenize`] returns beside the tokens.
struct Span(u32, u32);

/// A CMap token; names and operators borrowed from the stream, hexadecimal
/// strings decoded into one buffer.
enum Tok<'a> {
    Hex(Span),
    Int(u32),
    Name(&'a [u8]),
    Op(&'a [u8]),
    ArrayStart,
    ArrayEnd,
}

fn tokenize(data: &[u8]) -> (Vec<Tok<'_>>, Vec<u8>) {
    let mut out = Vec::new();
    let mut hex = Vec::new();
    let mut i = 0;
    while i < data.len() {
        let c = data[i];
        match c {
            b'%' => {
                while i < data.len() && data[i] != b'\n' && data[i] != b'\r' {
                    i += 1;
                }
            }
            b'<' if data.get(i + 1) == Some(&b'<') => i += 2,
            b'>' if data.get(i + 1) == Some(&b'>') => i += 2,
            b'<' => {
                let start = hex.len() as u32;
                i = pdf_syntax::hex_string_into(data, i, &mut hex);
                out.push(Tok::Hex(Span(start, hex.len() as u32)));
            }
            b'[' => {
                out.push(Tok::ArrayStart);
                i += 1;
            }
            b']' => {
                out.push(Tok::ArrayEnd);
                i += 1;
            }
            b'(' => {
                // Literal strings only appear in headers (CMapName etc.); skip.
                i = pdf_syntax::literal_string(data, i).1;
            }
            b'/' => {
                let start = i + 1;
                i += 1;
                while i < data.len() && !is_delim(data[i]) {
                    i += 1;
                }
                out.push(Tok::Name(&data[start..i]));
            }
            _ if is_white(c) => i += 1,
            _ => {
                let start = i;
                while i < data.len() && !is_delim(data[i]) {
                    i += 1;
                }
                if start == i {
                    i += 1;
                    continue;
                }
                let word = &data[start..i];
                match std::str::from_utf8(word)
                    .ok()
                    .and_then(|s| s.parse::<u32>().ok())
                {
                    Some(n) => out.push(Tok::Int(n)),
                    None => out.push(Tok::Op(word)),
                }
            }
        }
    }
    (out, hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bfchar_bfrange_and_codespace() {
        let cmap = CMap::parse(
            b"1 begincodespacerange <0000> <FFFF> endcodespacerange\n\
              2 beginbfchar <0003> <0020> <0044> <00660069> endbfchar\n\
              1 beginbfrange <0010> <0012> <0041> endbfrange\n\
              1 beginbfrange <0020> <0021> [<4E2D> <6587>] endbfrange",
        );
        assert_eq!(cmap.code_len(&[0, 3], 1), 2);
        assert_eq!(cmap.unicode(3), Some(" "));
        assert_eq!(cmap.unicode(0x44), Some("fi"));
        assert_eq!(cmap.unicode(0x12), Some("C"));
        assert_eq!(cmap.unicode(0x21), Some("文"));
        assert_eq!(cmap.unicode(0x13), None);
    }

    #[test]
    fn the_last_entry_for_a_code_stands_and_bad_surrogates_are_handled() {
        let cmap = CMap::parse(
            b"2 beginbfchar <01> <0041> <01> <0042> <02> <D800> endbfchar\n\
              1 beginbfrange <03> <04> <D800> endbfrange\n\
              1 beginbfchar <05> <D83DDE00> endbfchar",
        );
        assert_eq!(cmap.unicode(1), Some("B"));
        assert_eq!(cmap.unicode(2), Some("\u{FFFD}"));
        assert_eq!(
            cmap.unicode(3),
            None,
            "a range of bad surrogates maps nothing"
        );
        assert_eq!(cmap.unicode(5), Some("😀"));
        assert_eq!(cmap.unicode(6), None);
    }

    #[test]
    fn long_targets_are_cut_and_the_text_is_bounded() {
        // 300 units of 中 (600 bytes) for one code, then 65,536 codes each
        // mapped to 256 units of U+4E00 (768 UTF-8 bytes): 50 MB of text
        // if kept whole.
        let long = "4E2D".repeat(300);
        let target = "4E00".repeat(256);
        // 1,000 more ranges after the map is full: each is skipped whole,
        // not walked code by code (65 million steps).
        let more: String = (0..1000)
            .map(|k| format!("<{:04X}0000> <{:04X}FFFF> <0041>\n", k + 16, k + 16))
            .collect();
        let data = format!(
            "1 beginbfchar <00020000> <{long}> endbfchar\n\
             1 beginbfrange <0000> <FFFF> <{target}> endbfrange\n\
             1000 beginbfrange {more}endbfrange\n\
             1 beginbfchar <00030000> <0041> endbfchar"
        );
        let cmap = CMap::parse(data.as_bytes());
        // The range ran out of room after its first few thousand codes;
        // what came after it finds none either.
        assert_eq!(cmap.unicode(0x20000), Some("中".repeat(256).as_str()));
        assert_eq!(cmap.unicode(0), Some("一".repeat(256).as_str()));
        assert_eq!(
            cmap.unicode(1),
            Some(format!("{}丁", "一".repeat(255)).as_str())
        );
        assert_eq!(cmap.unicode(0xFFFF), None);
        assert_eq!(cmap.unicode(0x30000), None);
        assert_eq!(cmap.unicode(0x10_0000), None);
        assert!(cmap.text.len() < MAX_TEXT_BYTES + MAX_TARGET_BYTES * 3 / 2);
        assert!(
            cmap.heap_bytes() < 2 * MAX_TEXT_BYTES,
            "{}",
            cmap.heap_bytes()
        );
    }

    #[test]
    fn parses_cid_ranges() {
        let cmap = CMap::parse(
            b"1 begincidrange <8140> <817e> 633 endcidrange 1 begincidchar <20> 1 endcidchar",
        );
        assert_eq!(cmap.cid(0x8141), Some(634));
        assert_eq!(cmap.cid(0x20), Some(1));
        assert_eq!(cmap.cid(0x817f), None);
    }

    #[test]
    fn collection_tables_know_common_characters() {
        // Adobe-GB1 CID 4559 is U+4E2D (中) in every GB1 supplement.
        let gb1 = collection_table(b"GB1").unwrap();
        assert_eq!(collection_char(gb1, 4559), Some('中'));
        let japan1 = collection_table(b"Japan1").unwrap();
        assert_eq!(collection_char(japan1, 34), Some('A'));
    }
}
