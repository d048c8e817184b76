//! Where a document's objects come from: read one at a time through the
//! cross-reference table (the fast path, whose memory does not grow with the
//! document's object count), or from a whole-document `lopdf` load, used to
//! repair damaged files and to decrypt encrypted ones.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};

use lopdf::{Dictionary, Document, Object, ObjectId};

use super::parse::{self, Parser};

/// Where an object lives in the file.
#[derive(Debug, Clone, Copy)]
enum Entry {
    Offset(usize),
    InStream { stream: u32, index: u32 },
}

/// Parsed object streams kept at once (each holds up to a few hundred objects).
const OBJSTM_CACHE: usize = 16;

/// A PDF read object by object through its cross-reference table.
pub(crate) struct LazyFile {
    data: Vec<u8>,
    xref: HashMap<u32, Entry>,
    trailer: Dictionary,
    objstms: Mutex<HashMap<u32, Arc<HashMap<u32, Object>>>>,
    /// Where each `N G obj` header stands, by a scan of the file: built the
    /// first time the table points somewhere wrong, to repair that lookup.
    scanned: OnceLock<HashMap<u32, usize>>,
}

/// A document's objects.
pub(crate) enum Source {
    Lazy(Box<LazyFile>),
    Loaded(Box<Document>),
}

impl Source {
    /// The file's bytes, when they are still held (the lazy source).
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        match self {
            Source::Lazy(file) => file.into_bytes(),
            Source::Loaded(_) => Vec::new(),
        }
    }

    /// The object `id`, owned.
    pub(crate) fn get(&self, id: ObjectId) -> Result<Object, String> {
        match self {
            Source::Lazy(file) => file.get(id),
            Source::Loaded(doc) => doc
                .get_object(id)
                .cloned()
                .map_err(|e| format!("object {} {}: {e}", id.0, id.1)),
        }
    }

    /// The trailer dictionary.
    pub(crate) fn trailer(&self) -> &Dictionary {
        match self {
            Source::Lazy(file) => &file.trailer,
            Source::Loaded(doc) => &doc.trailer,
        }
    }

    /// Follows `obj` if it is a reference.
    pub(crate) fn resolve(&self, obj: &Object) -> Result<Object, String> {
        let mut current = obj.clone();
        for _ in 0..32 {
            match current {
                Object::Reference(id) => current = self.get(id)?,
                other => return Ok(other),
            }
        }
        Err("reference chain too long".into())
    }
}

impl LazyFile {
    /// Reads the cross-reference table(s) and trailer of `data`.
    /// On failure, gives the bytes back with the reason.
    pub(crate) fn open(data: Vec<u8>) -> Result<LazyFile, (String, Vec<u8>)> {
        match read_xref(&data) {
            Ok((xref, trailer)) => Ok(LazyFile {
                data,
                xref,
                trailer,
                objstms: Mutex::new(HashMap::new()),
                scanned: OnceLock::new(),
            }),
            Err(why) => Err((why, data)),
        }
    }

