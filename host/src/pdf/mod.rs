//! Opens PDFs and cuts them into batches: small, self-contained PDFs that
//! hold only the objects their pages reach.
//!
//! Opening reads the cross-reference table and walks the page tree, nothing
//! more; a batch is built by following references out of its pages (never up
//! into the page tree, never into other pages), with image data left out
//! since no parser needs it. Damaged files fall back to `lopdf`'s repairing
//! loader, and encrypted ones to its decrypting loader.

mod parse;
mod source;

use std::collections::{HashMap, HashSet, VecDeque};
use std::ops::Range;

use lopdf::{Dictionary, Document, LoadOptions, Object, ObjectId};

use crate::error::DocumentError;
use source::{LazyFile, Source};

/// Page attributes a page inherits from its ancestors in the page tree.
const INHERITED: [&[u8]; 4] = [b"Resources", b"MediaBox", b"CropBox", b"Rotate"];
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
/// Deepest page tree walked.
const MAX_TREE_DEPTH: usize = 64;

/// Attributes a page inherits, by key.
type Inherited = Vec<(&'static [u8], Object)>;

#[derive(Debug, Clone)]
struct PageRef {
    id: ObjectId,
    inherited: Inherited,
}

/// How the document was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Object by object through its cross-reference table.
    Lazy,
    /// Loaded whole because its cross-reference table was damaged.
    Repaired,
    /// Loaded whole to decrypt it.
    Decrypted,
}

/// An open PDF: its pages, ready to be cut into batches.
pub struct PdfDocument {
    source: Source,
    pages: Vec<PageRef>,
    access: Access,
}

impl PdfDocument {
    /// Opens a PDF from its bytes. The empty password is always tried;
    /// `password` is tried after it.
    pub fn open(bytes: Vec<u8>, password: Option<&str>) -> Result<PdfDocument, DocumentError> {
        let head = &bytes[..bytes.len().min(1024)];
        if !head.windows(5).any(|w| w == b"%PDF-") {
            let shown: String = String::from_utf8_lossy(&bytes[..bytes.len().min(16)])
                .chars()
                .map(|c| if c.is_control() { '.' } else { c })
                .collect();
            return Err(DocumentError::NotPdf(if bytes.is_empty() {
                "the file is empty".into()
            } else {
                format!("no %PDF- header (it starts with {shown:?})")
            }));
        }
        let file = match LazyFile::open(bytes) {
            Ok(file) => file,
            Err((why, bytes)) => {
                tracing::debug!(error = %why, "cross-reference table unreadable; repairing");
                return Self::load_whole(&bytes, password);
            }
        };
        if !file.is_encrypted() {
            let source = Source::Lazy(Box::new(file));
            match walk_pages(&source) {
                Ok(pages) if !pages.is_empty() => {
                    return Ok(PdfDocument {
                        source,
                        pages,
                        access: Access::Lazy,
                    });
                }
                Ok(_) => tracing::debug!("no pages through the cross-reference table; repairing"),
                Err(e) => {
                    tracing::debug!(error = %e, "page tree unreadable through the cross-reference table; repairing")
                }
            }
            return Self::load_whole(&source.into_bytes(), password);
        }
        Self::load_whole(&file.into_bytes(), password)
    }

    fn load_whole(bytes: &[u8], password: Option<&str>) -> Result<PdfDocument, DocumentError> {
        let options = LoadOptions::with_password(password.unwrap_or(""));
        let doc = match Document::load_mem_with_options(bytes, options) {
            Ok(doc) => doc,
            Err(lopdf::Error::InvalidPassword) => {
                return Err(DocumentError::PasswordRequired {
                    given: password.is_some(),
                });
            }
            Err(e) => return Err(DocumentError::Unreadable(e.to_string())),
        };
        if doc.is_encrypted() {
            return Err(DocumentError::PasswordRequired {
                given: password.is_some(),
            });
        }
        let access = if doc.was_encrypted() {
            Access::Decrypted
        } else {
            Access::Repaired
        };
        let source = Source::Loaded(Box::new(doc));
        let pages = walk_pages(&source).map_err(DocumentError::Unreadable)?;
        if pages.is_empty() {
            return Err(DocumentError::Unreadable("no pages could be found".into()));
        }
        Ok(PdfDocument {
            source,
            pages,
            access,
        })
    }

    /// Number of pages.
    pub fn page_count(&self) -> u32 {
        self.pages.len() as u32
    }

    /// How the document was read.
    pub fn access(&self) -> Access {
        self.access
    }

