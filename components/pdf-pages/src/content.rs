//! Runs a page's content streams far enough to know where each glyph lands:
//! graphics state (`q`/`Q`/`cm`), text state and positioning (`Td`, `TD`,
//! `Tm`, `T*`, `TJ` offsets, spacing), and Form XObjects (`Do`), which are
//! entered with their own matrix and resources.
//!
//! A page's work is bounded: it may run at most `page_operators` operators,
//! counting a form's each time it is drawn, and hold at most
//! `page_text_bytes` of text; a form's content is decoded once per batch.
//! Past a limit the page stops, and becomes an error naming the limit.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use lopdf::{Dictionary, Object, ObjectId};

use crate::Batch;
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

/// What the pages of one batch share: the fonts already loaded, and the
/// forms already decoded (or refused, with why).
#[derive(Default)]
pub(crate) struct Cache {
    fonts: Vec<Font>,
    by_id: HashMap<ObjectId, usize>,
    forms: HashMap<ObjectId, Result<Rc<[u8]>, String>>,
    form_bytes: usize,
}

impl Cache {
    fn lookup(
        &mut self,
        batch: &Batch,
        resources: Option<&Dictionary>,
        name: &[u8],
    ) -> Option<usize> {
        let doc = &batch.doc;
        let fonts = resources?
            .get(b"Font")
            .ok()
            .map(|o| deref(doc, o))?
            .as_dict()
            .ok()?;
        let entry = fonts.get(name).ok()?;
        if let Object::Reference(id) = entry
            && let Some(&i) = self.by_id.get(id)
        {
            return Some(i);
        }
        let dict = deref(doc, entry).as_dict().ok()?;
        self.fonts.push(Font::load(batch, dict));
        let i = self.fonts.len() - 1;
        if let Object::Reference(id) = entry {
            self.by_id.insert(*id, i);
        }
        Some(i)
    }
}

/// Interprets one page's content streams (its own, and its forms') into
/// `layout`.
pub(crate) struct Interpreter<'a> {
    batch: &'a Batch,
    cache: &'a mut Cache,
    layout: &'a mut Layout,
    forms_open: HashSet<ObjectId>,
    /// Operators the page may still run.
    operators_left: u64,
    /// Why the page stopped early, if it did.
    stopped: Option<String>,
    /// Images drawn (image XObjects and inline images).
    images: usize,
}

impl<'a> Interpreter<'a> {
    pub(crate) fn new(batch: &'a Batch, cache: &'a mut Cache, layout: &'a mut Layout) -> Self {
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
        resources: Option<&Dictionary>,
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
                        gs.font = self.cache.lookup(self.batch, resources, name);
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
        font.decode(batch, bytes, |glyph| {
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
    }

    fn form(&mut self, resources: Option<&Dictionary>, name: &[u8], ctm: &Matrix, depth: usize) {
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
}
