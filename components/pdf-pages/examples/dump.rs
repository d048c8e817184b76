//! Prints the text of every page of a PDF, parsed natively as one batch;
//! with `--lopdf`, lopdf's own `extract_text` instead, for comparison.
//!
//! Run: `cargo run --release --example dump -- FILE.pdf [--lopdf]` from `components/`.
// The comparison runs lopdf's own loader and extractor, bounds and all:
// it is for trusted files on a developer's machine.
#[allow(clippy::disallowed_methods)]
fn main() {
    let path = std::env::args()
        .nth(1)
        .expect("usage: dump FILE.pdf [--lopdf]");
    let pdf = std::fs::read(&path).expect("read the file");
    if std::env::args().any(|a| a == "--lopdf") {
        let doc = lopdf::Document::load_mem(&pdf).expect("load");
        for number in doc.get_pages().into_keys() {
            match doc.extract_text(&[number]) {
                Ok(text) => println!("\u{c}--- page {number}\n{text}"),
                Err(e) => println!("\u{c}--- page {number} ERROR {e}"),
            }
        }
        return;
    }
    let start = std::time::Instant::now();
    let pages = pdf_pages::parse_batch(&pdf, 1).expect("parse");
    let elapsed = start.elapsed();
    for (number, text) in &pages {
        match text {
            Ok(text) => println!("\u{c}--- page {number}\n{text}"),
            Err(e) => println!("\u{c}--- page {number} ERROR {e}"),
        }
    }
    eprintln!("{} pages in {:?}", pages.len(), elapsed);
}
