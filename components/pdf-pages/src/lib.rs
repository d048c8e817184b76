//! warmlane's built-in page parser: the text of each page of a small PDF.
//!
//! Built on `lopdf`'s object model, with its own content interpreter so that
//! text keeps its line and paragraph breaks (`Td`, `TD`, `Tm`, `T*`), text
//! inside Form XObjects is found, and CJK fonts without a `/ToUnicode` map
//! still decode (see [`fonts`]).
//!
//! Compiled for `wasm32-wasip2` this crate is the `page-parser-component`
//! world; compiled natively it is a plain library, which the `pages`
//! benchmark runs to show what WebAssembly costs.

mod arabic_forms;
mod bidi;
mod cmap;
mod content;
mod fonts;
mod glyph_list;
mod layout;
mod truetype;

use lopdf::{Document, LoadOptions, Object};
use pdf_syntax::limits::{DecodeError, Inflater, Limits};

/// One page's number and its text, or why it could not be read.
pub type PageResult = (u32, Result<String, String>);

/// A batch being parsed: its objects, and the limits its trailer carries
/// (the host's `[pdf]` configuration), with the decoding they bound.
pub(crate) struct Batch {
    pub(crate) doc: Document,
    pub(crate) inflater: Inflater,
}

impl Batch {
    /// The content of the stream `obj` refers to, decoded under the batch's
    /// limits. A stream that passes one is `None`, and the limit is noted in
    /// `limit` (the first one met); a damaged one is `None` too, or its raw
    /// bytes when it names no filter.
    pub(crate) fn stream(
        &self,
        obj: Option<&Object>,
        limit: &mut Option<String>,
    ) -> Option<Vec<u8>> {
        let stream = fonts::deref(&self.doc, obj?).as_stream().ok()?;
        match self.inflater.decode(stream) {
            Ok(data) => Some(data),
            Err(DecodeError::Limit(why)) => {
                limit.get_or_insert(why);
                None
            }
            Err(DecodeError::Damaged(_)) => None,
        }
    }
}

/// Parses `pdf` and returns, for each of its pages in order, its number
/// (counting from `first_page`) and its text or its own error. The limits
/// come from the batch's trailer (see [`pdf_syntax::limits`]), or are the
/// defaults.
///
/// Fails as a whole only when `pdf` cannot be opened at all.
pub fn parse_batch(pdf: &[u8], first_page: u32) -> Result<Vec<PageResult>, String> {
    parse_batch_at_most(pdf, first_page, None)
}

/// [`parse_batch`] with each limit at most `cap`'s, where given.
fn parse_batch_at_most(
    pdf: &[u8],
    first_page: u32,
    cap: Option<Limits>,
) -> Result<Vec<PageResult>, String> {
    let capped = |limits: Limits| cap.map_or(limits, |cap| limits.at_most(cap));
    let doc = match pdf_syntax::object::read_sequential(pdf) {
        // What the host writes: read in one pass.
        Some(doc) => doc,
        None => {
            let options = LoadOptions {
                max_decompressed_size: Some(capped(Limits::default()).stream_bytes as usize),
                ..LoadOptions::default()
            };
            Document::load_mem_with_options(pdf, options)
                .map_err(|e| format!("cannot open batch: {e}"))?
        }
    };
    if doc.is_encrypted() {
        return Err("batch is encrypted; the host must decrypt before splitting".into());
    }
    let limits = capped(Limits::from_trailer(&doc.trailer));
    let batch = Batch {
        doc,
        inflater: Inflater::new(limits),
    };
    let mut cache = content::Cache::default();
    // Not `get_pages` (nor `collect`): `lopdf`'s page iterator hints the
    // `/Count` its inner page-tree nodes claim, and collecting reserves
    // that much, so a count of 2^32 in 2 KB asked for 51 GB. Pages are
    // kept as the tree yields them.
    let mut pages = Vec::new();
    for page_id in batch.doc.page_iter() {
        let number = first_page + pages.len() as u32;
        pages.push((number, page_text(&batch, page_id, &mut cache)));
    }
    Ok(pages)
}

/// A page's content streams, decoded and joined; together no larger than
/// one stream may be.
fn page_content(batch: &Batch, page_id: lopdf::ObjectId) -> Result<Vec<u8>, String> {
    let max = batch.inflater.limits().stream_bytes;
    let mut content = Vec::new();
    for id in batch.doc.get_page_contents(page_id) {
        let Ok(stream) = batch.doc.get_object(id).and_then(Object::as_stream) else {
            continue;
        };
        match batch.inflater.decode(stream) {
            Ok(data) => content.extend_from_slice(&data),
            Err(DecodeError::Limit(why)) => return Err(why),
            // A stream that cannot be decoded may still be plain text.
            Err(DecodeError::Damaged(_)) => content.extend_from_slice(&stream.content),
        }
        content.push(b'\n');
        if content.len() as u64 > max {
            return Err(format!(
                "the page's content streams together are longer than {} MiB (pdf.max_stream_mib; at most an eighth of pipeline.memory_mib)",
                max >> 20
            ));
        }
    }
    Ok(content)
}

