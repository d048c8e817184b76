//! Fonts: how a shown string's bytes become Unicode text and advance widths.
//!
//! The order of trust, per glyph: the font's `/ToUnicode` map; then, for
//! simple fonts, the `/Encoding` (with `/Differences` glyph names) or the
//! embedded Type 1 program's built-in encoding; for Type0 (CID) fonts, a
//! predefined Unicode or legacy CJK encoding, the CID's character collection
//! (Adobe-GB1, -CNS1, -Japan1, -Korea1, -KR), or the embedded TrueType
//! font's own `cmap` table.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use lopdf::{Dictionary, Document, Object};

use crate::Batch;
use crate::cmap::{self, CMap, CMaps, GlyphText};
use crate::glyph_list::GLYPHS;

/// One decoded glyph.
pub(crate) struct Glyph<'a> {
    /// Its text; empty when the font gives no Unicode for it.
    pub(crate) text: &'a str,
    /// The advance width in thousandths of the font size.
    pub(crate) width: f32,
    /// Whether this is the single-byte code 32 (word spacing applies).
    pub(crate) is_space_code: bool,
}

enum Decoder {
    /// One byte per code.
    Simple(Box<Simple>),
    /// Type0 composite font.
    Composite(Box<Composite>),
}

/// A simple font's text per code, worked out the first time the code is
/// shown: a page shows a few dozen of a font's 256 codes.
struct Simple {
    to_unicode: Option<Rc<CMap>>,
    /// Unicode from the encoding, for codes `/ToUnicode` lacks.
    base: Base,
    /// Each code's normalized text, as (start, end) in `text`; `UNREAD`
    /// until it is first shown.
    spans: [(u32, u32); 256],
    text: String,
}

const UNREAD: (u32, u32) = (u32::MAX, u32::MAX);

/// A simple font's encoding, read at load or at the first code its
/// `/ToUnicode` lacks (often none is ever shown).
enum Base {
    Read(Vec<Option<String>>),
    Unread(Dictionary),
}

struct Composite {
    /// The `/Encoding` CMap when embedded (or `None` for Identity).
    encoding: Option<Rc<CMap>>,
    /// A predefined encoding that is itself Unicode or a legacy CJK charset.
    text_encoding: Option<TextEncoding>,
    /// How many bytes a code takes when the encoding does not say.
    default_len: usize,
    to_unicode: Option<Rc<CMap>>,
    collection: Option<&'static [u8]>,
    /// GID → text, from an embedded TrueType font's `cmap` (which
    /// [`CMaps`] keeps and counts).
    glyph_text: Rc<GlyphText>,
    cid_to_gid: Option<Vec<u16>>,
    widths: CidWidths,
    default_width: f32,
    /// Per-code text, filled as codes are met, for up to
    /// [`MAX_CACHED_CODES`] codes.
    cache: HashMap<u32, Box<str>>,
    /// The text of the last code shown that the cache had no room for.
    uncached: Box<str>,
}

/// Most codes a composite font keeps the text of: a page of CJK text shows
/// a few thousand; four-byte codes could otherwise fill memory with
/// millions.
const MAX_CACHED_CODES: usize = 1 << 16;

/// Most entries a `/CIDToGIDMap` stream gives: one per CID, and CIDs stop
/// at 65,535.
const MAX_CIDS: usize = 1 << 16;

#[derive(Clone, Copy)]
enum TextEncoding {
    Utf16,
    Legacy(&'static encoding_rs::Encoding),
}

/// A font, ready to decode strings shown with it.
pub(crate) struct Font {
    decoder: Decoder,
    /// Simple fonts: advance width per code, in thousandths of the font size.
    widths: Vec<f32>,
    /// A limit one of its streams passed while it was loaded: a page using
    /// it cannot be read in full.
    limit: Option<String>,
}

impl Font {
    /// Builds a font from its dictionary. Never fails: what cannot be read
    /// degrades to glyphs with no text, which the page reports; a stream
    /// past a limit is remembered (see [`Font::limit`]). Its CMaps come
    /// from, or go into, the batch's `cmaps`.
    pub(crate) fn load(batch: &Batch, dict: &Dictionary, cmaps: &mut CMaps) -> Font {
        let doc = &batch.doc;
        let subtype = name_of(doc, dict.get(b"Subtype").ok()).unwrap_or_default();
        if subtype == b"Type0" {
            return Self::load_composite(batch, dict, cmaps);
        }
        let mut limit = None;
        let to_unicode = cmaps.read(batch, dict.get(b"ToUnicode").ok(), &mut limit);
        let base = match to_unicode {
            Some(_) => Base::Unread(dict.clone()),
            None => Base::Read(simple_base_table(batch, dict, &mut limit, |_| false)),
        };
        let widths = simple_widths(doc, dict, subtype == b"Type3");
        Font {
            decoder: Decoder::Simple(Box::new(Simple {
                to_unicode,
                base,
                spans: [UNREAD; 256],
                text: String::new(),
            })),
            widths,
            limit,
        }
    }

