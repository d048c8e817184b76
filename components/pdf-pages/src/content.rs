//! Runs a page's content streams far enough to know where each glyph lands:
//! graphics state (`q`/`Q`/`cm`), text state and positioning (`Td`, `TD`,
//! `Tm`, `T*`, `TJ` offsets, spacing), and Form XObjects (`Do`), which are
//! entered with their own matrix and resources.
//!
//! A page's work is bounded: it may run at most `page_operators` operators,
//! counting a form's each time it is drawn, and hold at most
//! `page_text_bytes` of text; a form's content is decoded once per batch,
//! and so is a font loaded (with its CMaps, each read once), the batch's
//! fonts holding at most 64 MiB together.
//! Past a limit the page stops, and becomes an error naming the limit.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use lopdf::{Dictionary, Object, ObjectId};

use crate::Batch;
use crate::cmap::CMaps;
use crate::fonts::{Font, deref, number};
use crate::layout::{Layout, Placed};
use pdf_syntax::{is_delim, is_white, unescape_name};

type Matrix = [f32; 6];
const IDENTITY: Matrix = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0];

fn mul(m: &Matrix, n: &Matrix) -> Matrix {
    [
        m[0] * n[0] + m[1] * n[2],
        m[0] * n[1] + m[1] * n[3],
        m[2] * n[0] + m[3] * n[2],
        m[2] * n[1] + m[3] * n[3],
        m[4] * n[0] + m[5] * n[2] + n[4],
        m[4] * n[1] + m[5] * n[3] + n[5],
    ]
}

/// Form XObjects nest at most this deep; deeper (or cyclic) ones are skipped.
const MAX_FORM_DEPTH: usize = 12;

#[derive(Clone)]
struct GState {
    ctm: Matrix,
    font: Option<usize>,
    size: f32,
    char_spacing: f32,
    word_spacing: f32,
    scale: f32,
    leading: f32,
    rise: f32,
}

/// Most elements an operand array keeps (a `TJ` array holds a line's
/// worth); the rest are read and dropped.
const MAX_ARRAY: usize = 1 << 16;
/// Operand arrays nest at most this deep.
const MAX_ARRAY_DEPTH: usize = 32;
/// Decoded form contents kept for the batch, in bytes.
const FORM_CACHE_BYTES: usize = 8 << 20;
/// Memory the fonts loaded for one batch may hold, in bytes, as
/// [`Font::heap_bytes`] and [`CMaps::heap_bytes`] count it: a quarter of
/// the parser's default memory. Real fonts hold well under a megabyte
/// each, their CMaps too.
const FONT_CACHE_BYTES: usize = 64 << 20;

/// What the pages of one batch share: the fonts already loaded, and the
/// forms already decoded (or refused, with why). `'d` is the batch's
/// document, where every dictionary the pages name lives.
#[derive(Default)]
pub(crate) struct Cache<'d> {
    fonts: Vec<Font>,
    /// Each font dictionary's font, whether the resources name it by
    /// reference or hold it inline: a page that selects an inline font a
    /// million times loads it once.
    by_dict: HashMap<ByAddress<'d>, usize>,
    /// What `fonts` hold, in bytes, but for their CMaps.
    font_bytes: usize,
    cmaps: CMaps,
    forms: HashMap<ObjectId, Result<Rc<[u8]>, String>>,
    form_bytes: usize,
}

/// A dictionary known by where it is: the document does not change while
/// a batch is read, so one address is one dictionary.
struct ByAddress<'d>(&'d Dictionary);

impl PartialEq for ByAddress<'_> {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.0, other.0)
    }
}

impl Eq for ByAddress<'_> {}

impl std::hash::Hash for ByAddress<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        std::ptr::hash(self.0, state)
    }
}

