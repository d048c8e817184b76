//! The chunker alone against OpenAI's tiktoken, in the same run, on the
//! same text: every committed test document's `pdftotext` text (English,
//! Japanese, Chinese, Korean, Arabic, Hebrew; 0.47 MB). Tokens per second
//! of cl100k encoding, one thread each: the chunker's tokenizer (`encode`,
//! and `count_tokens`, which is what sizing chunks needs) against
//! tiktoken's `encode_ordinary`; and the whole chunker (`chunk`, 512-token
//! chunks overlapping by 64) in input tokens per second. The chunker's
//! code runs natively here; in the host it runs as a WebAssembly component.
//!
//! Run: `bash scripts/fetch-tiktoken.sh && cargo bench --bench chunker`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use chunker::{PageText, Unit, bpe};

const ROUNDS: usize = 5;

fn best<T>(mut f: impl FnMut() -> T) -> (T, Duration) {
    let mut out = None;
    let mut best = Duration::MAX;
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let r = f();
        best = best.min(t.elapsed());
        out = Some(r);
    }
    (out.expect("at least one round"), best)
}

/// tiktoken's token count and best time for `file`, if it is installed.
fn tiktoken(file: &Path) -> Option<(usize, f64)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = "import sys,time,tiktoken\nenc=tiktoken.get_encoding('cl100k_base')\ntext=open(sys.argv[1],encoding='utf-8').read()\nbest=1e9\nfor _ in range(5):\n    t=time.perf_counter(); n=len(enc.encode_ordinary(text)); best=min(best,time.perf_counter()-t)\nprint(n,best)";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(file)
        .env(
            "TIKTOKEN_CACHE_DIR",
            root.join("target/bench-data/tiktoken-cache"),
        )
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "{}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let mut f = text.split_whitespace();
    Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
}

fn main() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut files: Vec<_> = std::fs::read_dir(&data)
        .expect("tests/data")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".pdftotext.txt"))
        .collect();
    files.sort();
    let pages: Vec<String> = files
        .iter()
        .flat_map(|f| {
            let text = std::fs::read_to_string(f).expect("read a reference text");
            text.split('\u{c}').map(str::to_string).collect::<Vec<_>>()
        })
        .filter(|p| !p.trim().is_empty())
        .collect();
    let text = pages.join("\n\n");
    let file = Path::new(env!("CARGO_TARGET_TMPDIR")).join("chunker-bench.txt");
    std::fs::write(&file, &text).expect("write the bench text");

    let (tokens, encode) = best(|| bpe::encode(&text).len());
    let (counted, count) = best(|| bpe::count_tokens(&text));
    assert_eq!(tokens, counted, "count_tokens and encode agree");
    let page_texts: Vec<PageText> = pages
        .iter()
        .enumerate()
        .map(|(i, t)| PageText {
            number: i as u32 + 1,
            offset: 0,
            text: t.clone(),
        })
        .collect();
    let (chunks, chunk) = best(|| {
        chunker::chunk(&page_texts, 512, 64, Unit::Tokens)
            .expect("chunk")
            .len()
    });

    let rate = |d: Duration| tokens as f64 / d.as_secs_f64() / 1e6;
    println!(
        "\ncl100k on {} pages of test-document text ({:.2} MB, {tokens} tokens), best of {ROUNDS}, one thread each, same run",
        pages.len(),
        text.len() as f64 / 1e6
    );
    println!(
        "chunker bpe::encode:        {:>6.2} M tokens/s",
        rate(encode)
    );
    println!(
        "chunker bpe::count_tokens:  {:>6.2} M tokens/s",
        rate(count)
    );
    println!(
        "chunker chunk (512/64):     {:>6.2} M input tokens/s ({chunks} chunks)",
        rate(chunk)
    );
    match tiktoken(&file) {
        Some((theirs, seconds)) => {
            let theirs_rate = theirs as f64 / seconds / 1e6;
            println!(
                "tiktoken encode_ordinary:   {theirs_rate:>6.2} M tokens/s ({theirs} tokens{})",
                if theirs == tokens {
                    ", the same count"
                } else {
                    ", a different count"
                }
            );
            println!(
                "ratios: encode {:.2}x, count_tokens {:.2}x, whole chunker {:.2}x tiktoken's encode",
                rate(encode) / theirs_rate,
                rate(count) / theirs_rate,
                rate(chunk) / theirs_rate
            );
        }
        None => println!("tiktoken: not ready (bash scripts/fetch-tiktoken.sh)"),
    }
}
