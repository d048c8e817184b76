//! __NAME__: a warmlane page parser. `./build.sh` builds __NAME__.wasm;
//! `./test.sh` builds it and tries it on sample.pdf with `warmlane run
//! --parser`.
//!
//! The host hands `parse` one batch of pages as a small PDF of its own. This
//! template finds the batch's pages (its `/Type /Page` objects, in the order
//! they appear) and answers each with an error saying no text was read:
//! reading the text is yours to write. A page's error never fails its
//! neighbours; an error for the whole batch makes the host retry its pages
//! one by one.

wit_bindgen::generate!({ path: "wit", world: "page-parser-component", generate_all });

use exports::warmlane::worker::page_parser::{Guest, ParsedPage};

struct Parser;

/// How many page objects `pdf` holds: `/Type /Page`, not `/Type /Pages`.
fn pages(pdf: &[u8]) -> u32 {
    let mut count = 0;
    for at in 0..pdf.len() {
        let Some(rest) = pdf[at..].strip_prefix(b"/Type") else {
            continue;
        };
        let rest = rest.trim_ascii_start();
        if let Some(after) = rest.strip_prefix(b"/Page")
            && !after.first().is_some_and(u8::is_ascii_alphanumeric)
        {
            count += 1;
        }
    }
    count
}

impl Guest for Parser {
    fn parse(pdf: Vec<u8>, first_page: u32) -> Result<Vec<ParsedPage>, String> {
        let count = pages(&pdf);
        if count == 0 {
            return Err("the batch holds no page object".into());
        }
        Ok((0..count)
            .map(|i| ParsedPage {
                number: first_page + i,
                text: Err(
                    "no text read: __NAME__ is the `warmlane component new` template; \
                           write `parse` in src/lib.rs"
                        .into(),
                ),
            })
            .collect())
    }
}

export!(Parser);