impl<'d> Cache<'d> {
    /// The font `resources` name `name`, loaded the first time it is
    /// asked for; or why the page must stop: loading it would take the
    /// batch's fonts past [`FONT_CACHE_BYTES`].
    fn lookup(
        &mut self,
        batch: &'d Batch,
        resources: Option<&'d Dictionary>,
        name: &[u8],
    ) -> Result<Option<usize>, String> {
        let doc = &batch.doc;
        let Some(dict) = resources
            .and_then(|r| r.get(b"Font").ok())
            .and_then(|o| deref(doc, o).as_dict().ok())
            .and_then(|fonts| fonts.get(name).ok())
            .and_then(|o| deref(doc, o).as_dict().ok())
        else {
            return Ok(None);
        };
        if let Some(&i) = self.by_dict.get(&ByAddress(dict)) {
            return Ok(Some(i));
        }
        let font = Font::load(batch, dict, &mut self.cmaps);
        let size = font.heap_bytes();
        if let Some(why) = self.over_budget(size, self.fonts.len() + 1) {
            return Err(why);
        }
        self.font_bytes += size;
        self.fonts.push(font);
        self.by_dict.insert(ByAddress(dict), self.fonts.len() - 1);
        Ok(Some(self.fonts.len() - 1))
    }

    /// Why `fonts` fonts may not hold `more` bytes beyond what the batch's
    /// fonts and CMaps hold now, if they may not.
    fn over_budget(&self, more: usize, fonts: usize) -> Option<String> {
        let held = self.font_bytes + self.cmaps.heap_bytes() + more;
        (held > FONT_CACHE_BYTES).then(|| {
            format!(
                "the fonts of the batch would hold more than {} MiB of memory ({} KiB in {fonts} fonts and their CMaps)",
                FONT_CACHE_BYTES >> 20,
                held >> 10,
            )
        })
    }
}

/// Interprets one page's content streams (its own, and its forms') into
/// `layout`.
pub(crate) struct Interpreter<'a, 'd> {
    batch: &'d Batch,
    cache: &'a mut Cache<'d>,
    layout: &'a mut Layout,
    forms_open: HashSet<ObjectId>,
    /// Operators the page may still run.
    operators_left: u64,
    /// Why the page stopped early, if it did.
    stopped: Option<String>,
    /// Images drawn (image XObjects and inline images).
    images: usize,
}

impl<'a, 'd> Interpreter<'a, 'd> {
    pub(crate) fn new(batch: &'d Batch, cache: &'a mut Cache<'d>, layout: &'a mut Layout) -> Self {
        Interpreter {
            batch,
            cache,
            layout,
            forms_open: HashSet::new(),
            operators_left: batch.inflater.limits().page_operators,
            stopped: None,
            images: 0,
        }
    }

    /// Images the page has drawn so far.
    pub(crate) fn images(&self) -> usize {
        self.images
    }

    /// Why the page stopped before its end (a limit it passed), if it did.
    pub(crate) fn stopped(&mut self) -> Option<String> {
        self.stopped.take().or_else(|| self.layout.overflow())
    }

    fn stop(&mut self, why: String) {
        self.stopped.get_or_insert(why);
    }

