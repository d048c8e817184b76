//! Feeds deterministic corruptions of a PDF to the parser and reports any
//! panic (which, inside the component, would cost its batch a trap).
//!
//! Run: `cargo run --release --example shake -- FILE.pdf [ROUNDS]` from `components/`.
fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: shake FILE.pdf [ROUNDS]");
    let rounds: usize = args.next().and_then(|r| r.parse().ok()).unwrap_or(200);
    let original = std::fs::read(&path).expect("read the file");
    let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    std::panic::set_hook(Box::new(|info| eprintln!("PANIC: {info}")));
    let mut panics = 0;
    for _ in 0..rounds {
        let mut bytes = original.clone();
        for _ in 0..50 {
            let at = (next() as usize) % bytes.len();
            bytes[at] = next() as u8;
        }
        if std::panic::catch_unwind(|| pdf_pages::parse_batch(&bytes, 1)).is_err() {
            panics += 1;
        }
    }
    println!("{rounds} rounds, {panics} panics");
}
