//! Cutting pages out of a document: a small, self-contained PDF holding
//! only the objects its pages reach (never up into the page tree, never
//! into other pages), with image samples and unused font programs left out,
//! bounded in size, and carrying the limits the parser must apply.

use std::collections::{HashMap, HashSet, VecDeque};

use lopdf::{Dictionary, Document, Object, ObjectId, StringFormat};
use pdf_syntax::limits::{Inflater, TRAILER_KEY};

use crate::pages::PageRef;
use crate::source::{LazyFile, ReadError};

/// Page keys a batch drops: links to other pages and data no parser reads.
const DROPPED_PAGE_KEYS: [&[u8]; 8] = [
    b"Parent",
    b"Annots",
    b"B",
    b"Thumb",
    b"Metadata",
    b"PieceInfo",
    b"StructParents",
    b"AA",
];

/// Why a batch could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchError {
    /// Its pages reach more than a limit allows; says which.
    Limit(String),
    /// Its pages cannot be read: missing, or damaged.
    Damaged(String),
}

impl std::fmt::Display for BatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BatchError::Limit(why) | BatchError::Damaged(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for BatchError {}

impl From<ReadError> for BatchError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Limit(why) => BatchError::Limit(why),
            ReadError::Damaged(why) => BatchError::Damaged(why),
        }
    }
}

/// The batch's objects, with what they weigh in memory.
struct Builder {
    doc: Document,
    map: HashMap<ObjectId, ObjectId>,
    queue: VecDeque<(ObjectId, ObjectId)>,
    weight: u64,
    max: u64,
}

impl Builder {
    /// An empty batch that may hold `max` bytes of objects (see [`footprint`]).
    fn new(max: u64) -> Self {
        Self {
            doc: Document::with_version("1.7"),
            map: HashMap::new(),
            queue: VecDeque::new(),
            weight: 0,
            max,
        }
    }

    fn insert(&mut self, id: ObjectId, obj: Object) -> Result<(), BatchError> {
        self.weight += footprint(&obj);
        if self.weight > self.max {
            return Err(BatchError::Limit(format!(
                "the pages reach more than pdf.max_batch_mib ({} MiB) of objects",
                self.max >> 20
            )));
        }
        self.doc.objects.insert(id, obj);
        Ok(())
    }

    /// Rewrites `obj` for the batch: the references inside it to the
    /// batch's numbering, scheduling every object seen for the first time,
    /// and its literal strings that the writer would escape to hexadecimal
    /// (see [`hex_if_escaped`]).
    fn rewrite(&mut self, obj: &mut Object) {
        match obj {
            Object::Reference(id) => {
                let new = match self.map.get(id) {
                    Some(new) => *new,
                    None => {
                        let new = self.doc.new_object_id();
                        self.map.insert(*id, new);
                        self.queue.push_back((*id, new));
                        new
                    }
                };
                *id = new;
            }
            Object::String(bytes, format) => hex_if_escaped(bytes, format),
            Object::Array(items) => items.iter_mut().for_each(|o| self.rewrite(o)),
            Object::Dictionary(dict) => dict.iter_mut().for_each(|(_, o)| self.rewrite(o)),
            Object::Stream(stream) => stream.dict.iter_mut().for_each(|(_, o)| self.rewrite(o)),
            _ => {}
        }
    }
}

/// Makes a literal string that holds a byte `lopdf`'s writer escapes (a
/// parenthesis, a backslash, a carriage return) hexadecimal. The writer
/// looks each byte up in the list of the string's escaped bytes, so a
/// string of n of them takes n² steps: an 88 KB file found by fuzzing took
/// 10 s to cut into pages, a string of 400,000 backslashes 17 s (ten times
/// as many would take half an hour). A hexadecimal string is written in
/// one pass, and reads back the same.
fn hex_if_escaped(bytes: &[u8], format: &mut StringFormat) {
    if matches!(format, StringFormat::Literal)
        && bytes
            .iter()
            .any(|b| matches!(b, b'(' | b')' | b'\\' | b'\r'))
    {
        *format = StringFormat::Hexadecimal;
    }
}

/// What `obj` costs in memory, roughly: its bytes, and a word or so per item.
fn footprint(obj: &Object) -> u64 {
    match obj {
        Object::Array(items) => ITEM + items.iter().map(footprint).sum::<u64>(),
        Object::Dictionary(dict) => dict_footprint(dict),
        Object::Stream(s) => s.content.len() as u64 + dict_footprint(&s.dict),
        Object::String(bytes, _) | Object::Name(bytes) => ITEM + bytes.len() as u64,
        _ => ITEM,
    }
}

fn dict_footprint(dict: &Dictionary) -> u64 {
    ITEM + dict
        .iter()
        .map(|(k, v)| k.len() as u64 + footprint(v))
        .sum::<u64>()
}