    /// Runs `content` with `resources`, starting from `ctm`.
    pub(crate) fn run(
        &mut self,
        content: &[u8],
        resources: Option<&'d Dictionary>,
        ctm: Matrix,
        depth: usize,
    ) {
        let mut gs = GState {
            ctm,
            font: None,
            size: 0.0,
            char_spacing: 0.0,
            word_spacing: 0.0,
            scale: 1.0,
            leading: 0.0,
            rise: 0.0,
        };
        let mut stack: Vec<GState> = Vec::new();
        let mut tm = IDENTITY;
        let mut tlm = IDENTITY;
        let mut lexer = Lexer::new(content);
        let mut operands: Vec<Operand> = Vec::new();
        while let Some(tok) = lexer.next() {
            let op = match tok {
                Token::Operand(o) => {
                    if operands.len() < 64 {
                        operands.push(o);
                    }
                    continue;
                }
                Token::Operator(op) => op,
            };
            if self.stopped.is_some() || self.layout.overflow_pending() {
                return;
            }
            let Some(left) = self.operators_left.checked_sub(1) else {
                let limit = self.batch.inflater.limits().page_operators;
                self.stop(format!(
                    "the page runs more than pdf.max_page_operators ({limit}) operators, counting its forms each time they are drawn"
                ));
                return;
            };
            self.operators_left = left;
            let nums = |k: usize| -> Option<Vec<f32>> {
                let start = operands.len().checked_sub(k)?;
                operands[start..].iter().map(Operand::num).collect()
            };
            match op {
                b"q" if stack.len() < 256 => stack.push(gs.clone()),
                b"Q" => {
                    if let Some(saved) = stack.pop() {
                        gs = saved;
                    }
                }
                b"cm" => {
                    if let Some(m) = nums(6) {
                        gs.ctm = mul(&[m[0], m[1], m[2], m[3], m[4], m[5]], &gs.ctm);
                    }
                }
                b"BT" => {
                    tm = IDENTITY;
                    tlm = IDENTITY;
                }
                b"Tf" => {
                    if let [.., Operand::Name(name), size] = operands.as_slice() {
                        gs.font = match self.cache.lookup(self.batch, resources, name) {
                            Ok(font) => font,
                            Err(why) => {
                                self.stop(format!("a font of the page: {why}"));
                                return;
                            }
                        };
                        if let Some(why) = gs
                            .font
                            .and_then(|i| self.cache.fonts.get(i))
                            .and_then(Font::limit)
                        {
                            self.stop(format!("a font of the page: {why}"));
                            return;
                        }
                        gs.size = size.num().unwrap_or(0.0);
                    }
                }
                b"Tc" => gs.char_spacing = nums(1).map_or(0.0, |n| n[0]),
                b"Tw" => gs.word_spacing = nums(1).map_or(0.0, |n| n[0]),
                b"Tz" => gs.scale = nums(1).map_or(100.0, |n| n[0]) / 100.0,
                b"TL" => gs.leading = nums(1).map_or(0.0, |n| n[0]),
                b"Ts" => gs.rise = nums(1).map_or(0.0, |n| n[0]),
                b"Td" | b"TD" => {
                    if let Some(n) = nums(2) {
                        if op == b"TD" {
                            gs.leading = -n[1];
                        }
                        tlm = mul(&[1.0, 0.0, 0.0, 1.0, n[0], n[1]], &tlm);
                        tm = tlm;
                    }
                }
                b"Tm" => {
                    if let Some(m) = nums(6) {
                        tlm = [m[0], m[1], m[2], m[3], m[4], m[5]];
                        tm = tlm;
                    }
                }
                b"T*" => {
                    tlm = mul(&[1.0, 0.0, 0.0, 1.0, 0.0, -gs.leading], &tlm);
                    tm = tlm;
                }
                b"Tj" | b"'" | b"\"" => {
                    if op != b"Tj" {
                        if op == b"\""
                            && let Some(n) = operands.len().checked_sub(3).and_then(|s| {
                                operands[s..s + 2]
                                    .iter()
                                    .map(Operand::num)
                                    .collect::<Option<Vec<_>>>()
                            })
                        {
                            gs.word_spacing = n[0];
                            gs.char_spacing = n[1];
                        }
                        tlm = mul(&[1.0, 0.0, 0.0, 1.0, 0.0, -gs.leading], &tlm);
                        tm = tlm;
                    }
                    if let Some(Operand::Str(s)) = operands.last() {
                        self.show(&gs, &mut tm, s);
                    }
                }
                b"TJ" => {
                    if let Some(Operand::Array(items)) = operands.last() {
                        for item in items {
                            match item {
                                Operand::Str(s) => self.show(&gs, &mut tm, s),
                                other => {
                                    if let Some(n) = other.num() {
                                        let tx = -n / 1000.0 * gs.size * gs.scale;
                                        tm = mul(&[1.0, 0.0, 0.0, 1.0, tx, 0.0], &tm);
                                    }
                                }
                            }
                        }
                    }
                }
                b"Do" => {
                    if let Some(Operand::Name(name)) = operands.last()
                        && depth < MAX_FORM_DEPTH
                    {
                        self.form(resources, name, &gs.ctm, depth);
                    }
                }
                b"BI" => self.images += 1,
                _ => {}
            }
            operands.clear();
        }
    }

