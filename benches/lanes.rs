//! Light-job latency beside heavy work. A 1-page document (page 1 of the
//! LPPL) is submitted while a 3,222-page job (the 1,611-page LaTeX3
//! sources twice over) is being processed: on the lanes, beside the same
//! light job on an idle host, and beside a single FIFO queue (every job in
//! one lane, one at a time, in order), all in the same run.
//!
//! Run: `bash scripts/fetch-bench-pdf.sh && cargo bench --bench lanes`.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use warmlane_host::{Config, Event, Host, PdfDocument};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// source3.pdf twice over, built once with lopdf and kept beside it.
fn heavy_doc() -> Arc<PdfDocument> {
    let source = root().join("target/bench-data/source3.pdf");
    assert!(
        source.exists(),
        "missing {}; run: bash scripts/fetch-bench-pdf.sh",
        source.display()
    );
    let doubled = root().join("target/bench-data/source3-twice.pdf");
    if !doubled.exists() {
        std::fs::write(&doubled, twice(&source)).expect("write the doubled PDF");
    }
    let doc = PdfDocument::open(std::fs::read(&doubled).unwrap(), None).expect("open");
    assert_eq!(doc.page_count(), 3222);
    Arc::new(doc)
}

/// A document whose page tree holds `path`'s pages twice.
fn twice(path: &Path) -> Vec<u8> {
    use lopdf::{Document, LoadOptions, Object, dictionary};
    let load = || Document::load_with_options(path, LoadOptions::default()).expect("load");
    let mut a = load();
    let mut b = load();
    b.renumber_objects_with(a.max_id + 1);
    let pages = |d: &Document| {
        d.catalog()
            .unwrap()
            .get(b"Pages")
            .unwrap()
            .as_reference()
            .unwrap()
    };
    let (pages_a, pages_b) = (pages(&a), pages(&b));
    let count = |d: &Document, id| {
        d.get_object(id)
            .unwrap()
            .as_dict()
            .unwrap()
            .get(b"Count")
            .unwrap()
            .as_i64()
            .unwrap()
    };
    let total = count(&a, pages_a) + count(&b, pages_b);
    a.max_id = b.max_id;
    a.objects.extend(b.objects);
    let top = a.add_object(dictionary! {
        "Type" => "Pages",
        "Kids" => vec![Object::Reference(pages_a), Object::Reference(pages_b)],
        "Count" => total,
    });
    for id in [pages_a, pages_b] {
        a.get_object_mut(id)
            .unwrap()
            .as_dict_mut()
            .unwrap()
            .set("Parent", top);
    }
    let catalog = a.trailer.get(b"Root").unwrap().as_reference().unwrap();
    a.get_object_mut(catalog)
        .unwrap()
        .as_dict_mut()
        .unwrap()
        .set("Pages", top);
    let mut out = Vec::new();
    a.save_to(&mut out).expect("save");
    out
}

/// Page 1 of a real document, as a document of its own.
fn light_doc() -> Arc<PdfDocument> {
    let lppl = PdfDocument::open(
        std::fs::read(root().join("tests/data/en-lppl.pdf")).unwrap(),
        None,
    )
    .expect("open");
    Arc::new(PdfDocument::open(lppl.batch(0..1).expect("page 1"), None).expect("open page 1"))
}

fn start(toml: &str) -> Host {
    let host = Host::new(Config::from_toml(toml).expect("config")).expect("start the host");
    assert!(host.wait_warm(Duration::from_secs(60)));
    host
}

/// Heavy jobs back to back until stopped; `running` is set while one is
/// past its first batch.
struct Heavy {
    stop: Arc<AtomicBool>,
    running: Arc<AtomicBool>,
    jobs: Arc<AtomicU32>,
    thread: Option<JoinHandle<()>>,
}