    /// Roughly the memory it holds once loaded, in bytes, but for its
    /// CMaps and glyph text, which [`CMaps`] counts. What it works out
    /// later, code by code, [`Font::decode`] counts.
    pub(crate) fn heap_bytes(&self) -> usize {
        let decoder = match &self.decoder {
            Decoder::Simple(s) => size_of::<Simple>() + s.base.heap_bytes(),
            Decoder::Composite(c) => {
                size_of::<Composite>()
                    + c.cid_to_gid
                        .as_ref()
                        .map_or(0, |m| m.capacity() * size_of::<u16>())
                    + c.widths.ranges.len() * size_of::<(u32, (u32, f32))>() * 2
            }
        };
        size_of::<Font>() + decoder + self.widths.capacity() * size_of::<f32>()
    }

    /// The limit one of the font's streams passed, if one did.
    pub(crate) fn limit(&self) -> Option<&str> {
        self.limit.as_deref()
    }

    fn load_composite(batch: &Batch, dict: &Dictionary, cmaps: &mut CMaps) -> Font {
        let doc = &batch.doc;
        let mut limit = None;
        let descendant = dict
            .get(b"DescendantFonts")
            .ok()
            .and_then(|o| deref(doc, o).as_array().ok())
            .and_then(|a| a.first())
            .and_then(|o| deref(doc, o).as_dict().ok());
        let to_unicode = cmaps
            .read(batch, dict.get(b"ToUnicode").ok(), &mut limit)
            .filter(|m| m.has_unicode());

        let mut encoding = None;
        let mut text_encoding = None;
        let mut default_len = 2;
        match dict.get(b"Encoding").map(|o| deref(doc, o)) {
            Ok(Object::Name(name)) => {
                (text_encoding, default_len) = predefined_encoding(name);
            }
            Ok(Object::Stream(_)) => {
                encoding = cmaps.read(batch, dict.get(b"Encoding").ok(), &mut limit);
            }
            _ => {}
        }

        let mut collection = None;
        let mut glyph_text = Rc::default();
        let mut cid_to_gid = None;
        let mut widths = CidWidths::default();
        let mut default_width = 1000.0;
        if let Some(desc) = descendant {
            let ordering = desc
                .get(b"CIDSystemInfo")
                .ok()
                .and_then(|o| deref(doc, o).as_dict().ok())
                .and_then(|info| info.get(b"Ordering").ok())
                .map(|o| match deref(doc, o) {
                    Object::String(s, _) => s.clone(),
                    Object::Name(n) => n.clone(),
                    _ => Vec::new(),
                })
                .unwrap_or_default();
            collection = cmap::collection_table(&ordering);
            if let Some(dw) = desc.get(b"DW").ok().and_then(|o| number(deref(doc, o))) {
                default_width = dw;
            }
            if let Ok(w) = desc.get(b"W").and_then(|o| deref(doc, o).as_array()) {
                widths = CidWidths::parse(doc, w);
            }
            // Only consult the embedded font where nothing better exists.
            let needs_font_cmap =
                to_unicode.is_none() && collection.is_none() && text_encoding.is_none();
            if needs_font_cmap {
                let font_file = desc
                    .get(b"FontDescriptor")
                    .ok()
                    .and_then(|o| deref(doc, o).as_dict().ok())
                    .and_then(|fd| fd.get(b"FontFile2").ok());
                if let Some(text) = cmaps.glyph_text(batch, font_file, &mut limit) {
                    glyph_text = text;
                }
                if let Some(map) = batch.stream(desc.get(b"CIDToGIDMap").ok(), &mut limit) {
                    cid_to_gid = Some(
                        map.chunks(2)
                            .take(MAX_CIDS)
                            .map(|c| ((c[0] as u16) << 8) | *c.get(1).unwrap_or(&0) as u16)
                            .collect(),
                    );
                }
            }
        }
        Font {
            decoder: Decoder::Composite(Box::new(Composite {
                encoding,
                text_encoding,
                default_len,
                to_unicode,
                collection,
                glyph_text,
                cid_to_gid,
                widths,
                default_width,
                cache: HashMap::new(),
                uncached: Box::default(),
            })),
            widths: Vec::new(),
            limit,
        }
    }

