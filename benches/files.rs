//! Many small files, in the same run: `warmlane run` over 200 copies of an
//! 8-page PDF (the committed `en-lppl.pdf`) against a PyMuPDF loop over the
//! same files, each a whole process timed by bash's `time`; and `warmlane
//! run --open 1`, one document at a time as before the lanes served the
//! CLI. CPU time over wall time says how many cores each kept busy.
//!
//! Run: `cargo bench --bench files` (PyMuPDF: `pip install pymupdf`).

use std::path::{Path, PathBuf};
use std::process::Command;

const COPIES: usize = 200;
const ROUNDS: usize = 3;

/// Wall and CPU seconds of one run of `command` under bash.
#[derive(Clone, Copy)]
struct Timed {
    wall: f64,
    cpu: f64,
}

fn timed(command: &str) -> Option<Timed> {
    let script = format!(
        "TIMEFORMAT='%R %U %S'; time {{ {command} > /dev/null 2>/tmp/warmlane-files-bench.err; }}"
    );
    let out = Command::new("bash").args(["-c", &script]).output().ok()?;
    if !out.status.success() {
        let err = std::fs::read_to_string("/tmp/warmlane-files-bench.err").unwrap_or_default();
        eprintln!("`{command}` failed: {err}");
        return None;
    }
    let text = String::from_utf8_lossy(&out.stderr);
    let f: Vec<f64> = text
        .lines()
        .last()?
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    (f.len() == 3).then(|| Timed {
        wall: f[0],
        cpu: f[1] + f[2],
    })
}

fn files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-files");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the bench directory");
    let pdf = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/en-lppl.pdf");
    (0..COPIES)
        .map(|i| {
            let copy = dir.join(format!("lppl-{i:03}.pdf"));
            std::fs::copy(&pdf, &copy).expect("copy the PDF");
            copy
        })
        .collect()
}

fn main() {
    let files = files();
    let list: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let list = list.join(" ");
    let warmlane = env!("CARGO_BIN_EXE_warmlane");
    let pages = 8 * COPIES;
    let runs: [(&str, String); 3] = [
        ("warmlane run", format!("{warmlane} run --quiet {list}")),
        (
            "warmlane run --open 1",
            format!("{warmlane} run --quiet --open 1 {list}"),
        ),
        (
            "PyMuPDF loop (get_text)",
            format!(
                "python3 -c 'import sys,pymupdf\nfor f in sys.argv[1:]:\n    for p in pymupdf.open(f): p.get_text()' {list}"
            ),
        ),
    ];
    // Alternating rounds, the best of each.
    let mut best: [Option<Timed>; 3] = [None; 3];
    for _ in 0..ROUNDS {
        for (i, (_, command)) in runs.iter().enumerate() {
            if let Some(t) = timed(command)
                && best[i].is_none_or(|b| t.wall < b.wall)
            {
                best[i] = Some(t);
            }
        }
    }
    println!(
        "\n{COPIES} files of 8 pages ({pages} pages), whole processes, best of {ROUNDS} alternating rounds, same run"
    );
    let whole = best[0].expect("warmlane run failed");
    for ((name, _), t) in runs.iter().zip(best) {
        match t {
            Some(t) => println!(
                "{name:<26} {:>6.3} s  {:>6.0} pages/s  {:.2} cores busy  (warmlane run {:.2}x as fast)",
                t.wall,
                pages as f64 / t.wall,
                t.cpu / t.wall,
                t.wall / whole.wall
            ),
            None if name.starts_with("PyMuPDF") => {
                println!("PyMuPDF: not installed (pip install pymupdf)")
            }
            None => println!("{name}: failed"),
        }
    }
}
