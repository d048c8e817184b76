//! Chunks a text file (pages separated by form feeds) natively and reports the time.
//!
//! Run: `cargo run --release --example chunkfile -- FILE.txt [tokens|characters]` from `components/`.
fn main() {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .expect("usage: chunkfile FILE.txt [tokens|characters]");
    let unit = match args.next().as_deref() {
        Some("characters") => chunker::Unit::Characters,
        _ => chunker::Unit::Tokens,
    };
    let text = std::fs::read_to_string(&path).expect("read the file");
    let pages: Vec<chunker::PageText> = text
        .split('\u{c}')
        .enumerate()
        .map(|(i, t)| chunker::PageText {
            number: i as u32 + 1,
            offset: 0,
            text: t.to_string(),
        })
        .collect();
    let start = std::time::Instant::now();
    let mut chunks = 0;
    for window in pages.chunks(16) {
        chunks += chunker::chunk(window, 512, 64, unit).expect("chunk").len();
    }
    eprintln!(
        "{} pages, {chunks} chunks in {:?}",
        pages.len(),
        start.elapsed()
    );
}