    /// Decodes `bytes` glyph by glyph. Returns how much more memory, in
    /// bytes, the font holds for the codes it met for the first time.
    pub(crate) fn decode(
        &mut self,
        batch: &Batch,
        bytes: &[u8],
        mut each: impl FnMut(Glyph<'_>),
    ) -> usize {
        let mut grown = 0;
        match &mut self.decoder {
            Decoder::Simple(simple) => {
                for &b in bytes {
                    if simple.spans[b as usize] == UNREAD {
                        let (text, unread) = (
                            simple.text.capacity(),
                            matches!(simple.base, Base::Unread(_)),
                        );
                        simple.read(batch, b, &mut self.limit);
                        grown += simple.text.capacity() - text;
                        // The encoding, read at most once.
                        if unread && matches!(simple.base, Base::Read(_)) {
                            grown += simple.base.heap_bytes();
                        }
                    }
                    let (start, end) = simple.spans[b as usize];
                    each(Glyph {
                        text: &simple.text[start as usize..end as usize],
                        width: self.widths[b as usize],
                        is_space_code: b == b' ',
                    });
                }
            }
            Decoder::Composite(c) => {
                let mut i = 0;
                while i < bytes.len() {
                    let len = c.code_len(&bytes[i..]);
                    let code_bytes = &bytes[i..i + len];
                    i += len;
                    let code = code_bytes.iter().fold(0u32, |a, &b| (a << 8) | b as u32);
                    let cid = c.cid(code);
                    let width = c.widths.get(cid).unwrap_or(c.default_width);
                    if !c.cache.contains_key(&code) {
                        let text = normalize(&c.text_for(code, code_bytes, cid)).into_boxed_str();
                        if c.cache.len() < MAX_CACHED_CODES {
                            grown += text.len() + size_of::<(u32, Box<str>)>() + 1;
                            c.cache.insert(code, text);
                        } else {
                            c.uncached = text;
                        }
                    }
                    each(Glyph {
                        text: c.cache.get(&code).unwrap_or(&c.uncached),
                        width,
                        is_space_code: len == 1 && code == 32,
                    });
                }
            }
        }
        grown
    }
}

impl Base {
    /// Roughly the memory a read table holds (an unread one, a copy of the
    /// font's dictionary, is not counted).
    fn heap_bytes(&self) -> usize {
        match self {
            Base::Read(table) => {
                table.capacity() * size_of::<Option<String>>()
                    + table.iter().flatten().map(String::capacity).sum::<usize>()
            }
            Base::Unread(_) => 0,
        }
    }
}

impl Simple {
    /// Works out `code`'s text: its `/ToUnicode` entry, or else its
    /// encoding's (read now if it was not yet; a stream past a limit is
    /// noted in `limit`).
    fn read(&mut self, batch: &Batch, code: u8, limit: &mut Option<String>) {
        let start = self.text.len();
        match self
            .to_unicode
            .as_ref()
            .and_then(|m| m.unicode(code.into()))
        {
            Some(text) => normalize_into(text, &mut self.text),
            None => {
                if let Base::Unread(dict) = &self.base {
                    let to_unicode = self.to_unicode.as_ref();
                    let covered = |c: u8| to_unicode.is_some_and(|m| m.unicode(c.into()).is_some());
                    self.base = Base::Read(simple_base_table(batch, dict, limit, covered));
                }
                if let Base::Read(table) = &self.base
                    && let Some(text) = &table[code as usize]
                {
                    normalize_into(text, &mut self.text);
                }
            }
        }
        self.spans[code as usize] = (start as u32, self.text.len() as u32);
    }
}

impl Composite {
    fn code_len(&self, bytes: &[u8]) -> usize {
        if let Some(enc) = &self.encoding
            && enc.has_codespace()
        {
            return enc.code_len(bytes, self.default_len);
        }
        match self.text_encoding {
            Some(TextEncoding::Legacy(enc)) => legacy_code_len(enc, bytes),
            Some(TextEncoding::Utf16) if bytes.len() >= 4 && (0xD8..0xDC).contains(&bytes[0]) => 4,
            _ => self.default_len.min(bytes.len()).max(1),
        }
    }

