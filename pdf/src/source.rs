//! Where a document's objects come from: read one at a time through the
//! cross-reference table, or through a table rebuilt by scanning the file
//! when the written one is missing or wrong (see [`crate::repair`]), and
//! decrypted object by object when the document is encrypted. Memory does
//! not grow with the object count, and every stream this reader inflates
//! (object and cross-reference streams) is decoded under the document's
//! [`Limits`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};

use lopdf::{Dictionary, Object, ObjectId};
use pdf_syntax::limits::{DecodeError, Inflater, Limits};

use crate::crypt::Crypt;
use crate::parse::{self, Parser};
use crate::repair;

/// Where an object lives in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entry {
    Offset(usize),
    InStream { stream: u32 },
}

/// Why an object could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReadError {
    /// Reading it would pass one of the document's limits; says which.
    Limit(String),
    /// The file is damaged where the object should be.
    Damaged(String),
}

impl From<DecodeError> for ReadError {
    fn from(e: DecodeError) -> Self {
        match e {
            DecodeError::Limit(why) => ReadError::Limit(why),
            DecodeError::Damaged(why) => ReadError::Damaged(why),
        }
    }
}

impl From<String> for ReadError {
    fn from(why: String) -> Self {
        ReadError::Damaged(why)
    }
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Limit(why) | ReadError::Damaged(why) => f.write_str(why),
        }
    }
}

/// Most objects a document may have: real ones have up to a few hundred
/// thousand, and each costs the table memory however few bytes it took.
pub(crate) const MAX_OBJECTS: usize = 2_000_000;
/// Decoded object streams kept at once, in bytes of decoded content (their
/// objects are parsed from it one at a time, when asked for).
const OBJSTM_CACHE_BYTES: usize = 64 << 20;

/// A decoded object stream: its content, and where each of its objects
/// starts there. Objects are parsed when asked for, so what is kept is the
/// stream's bytes, not the many times larger parsed objects.
struct ObjStm {
    content: Vec<u8>,
    starts: HashMap<u32, usize>,
}

impl ObjStm {
    fn new(dict: &Dictionary, content: Vec<u8>) -> ObjStm {
        let starts = object_starts(dict, &content).collect();
        ObjStm { content, starts }
    }

    /// The object `number`, if the stream holds it and it parses.
    fn object(&self, number: u32) -> Option<Object> {
        let start = *self.starts.get(&number)?;
        Parser::new(&self.content, start).object().ok()
    }

    /// Memory it holds, roughly.
    fn size(&self) -> usize {
        self.content.len() + 16 * self.starts.len()
    }
}

type Objects = Arc<ObjStm>;

/// Object streams already decoded (or refused: a stream that failed is not
/// decoded again for every object in it), oldest first.
#[derive(Default)]
struct ObjStmCache {
    streams: HashMap<u32, Result<(Objects, usize), ReadError>>,
    order: VecDeque<u32>,
    bytes: usize,
}

impl ObjStmCache {
    fn insert(&mut self, number: u32, entry: Result<(Objects, usize), ReadError>) {
        let size = entry.as_ref().map_or(0, |(_, size)| *size);
        while self.bytes + size > OBJSTM_CACHE_BYTES
            && let Some(old) = self.order.pop_front()
        {
            if let Some(Ok((_, freed))) = self.streams.remove(&old) {
                self.bytes -= freed;
            }
        }
        self.bytes += size;
        self.order.push_back(number);
        self.streams.insert(number, entry);
    }
}

/// A PDF read object by object.
pub(crate) struct LazyFile {
    data: Vec<u8>,
    xref: HashMap<u32, Entry>,
    trailer: Dictionary,
    objstms: Mutex<ObjStmCache>,
    /// Where each `N G obj` header stands, by a scan of the file: built the
    /// first time the table points somewhere wrong, to repair that lookup.
    scanned: OnceLock<HashMap<u32, usize>>,
    inflater: Inflater,
    crypt: Option<Crypt>,
    /// Page objects the scan found, in object-number order, when the table
    /// was rebuilt: the pages of a file whose page tree is lost.
    orphan_pages: Option<Vec<ObjectId>>,
}

