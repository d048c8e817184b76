//! Rebuilding a damaged or truncated file's cross-reference table by
//! scanning it for objects, as MuPDF and poppler do: every `N G obj` header
//! found, the objects inside every object stream found, the newest trailer
//! that still names a catalog (or a catalog found among the objects), and
//! the page objects, for a file whose page tree is lost with its end.

use std::collections::HashMap;

use lopdf::{Dictionary, Object, ObjectId};
use pdf_syntax::limits::Inflater;

use crate::parse::{self, Parser};
use crate::source::{Entry, MAX_OBJECTS, ReadError, parse_object_stream};

/// What a scan rebuilt.
pub(crate) struct Rebuilt {
    pub(crate) xref: HashMap<u32, Entry>,
    pub(crate) trailer: Dictionary,
    /// Objects whose `/Type` is `/Page`, by number.
    pub(crate) pages: Vec<ObjectId>,
}

/// Scans `data` for objects and rebuilds the table. Object streams found
/// are decoded under `inflater`'s limits; one that passes them is left out
/// (its objects stay unknown) rather than failing the whole file.
pub(crate) fn rebuild(data: &[u8], inflater: &Inflater) -> Result<Rebuilt, ReadError> {
    let offsets = scan_objects(data);
    if offsets.len() > MAX_OBJECTS {
        return Err(ReadError::Limit(format!(
            "the document has more than {MAX_OBJECTS} objects"
        )));
    }
    let mut xref: HashMap<u32, Entry> = offsets
        .iter()
        .map(|(&num, &at)| (num, Entry::Offset(at)))
        .collect();
    let mut by_offset: Vec<(usize, u32)> = offsets.iter().map(|(&n, &at)| (at, n)).collect();
    by_offset.sort_unstable();

    let mut trailers: Vec<(usize, Dictionary)> = keyword_trailers(data);
    let mut catalogs: Vec<u32> = Vec::new();
    let mut pages: Vec<ObjectId> = Vec::new();
    let mut note = |num: u32, obj: &Object, catalogs: &mut Vec<u32>| {
        let dict = match obj {
            Object::Dictionary(d) => d,
            Object::Stream(s) => &s.dict,
            _ => return,
        };
        match dict.get(b"Type").and_then(Object::as_name) {
            Ok(b"Catalog") => catalogs.push(num),
            Ok(b"Page") => pages.push((num, 0)),
            _ => {}
        }
    };
    for &(at, num) in &by_offset {
        let Ok((_, obj)) = parse::indirect_object(data, at, |_| None) else {
            continue;
        };
        note(num, &obj, &mut catalogs);
        let Object::Stream(stream) = &obj else {
            continue;
        };
        match stream.dict.get(b"Type").and_then(Object::as_name) {
            Ok(b"XRef") => trailers.push((at, stream.dict.clone())),
            Ok(b"ObjStm") => match inflater.decode(stream) {
                Ok(content) => {
                    for (inner, obj) in parse_object_stream(&stream.dict, &content) {
                        note(inner, &obj, &mut catalogs);
                        if xref.len() < MAX_OBJECTS {
                            xref.entry(inner).or_insert(Entry::InStream { stream: num });
                        }
                    }
                }
                Err(e) if e.is_limit() => {
                    tracing::debug!(stream = num, error = %e, "object stream over a limit left out of the rebuilt table");
                }
                Err(_) => {}
            },
            _ => {}
        }
    }
    pages.sort_unstable();
    pages.dedup();
    trailers.sort_by_key(|(at, _)| *at);

    // The newest trailer whose /Root is an object the file holds wins;
    // encryption and the file id come from the newest trailer that has them.
    let mut trailer = trailers
        .iter()
        .rev()
        .find(|(_, t)| {
            t.get(b"Root")
                .and_then(Object::as_reference)
                .is_ok_and(|id| xref.contains_key(&id.0))
        })
        .map(|(_, t)| t.clone())
        .unwrap_or_default();
    if trailer.get(b"Root").is_err()
        && let Some(&catalog) = catalogs.last()
    {
        trailer.set("Root", Object::Reference((catalog, 0)));
    }
    for key in [b"Encrypt".as_slice(), b"ID"] {
        if trailer.get(key).is_err()
            && let Some(value) = trailers.iter().rev().find_map(|(_, t)| t.get(key).ok())
        {
            trailer.set(key, value.clone());
        }
    }
    for key in [
        b"W".as_slice(),
        b"Index",
        b"Length",
        b"Filter",
        b"DecodeParms",
        b"Type",
        b"Prev",
    ] {
        trailer.remove(key);
    }
    if xref.is_empty() {
        return Err(ReadError::Damaged(
            "no objects could be found in the file".into(),
        ));
    }
    Ok(Rebuilt {
        xref,
        trailer,
        pages,
    })
}

/// Every `trailer << … >>` in the file, with where it stands.
fn keyword_trailers(data: &[u8]) -> Vec<(usize, Dictionary)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(rel) = find(&data[from..], b"trailer") {
        let at = from + rel;
        from = at + 7;
        let mut p = Parser::new(data, from);
        if let Ok(Object::Dictionary(t)) = p.object() {
            out.push((at, t));
        }
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Finds every `N G obj` header in the file; the last one of each number wins
/// (as later revisions do).
pub(crate) fn scan_objects(data: &[u8]) -> HashMap<u32, usize> {
    let mut out = HashMap::new();
    let mut i = 0;
    while let Some(rel) = find(&data[i..], b"obj") {
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

#[cfg(test)]
mod tests {
    use super::*;
    use pdf_syntax::limits::Limits;

    #[test]
    fn a_file_without_its_end_keeps_its_objects_and_pages() {
        let file = b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n\
            2 0 obj << /Type /Pages /Kids [3 0 R 4 0 R] /Count 2 >> endobj\n\
            3 0 obj << /Type /Page /Contents 5 0 R >> endobj\n\
            4 0 obj << /Type /Pa";
        let rebuilt = rebuild(file, &Inflater::new(Limits::default())).unwrap();
        assert_eq!(
            rebuilt.trailer.get(b"Root").unwrap(),
            &Object::Reference((1, 0))
        );
        assert_eq!(rebuilt.pages, vec![(3, 0)]);
        assert!(matches!(rebuilt.xref.get(&2), Some(Entry::Offset(_))));
    }

    #[test]
    fn nothing_to_find_is_an_error() {
        assert!(rebuild(b"%PDF-1.4\njunk", &Inflater::new(Limits::default())).is_err());
    }
}