/// What one item of an object costs in memory beyond its bytes.
const ITEM: u64 = 48;

/// A self-contained PDF holding `pages` and only the objects they reach.
pub(crate) fn build(file: &LazyFile, pages: &[PageRef]) -> Result<Vec<u8>, BatchError> {
    let limits = *file.limits();
    let mut b = Builder::new(limits.batch_bytes);
    let pages_id = b.doc.new_object_id();
    let in_batch: HashSet<ObjectId> = pages.iter().map(|p| p.id).collect();
    // Streams a parser always decodes (pages' contents, fonts' ToUnicode
    // maps): the small ones travel decoded.
    let mut read_always: HashSet<ObjectId> = HashSet::new();
    let mut kids = Vec::with_capacity(pages.len());
    for page in pages {
        let new = b.doc.new_object_id();
        b.map.insert(page.id, new);
        kids.push(Object::Reference(new));
    }
    for page in pages {
        let new = b.map[&page.id];
        let mut obj = file.get(page.id)?;
        let dict = match &mut obj {
            Object::Dictionary(dict) => dict,
            Object::Null => {
                return Err(BatchError::Damaged(format!(
                    "page object {} {} is missing from the file",
                    page.id.0, page.id.1
                )));
            }
            _ => {
                return Err(BatchError::Damaged(format!(
                    "page object {} {} is not a dictionary",
                    page.id.0, page.id.1
                )));
            }
        };
        for key in DROPPED_PAGE_KEYS {
            dict.remove(key);
        }
        match dict.get(b"Contents") {
            Ok(Object::Reference(id)) => {
                read_always.insert(*id);
            }
            Ok(Object::Array(items)) => {
                read_always.extend(items.iter().filter_map(|o| o.as_reference().ok()));
            }
            _ => {}
        }
        for (key, value) in page.inherited.iter() {
            if dict.get(key).is_err() {
                dict.set(*key, value.clone());
            }
        }
        dict.set("Parent", Object::Reference(pages_id));
        b.rewrite(&mut obj);
        b.insert(new, obj)?;
    }
    // Fonts whose text comes from a ToUnicode map: their embedded
    // TrueType/CFF programs are never read by a parser, so leave them out.
    let mut mapped_fonts: HashSet<ObjectId> = HashSet::new();
    let mut programless: HashSet<ObjectId> = HashSet::new();
    // Type 1 font programs: a parser reads only their clear-text part.
    let mut type1_programs: HashSet<ObjectId> = HashSet::new();
    while let Some((old, new)) = b.queue.pop_front() {
        let mut obj = match file.get(old) {
            Ok(obj) => obj,
            Err(ReadError::Limit(why)) => return Err(BatchError::Limit(why)),
            Err(ReadError::Damaged(why)) => {
                tracing::debug!(object = old.0, error = %why, "unreadable object left out of the batch");
                Object::Null
            }
        };
        if (is_page_node(&obj) && !in_batch.contains(&old)) || is_structure(&obj) {
            obj = Object::Null;
        }
        if let Object::Dictionary(dict) = &mut obj {
            let is_font =
                dict.get(b"Type").and_then(Object::as_name).ok() == Some(b"Font".as_slice());
            if is_font && (dict.get(b"ToUnicode").is_ok() || mapped_fonts.contains(&old)) {
                for key in [b"DescendantFonts".as_slice(), b"FontDescriptor"] {
                    let refs: Vec<ObjectId> = match dict.get(key) {
                        Ok(Object::Reference(id)) => vec![*id],
                        Ok(Object::Array(items)) => {
                            items.iter().filter_map(|o| o.as_reference().ok()).collect()
                        }
                        _ => Vec::new(),
                    };
                    mapped_fonts.extend(refs.iter().copied());
                    if key == b"FontDescriptor" {
                        programless.extend(refs);
                    }
                }
            }
            if programless.contains(&old) {
                dict.remove(b"FontFile2");
                dict.remove(b"FontFile3");
            }
            if let Ok(Object::Reference(program)) = dict.get(b"FontFile") {
                type1_programs.insert(*program);
            }
            if is_font && let Ok(Object::Reference(map)) = dict.get(b"ToUnicode") {
                read_always.insert(*map);
            }
        }
        if let Object::Stream(stream) = &mut obj
            && (read_always.contains(&old)
                || stream.dict.get(b"Subtype").and_then(Object::as_name).ok()
                    == Some(b"Form".as_slice()))
        {
            ship_decoded(stream, file.inflater());
        }
        if let Object::Stream(stream) = &mut obj
            && type1_programs.contains(&old)
        {
            keep_clear_text(stream, file.inflater());
        }
        if let Object::Stream(stream) = &mut obj
            && stream.dict.get(b"Subtype").and_then(Object::as_name).ok()
                == Some(b"Image".as_slice())
        {
            // Image samples: no text in them, and often most of the bytes.
            stream.dict.remove(b"Filter");
            stream.dict.remove(b"DecodeParms");
            stream.dict.remove(b"SMask");
            stream.dict.remove(b"Mask");
            stream.set_content(Vec::new());
        }
        b.rewrite(&mut obj);
        b.insert(new, obj)?;
    }
    let mut pages_dict = Dictionary::new();
    pages_dict.set("Type", Object::Name(b"Pages".to_vec()));
    pages_dict.set("Count", Object::Integer(kids.len() as i64));
    pages_dict.set("Kids", Object::Array(kids));
    b.doc
        .objects
        .insert(pages_id, Object::Dictionary(pages_dict));
    let mut catalog = Dictionary::new();
    catalog.set("Type", Object::Name(b"Catalog".to_vec()));
    catalog.set("Pages", Object::Reference(pages_id));
    let catalog_id = b.doc.add_object(Object::Dictionary(catalog));
    b.doc.trailer.set("Root", Object::Reference(catalog_id));
    b.doc
        .trailer
        .set(TRAILER_KEY, Object::Dictionary(limits.to_dict()));
    let mut out = Vec::new();
    b.doc
        .save_to(&mut out)
        .map_err(|e| BatchError::Damaged(format!("cannot write batch: {e}")))?;
    Ok(out)
}

