//! Pages per second through the whole pipeline on a large real PDF (the
//! 1,611-page LaTeX3 sources), with one worker and with all cores, beside
//! the same extraction code run natively in process, and PyMuPDF on the same
//! file when it is installed (`pip install pymupdf`).
//!
//! Run: `bash scripts/fetch-bench-pdf.sh && cargo bench --bench pages`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use warmlane_host::{Config, Event, Host, PdfDocument};

fn bench_pdf() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-data/source3.pdf");
    assert!(
        path.exists(),
        "missing {}; run: bash scripts/fetch-bench-pdf.sh",
        path.display()
    );
    path
}

fn pipeline(host: &Host, doc: &Arc<PdfDocument>) -> Duration {
    let options = host.document_options();
    let start = Instant::now();
    let summary = host
        .process(doc.clone(), &options, "bench", &mut |e| {
            if let Event::PageError { page, error } = e {
                panic!("page {page}: {error}");
            }
        })
        .expect("accepted");
    assert_eq!(summary.pages, doc.page_count());
    start.elapsed()
}

fn native(doc: &PdfDocument, batch: usize) -> Duration {
    let start = Instant::now();
    let pages = doc.page_count() as usize;
    for first in (0..pages).step_by(batch) {
        let pdf = doc.batch(first..(first + batch).min(pages)).expect("batch");
        let parsed = pdf_pages::parse_batch(&pdf, first as u32 + 1).expect("parse");
        assert!(parsed.iter().all(|(_, t)| t.is_ok()));
    }
    start.elapsed()
}

fn pymupdf(path: &Path) -> Option<f64> {
    // Best of 3, as warmlane's figures are.
    let script = "import sys,time,pymupdf\nbest=0\nfor _ in range(3):\n    d=pymupdf.open(sys.argv[1])\n    t=time.time()\n    n=0\n    for p in d:\n        p.get_text(); n+=1\n    best=max(best,n/(time.time()-t))\nprint(best)";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .output()
        .ok()?;
    String::from_utf8(out.stdout).ok()?.trim().parse().ok()
}

fn pages(c: &mut Criterion) {
    let path = bench_pdf();
    let host = Host::new(Config::default()).expect("start the host");
    let mut one = Config::default();
    one.pipeline.workers = 1;
    let host_1 = Host::new(one).expect("start the host");
    assert!(host.wait_warm(Duration::from_secs(60)) && host_1.wait_warm(Duration::from_secs(60)));
    let doc = Arc::new(PdfDocument::open(std::fs::read(&path).unwrap(), None).expect("open"));
    let n = doc.page_count();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let batch = host.document_options().batch_pages as usize;

    let mut group = c.benchmark_group("pages");
    group
        .sample_size(10)
        .throughput(Throughput::Elements(n as u64));
    group.bench_function("native_extraction_1_thread", |b| {
        b.iter_custom(|i| (0..i).map(|_| native(&doc, batch)).sum())
    });
    group.bench_function("pipeline_1_worker", |b| {
        b.iter_custom(|i| (0..i).map(|_| pipeline(&host_1, &doc)).sum())
    });
    group.bench_function(format!("pipeline_{cores}_workers"), |b| {
        b.iter_custom(|i| (0..i).map(|_| pipeline(&host, &doc)).sum())
    });
    group.finish();

    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    let best = |f: &dyn Fn() -> Duration| (0..3).map(|_| f()).min().unwrap();
    let native_rate = rate(best(&|| native(&doc, batch)));
    let one = rate(best(&|| pipeline(&host_1, &doc)));
    let all = rate(best(&|| pipeline(&host, &doc)));
    println!(
        "\npages/s on {} ({n} pages), best of 3, same run",
        path.display()
    );
    println!("native extraction, 1 thread (no chunking): {native_rate:>7.0}");
    println!(
        "pipeline, 1 worker (wasm parse + chunk):    {one:>7.0}  ({:.2}x native)",
        one / native_rate
    );
    println!(
        "pipeline, {cores} workers:                        {all:>7.0}  ({:.2}x native)",
        all / native_rate
    );
    match pymupdf(&path) {
        Some(p) => println!(
            "PyMuPDF, 1 process (get_text), best of 3:  {p:>7.0}  (warmlane all cores: {:.2}x)",
            all / p
        ),
        None => println!("PyMuPDF: not installed (pip install pymupdf)"),
    }
}

criterion_group!(benches, pages);
criterion_main!(benches);