    fn cid(&self, code: u32) -> u32 {
        match &self.encoding {
            Some(enc) if enc.has_cids() => enc.cid(code).unwrap_or(0),
            _ => code,
        }
    }

    fn text_for(&self, code: u32, code_bytes: &[u8], cid: u32) -> String {
        if let Some(s) = self.to_unicode.as_ref().and_then(|m| m.unicode(code)) {
            return s.to_string();
        }
        match self.text_encoding {
            Some(TextEncoding::Utf16) => return String::from_utf16_lossy(&units(code_bytes)),
            Some(TextEncoding::Legacy(enc)) => {
                let (text, _, bad) = enc.decode(code_bytes);
                if !bad {
                    return text.into_owned();
                }
            }
            None => {}
        }
        if let Some(c) = self.collection.and_then(|t| cmap::collection_char(t, cid)) {
            return c.to_string();
        }
        if !self.glyph_text.is_empty() {
            let gid = match &self.cid_to_gid {
                Some(map) => map.get(cid as usize).copied().unwrap_or(0),
                None => cid as u16,
            };
            if let Some(c) = self.glyph_text.get(&gid) {
                return c.to_string();
            }
        }
        String::new()
    }
}

fn units(bytes: &[u8]) -> Vec<u16> {
    bytes
        .chunks(2)
        .map(|c| ((c[0] as u16) << 8) | *c.get(1).unwrap_or(&0) as u16)
        .collect()
}

/// What a predefined CMap name says about the codes: a Unicode or legacy
/// text encoding (when the codes are themselves text), and the code length.
fn predefined_encoding(name: &[u8]) -> (Option<TextEncoding>, usize) {
    let name = String::from_utf8_lossy(name);
    if name.starts_with("Identity") {
        return (None, 2);
    }
    if name.starts_with("Uni") && (name.contains("UCS2") || name.contains("UTF16")) {
        return (Some(TextEncoding::Utf16), 2);
    }
    let legacy = if name.starts_with("GBK")
        || name.starts_with("GB-")
        || name.starts_with("GBpc")
        || name.starts_with("GBT")
    {
        Some(encoding_rs::GBK)
    } else if name.starts_with("B5")
        || name.starts_with("ETen")
        || name.starts_with("HKscs")
        || name.starts_with("ETHK")
    {
        Some(encoding_rs::BIG5)
    } else if name.contains("RKSJ") {
        Some(encoding_rs::SHIFT_JIS)
    } else if name.starts_with("EUC-") {
        Some(encoding_rs::EUC_JP)
    } else if name.starts_with("KSC") {
        Some(encoding_rs::EUC_KR)
    } else {
        None
    };
    (legacy.map(TextEncoding::Legacy), 2)
}

fn legacy_code_len(enc: &'static encoding_rs::Encoding, bytes: &[u8]) -> usize {
    let b = bytes[0];
    let two = if enc == encoding_rs::SHIFT_JIS {
        (0x81..=0x9F).contains(&b) || (0xE0..=0xFC).contains(&b)
    } else {
        b >= 0x81
    };
    if two && bytes.len() >= 2 { 2 } else { 1 }
}

/// Unicode for each code of a simple font without (or beyond) `/ToUnicode`;
/// `None` for the codes `covered` says `/ToUnicode` maps (not looked up).
fn simple_base_table(
    batch: &Batch,
    dict: &Dictionary,
    limit: &mut Option<String>,
    covered: impl Fn(u8) -> bool,
) -> Vec<Option<String>> {
    let doc = &batch.doc;
    // lopdf reads the base encoding off a probe font; the differences are
    // resolved here, name by name (lopdf drops a whole encoding for one
    // name it does not know).
    let mut probe = Dictionary::new();
    probe.set("Type", Object::Name(b"Font".to_vec()));
    probe.set("Subtype", Object::Name(b"Type1".to_vec()));
    let mut explicit_names: Vec<Option<Vec<u8>>> = vec![None; 256];
    match dict.get(b"Encoding").map(|o| deref(doc, o)) {
        Ok(Object::Name(n)) => probe.set("Encoding", Object::Name(n.clone())),
        Ok(Object::Dictionary(enc)) => {
            if let Ok(diffs) = enc
                .get(b"Differences")
                .and_then(|o| deref(doc, o).as_array())
            {
                let mut code = 0i64;
                for item in diffs {
                    match deref(doc, item) {
                        Object::Integer(n) => code = *n,
                        Object::Name(name) => {
                            if let Ok(at) = usize::try_from(code)
                                && let Some(slot) = explicit_names.get_mut(at)
                            {
                                *slot = Some(name.clone());
                            }
                            code += 1;
                        }
                        _ => {}
                    }
                }
            }
            match enc.get(b"BaseEncoding").map(|o| deref(doc, o)) {
                Ok(Object::Name(base)) => probe.set("Encoding", Object::Name(base.clone())),
                _ if is_symbolic_type1(doc, dict) => {
                    // No base encoding: the font's built-in one applies.
                    for (code, name) in builtin_type1_encoding(batch, dict, limit) {
                        explicit_names[code as usize].get_or_insert(name);
                    }
                }
                _ => {}
            }
        }
        _ => {
            for (code, name) in builtin_type1_encoding(batch, dict, limit) {
                explicit_names[code as usize] = Some(name);
            }
        }
    }
    // The probe has no /ToUnicode: nothing to decode.
    let encoding = probe.get_font_encoding_with_limit(doc, 1).ok();
    (0..256u32)
        .map(|code| {
            if covered(code as u8) {
                return None;
            }
            if let Some(name) = &explicit_names[code as usize] {
                if let Some(c) = glyph_name_to_char(name) {
                    return Some(c.to_string());
                }
                return glyph_from_list(name);
            }
            let s = encoding.as_ref()?.bytes_to_string(&[code as u8]).ok()?;
            if s.is_empty() || s.chars().all(|c| c == '\u{FFFD}' || c == '\0') {
                None
            } else {
                Some(s)
            }
        })
        .collect()
}

fn is_symbolic_type1(doc: &Document, dict: &Dictionary) -> bool {
    dict.get(b"FontDescriptor")
        .ok()
        .and_then(|o| deref(doc, o).as_dict().ok())
        .map(|fd| fd.get(b"FontFile").is_ok())
        .unwrap_or(false)
}

/// Resolves a glyph name through the Adobe Glyph List; `None` for a name
/// it lacks (such a glyph has no text, rather than some other letter's).
fn glyph_from_list(name: &[u8]) -> Option<String> {
    let at = GLYPHS
        .binary_search_by(|(n, _)| n.as_bytes().cmp(name))
        .ok()?;
    let c = char::from_u32(u32::from(GLYPHS[at].1))?;
    (c != '\0' && c != '\u{FFFD}').then(|| c.to_string())
}

/// `uniXXXX`, `uXXXX[XX]` and a few names TeX fonts use that the Adobe
/// Glyph List lacks.
pub(crate) fn glyph_name_to_char(name: &[u8]) -> Option<char> {
    let name = std::str::from_utf8(name).ok()?;
    let base = name.split('.').next().unwrap_or(name);
    if let Some(hex) = base.strip_prefix("uni").filter(|h| h.len() == 4) {
        return u32::from_str_radix(hex, 16).ok().and_then(char::from_u32);
    }
    if let Some(hex) = base
        .strip_prefix('u')
        .filter(|h| (4..=6).contains(&h.len()))
    {
        return u32::from_str_radix(hex, 16).ok().and_then(char::from_u32);
    }
    match base {
        "ff" => Some('\u{FB00}'),
        "fi" => Some('\u{FB01}'),
        "fl" => Some('\u{FB02}'),
        "ffi" => Some('\u{FB03}'),
        "ffl" => Some('\u{FB04}'),
        "dotlessi" => Some('ı'),
        "dotlessj" => Some('ȷ'),
        "visiblespace" => Some('␣'),
        "compwordmark" => Some('\u{200C}'),
        "quoteleft" => Some('‘'),
        "quoteright" => Some('’'),
        _ => None,
    }
}

/// The `dup <code> /<name> put` entries of an embedded Type 1 font program.
fn builtin_type1_encoding(
    batch: &Batch,
    dict: &Dictionary,
    limit: &mut Option<String>,
) -> Vec<(u8, Vec<u8>)> {
    let doc = &batch.doc;
    let Some(fd) = dict
        .get(b"FontDescriptor")
        .ok()
        .and_then(|o| deref(doc, o).as_dict().ok())
    else {
        return Vec::new();
    };
    let Some(program) = batch.stream(fd.get(b"FontFile").ok(), limit) else {
        return Vec::new();
    };
    let clear_end = find(&program, b"eexec").unwrap_or(program.len());
    let clear = &program[..clear_end];
    let Some(start) = find(clear, b"/Encoding") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let words: Vec<&[u8]> = clear[start..]
        .split(|c| c.is_ascii_whitespace())
        .filter(|w| !w.is_empty())
        .collect();
    let mut i = 0;
    while i + 3 < words.len() {
        if words[i] == b"readonly" || words[i] == b"def" {
            break;
        }
        if words[i] == b"dup"
            && let Some(code) = std::str::from_utf8(words[i + 1])
                .ok()
                .and_then(|s| s.parse::<u8>().ok())
            && let Some(name) = words[i + 2].strip_prefix(b"/")
        {
            out.push((code, name.to_vec()));
            i += 4;
            continue;
        }
        i += 1;
    }
    out
}

fn simple_widths(doc: &Document, dict: &Dictionary, type3: bool) -> Vec<f32> {
    let descriptor = dict
        .get(b"FontDescriptor")
        .ok()
        .and_then(|o| deref(doc, o).as_dict().ok());
    let base_font = name_of(doc, dict.get(b"BaseFont").ok()).unwrap_or_default();
    let missing = descriptor
        .and_then(|fd| fd.get(b"MissingWidth").ok())
        .and_then(|o| number(deref(doc, o)))
        .filter(|w| *w > 0.0)
        .unwrap_or_else(|| standard_width(&base_font));
    let mut widths = vec![missing; 256];
    let scale = if type3 {
        dict.get(b"FontMatrix")
            .ok()
            .and_then(|o| deref(doc, o).as_array().ok())
            .and_then(|m| m.first())
            .and_then(|o| number(deref(doc, o)))
            .map(|a| a * 1000.0)
            .unwrap_or(1.0)
    } else {
        1.0
    };
    let first = dict
        .get(b"FirstChar")
        .ok()
        .and_then(|o| number(deref(doc, o)))
        .unwrap_or(0.0) as usize;
    if let Ok(ws) = dict.get(b"Widths").and_then(|o| deref(doc, o).as_array()) {
        for (slot, w) in widths.iter_mut().skip(first).zip(ws) {
            if let Some(w) = number(deref(doc, w)) {
                *slot = w * scale;
            }
        }
    }
    widths
}

/// A rough average advance for the standard 14 fonts, which may come without
/// `/Widths`.
fn standard_width(base_font: &[u8]) -> f32 {
    if base_font.starts_with(b"Courier") {
        600.0
    } else {
        500.0
    }
}

/// A CID font's advance widths (`/W`), kept as ranges of CIDs: one entry of
/// a few bytes can give 65,536 CIDs or more a width, so they are never
/// expanded one by one.
#[derive(Debug, Default)]
struct CidWidths {
    /// First CID → (last CID, width); the ranges are disjoint.
    ranges: BTreeMap<u32, (u32, f32)>,
}

impl CidWidths {
    /// Reads `/W`: `c [w1 w2 …]` gives CIDs c, c+1, … their widths in turn
    /// (a list that runs past the last CID stops there), `c1 c2 w` gives
    /// CIDs c1 to c2 one width. Where entries overlap, the later one holds.
    /// Reading stops at the first entry that is malformed.
    fn parse(doc: &Document, w: &[Object]) -> CidWidths {
        let mut out = CidWidths::default();
        let mut i = 0;
        while i < w.len() {
            let Some(first) = number(deref(doc, &w[i])) else {
                break;
            };
            let first = first as u32;
            match w.get(i + 1).map(|o| deref(doc, o)) {
                Some(Object::Array(list)) => {
                    for (cid, v) in (first..=u32::MAX).zip(list) {
                        if let Some(v) = number(deref(doc, v)) {
                            out.set(cid, cid, v);
                        }
                    }
                    i += 2;
                }
                Some(last) => {
                    let (Some(last), Some(v)) = (
                        number(last),
                        w.get(i + 2).and_then(|o| number(deref(doc, o))),
                    ) else {
                        break;
                    };
                    let last = last as u32;
                    if first <= last {
                        out.set(first, last, v);
                    }
                    i += 3;
                }
                None => break,
            }
        }
        out
    }