impl LazyFile {
    /// Reads the cross-reference table(s) and trailer of `data`; where they
    /// cannot be read, rebuilds them by scanning the file.
    pub(crate) fn open(data: Vec<u8>, limits: Limits) -> Result<LazyFile, ReadError> {
        let inflater = Inflater::new(limits);
        match read_xref(&data, &inflater) {
            Ok((xref, trailer)) => Ok(LazyFile {
                data,
                xref,
                trailer,
                objstms: Mutex::default(),
                scanned: OnceLock::new(),
                inflater,
                crypt: None,
                orphan_pages: None,
            }),
            Err(ReadError::Limit(why)) => Err(ReadError::Limit(why)),
            Err(ReadError::Damaged(why)) => {
                tracing::debug!(error = %why, "cross-reference table unreadable; rebuilding it by scanning");
                Self::rebuild(data, inflater)
            }
        }
    }

    /// The same file with its cross-reference table rebuilt by scanning,
    /// for when the table reads but leads nowhere.
    pub(crate) fn rebuilt(self) -> Result<LazyFile, ReadError> {
        Self::rebuild(self.data, self.inflater)
    }

    fn rebuild(data: Vec<u8>, inflater: Inflater) -> Result<LazyFile, ReadError> {
        let rebuilt = repair::rebuild(&data, &inflater)?;
        Ok(LazyFile {
            data,
            xref: rebuilt.xref,
            trailer: rebuilt.trailer,
            objstms: Mutex::default(),
            scanned: OnceLock::new(),
            inflater,
            crypt: None,
            orphan_pages: Some(rebuilt.pages),
        })
    }

    /// Whether the table was rebuilt by scanning.
    pub(crate) fn repaired(&self) -> bool {
        self.orphan_pages.is_some()
    }

    /// Page objects found by the scan, when the table was rebuilt.
    pub(crate) fn orphan_pages(&self) -> &[ObjectId] {
        self.orphan_pages.as_deref().unwrap_or_default()
    }

    /// The limits the document is read under.
    /// The inflater that decodes this file's streams, and counts them.
    pub(crate) fn inflater(&self) -> &Inflater {
        &self.inflater
    }

    pub(crate) fn limits(&self) -> &Limits {
        self.inflater.limits()
    }

    /// The trailer dictionary.
    pub(crate) fn trailer(&self) -> &Dictionary {
        &self.trailer
    }

    /// Whether the trailer names an encryption dictionary.
    pub(crate) fn is_encrypted(&self) -> bool {
        self.trailer.get(b"Encrypt").is_ok()
    }

    /// Whether objects are decrypted as they are read.
    pub(crate) fn decrypts(&self) -> bool {
        self.crypt.is_some()
    }

    /// Decrypts every object read from now on with `crypt`.
    pub(crate) fn set_crypt(&mut self, crypt: Crypt) {
        self.crypt = Some(crypt);
    }

    /// The object `id`, owned; a reference to an object the file does not
    /// hold is `null`, as the PDF specification has it.
    pub(crate) fn get(&self, id: ObjectId) -> Result<Object, ReadError> {
        match self.xref.get(&id.0) {
            None => Ok(Object::Null),
            Some(&Entry::Offset(offset)) => {
                let obj = self.object_at_or_scanned(id, offset)?;
                self.decrypt(id, obj)
            }
            Some(&Entry::InStream { stream }) => {
                let objects = self.object_stream(stream)?;
                Ok(objects.object(id.0).unwrap_or_else(|| {
                    tracing::debug!(
                        object = id.0,
                        stream,
                        "object missing from its object stream"
                    );
                    Object::Null
                }))
            }
        }
    }

    /// Whether the file's table lists object number `number`.
    pub(crate) fn lists(&self, number: u32) -> bool {
        self.xref.contains_key(&number)
    }

    /// Follows `obj` if it is a reference.
    pub(crate) fn resolve(&self, obj: &Object) -> Result<Object, ReadError> {
        let mut current = obj.clone();
        for _ in 0..32 {
            match current {
                Object::Reference(id) => current = self.get(id)?,
                other => return Ok(other),
            }
        }
        Err(ReadError::Damaged("reference chain too long".into()))
    }

