//! A short fuzz run inside the test suite: every fuzz target's entry point
//! (see `fuzz/`) over its committed corpus and regressions, then over
//! deterministic mutations of them for a bounded time; and some targets'
//! inputs replayed through a second entry point. An input that panics or
//! runs too long fails the test and is saved beside the target directory
//! so it can be replayed with `cargo +nightly fuzz run TARGET FILE`.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A target: its name (the directory under `fuzz/corpus`) and entry point.
type Target = (&'static str, fn(&[u8]));

const TARGETS: [Target; 6] = [
    ("pdf_open", warmlane_pdf::fuzz::open_and_cut),
    ("parse_batch", pdf_pages::fuzz::parse_batch),
    ("content", pdf_pages::fuzz::content),
    ("cmap", pdf_pages::fuzz::cmap),
    ("chunker", chunker::fuzz::chunk),
    ("schema", warmlane_host::fuzz::schema),
];

/// Entry points whose target's inputs are replayed, not mutated: the
/// parser under the host's default limits, which its fuzz target caps
/// (see `pdf_pages::fuzz::parse_batch`).
const REPLAYS: [Target; 1] = [("parse_batch", |data| {
    let _ = pdf_pages::parse_batch(data, 1);
})];

/// Mutated inputs per target, at most; and time per target, at most.
const MUTATIONS: usize = 4000;
const BUDGET: Duration = Duration::from_secs(4);
/// Longest one input may run.
const PER_INPUT: Duration = Duration::from_secs(20);

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut out = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(target)) else {
            continue;
        };
        for e in entries.flatten() {
            out.push((e.path(), std::fs::read(e.path()).unwrap()));
        }
    }
    out.sort();
    out
}

/// xorshift64*: the same mutations every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Tokens PDF and JSON readers branch on.
const TOKENS: &[&[u8]] = &[
    b"obj",
    b"endobj",
    b"stream\n",
    b"endstream",
    b"<<",
    b">>",
    b"[",
    b"]",
    b"(",
    b")",
    b"<",
    b"R",
    b"/Type",
    b"/Page",
    b"/Kids",
    b"/Filter",
    b"/FlateDecode",
    b"/ObjStm",
    b"xref",
    b"trailer",
    b"startxref",
    b"Do",
    b"Tj",
    b"TJ",
    b"Tf",
    b"BT",
    b"q",
    b"cm",
    b"beginbfrange",
    b"begincodespacerange",
    b"<0000> <FFFF>",
    b"0",
    b"-1",
    b"4294967295",
    b"99999999999",
    b"{",
    b"}",
    b"\"",
    b"$ref",
    b"\xff",
    b"\0",
    b"\n\n",
];

fn mutate(rng: &mut Rng, corpus: &[(PathBuf, Vec<u8>)]) -> Vec<u8> {
    let mut data = corpus[rng.below(corpus.len())].1.clone();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(data.len() + 1);
        match rng.below(7) {
            0 if !data.is_empty() => {
                let i = at.min(data.len() - 1);
                data[i] ^= 1 << rng.below(8);
            }
            1 if !data.is_empty() => {
                let i = at.min(data.len() - 1);
                data[i] = rng.next() as u8;
            }
            2 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                data.splice(at..at, token.iter().copied());
            }
            3 if !data.is_empty() => {
                let end = (at + rng.below(64)).min(data.len());
                data.drain(at.min(end)..end);
            }
            4 if !data.is_empty() => {
                let start = rng.below(data.len());
                let end = (start + 1 + rng.below(256)).min(data.len());
                let piece = data[start..end].to_vec();
                data.splice(at..at, piece);
            }
            5 => {
                let other = &corpus[rng.below(corpus.len())].1;
                if !other.is_empty() {
                    let start = rng.below(other.len());
                    let end = (start + 1 + rng.below(512)).min(other.len());
                    data.splice(at..at, other[start..end].iter().copied());
                }
            }
            _ => data.truncate(at),
        }
    }
    data
}

/// Runs `entry` on `data` on a thread of its own; why it failed, if it did.
fn run_one(entry: fn(&[u8]), data: &[u8]) -> Result<(), String> {
    let (tx, rx) = mpsc::channel();
    let owned = data.to_vec();
    std::thread::Builder::new()
        .stack_size(8 << 20)
        .spawn(move || {
            let result = std::panic::catch_unwind(|| entry(&owned));
            let _ = tx.send(result.map_err(|p| {
                p.downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".into())
            }));
        })
        .unwrap();
    match rx.recv_timeout(PER_INPUT) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(panic)) => Err(format!("panicked: {panic}")),
        Err(_) => Err(format!("ran longer than {PER_INPUT:?}")),
    }
}

fn save(target: &str, data: &[u8]) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("fuzz-failures")
        .join(target);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("input-{}", data.len()));
    std::fs::write(&path, data).unwrap();
    path
}

#[test]
fn every_fuzz_target_survives_its_corpus_and_a_short_mutation_run() {
    let quiet = std::panic::take_hook();
    // Panics are caught and reported below, with their input.
    std::panic::set_hook(Box::new(|_| {}));
    let mut failures = Vec::new();
    for (target, entry) in TARGETS {
        let corpus = inputs(target);
        assert!(!corpus.is_empty(), "fuzz/corpus/{target} is empty");
        for (path, data) in &corpus {
            if let Err(why) = run_one(entry, data) {
                failures.push(format!("{target}: {} {why}", path.display()));
            }
        }
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ target.len() as u64);
        let started = Instant::now();
        let mut ran = 0;
        while ran < MUTATIONS && started.elapsed() < BUDGET {
            let data = mutate(&mut rng, &corpus);
            if let Err(why) = run_one(entry, &data) {
                let saved = save(target, &data);
                failures.push(format!(
                    "{target}: mutation {ran} {why} (saved to {})",
                    saved.display()
                ));
            }
            ran += 1;
        }
        eprintln!(
            "fuzz {target}: {} corpus inputs, {ran} mutations in {:.1} s",
            corpus.len(),
            started.elapsed().as_secs_f64()
        );
    }
    for (target, entry) in REPLAYS {
        for (path, data) in &inputs(target) {
            if let Err(why) = run_one(entry, data) {
                failures.push(format!("{target} (replayed): {} {why}", path.display()));
            }
        }
    }
    std::panic::set_hook(quiet);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