    /// Gives CIDs `first..=last` the width `v`, over whatever they had.
    fn set(&mut self, first: u32, last: u32, v: f32) {
        // A range that starts before `first` and reaches into it keeps its
        // part before, and its part after `last` if it runs past it.
        if let Some((&start, &(end, old))) = self.ranges.range(..first).next_back()
            && end >= first
        {
            self.ranges.insert(start, (first - 1, old));
            if end > last {
                self.ranges.insert(last + 1, (end, old));
            }
        }
        // Ranges that start within: gone, but for any part after `last`
        // (which starts outside, so the loop ends).
        while let Some((&start, &(end, old))) = self.ranges.range(first..=last).next() {
            self.ranges.remove(&start);
            if end > last {
                self.ranges.insert(last + 1, (end, old));
            }
        }
        self.ranges.insert(first, (last, v));
    }

    /// The width `/W` gives `cid`, if it gives one.
    fn get(&self, cid: u32) -> Option<f32> {
        let (_, &(last, v)) = self.ranges.range(..=cid).next_back()?;
        (cid <= last).then_some(v)
    }
}

/// Expands ligatures and drops control characters, so that "ﬁle" is found
/// by a search for "file".
fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    normalize_into(text, &mut out);
    out
}

/// [`normalize`], appending to `out`.
fn normalize_into(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '\u{FB00}' => out.push_str("ff"),
            '\u{FB01}' => out.push_str("fi"),
            '\u{FB02}' => out.push_str("fl"),
            '\u{FB03}' => out.push_str("ffi"),
            '\u{FB04}' => out.push_str("ffl"),
            '\u{FB05}' | '\u{FB06}' => out.push_str("st"),
            '\u{00A0}' => out.push(' '),
            '\u{00AD}' | '\u{200B}' | '\u{200C}' | '\u{FEFF}' => {}
            c if c.is_control() && c != '\t' => {}
            c => out.push(c),
        }
    }
}