    /// The object at `offset`, without decryption (the encryption
    /// dictionary is never encrypted).
    pub(crate) fn raw(&self, id: ObjectId) -> Result<Object, ReadError> {
        match self.xref.get(&id.0) {
            Some(&Entry::Offset(offset)) => self.object_at_or_scanned(id, offset),
            _ => Ok(Object::Null),
        }
    }

    fn decrypt(&self, id: ObjectId, mut obj: Object) -> Result<Object, ReadError> {
        if let Some(crypt) = &self.crypt {
            crypt.decrypt(id, &mut obj)?;
        }
        Ok(obj)
    }

    fn object_at_or_scanned(&self, id: ObjectId, offset: usize) -> Result<Object, ReadError> {
        match self.object_at(id, offset) {
            Ok(obj) => Ok(obj),
            Err(why) => {
                // A wrong table entry: find the object where it really is.
                let scanned = self
                    .scanned
                    .get_or_init(|| repair::scan_objects(&self.data));
                match scanned.get(&id.0) {
                    Some(&at) if at != offset => {
                        tracing::debug!(object = id.0, error = %why, "repaired a cross-reference entry by scanning");
                        Ok(self.object_at(id, at)?)
                    }
                    _ => Err(ReadError::Damaged(why)),
                }
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

    fn object_stream(&self, number: u32) -> Result<Objects, ReadError> {
        if let Some(hit) = self
            .objstms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .streams
            .get(&number)
        {
            return hit.clone().map(|(objects, _)| objects);
        }
        let decoded = self.decode_object_stream(number);
        if let Err(e) = &decoded {
            tracing::debug!(stream = number, error = %e, "object stream unreadable");
        }
        let mut cache = self.objstms.lock().unwrap_or_else(|p| p.into_inner());
        cache.insert(number, decoded.clone());
        decoded.map(|(objects, _)| objects)
    }

    fn decode_object_stream(&self, number: u32) -> Result<(Objects, usize), ReadError> {
        let Some(&Entry::Offset(offset)) = self.xref.get(&number) else {
            return Err(ReadError::Damaged(format!(
                "object stream {number} is missing"
            )));
        };
        let obj = self.object_at_or_scanned((number, 0), offset)?;
        let obj = self.decrypt((number, 0), obj)?;
        let stream = obj
            .as_stream()
            .map_err(|_| ReadError::Damaged(format!("object {number} is not an object stream")))?;
        let content = self.inflater.decode(stream).map_err(|e| match e {
            DecodeError::Limit(why) => ReadError::Limit(format!("object stream {number}: {why}")),
            DecodeError::Damaged(why) => {
                ReadError::Damaged(format!("object stream {number}: {why}"))
            }
        })?;
        let objects = ObjStm::new(&stream.dict, content);
        let size = objects.size();
        Ok((Arc::new(objects), size))
    }
}

/// The objects an object stream holds, by number.
pub(crate) fn parse_object_stream(dict: &Dictionary, content: &[u8]) -> HashMap<u32, Object> {
    object_starts(dict, content)
        .filter_map(|(num, start)| Some((num, Parser::new(content, start).object().ok()?)))
        .collect()
}

/// Where each object of an object stream starts in its `content`, by the
/// header of object numbers and offsets that opens it.
fn object_starts<'a>(
    dict: &Dictionary,
    content: &'a [u8],
) -> impl Iterator<Item = (u32, usize)> + 'a {
    let n = dict
        .get(b"N")
        .and_then(Object::as_i64)
        .unwrap_or(0)
        .clamp(0, 1_000_000) as usize;
    let first = dict
        .get(b"First")
        .and_then(Object::as_i64)
        .unwrap_or(0)
        .max(0) as usize;
    let mut header = Parser::new(content, 0);
    (0..n).map_while(move |_| {
        let (Ok(num), Ok(off)) = (header.integer(), header.integer()) else {
            return None;
        };
        let num = u32::try_from(num).ok()?;
        Some((num, first.saturating_add(off.max(0) as usize)))
    })
}

/// Reads the cross-reference sections from `startxref` back through
/// `/Prev`: the table, and the newest trailer.
fn read_xref(
    data: &[u8],
    inflater: &Inflater,
) -> Result<(HashMap<u32, Entry>, Dictionary), ReadError> {
    let tail_start = data.len().saturating_sub(4096);
    let at = data[tail_start..]
        .windows(9)
        .rposition(|w| w == b"startxref")
        .map(|i| tail_start + i)
        .ok_or_else(|| "no startxref".to_string())?;
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
            let Object::Dictionary(t) = p.object()? else {
                return Err("trailer is not a dictionary".to_string().into());
            };
            if let Ok(stm) = t.get(b"XRefStm").and_then(Object::as_i64) {
                read_stream_section(data, stm as usize, &mut xref, inflater)?;
            }
            t
        } else {
            read_stream_section(data, offset, &mut xref, inflater)?
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
    let trailer = trailer.ok_or_else(|| "no trailer".to_string())?;
    if trailer.get(b"Root").is_err() {
        return Err("trailer has no /Root".to_string().into());
    }
    Ok((xref, trailer))
}

/// Adds an entry to the table unless a newer section already did, or the
/// table is full.
fn add(xref: &mut HashMap<u32, Entry>, num: u32, entry: Entry) -> Result<(), ReadError> {
    if xref.len() >= MAX_OBJECTS && !xref.contains_key(&num) {
        return Err(ReadError::Limit(format!(
            "the document has more than {MAX_OBJECTS} objects"
        )));
    }
    xref.entry(num).or_insert(entry);
    Ok(())
}

fn read_table(p: &mut Parser<'_>, xref: &mut HashMap<u32, Entry>) -> Result<(), ReadError> {
    loop {
        let word = p.peek_word();
        if word == b"trailer" || word.is_empty() {
            return Ok(());
        }
        let start = p.integer()?;
        let count = p.integer()?;
        if !(0..=10_000_000).contains(&count) || !(0..=i64::from(u32::MAX)).contains(&start) {
            return Err("implausible cross-reference subsection".to_string().into());
        }
        for i in 0..count {
            let offset = p.integer()?;
            let _generation = p.integer()?;
            let kind = p.word();
            let num = (start + i) as u32;
            if kind == b"n" && offset > 0 {
                add(xref, num, Entry::Offset(offset as usize))?;
            } else if kind != b"f" && kind != b"n" {
                return Err(format!("bad cross-reference entry for object {num}").into());
            }
        }
    }
}

fn read_stream_section(
    data: &[u8],
    offset: usize,
    xref: &mut HashMap<u32, Entry>,
    inflater: &Inflater,
) -> Result<Dictionary, ReadError> {
    let (_, obj) = parse::indirect_object(data, offset, |_| None)?;
    let stream = obj
        .as_stream()
        .map_err(|_| "startxref points at neither a table nor a stream".to_string())?;
    let content = inflater.decode(stream).map_err(|e| match e {
        DecodeError::Limit(why) => ReadError::Limit(format!("cross-reference stream: {why}")),
        DecodeError::Damaged(why) => ReadError::Damaged(format!("cross-reference stream: {why}")),
    })?;
    let widths: Vec<usize> = stream
        .dict
        .get(b"W")
        .and_then(Object::as_array)
        .map_err(|_| "cross-reference stream has no /W".to_string())?
        .iter()
        .map(|o| o.as_i64().unwrap_or(0).clamp(0, 8) as usize)
        .collect();
    if widths.len() != 3 {
        return Err("cross-reference stream /W must have three entries"
            .to_string()
            .into());
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
        return Err("cross-reference stream rows are empty".to_string().into());
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
            let Ok(num) = u32::try_from(start.saturating_add(i)) else {
                break;
            };
            match kind {
                1 if a > 0 => add(xref, num, Entry::Offset(a as usize))?,
                2 => add(
                    xref,
                    num,
                    Entry::InStream {
                        stream: a.min(u64::from(u32::MAX)) as u32,
                    },
                )?,
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