    fn show(&mut self, gs: &GState, tm: &mut Matrix, bytes: &[u8]) {
        let Some(font) = gs.font.and_then(|i| self.cache.fonts.get_mut(i)) else {
            return;
        };
        let layout = &mut *self.layout;
        let (size, scale, cs, ws, rise, ctm) = (
            gs.size,
            gs.scale,
            gs.char_spacing,
            gs.word_spacing,
            gs.rise,
            gs.ctm,
        );
        let batch = self.batch;
        let grown = font.decode(batch, bytes, |glyph| {
            let m = mul(tm, &ctm);
            let trm = mul(&[size * scale, 0.0, 0.0, size, 0.0, rise], &m);
            let mut tx = (glyph.width / 1000.0 * size + cs) * scale;
            if glyph.is_space_code {
                tx += ws * scale;
            }
            let x_scale = (m[0] * m[0] + m[1] * m[1]).sqrt();
            let device_size = (trm[2] * trm[2] + trm[3] * trm[3]).sqrt();
            // Rotated text: measure along its own baseline.
            let (x, y) = if m[1].abs() > m[0].abs() {
                if m[1] > 0.0 {
                    (trm[5], -trm[4])
                } else {
                    (-trm[5], trm[4])
                }
            } else if m[0] < 0.0 {
                (-trm[4], -trm[5])
            } else {
                (trm[4], trm[5])
            };
            layout.push(Placed {
                x,
                y,
                size: device_size,
                advance: tx * x_scale,
                text: glyph.text,
            });
            *tm = mul(&[1.0, 0.0, 0.0, 1.0, tx, 0.0], tm);
        });
        // Its encoding is read at the first code its /ToUnicode lacks.
        if let Some(why) = font.limit() {
            let why = format!("a font of the page: {why}");
            self.stop(why);
        }
        // So is each code's text, which the font keeps.
        if grown > 0 {
            self.cache.font_bytes += grown;
            if let Some(why) = self.cache.over_budget(0, self.cache.fonts.len()) {
                self.stop(format!("a font of the page: {why}"));
            }
        }
    }

    fn form(&mut self, resources: Option<&'d Dictionary>, name: &[u8], ctm: &Matrix, depth: usize) {
        let batch = self.batch;
        let doc = &batch.doc;
        let Some(xobjects) = resources
            .and_then(|r| r.get(b"XObject").ok())
            .and_then(|o| deref(doc, o).as_dict().ok())
        else {
            return;
        };
        let Ok(entry) = xobjects.get(name) else {
            return;
        };
        let id = match entry {
            Object::Reference(id) => Some(*id),
            _ => None,
        };
        let Ok(stream) = deref(doc, entry).as_stream() else {
            return;
        };
        match stream.dict.get(b"Subtype").and_then(Object::as_name) {
            Ok(b"Form") => {}
            Ok(b"Image") => {
                self.images += 1;
                return;
            }
            _ => return,
        }
        if let Some(id) = id
            && !self.forms_open.insert(id)
        {
            return;
        }
        let matrix = stream
            .dict
            .get(b"Matrix")
            .ok()
            .and_then(|o| deref(doc, o).as_array().ok())
            .and_then(|a| {
                a.iter()
                    .map(|o| number(deref(doc, o)))
                    .collect::<Option<Vec<f32>>>()
            })
            .filter(|m| m.len() == 6)
            .map_or(IDENTITY, |m| [m[0], m[1], m[2], m[3], m[4], m[5]]);
        let own = stream
            .dict
            .get(b"Resources")
            .ok()
            .and_then(|o| deref(doc, o).as_dict().ok());
        let content = match id {
            Some(id) => match self.cache.forms.get(&id) {
                Some(hit) => hit.clone(),
                None => {
                    let decoded = decode_form(batch, stream);
                    let size = decoded.as_ref().map_or(0, |c| c.len());
                    if self.cache.form_bytes + size <= FORM_CACHE_BYTES {
                        self.cache.form_bytes += size;
                        self.cache.forms.insert(id, decoded.clone());
                    }
                    decoded
                }
            },
            None => decode_form(batch, stream),
        };
        match content {
            Ok(content) => self.run(&content, own.or(resources), mul(&matrix, ctm), depth + 1),
            Err(why) => self.stop(format!("a form of the page: {why}")),
        }
        if let Some(id) = id {
            self.forms_open.remove(&id);
        }
    }
}