/// The largest stream a batch ships decoded.
const SHIPPED_DECODED_MAX: u64 = 128 << 10;

/// Stores a small stream that every parser decodes (a page's content, a
/// form's, a font's ToUnicode map) decoded, by the document's `inflater`
/// and within its limits: inflating it here, natively, costs a fraction of
/// what it costs the parser in WebAssembly, and is done once for the
/// batch. Only a plain Flate stream that ends within
/// [`SHIPPED_DECODED_MAX`] is; any other travels as it is, for the parser
/// to decode, or to meet the limit or damage it holds.
fn ship_decoded(stream: &mut lopdf::Stream, inflater: &Inflater) {
    let Some(decoded) = inflater.decode_whole(stream, SHIPPED_DECODED_MAX) else {
        return;
    };
    stream.set_plain_content(decoded);
}

/// The most of a Type 1 font program's clear-text part a batch keeps.
const CLEAR_TEXT_MAX: u64 = 256 << 10;

/// Cuts a Type 1 font program (`FontFile`) down to its clear-text part,
/// through `eexec`, stored unfiltered: all a parser reads of it (its
/// built-in encoding), and a tenth of its bytes. Only that part is inflated
/// (by the document's `inflater`). A program that is not one Flate stream,
/// or whose clear text does not end with `eexec` within `Length1` bytes, is
/// left whole.
fn keep_clear_text(stream: &mut lopdf::Stream, inflater: &Inflater) {
    let Ok(length1) = stream.dict.get(b"Length1").and_then(Object::as_i64) else {
        return;
    };
    if length1 <= 0 {
        return;
    }
    let Some(mut clear) = inflater.decode_prefix(stream, (length1 as u64).min(CLEAR_TEXT_MAX))
    else {
        return;
    };
    let Some(at) = clear.windows(5).position(|w| w == b"eexec") else {
        return;
    };
    clear.truncate(at + 5);
    stream
        .dict
        .set("Length1", Object::Integer(clear.len() as i64));
    stream.dict.set("Length2", Object::Integer(0));
    stream.dict.set("Length3", Object::Integer(0));
    stream.set_plain_content(clear);
}

fn is_page_node(obj: &Object) -> bool {
    let Ok(dict) = obj.as_dict() else {
        return false;
    };
    matches!(
        dict.get(b"Type").and_then(Object::as_name),
        Ok(b"Page") | Ok(b"Pages")
    )
}