    /// Gives the file's bytes back (for the repairing loader).
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.data
    }

    /// Whether the trailer names an encryption dictionary.
    pub(crate) fn is_encrypted(&self) -> bool {
        self.trailer.get(b"Encrypt").is_ok()
    }

    fn get(&self, id: ObjectId) -> Result<Object, String> {
        match self.xref.get(&id.0) {
            None => Ok(Object::Null),
            Some(&Entry::Offset(offset)) => match self.object_at(id, offset) {
                Ok(obj) => Ok(obj),
                Err(why) => {
                    // A wrong table entry: find the object where it really is.
                    let scanned = self.scanned.get_or_init(|| scan_objects(&self.data));
                    match scanned.get(&id.0) {
                        Some(&at) if at != offset => {
                            tracing::debug!(object = id.0, error = %why, "repaired a cross-reference entry by scanning");
                            self.object_at(id, at)
                        }
                        _ => Err(why),
                    }
                }
            },
            Some(&Entry::InStream { stream, index }) => {
                let objects = self.object_stream(stream)?;
                Ok(objects.get(&id.0).cloned().unwrap_or_else(|| {
                    tracing::debug!(
                        object = id.0,
                        stream,
                        index,
                        "object missing from its object stream"
                    );
                    Object::Null
                }))
            }
        }
    }

    fn object_at(&self, id: ObjectId, offset: usize) -> Result<Object, String> {
        let (found, obj) = parse::indirect_object(&self.data, offset, |len_id| {
            match self.xref.get(&len_id.0) {
                Some(&Entry::Offset(o)) => match parse::indirect_object(&self.data, o, |_| None) {
                    Ok((_, Object::Integer(n))) => Some(n),
                    _ => None,
                },
                _ => None,
            }
        })
        .map_err(|e| format!("object {} {}: {e}", id.0, id.1))?;
        if found.0 != id.0 {
            return Err(format!(
                "cross-reference table points object {} at object {}",
                id.0, found.0
            ));
        }
        Ok(obj)
    }

    fn object_stream(&self, number: u32) -> Result<Arc<HashMap<u32, Object>>, String> {
        if let Some(hit) = self
            .objstms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&number)
        {
            return Ok(hit.clone());
        }
        let Some(&Entry::Offset(offset)) = self.xref.get(&number) else {
            return Err(format!("object stream {number} is missing"));
        };
        let (_, obj) = parse::indirect_object(&self.data, offset, |_| None)?;
        let stream = obj
            .as_stream()
            .map_err(|_| format!("object {number} is not an object stream"))?;
        let content = stream
            .decompressed_content()
            .map_err(|e| format!("object stream {number}: {e}"))?;
        let n = stream
            .dict
            .get(b"N")
            .and_then(Object::as_i64)
            .unwrap_or(0)
            .clamp(0, 1_000_000) as usize;
        let first = stream
            .dict
            .get(b"First")
            .and_then(Object::as_i64)
            .unwrap_or(0)
            .max(0) as usize;
        let mut header = Parser::new(&content, 0);
        let mut objects = HashMap::with_capacity(n);
        let mut entries = Vec::with_capacity(n);
        for _ in 0..n {
            let (Ok(num), Ok(off)) = (header.integer(), header.integer()) else {
                break;
            };
            entries.push((num as u32, off.max(0) as usize));
        }
        for (num, off) in entries {
            let mut p = Parser::new(&content, first.saturating_add(off));
            if let Ok(obj) = p.object(0) {
                objects.insert(num, obj);
            }
        }
        let objects = Arc::new(objects);
        let mut cache = self.objstms.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= OBJSTM_CACHE {
            cache.clear();
        }
        cache.insert(number, objects.clone());
        Ok(objects)
    }
}

/// Finds every `N G obj` header in the file; the last one of each number wins
/// (as later revisions do).
fn scan_objects(data: &[u8]) -> HashMap<u32, usize> {
    let mut out = HashMap::new();
    let mut i = 0;
    while let Some(rel) = data[i..].windows(3).position(|w| w == b"obj") {
        let at = i + rel;
        i = at + 3;
        // Walk back over "N G " before "obj".
        let mut j = at;
        let mut numbers = 0;
        while numbers < 2 {
            while j > 0 && parse::is_white(data[j - 1]) {
                j -= 1;
            }
            let end = j;
            while j > 0 && data[j - 1].is_ascii_digit() {
                j -= 1;
            }
            if j == end {
                break;
            }
            numbers += 1;
        }
        if numbers == 2
            && (j == 0 || parse::is_white(data[j - 1]))
            && let Some(num) = std::str::from_utf8(&data[j..at])
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse().ok())
        {
            out.insert(num, j);
        }
    }
    out
}