/// A form's content, decoded under the batch's limits (a damaged stream is
/// read as it is).
fn decode_form(batch: &Batch, stream: &lopdf::Stream) -> Result<Rc<[u8]>, String> {
    match batch.inflater.decode(stream) {
        Ok(data) => Ok(data.into()),
        Err(pdf_syntax::limits::DecodeError::Limit(why)) => Err(why),
        Err(pdf_syntax::limits::DecodeError::Damaged(_)) => Ok(stream.content.as_slice().into()),
    }
}

enum Operand {
    Num(f32),
    Name(Vec<u8>),
    Str(Vec<u8>),
    Array(Vec<Operand>),
    Other,
}

impl Operand {
    fn num(&self) -> Option<f32> {
        match self {
            Operand::Num(n) => Some(*n),
            _ => None,
        }
    }
}

enum Token<'a> {
    Operand(Operand),
    Operator(&'a [u8]),
}

/// A content-stream tokenizer: fast, allocation-light, and tolerant of junk.
struct Lexer<'a> {
    data: &'a [u8],
    pos: usize,
    /// Arrays open around the current token.
    depth: usize,
}

impl<'a> Lexer<'a> {
    fn new(data: &'a [u8]) -> Self {
        Lexer {
            data,
            pos: 0,
            depth: 0,
        }
    }