/// The file's own structure (object and cross-reference streams): never
/// part of a page, and a parser loading them would inflate them.
fn is_structure(obj: &Object) -> bool {
    obj.as_stream().is_ok_and(|s| {
        matches!(
            s.dict.get(b"Type").and_then(Object::as_name),
            Ok(b"ObjStm") | Ok(b"XRef")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pdf_syntax::limits::Limits;

    fn inflater() -> Inflater {
        Inflater::new(Limits::default())
    }

    /// A Type 1 program: clear text through `eexec`, then "encrypted" bytes.
    fn program(filtered: bool) -> lopdf::Stream {
        let clear = b"%!PS-AdobeFont-1.0: Test\n/Encoding 256 array\ndup 65 /A put\nreadonly def\ncurrentfile eexec";
        let mut content = clear.to_vec();
        content.extend((0..40_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
        let mut dict = Dictionary::new();
        dict.set("Length1", Object::Integer(clear.len() as i64 + 1));
        dict.set("Length2", Object::Integer(40_000));
        dict.set("Length3", Object::Integer(0));
        let mut s = lopdf::Stream::new(dict, content);
        if filtered {
            s.compress().unwrap();
        }
        s
    }

    #[test]
    fn strings_the_writer_escapes_travel_as_hexadecimal_and_read_back_the_same() {
        let escaped: [&[u8]; 5] = [b"\\\\\\", b"a)b", b"(unclosed", b"line\r", b"(balanced)"];
        let plain: &[u8] = b"plain text, <and> [brackets]";
        let strings = escaped
            .iter()
            .chain([&plain])
            .map(|s| Object::String(s.to_vec(), StringFormat::Literal));
        let mut dict = Dictionary::new();
        dict.set("S", Object::Array(strings.collect()));
        let mut b = Builder::new(u64::MAX);
        let mut obj = Object::Dictionary(dict);
        b.rewrite(&mut obj);
        let id = b.doc.new_object_id();
        b.insert(id, obj).unwrap();
        let mut out = Vec::new();
        b.doc.save_to(&mut out).unwrap();

        let read = Document::load_mem_with_options(&out, lopdf::LoadOptions::default()).unwrap();
        let items = read.get_dictionary(id).unwrap().get(b"S").unwrap();
        let items = items.as_array().unwrap();
        assert_eq!(items.len(), escaped.len() + 1);
        for (item, want) in items.iter().zip(escaped) {
            let Object::String(bytes, format) = item else {
                panic!("{item:?} is not a string");
            };
            assert_eq!(bytes.as_slice(), want);
            assert!(matches!(format, StringFormat::Hexadecimal), "{item:?}");
        }
        let Object::String(bytes, format) = &items[escaped.len()] else {
            panic!("{:?} is not a string", items[escaped.len()]);
        };
        assert_eq!(bytes.as_slice(), plain);
        assert!(matches!(format, StringFormat::Literal));
    }

    #[test]
    fn a_type1_program_keeps_only_its_clear_text() {
        let mut s = program(true);
        keep_clear_text(&mut s, &inflater());
        assert!(s.content.ends_with(b"currentfile eexec"), "{:?}", s.content);
        assert!(s.content.starts_with(b"%!PS-AdobeFont-1.0"));
        assert!(s.dict.get(b"Filter").is_err());
        assert_eq!(
            s.dict.get(b"Length1").unwrap().as_i64().unwrap(),
            s.content.len() as i64
        );
        assert_eq!(s.dict.get(b"Length2").unwrap().as_i64().unwrap(), 0);
    }

    #[test]
    fn small_streams_travel_decoded_and_others_as_they_are() {
        let deflated = |content: Vec<u8>| {
            let mut s = lopdf::Stream::new(Dictionary::new(), content);
            s.compress().unwrap();
            s
        };
        let text = b"BT /F1 12 Tf 72 700 Td (Hello) Tj ET\n".repeat(100);
        let mut small = deflated(text.clone());
        let inflater = inflater();
        ship_decoded(&mut small, &inflater);
        assert_eq!(small.content, text);
        assert!(small.dict.get(b"Filter").is_err());
        assert_eq!(
            small.dict.get(b"Length").unwrap().as_i64().unwrap(),
            text.len() as i64
        );
        assert_eq!(inflater.used(), text.len() as u64);
        // Past what a batch ships decoded: the parser decodes it, under
        // its own limits.
        let mut large = deflated(vec![b' '; SHIPPED_DECODED_MAX as usize + 1]);
        let before = large.content.clone();
        ship_decoded(&mut large, &inflater);
        assert_eq!(large.content, before);
        assert!(large.dict.get(b"Filter").is_ok());
        // Damaged: left for the parser to keep what it can.
        let mut cut = deflated(text.clone());
        cut.content.truncate(cut.content.len() / 2);
        let before = cut.content.clone();
        ship_decoded(&mut cut, &inflater);
        assert_eq!(cut.content, before);
    }

    #[test]
    fn a_program_it_cannot_read_is_left_whole() {
        // Unfiltered: kept as it is.
        let mut plain = program(false);
        let before = plain.content.clone();
        keep_clear_text(&mut plain, &inflater());
        assert_eq!(plain.content, before);
        // No `eexec` within Length1 bytes.
        let mut short = program(true);
        short.dict.set("Length1", Object::Integer(20));
        let before = short.content.clone();
        keep_clear_text(&mut short, &inflater());
        assert_eq!(short.content, before);
        assert!(short.dict.get(b"Filter").is_ok());
        // Not a zlib stream at all.
        let mut junk = program(true);
        junk.set_content(b"not zlib at all".to_vec());
        keep_clear_text(&mut junk, &inflater());
        assert_eq!(junk.content, b"not zlib at all");
    }
}