fn read_xref(data: &[u8]) -> Result<(HashMap<u32, Entry>, Dictionary), String> {
    let tail_start = data.len().saturating_sub(4096);
    let at = data[tail_start..]
        .windows(9)
        .rposition(|w| w == b"startxref")
        .map(|i| tail_start + i)
        .ok_or("no startxref")?;
    let mut p = Parser::new(data, at + 9);
    let mut next = Some(p.integer()? as usize);
    let mut xref = HashMap::new();
    let mut trailer: Option<Dictionary> = None;
    let mut seen = HashSet::new();
    while let Some(offset) = next.take() {
        if offset >= data.len() || !seen.insert(offset) || seen.len() > 1000 {
            break;
        }
        let mut p = Parser::new(data, offset);
        let section_trailer = if p.peek_word() == b"xref" {
            p.word();
            read_table(&mut p, &mut xref)?;
            p.expect(b"trailer")?;
            let Object::Dictionary(t) = p.object(0)? else {
                return Err("trailer is not a dictionary".into());
            };
            if let Ok(stm) = t.get(b"XRefStm").and_then(Object::as_i64) {
                read_stream_section(data, stm as usize, &mut xref)?;
            }
            t
        } else {
            read_stream_section(data, offset, &mut xref)?
        };
        next = section_trailer
            .get(b"Prev")
            .and_then(Object::as_i64)
            .ok()
            .map(|p| p as usize);
        if trailer.is_none() {
            trailer = Some(section_trailer);
        }
    }
    let trailer = trailer.ok_or("no trailer")?;
    if trailer.get(b"Root").is_err() {
        return Err("trailer has no /Root".into());
    }
    Ok((xref, trailer))
}

fn read_table(p: &mut Parser<'_>, xref: &mut HashMap<u32, Entry>) -> Result<(), String> {
    loop {
        let word = p.peek_word();
        if word == b"trailer" || word.is_empty() {
            return Ok(());
        }
        let start = p.integer()?;
        let count = p.integer()?;
        if !(0..=10_000_000).contains(&count) || start < 0 {
            return Err("implausible cross-reference subsection".into());
        }
        for i in 0..count {
            let offset = p.integer()?;
            let _generation = p.integer()?;
            let kind = p.word();
            let num = (start + i) as u32;
            if kind == b"n" && offset > 0 {
                xref.entry(num).or_insert(Entry::Offset(offset as usize));
            } else if kind != b"f" && kind != b"n" {
                return Err(format!("bad cross-reference entry for object {num}"));
            }
        }
    }
}

fn read_stream_section(
    data: &[u8],
    offset: usize,
    xref: &mut HashMap<u32, Entry>,
) -> Result<Dictionary, String> {
    let (_, obj) = parse::indirect_object(data, offset, |_| None)?;
    let stream = obj
        .as_stream()
        .map_err(|_| "startxref points at neither a table nor a stream".to_string())?;
    let content = stream
        .decompressed_content()
        .map_err(|e| format!("cross-reference stream: {e}"))?;
    let widths: Vec<usize> = stream
        .dict
        .get(b"W")
        .and_then(Object::as_array)
        .map_err(|_| "cross-reference stream has no /W")?
        .iter()
        .map(|o| o.as_i64().unwrap_or(0).clamp(0, 8) as usize)
        .collect();
    if widths.len() != 3 {
        return Err("cross-reference stream /W must have three entries".into());
    }
    let size = stream
        .dict
        .get(b"Size")
        .and_then(Object::as_i64)
        .unwrap_or(0);
    let index: Vec<i64> = match stream.dict.get(b"Index").and_then(Object::as_array) {
        Ok(a) => a.iter().filter_map(|o| o.as_i64().ok()).collect(),
        Err(_) => vec![0, size],
    };
    let row = widths.iter().sum::<usize>();
    if row == 0 {
        return Err("cross-reference stream rows are empty".into());
    }
    let field = |bytes: &[u8]| bytes.iter().fold(0u64, |a, &b| (a << 8) | b as u64);
    let mut rows = content.chunks_exact(row);
    for pair in index.chunks(2) {
        let [start, count] = pair else { break };
        for i in 0..(*count).max(0) {
            let Some(r) = rows.next() else { break };
            let kind = if widths[0] == 0 {
                1
            } else {
                field(&r[..widths[0]])
            };
            let a = field(&r[widths[0]..widths[0] + widths[1]]);
            let b = field(&r[widths[0] + widths[1]..]);
            let num = (start + i) as u32;
            match kind {
                1 if a > 0 => {
                    xref.entry(num).or_insert(Entry::Offset(a as usize));
                }
                2 => {
                    xref.entry(num).or_insert(Entry::InStream {
                        stream: a as u32,
                        index: b as u32,
                    });
                }
                _ => {}
            }
        }
    }
    let mut trailer = stream.dict.clone();
    for key in [
        b"W".as_slice(),
        b"Index",
        b"Length",
        b"Filter",
        b"DecodeParms",
        b"Type",
    ] {
        trailer.remove(key);
    }
    Ok(trailer)
}