    fn next(&mut self) -> Option<Token<'a>> {
        loop {
            self.skip_space();
            let c = *self.data.get(self.pos)?;
            return Some(match c {
                // Nested too deep: the bracket is junk.
                b'[' if self.depth >= MAX_ARRAY_DEPTH => {
                    self.pos += 1;
                    continue;
                }
                b'[' => {
                    self.pos += 1;
                    self.depth += 1;
                    let mut items = Vec::new();
                    loop {
                        self.skip_space();
                        match self.data.get(self.pos) {
                            None => break,
                            Some(b']') => {
                                self.pos += 1;
                                break;
                            }
                            _ => {}
                        }
                        match self.next() {
                            Some(Token::Operand(o)) => {
                                if items.len() < MAX_ARRAY {
                                    items.push(o);
                                }
                            }
                            // An operator inside an array: malformed; stop the array.
                            Some(Token::Operator(_)) | None => break,
                        }
                    }
                    self.depth -= 1;
                    Token::Operand(Operand::Array(items))
                }
                b']' | b'{' | b'}' | b')' | b'>' => {
                    self.pos += 1;
                    continue;
                }
                b'<' if self.data.get(self.pos + 1) == Some(&b'<') => {
                    self.skip_dict();
                    Token::Operand(Operand::Other)
                }
                b'<' => Token::Operand(Operand::Str(self.hex_string())),
                b'(' => Token::Operand(Operand::Str(self.literal_string())),
                b'/' => {
                    self.pos += 1;
                    let start = self.pos;
                    self.pos = pdf_syntax::token_end(self.data, self.pos);
                    Token::Operand(Operand::Name(unescape_name(&self.data[start..self.pos])))
                }
                b'0'..=b'9' | b'+' | b'-' | b'.' => {
                    let start = self.pos;
                    self.pos = pdf_syntax::token_end(self.data, self.pos);
                    let word = &self.data[start..self.pos];
                    match pdf_syntax::real(word) {
                        Some(n) => Token::Operand(Operand::Num(n)),
                        None => Token::Operand(Operand::Num(lenient_number(word))),
                    }
                }
                _ => {
                    let start = self.pos;
                    self.pos = pdf_syntax::token_end(self.data, self.pos);
                    if start == self.pos {
                        self.pos += 1;
                        continue;
                    }
                    let word = &self.data[start..self.pos];
                    match word {
                        b"true" | b"false" | b"null" => Token::Operand(Operand::Other),
                        b"BI" => {
                            // The whole inline image, up to `EI`, is one operator.
                            self.skip_inline_image();
                            Token::Operator(word)
                        }
                        _ => Token::Operator(word),
                    }
                }
            });
        }
    }

    fn skip_space(&mut self) {
        self.pos = pdf_syntax::skip_space(self.data, self.pos);
    }

    fn skip_dict(&mut self) {
        let mut depth = 0usize;
        while self.pos < self.data.len() {
            match (self.data[self.pos], self.data.get(self.pos + 1)) {
                (b'<', Some(b'<')) => {
                    depth += 1;
                    self.pos += 2;
                }
                (b'>', Some(b'>')) => {
                    self.pos += 2;
                    depth -= 1;
                    if depth == 0 {
                        return;
                    }
                }
                (b'(', _) => {
                    self.literal_string();
                }
                _ => self.pos += 1,
            }
        }
    }

    fn skip_inline_image(&mut self) {
        // Skip the image dictionary up to `ID`, then binary data up to `EI`
        // standing alone.
        while self.pos + 1 < self.data.len() {
            if &self.data[self.pos..self.pos + 2] == b"ID"
                && self.pos > 0
                && is_white(self.data[self.pos - 1])
                && self.data.get(self.pos + 2).is_none_or(|&c| is_white(c))
            {
                self.pos += 3;
                break;
            }
            self.pos += 1;
        }
        while self.pos + 1 < self.data.len() {
            if &self.data[self.pos..self.pos + 2] == b"EI"
                && is_white(self.data[self.pos - 1])
                && self.data.get(self.pos + 2).is_none_or(|&c| is_delim(c))
            {
                self.pos += 2;
                return;
            }
            self.pos += 1;
        }
        self.pos = self.data.len();
    }

    fn hex_string(&mut self) -> Vec<u8> {
        let (s, end) = pdf_syntax::hex_string(self.data, self.pos);
        self.pos = end;
        s
    }

    fn literal_string(&mut self) -> Vec<u8> {
        let (s, end) = pdf_syntax::literal_string(self.data, self.pos);
        self.pos = end;
        s
    }
}

/// Numbers like `--5` or `1.2.3` appear in broken files; take what parses.
fn lenient_number(word: &[u8]) -> f32 {
    let s: String = word.iter().map(|&b| b as char).collect();
    let neg = s.starts_with('-');
    let digits: String = s
        .trim_start_matches(['-', '+'])
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let mut parts = digits.splitn(3, '.');
    let int = parts.next().unwrap_or("");
    let frac = parts.next().unwrap_or("");
    let v = format!(
        "{}.{}",
        if int.is_empty() { "0" } else { int },
        if frac.is_empty() { "0" } else { frac }
    )
    .parse::<f32>()
    .unwrap_or(0.0);
    if neg { -v } else { v }
}

#[cfg(test)]
mod tests {
    use lopdf::dictionary;

    use super::*;