fn page_text<'d>(
    batch: &'d Batch,
    page_id: lopdf::ObjectId,
    cache: &mut content::Cache<'d>,
) -> Result<String, String> {
    let doc = &batch.doc;
    let content = page_content(batch, page_id)
        .map_err(|e| format!("cannot read the page's content stream: {e}"))?;
    let page = doc
        .get_dictionary(page_id)
        .map_err(|e| format!("page object is missing: {e}"))?;
    let resources = page
        .get(b"Resources")
        .ok()
        .and_then(|o| fonts::deref(doc, o).as_dict().ok());
    let resources = match resources {
        Some(r) => Some(r),
        None => doc.get_page_resources(page_id).ok().and_then(|(r, _)| r),
    };
    let mut layout = layout::Layout::new(batch.inflater.limits().page_text_bytes);
    let mut interpreter = content::Interpreter::new(batch, cache, &mut layout);
    interpreter.run(&content, resources, [1.0, 0.0, 0.0, 1.0, 0.0, 0.0], 0);
    if let Some(why) = interpreter.stopped() {
        return Err(why);
    }
    let images = interpreter.images();
    let (text, glyphs, _unmapped) = layout.finish();
    if glyphs > 0 && text.is_empty() {
        return Err(format!(
            "the page shows {glyphs} glyphs but its fonts give no way to map them to text{}",
            font_names(doc, resources)
        ));
    }
    if glyphs == 0 && images > 0 {
        return Err(no_text_layer(images));
    }
    Ok(text)
}

/// Why a page that draws `images` images and no text has none: it is
/// probably a scan. The words before the colon stay as they are, for
/// pipelines that send such pages to OCR.
fn no_text_layer(images: usize) -> String {
    let s = if images == 1 { "" } else { "s" };
    format!(
        "no text layer: the page shows {images} image{s} and no text (a scanned page?); OCR could read it"
    )
}

