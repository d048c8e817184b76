//! Prints the text of every page of a PDF, parsed natively as one batch.
//!
//! Run: `cargo run --release --example dump -- FILE.pdf` from `components/`.
fn main() {
    let path = std::env::args().nth(1).expect("usage: dump FILE.pdf");
    let pdf = std::fs::read(&path).expect("read the file");
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