    fn tokens(data: &[u8]) -> Vec<String> {
        let mut lexer = Lexer::new(data);
        let mut out = Vec::new();
        while let Some(t) = lexer.next() {
            out.push(match t {
                Token::Operator(op) => String::from_utf8_lossy(op).into_owned(),
                Token::Operand(Operand::Num(n)) => format!("{n}"),
                Token::Operand(Operand::Str(s)) => format!("({})", String::from_utf8_lossy(&s)),
                Token::Operand(Operand::Name(n)) => format!("/{}", String::from_utf8_lossy(&n)),
                Token::Operand(Operand::Array(a)) => format!("[{}]", a.len()),
                Token::Operand(Operand::Other) => "?".into(),
            });
        }
        out
    }

    #[test]
    fn lexes_strings_arrays_and_inline_images() {
        assert_eq!(
            tokens(
                b"BT /F1 12 Tf (a\\(b\\)\\101) Tj [(x) -250 <4142>] TJ ET BI /W 1 ID \x00\xff EI Q"
            ),
            vec![
                "BT", "/F1", "12", "Tf", "(a(b)A)", "Tj", "[3]", "TJ", "ET", "BI", "Q"
            ]
        );
    }

    #[test]
    fn deep_and_long_arrays_are_bounded() {
        let deep = "[".repeat(100_000) + " (x) Tj";
        assert_eq!(tokens(deep.as_bytes()), vec!["[1]"]);
        let long = format!("[{}] TJ", "1 ".repeat(MAX_ARRAY + 10));
        assert_eq!(
            tokens(long.as_bytes()),
            vec![format!("[{MAX_ARRAY}]"), "TJ".into()]
        );
    }

    #[test]
    fn broken_numbers_do_not_stop_the_page() {
        assert_eq!(tokens(b"--5 1.2.3 Td"), vec!["-5", "1.2", "Td"]);
    }

    /// A batch whose document holds `objects`, for pages run by hand.
    fn batch(objects: impl FnOnce(&mut lopdf::Document)) -> Batch {
        let mut doc = lopdf::Document::with_version("1.7");
        objects(&mut doc);
        Batch {
            doc,
            inflater: pdf_syntax::limits::Inflater::new(Default::default()),
        }
    }