    /// A self-contained PDF holding pages `range` (0-based, in document
    /// order) and only the objects they reach.
    pub fn batch(&self, range: Range<usize>) -> Result<Vec<u8>, String> {
        let pages = self
            .pages
            .get(range.clone())
            .ok_or_else(|| format!("no pages {range:?}"))?;
        let mut doc = Document::with_version("1.7");
        let pages_id = doc.new_object_id();
        let mut map: HashMap<ObjectId, ObjectId> = HashMap::new();
        let mut queue: VecDeque<(ObjectId, ObjectId)> = VecDeque::new();
        let in_batch: HashSet<ObjectId> = pages.iter().map(|p| p.id).collect();
        let mut kids = Vec::with_capacity(pages.len());
        for page in pages {
            let new = doc.new_object_id();
            map.insert(page.id, new);
            kids.push(Object::Reference(new));
        }
        for page in pages {
            let new = map[&page.id];
            let mut obj = self.source.get(page.id)?;
            let dict = obj
                .as_dict_mut()
                .map_err(|_| format!("page object {} is not a dictionary", page.id.0))?;
            for key in DROPPED_PAGE_KEYS {
                dict.remove(key);
            }
            for (key, value) in &page.inherited {
                if dict.get(key).is_err() {
                    dict.set(*key, value.clone());
                }
            }
            dict.set("Parent", Object::Reference(pages_id));
            relink(&mut obj, &mut doc, &mut map, &mut queue);
            doc.objects.insert(new, obj);
        }
        // Fonts whose text comes from a ToUnicode map: their embedded
        // TrueType/CFF programs are never read by a parser, so leave them out.
        let mut mapped_fonts: HashSet<ObjectId> = HashSet::new();
        let mut programless: HashSet<ObjectId> = HashSet::new();
        while let Some((old, new)) = queue.pop_front() {
            let mut obj = match self.source.get(old) {
                Ok(obj) => obj,
                Err(e) => {
                    tracing::debug!(object = old.0, error = %e, "unreadable object left out of the batch");
                    Object::Null
                }
            };
            if is_page_node(&obj) && !in_batch.contains(&old) {
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
            relink(&mut obj, &mut doc, &mut map, &mut queue);
            doc.objects.insert(new, obj);
        }
        let mut pages_dict = Dictionary::new();
        pages_dict.set("Type", Object::Name(b"Pages".to_vec()));
        pages_dict.set("Count", Object::Integer(kids.len() as i64));
        pages_dict.set("Kids", Object::Array(kids));
        doc.objects.insert(pages_id, Object::Dictionary(pages_dict));
        let mut catalog = Dictionary::new();
        catalog.set("Type", Object::Name(b"Catalog".to_vec()));
        catalog.set("Pages", Object::Reference(pages_id));
        let catalog_id = doc.add_object(Object::Dictionary(catalog));
        doc.trailer.set("Root", Object::Reference(catalog_id));
        let mut out = Vec::new();
        doc.save_to(&mut out)
            .map_err(|e| format!("cannot write batch: {e}"))?;
        Ok(out)
    }
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

/// Rewrites the references inside `obj` to the batch's numbering,
/// scheduling every object seen for the first time.
fn relink(
    obj: &mut Object,
    doc: &mut Document,
    map: &mut HashMap<ObjectId, ObjectId>,
    queue: &mut VecDeque<(ObjectId, ObjectId)>,
) {
    match obj {
        Object::Reference(id) => {
            let new = *map.entry(*id).or_insert_with(|| {
                let new = doc.new_object_id();
                queue.push_back((*id, new));
                new
            });
            *id = new;
        }
        Object::Array(items) => items.iter_mut().for_each(|o| relink(o, doc, map, queue)),
        Object::Dictionary(dict) => dict
            .iter_mut()
            .for_each(|(_, o)| relink(o, doc, map, queue)),
        Object::Stream(stream) => stream
            .dict
            .iter_mut()
            .for_each(|(_, o)| relink(o, doc, map, queue)),
        _ => {}
    }
}

/// The document's pages in order, each with what it inherits.
fn walk_pages(source: &Source) -> Result<Vec<PageRef>, String> {
    let root = source.resolve(
        source
            .trailer()
            .get(b"Root")
            .map_err(|_| "trailer has no /Root")?,
    )?;
    let root = root.as_dict().map_err(|_| "catalog is not a dictionary")?;
    let tree = root
        .get(b"Pages")
        .map_err(|_| "catalog has no /Pages")?
        .clone();
    let mut pages = Vec::new();
    let mut seen = HashSet::new();
    // (node, inherited attributes, depth)
    let mut stack: Vec<(Object, Inherited, usize)> = vec![(tree, Vec::new(), 0)];
    while let Some((node, inherited, depth)) = stack.pop() {
        let id = match node {
            Object::Reference(id) => Some(id),
            _ => None,
        };
        if let Some(id) = id
            && !seen.insert(id)
        {
            continue;
        }
        let resolved = source.resolve(&node)?;
        let Ok(dict) = resolved.as_dict() else {
            continue;
        };
        let mut inherited = inherited;
        for key in INHERITED {
            if let Ok(v) = dict.get(key) {
                inherited.retain(|(k, _)| *k != key);
                inherited.push((key, v.clone()));
            }
        }
        match dict.get(b"Kids").map(|k| source.resolve(k)) {
            Ok(Ok(Object::Array(kids))) if depth < MAX_TREE_DEPTH => {
                for kid in kids.into_iter().rev() {
                    stack.push((kid, inherited.clone(), depth + 1));
                }
            }
            _ => {
                let is_page = dict
                    .get(b"Type")
                    .and_then(Object::as_name)
                    .map_or(true, |t| t == b"Page");
                if let (Some(id), true) = (id, is_page) {
                    pages.push(PageRef { id, inherited });
                }
            }
        }
    }
    Ok(pages)
}