fn font_names(doc: &Document, resources: Option<&lopdf::Dictionary>) -> String {
    let names: Vec<String> = resources
        .and_then(|r| r.get(b"Font").ok())
        .and_then(|o| fonts::deref(doc, o).as_dict().ok())
        .map(|fonts| {
            fonts
                .iter()
                .filter_map(|(_, f)| fonts::deref(doc, f).as_dict().ok())
                .filter_map(|f| match f.get(b"BaseFont").map(|o| fonts::deref(doc, o)) {
                    Ok(Object::Name(n)) => Some(String::from_utf8_lossy(n).into_owned()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        String::new()
    } else {
        format!(" (fonts: {})", names.join(", "))
    }
}

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({ path: "../../wit", world: "page-parser-component", generate_all });

    use exports::warmlane::worker::page_parser::{Guest, ParsedPage};

    struct PdfPages;

    impl Guest for PdfPages {
        fn parse(pdf: Vec<u8>, first_page: u32) -> Result<Vec<ParsedPage>, String> {
            Ok(super::parse_batch(&pdf, first_page)?
                .into_iter()
                .map(|(number, text)| ParsedPage { number, text })
                .collect())
        }
    }

    export!(PdfPages);
}

/// Entry points for the fuzz targets (`fuzz/`) and the test suite's short
/// fuzz run: each takes arbitrary bytes and must neither panic nor hang.
#[doc(hidden)]
#[cfg(not(target_arch = "wasm32"))]
pub mod fuzz {
    use lopdf::{Dictionary, Document, Object};
    use pdf_syntax::limits::{Inflater, Limits};

    use crate::cmap::CMap;
    use crate::content::{Cache, Interpreter};
    use crate::layout::Layout;

    /// Limits small enough that every input finishes in milliseconds.
    fn limits() -> Limits {
        Limits {
            stream_bytes: 1 << 20,
            total_bytes: 4 << 20,
            page_text_bytes: 1 << 20,
            page_operators: 200_000,
            ..Limits::default()
        }
    }

    /// A whole batch: lopdf's loader, the page tree, fonts, CMaps, the
    /// interpreter; with the limits of [`limits`] at most, whatever the
    /// batch's trailer says. Under the defaults an input may inflate a
    /// GiB and run 20 million operators a page, honest work bounded by
    /// them that takes seconds in a fuzzing build and hides a slow input
    /// whose cost no limit bounds (fuzzing run 40's).
    pub fn parse_batch(data: &[u8]) {
        let _ = crate::parse_batch_at_most(data, 1, Some(limits()));
    }

    /// The content-stream lexer and interpreter, on `data` as a page's
    /// content, with a standard font as `/F1`.
    pub fn content(data: &[u8]) {
        let mut font = Dictionary::new();
        font.set("Type", Object::Name(b"Font".to_vec()));
        font.set("Subtype", Object::Name(b"Type1".to_vec()));
        font.set("BaseFont", Object::Name(b"Helvetica".to_vec()));
        let mut fonts = Dictionary::new();
        fonts.set("F1", Object::Dictionary(font));
        let mut resources = Dictionary::new();
        resources.set("Font", Object::Dictionary(fonts));
        let batch = crate::Batch {
            doc: Document::new(),
            inflater: Inflater::new(limits()),
        };
        let mut cache = Cache::default();
        let mut layout = Layout::new(limits().page_text_bytes);
        let mut interpreter = Interpreter::new(&batch, &mut cache, &mut layout);
        interpreter.run(data, Some(&resources), [1.0, 0.0, 0.0, 1.0, 0.0, 0.0], 0);
        let _ = interpreter.stopped();
        let _ = layout.finish();
    }

    /// The CMap parser, and lookups into what it read.
    pub fn cmap(data: &[u8]) {
        let map = CMap::parse(data);
        for code in [0, 0x20, 0x41, 0xFFFF, u32::MAX] {
            let _ = map.unicode(code);
            let _ = map.cid(code);
        }
        let _ = map.code_len(data, 2);
        let _ = (map.has_codespace(), map.has_unicode(), map.has_cids());
    }
}

#[cfg(test)]
mod tests {
    use lopdf::{Dictionary, Document, Object, Stream, dictionary};

    /// A PDF whose pages have `contents`, with an image XObject `/Im1` and
    /// Helvetica as `/F1`.
    fn pdf(contents: &[&str]) -> Vec<u8> {
        let mut doc = Document::with_version("1.5");
        let pages_id = doc.new_object_id();
        let image = doc.add_object(Stream::new(
            dictionary! { "Type" => "XObject", "Subtype" => "Image", "Width" => 1, "Height" => 1,
            "ColorSpace" => "DeviceGray", "BitsPerComponent" => 8 },
            vec![0],
        ));
        let font = doc.add_object(dictionary! {
            "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica",
        });
        let resources = doc.add_object(dictionary! {
            "XObject" => dictionary! { "Im1" => image },
            "Font" => dictionary! { "F1" => font },
        });
        let kids: Vec<Object> = contents
            .iter()
            .map(|c| {
                let content = doc.add_object(Stream::new(Dictionary::new(), c.as_bytes().to_vec()));
                doc.add_object(dictionary! {
                    "Type" => "Page", "Parent" => pages_id, "Contents" => content,
                    "Resources" => resources, "MediaBox" => vec![0.into(), 0.into(), 612.into(), 792.into()],
                })
                .into()
            })
            .collect();
        let count = kids.len() as i64;
        doc.objects.insert(
            pages_id,
            Object::Dictionary(dictionary! { "Type" => "Pages", "Kids" => kids, "Count" => count }),
        );
        let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
        doc.trailer.set("Root", catalog);
        let mut out = Vec::new();
        doc.save_to(&mut out).unwrap();
        out
    }

    #[test]
    fn an_inner_page_tree_node_lying_about_its_count_costs_only_its_pages() {
        // Two pages, the second under a node claiming 10^12 of them.
        let two = pdf(&["BT /F1 9 Tf (one) Tj ET", "BT /F1 9 Tf (two) Tj ET"]);
        let mut doc = Document::load_mem_with_options(&two, lopdf::LoadOptions::default()).unwrap();
        let root = doc
            .catalog()
            .unwrap()
            .get(b"Pages")
            .unwrap()
            .as_reference()
            .unwrap();
        let kids = doc
            .get_dictionary(root)
            .unwrap()
            .get(b"Kids")
            .unwrap()
            .as_array()
            .unwrap()
            .clone();
        let inner = doc.add_object(dictionary! {
            "Type" => "Pages", "Parent" => root, "Kids" => vec![kids[1].clone()], "Count" => 1_000_000_000_000i64,
        });
        doc.get_dictionary_mut(root)
            .unwrap()
            .set("Kids", vec![kids[0].clone(), inner.into()]);
        let mut out = Vec::new();
        doc.save_to(&mut out).unwrap();

        let pages = super::parse_batch(&out, 7).unwrap();
        let numbers: Vec<u32> = pages.iter().map(|(n, _)| *n).collect();
        assert_eq!(numbers, [7, 8]);
        assert!(
            pages[1].1.as_ref().unwrap().contains("two"),
            "{:?}",
            pages[1].1
        );
    }

    #[test]
    fn a_page_of_images_without_text_says_it_has_no_text_layer() {
        let pages = super::parse_batch(
            &pdf(&[
                "q 612 0 0 792 0 0 cm /Im1 Do Q",
                "q 10 0 0 10 0 0 cm BI /W 1 /H 1 /CS /G /BPC 8 ID \x7f EI Q /Im1 Do",
                "0 0 m 10 10 l S",
                "/Im1 Do BT /F1 12 Tf 72 700 Td (Caption) Tj ET",
            ]),
            5,
        )
        .unwrap();
        let texts: Vec<_> = pages
            .iter()
            .map(|(n, t)| (*n, t.as_deref().map_err(String::as_str)))
            .collect();
        assert_eq!(
            texts,
            vec![
                (
                    5,
                    Err(
                        "no text layer: the page shows 1 image and no text (a scanned page?); OCR could read it"
                    )
                ),
                (
                    6,
                    Err(
                        "no text layer: the page shows 2 images and no text (a scanned page?); OCR could read it"
                    )
                ),
                (7, Ok("")),
                (8, Ok("Caption")),
            ]
        );
    }
}