    /// Runs `content` with `resources` as one page; its text, or why it
    /// stopped.
    fn page<'d>(
        batch: &'d Batch,
        cache: &mut Cache<'d>,
        resources: &'d Dictionary,
        content: &[u8],
    ) -> Result<String, String> {
        let mut layout = Layout::new(1 << 20);
        let mut interpreter = Interpreter::new(batch, cache, &mut layout);
        interpreter.run(content, Some(resources), IDENTITY, 0);
        match interpreter.stopped() {
            Some(why) => Err(why),
            None => Ok(layout.finish().0),
        }
    }

    /// A ToUnicode CMap of 65,536 codes, each to a CJK character: about
    /// a megabyte once read.
    const WIDE_CMAP: &[u8] = b"1 begincodespacerange <00> <FF> endcodespacerange\n\
        1 beginbfrange <0000> <FFFF> <4E00> endbfrange\n\
        1 beginbfchar <41> <005A> endbfchar";

    fn font_dict(to_unicode: lopdf::ObjectId) -> Dictionary {
        dictionary! {
            "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica",
            "ToUnicode" => to_unicode,
        }
    }

    #[test]
    fn an_inline_font_is_loaded_once_however_often_it_is_selected() {
        let mut resources = Dictionary::new();
        let batch = batch(|doc| {
            let cmap = doc.add_object(lopdf::Stream::new(Dictionary::new(), WIDE_CMAP.to_vec()));
            let fonts = dictionary! { "F1" => font_dict(cmap) };
            resources.set("Font", fonts);
        });
        let mut cache = Cache::default();
        // Before fonts were known by their dictionary, each `Tf` loaded the
        // inline font again: 8 KB and a CMap's megabyte a time.
        let content = format!("BT {}(A) Tj ET", "/F1 12 Tf ".repeat(200_000));
        assert_eq!(
            page(&batch, &mut cache, &resources, content.as_bytes()),
            Ok("Z".into())
        );
        assert_eq!(cache.fonts.len(), 1);
        assert!(cache.font_bytes + cache.cmaps.heap_bytes() < 2 << 20);
    }

    #[test]
    fn fonts_share_a_cmap_and_past_their_budget_stop_the_page() {
        // 200 fonts: on page 1 they share one CMap stream, on page 2 each
        // has its own.
        let (mut shared, mut own) = (Dictionary::new(), Dictionary::new());
        let batch = batch(|doc| {
            let cmap = doc.add_object(lopdf::Stream::new(Dictionary::new(), WIDE_CMAP.to_vec()));
            let (mut a, mut b) = (Dictionary::new(), Dictionary::new());
            for i in 0..200 {
                a.set(format!("F{i}"), doc.add_object(font_dict(cmap)));
                let cmap =
                    doc.add_object(lopdf::Stream::new(Dictionary::new(), WIDE_CMAP.to_vec()));
                b.set(format!("F{i}"), doc.add_object(font_dict(cmap)));
            }
            shared.set("Font", a);
            own.set("Font", b);
        });
        let content: String = (0..200)
            .map(|i| format!("BT /F{i} 12 Tf 72 {} Td (A) Tj ET\n", 3000 - i * 14))
            .collect();
        let mut cache = Cache::default();
        let text = page(&batch, &mut cache, &shared, content.as_bytes()).unwrap();
        assert_eq!(text.matches('Z').count(), 200);
        assert_eq!(cache.fonts.len(), 200);
        let kib = cache.cmaps.heap_bytes() >> 10;
        assert!((900..1100).contains(&kib), "one CMap read, of {kib} KiB");
        let why = page(&batch, &mut cache, &own, content.as_bytes()).unwrap_err();
        assert!(
            why.starts_with(
                "a font of the page: the fonts of the batch would hold more than 64 MiB of memory"
            ),
            "{why}"
        );
        assert!(cache.font_bytes + cache.cmaps.heap_bytes() <= FONT_CACHE_BYTES + (2 << 20));
        // The fonts it holds go on serving.
        assert!(page(&batch, &mut cache, &shared, b"BT /F7 12 Tf (A) Tj ET").is_ok());
    }

    #[test]
    fn the_text_fonts_keep_for_their_codes_counts_against_their_budget() {
        // One shared CMap gives each of 256 codes 768 bytes of text, which
        // each of 400 fonts keeps for itself once it shows them (256 KiB,
        // its string grown by doubling): 100 MiB over 400 pages of 196 KB
        // of text each.
        let target = "4E00".repeat(256);
        let entries: String = (0..256)
            .map(|c| format!("<{c:02X}> <{target}>\n"))
            .collect();
        let map = format!("256 beginbfchar\n{entries}endbfchar");
        let mut resources = Dictionary::new();
        let batch = batch(|doc| {
            let cmap = doc.add_object(lopdf::Stream::new(Dictionary::new(), map.into_bytes()));
            let mut fonts = Dictionary::new();
            for i in 0..400 {
                fonts.set(format!("F{i}"), doc.add_object(font_dict(cmap)));
            }
            resources.set("Font", fonts);
        });
        let codes: String = (0..256).map(|c| format!("{c:02X}")).collect();
        let mut cache = Cache::default();
        let mut pages = 0;
        let why = loop {
            let content = format!("BT /F{pages} 12 Tf <{codes}> Tj ET");
            match page(&batch, &mut cache, &resources, content.as_bytes()) {
                Ok(text) => assert_eq!(text.chars().count(), 256 * 256),
                Err(why) => break why,
            }
            pages += 1;
            assert!(pages < 400, "every page read");
        };
        assert!((245..256).contains(&pages), "{pages} pages read");
        assert!(
            why.starts_with(
                "a font of the page: the fonts of the batch would hold more than 64 MiB of memory"
            ),
            "{why}"
        );
    }
}