pub(crate) fn deref<'a>(doc: &'a Document, obj: &'a Object) -> &'a Object {
    doc.dereference(obj).map(|(_, o)| o).unwrap_or(obj)
}

pub(crate) fn number(obj: &Object) -> Option<f32> {
    match obj {
        Object::Integer(i) => Some(*i as f32),
        Object::Real(r) => Some(*r),
        _ => None,
    }
}

fn name_of(doc: &Document, obj: Option<&Object>) -> Option<Vec<u8>> {
    match deref(doc, obj?) {
        Object::Name(n) => Some(n.clone()),
        _ => None,
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glyph_names_with_code_points() {
        assert_eq!(glyph_name_to_char(b"uni4E2D"), Some('中'));
        assert_eq!(glyph_name_to_char(b"u1F600"), Some('😀'));
        assert_eq!(glyph_name_to_char(b"fi"), Some('\u{FB01}'));
        assert_eq!(glyph_name_to_char(b"A"), None);
    }

    #[test]
    fn glyph_names_resolve_through_the_glyph_list_and_unknown_ones_to_nothing() {
        assert!(
            GLYPHS
                .windows(2)
                .all(|w| w[0].0.as_bytes() < w[1].0.as_bytes())
        );
        assert_eq!(glyph_from_list(b"A").as_deref(), Some("A"));
        assert_eq!(
            glyph_from_list(b"quotedblleft").as_deref(),
            Some("\u{201C}")
        );
        assert_eq!(glyph_from_list(b"Euro").as_deref(), Some("\u{20AC}"));
        assert_eq!(
            glyph_from_list(b"alefhamzaabovearabic").as_deref(),
            Some("\u{0623}")
        );
        // Before, a name the list lacks read as "A" (lopdf's fallback).
        assert_eq!(glyph_from_list(b"g123"), None);
        assert_eq!(glyph_from_list(b""), None);
    }

    #[test]
    fn widths_that_run_past_the_last_code_stop_there() {
        let doc = Document::with_version("1.7");
        // A range whose first CID is within 0xFFFF of the last, then a list
        // starting at the last: neither may wrap round to CID 0.
        let w = [
            Object::Integer(0xFFFF_FF00),
            Object::Integer(i64::from(u32::MAX)),
            Object::Integer(700),
            Object::Integer(i64::from(u32::MAX)),
            Object::Array(vec![Object::Integer(500), Object::Integer(600)]),
        ];
        let cids = CidWidths::parse(&doc, &w);
        assert_eq!(cids.get(0xFFFF_FF00), Some(700.0));
        assert_eq!(cids.get(u32::MAX - 1), Some(700.0));
        assert_eq!(cids.get(u32::MAX), Some(500.0));
        assert_eq!(cids.get(0xFFFF_FEFF), None);
        assert_eq!(cids.get(0), None);

        let mut font = Dictionary::new();
        font.set("FirstChar", Object::Real(1e30));
        font.set("Widths", Object::Array(vec![Object::Integer(250)]));
        font.set("BaseFont", Object::Name(b"Helvetica".to_vec()));
        assert!(
            simple_widths(&doc, &font, false)
                .iter()
                .all(|w| *w == 500.0)
        );
        font.set("FirstChar", Object::Integer(255));
        assert_eq!(simple_widths(&doc, &font, false)[255], 250.0);
    }

    #[test]
    fn widths_given_twice_take_the_later_as_one_by_one_would() {
        // Overlapping ranges and lists, drawn at random over CIDs 0..200,
        // against the widths written one CID at a time.
        let doc = Document::with_version("1.7");
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..500 {
            let mut w = Vec::new();
            let mut one_by_one = HashMap::new();
            for k in 0..next(12) {
                let first = next(200) as u32;
                let v = k as f32 + 1.0;
                if next(3) == 0 {
                    let len = next(5) as u32;
                    let list = (0..len).map(|j| Object::Real(v + j as f32 / 8.0));
                    w.push(Object::Integer(first.into()));
                    w.push(Object::Array(list.collect()));
                    for j in 0..len {
                        one_by_one.insert(first + j, v + j as f32 / 8.0);
                    }
                } else {
                    let last = first + next(60) as u32;
                    w.extend([first, last].map(|c| Object::Integer(c.into())));
                    w.push(Object::Real(v));
                    for cid in first..=last {
                        one_by_one.insert(cid, v);
                    }
                }
            }
            let cids = CidWidths::parse(&doc, &w);
            for cid in 0..300 {
                assert_eq!(
                    cids.get(cid),
                    one_by_one.get(&cid).copied(),
                    "CID {cid} of {w:?}"
                );
            }
            assert!(cids.ranges.len() <= 2 * w.len() + 1);
        }

        // 100,000 ranges of 160 CIDs (under 2^24, which CIDs read as f32
        // keep exact): 100,000 entries, not 16 million.
        let w: Vec<Object> = (0..100_000i64)
            .flat_map(|i| [i * 160, i * 160 + 159, 500].map(Object::Integer))
            .collect();
        let cids = CidWidths::parse(&doc, &w);
        assert_eq!(cids.ranges.len(), 100_000);
        assert_eq!(cids.get(16_000_000 - 1), Some(500.0));
        assert_eq!(cids.get(16_000_000), None);
    }

    #[test]
    fn normalize_expands_ligatures() {
        assert_eq!(normalize("\u{FB01}le\u{00AD}s"), "files");
    }

    #[test]
    fn legacy_encodings_by_name() {
        assert!(matches!(
            predefined_encoding(b"UniGB-UCS2-H").0,
            Some(TextEncoding::Utf16)
        ));
        assert!(
            matches!(predefined_encoding(b"90ms-RKSJ-H").0, Some(TextEncoding::Legacy(e)) if e == encoding_rs::SHIFT_JIS)
        );
        assert!(predefined_encoding(b"Identity-H").0.is_none());
    }
}