impl Heavy {
    fn start(host: &'static Host, doc: Arc<PdfDocument>) -> Heavy {
        let stop = Arc::new(AtomicBool::new(false));
        let running = Arc::new(AtomicBool::new(false));
        let jobs = Arc::new(AtomicU32::new(0));
        let (s, r, j) = (stop.clone(), running.clone(), jobs.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let options = host.document_options();
                let job = host
                    .submit(doc.clone(), &options, "heavy")
                    .expect("accepted");
                job.run(&mut |e| {
                    if let Event::Progress { done, total } = e {
                        r.store(done < total, Ordering::Relaxed);
                    }
                });
                j.fetch_add(1, Ordering::Relaxed);
            }
        });
        Heavy {
            stop,
            running,
            jobs,
            thread: Some(thread),
        }
    }

    fn wait_running(&self) {
        while !self.running.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Drop for Heavy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn light(host: &Host, doc: &Arc<PdfDocument>) -> Duration {
    let options = host.document_options();
    let t = Instant::now();
    let summary = host
        .process(doc.clone(), &options, "light", &mut |_| {})
        .expect("accepted");
    assert_eq!((summary.pages, summary.page_errors), (1, 0));
    t.elapsed()
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn lanes(c: &mut Criterion) {
    let heavy_doc = heavy_doc();
    let light_doc = light_doc();
    // Defaults: heavy from 200 pages, one light worker, heavy workers = cores.
    let lanes: &'static Host = Box::leak(Box::new(start("")));
    // One FIFO queue: every job heavy, one job at a time, in order.
    let fifo: &'static Host = Box::leak(Box::new(start(
        "[lanes]\nheavy_from_pages = 1\n[lanes.heavy]\nrunning = 1\n",
    )));

    let mut group = c.benchmark_group("lanes");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500));
    group.bench_function("light_job_idle_host", |b| {
        b.iter_custom(|n| (0..n).map(|_| light(lanes, &light_doc)).sum())
    });
    let idle = median((0..50).map(|_| light(lanes, &light_doc)).collect());

    let heavy = Heavy::start(lanes, heavy_doc.clone());
    group.bench_function("light_job_beside_heavy_job", |b| {
        b.iter_custom(|n| {
            (0..n)
                .map(|_| {
                    heavy.wait_running();
                    light(lanes, &light_doc)
                })
                .sum()
        })
    });
    let loaded = median(
        (0..50)
            .map(|_| {
                heavy.wait_running();
                light(lanes, &light_doc)
            })
            .collect(),
    );
    let heavy_jobs = heavy.jobs.load(Ordering::Relaxed);
    drop(heavy);
    group.finish();

    let mut group = c.benchmark_group("fifo");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(1));
    let heavy = Heavy::start(fifo, heavy_doc.clone());
    let mut fifo_times = Vec::new();
    group.bench_function("light_job_beside_heavy_job", |b| {
        b.iter_custom(|n| {
            (0..n)
                .map(|_| {
                    heavy.wait_running();
                    let t = light(fifo, &light_doc);
                    fifo_times.push(t);
                    t
                })
                .sum()
        })
    });
    drop(heavy);
    group.finish();
    let queued = median(fifo_times);

    let [l, h] = lanes.lane_stats();
    println!(
        "\nlatency of a 1-page job, medians, same run ({heavy_jobs} heavy jobs of 3,222 pages ran beside it)"
    );
    println!("lanes, idle host:              {idle:>10.2?}");
    println!(
        "lanes, beside the heavy job:   {loaded:>10.2?}  ({:.2}x idle)",
        loaded.as_secs_f64() / idle.as_secs_f64()
    );
    println!(
        "one FIFO queue, beside it:     {queued:>10.2?}  ({:.0}x idle)",
        queued.as_secs_f64() / idle.as_secs_f64()
    );
    println!(
        "light lane: {} jobs, wait to first batch p50 {:?} p99 {:?}; heavy lane: {} batches, {} borrowed",
        l.finished,
        l.wait.quantile(0.5),
        l.wait.quantile(0.99),
        h.batches,
        h.borrowed
    );
}

criterion_group!(benches, lanes);
criterion_main!(benches);
