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

mod cmap;
mod content;
mod fonts;
mod layout;
mod truetype;

use lopdf::{Document, Object};

/// How much decompressed content one page may have before it is refused
/// (a decompression bomb guard).
const MAX_PAGE_CONTENT: usize = 64 * 1024 * 1024;

/// One page's number and its text, or why it could not be read.
pub type PageResult = (u32, Result<String, String>);

/// Parses `pdf` and returns, for each of its pages in order, its number
/// (counting from `first_page`) and its text or its own error.
///
/// Fails as a whole only when `pdf` cannot be opened at all.
pub fn parse_batch(pdf: &[u8], first_page: u32) -> Result<Vec<PageResult>, String> {
    let doc = Document::load_mem(pdf).map_err(|e| format!("cannot open batch: {e}"))?;
    if doc.is_encrypted() {
        return Err("batch is encrypted; the host must decrypt before splitting".into());
    }
    let mut fonts = content::FontCache::default();
    Ok(doc
        .get_pages()
        .into_values()
        .enumerate()
        .map(|(i, page_id)| (first_page + i as u32, page_text(&doc, page_id, &mut fonts)))
        .collect())
}

fn page_text(
    doc: &Document,
    page_id: lopdf::ObjectId,
    fonts: &mut content::FontCache,
) -> Result<String, String> {
    let content = doc
        .get_page_content_with_limit(page_id, MAX_PAGE_CONTENT)
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
    let mut layout = layout::Layout::default();
    content::Interpreter::new(doc, fonts, &mut layout).run(
        &content,
        resources,
        [1.0, 0.0, 0.0, 1.0, 0.0, 0.0],
        0,
    );
    let (text, glyphs, _unmapped) = layout.finish();
    if glyphs > 0 && text.is_empty() {
        return Err(format!(
            "the page shows {glyphs} glyphs but its fonts give no way to map them to text{}",
            font_names(doc, resources)
        ));
    }
    Ok(text)
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
    wit_bindgen::generate!({ path: "../../wit", world: "page-parser-component" });

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
