//! `warmlane run`: PDFs in, NDJSON chunks and page errors out.
//!
//! Files are opened in the order given and each is submitted to its lane
//! as soon as it is open, so a small file named after a large one is
//! chunked beside it instead of after it, and many small files keep every
//! worker busy. At most `--open` documents are open at once (memory stays
//! flat for any number of files), and at most one of them is heavy: a heavy
//! document already parses on every worker, so a second would only double
//! what is held. One heavy document may wait for its turn while the small
//! files after it go ahead. Records are written as they are ready: those of
//! one document in its order, documents interleaved.

use std::io::{BufWriter, IsTerminal, Stdout, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::Scope;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::json;
use warmlane_host::config::ChunkUnit;
use warmlane_host::{DocumentOptions, Event, Host, Lane, PdfDocument, SubmitError, Summary};

use crate::cli::ConfigArgs;
use crate::progress::Progress;

/// `warmlane run`'s options.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The PDFs, opened in this order and parsed side by side, each in its
    /// lane.
    #[arg(value_name = "FILE.pdf", required = true)]
    files: Vec<PathBuf>,
    #[command(flatten)]
    pub(crate) config: ConfigArgs,
    /// Password for encrypted PDFs (the empty password is always tried).
    #[arg(long)]
    password: Option<String>,
    /// Pages per batch handed to the parser (default 16).
    #[arg(long, value_name = "N")]
    batch_pages: Option<u32>,
    /// Batches parsed at once across the lanes (default: one per core).
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
    /// Documents open at once, at most one of them heavy (default: four
    /// per worker).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    open: Option<u16>,
    /// Largest chunk (default 512).
    #[arg(long, value_name = "N")]
    chunk_size: Option<u32>,
    /// How much each chunk repeats of the previous (default 64).
    #[arg(long, value_name = "N")]
    overlap: Option<u32>,
    /// What sizes count (default tokens, cl100k).
    #[arg(long, value_enum)]
    unit: Option<Unit>,
    /// Also write one record per page with its text (doc, page, text).
    #[arg(long)]
    pages: bool,
    /// No progress bar and no summary line.
    #[arg(long)]
    quiet: bool,
    /// Parse with this page-parser component instead of the configured one
    /// (`pipeline.parser`).
    #[arg(long, value_name = "FILE.wasm")]
    parser: Option<PathBuf>,
    /// Chunk with this chunker component instead of the configured one
    /// (`pipeline.chunker`).
    #[arg(long, value_name = "FILE.wasm")]
    chunker: Option<PathBuf>,
}

/// What chunk sizes count.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Unit {
    /// cl100k tokens.
    Tokens,
    /// Unicode characters.
    Characters,
}

pub(crate) fn main(args: Args) -> Result<ExitCode> {
    let mut config = args.config.load()?;
    let p = &mut config.pipeline;
    if let Some(n) = args.batch_pages {
        p.batch_pages = n;
    }
    if let Some(n) = args.workers {
        p.workers = n;
    }
    if let Some(n) = args.chunk_size {
        p.chunk_size = n;
    }
    if let Some(n) = args.overlap {
        p.chunk_overlap = n;
    }
    match args.unit {
        None => {}
        Some(Unit::Tokens) => p.chunk_unit = ChunkUnit::Tokens,
        Some(Unit::Characters) => p.chunk_unit = ChunkUnit::Characters,
    }
    // A component given by file is loaded as a plugin, under its file's name.
    if let Some(file) = &args.parser {
        config.pipeline.parser = super::component_name(file);
        config.plugins.files.push(file.clone());
    }
    if let Some(file) = &args.chunker {
        config.pipeline.chunker = super::component_name(file);
        config.plugins.files.push(file.clone());
    }
    config.validate()?;
    let open = args
        .open
        .map_or(4 * config.pipeline.worker_count(), usize::from);
    let host = Host::new(config)?;
    let quiet = args.quiet;
    let mut options = host.document_options();
    options.emit_pages = args.pages;
    let run = Run {
        host: &host,
        options,
        progress: Progress::new(args.files.len(), !quiet && std::io::stderr().is_terminal()),
        out: Mutex::new(Output {
            writer: BufWriter::new(std::io::stdout()),
            error: None,
        }),
        totals: Mutex::new(Totals::default()),
        slots: Slots {
            open: Mutex::new(Open::default()),
            freed: Condvar::new(),
            most: open,
        },
    };

    let started = Instant::now();
    let password = args.password.as_deref();
    std::thread::scope(|scope| {
        // A heavy document opened while another is parsed, waiting for its
        // turn while the files after it go ahead.
        let mut waiting = None;
        for path in &args.files {
            if run.stopped() {
                break;
            }
            let file = path.display().to_string();
            match host.open_pdf(path, password) {
                Ok(doc) => {
                    let lane = host.lane_for(&doc);
                    run.dispatch(scope, Some(Opened { file, doc, lane }), &mut waiting);
                }
                Err(e) => run.unreadable(&format!("warmlane: {file}: {e:#}")),
            }
        }
        while waiting.is_some() && !run.stopped() {
            run.dispatch(scope, None, &mut waiting);
        }
    });
    run.progress.finish();
    let output = run.out.into_inner().unwrap_or_else(PoisonError::into_inner);
    let (mut writer, error) = (output.writer, output.error);
    match error.map_or_else(|| writer.flush(), Err) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(ExitCode::SUCCESS),
        Err(e) => return Err(e.into()),
        Ok(()) => {}
    }
    let totals = run
        .totals
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    let seconds = started.elapsed().as_secs_f64();
    if !quiet {
        eprintln!(
            "warmlane: {} file(s), {} pages, {} chunks, {} page errors, {} unreadable file(s), {seconds:.2} s, {:.0} pages/s",
            args.files.len(),
            totals.pages,
            totals.chunks,
            totals.page_errors,
            totals.failed_files,
            totals.pages as f64 / seconds.max(1e-9)
        );
    }
    Ok(if totals.failed_files > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// A document opened and classified, not yet submitted.
struct Opened {
    file: String,
    doc: PdfDocument,
    lane: Lane,
}

/// One `warmlane run`: what its documents share.
struct Run<'h> {
    host: &'h Host,
    options: DocumentOptions,
    progress: Progress,
    out: Mutex<Output>,
    totals: Mutex<Totals>,
    slots: Slots,
}

/// Standard output, and the first error writing to it.
struct Output {
    writer: BufWriter<Stdout>,
    error: Option<std::io::Error>,
}

/// What the run's documents came to.
#[derive(Default)]
struct Totals {
    pages: u64,
    chunks: u64,
    page_errors: u64,
    failed_files: usize,
}

/// Documents open at once.
struct Slots {
    open: Mutex<Open>,
    freed: Condvar,
    /// Most documents open at once.
    most: usize,
}

#[derive(Default)]
struct Open {
    all: usize,
    heavy: usize,
}

impl Open {
    /// Whether a document of `lane` may start within `most` open at once.
    fn fits(&self, lane: Lane, most: usize) -> bool {
        self.all < most && (lane == Lane::Light || self.heavy == 0)
    }

    fn add(&mut self, lane: Lane, by: isize) {
        self.all = self.all.saturating_add_signed(by);
        if lane == Lane::Heavy {
            self.heavy = self.heavy.saturating_add_signed(by);
        }
    }
}

impl<'h> Run<'h> {
    /// Whether writing has failed (a closed pipe): no more files are opened.
    fn stopped(&self) -> bool {
        self.out
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .error
            .is_some()
    }

    /// A file that could not be opened: said, and counted.
    fn unreadable(&self, line: &str) {
        self.progress.say(line);
        self.progress.file_done();
        self.totals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .failed_files += 1;
    }

    /// Starts `doc` once it fits, starting the `waiting` heavy document
    /// first whenever it fits; a heavy `doc` that does not fit becomes the
    /// waiting one if there is none. Returns once `doc` is placed, or with
    /// no `doc`, once the waiting one has started.
    fn dispatch<'s>(
        &'s self,
        scope: &'s Scope<'s, '_>,
        mut doc: Option<Opened>,
        waiting: &mut Option<Opened>,
    ) {
        let slots = &self.slots;
        let mut open = slots.open.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(w) = waiting.take_if(|w| open.fits(w.lane, slots.most)) {
                open.add(w.lane, 1);
                scope.spawn(move || self.process(w));
                if doc.is_none() {
                    return;
                }
                continue;
            }
            match doc.take() {
                None => {}
                Some(d) if open.fits(d.lane, slots.most) => {
                    open.add(d.lane, 1);
                    scope.spawn(move || self.process(d));
                    return;
                }
                Some(d) if d.lane == Lane::Heavy && waiting.is_none() => {
                    *waiting = Some(d);
                    return;
                }
                Some(d) => doc = Some(d),
            }
            open = slots
                .freed
                .wait(open)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Runs an opened document to its end, then frees its place.
    fn process(&self, opened: Opened) {
        let lane = opened.lane;
        let summary = self.run_document(opened);
        let mut totals = self.totals.lock().unwrap_or_else(PoisonError::into_inner);
        match summary {
            Some(s) => {
                totals.pages += u64::from(s.pages);
                totals.chunks += u64::from(s.chunks);
                totals.page_errors += u64::from(s.page_errors);
            }
            None => totals.failed_files += 1,
        }
        drop(totals);
        let mut open = self
            .slots
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        open.add(lane, -1);
        self.slots.freed.notify_all();
    }

    /// Submits an opened document and writes its records as they come;
    /// `None` if it could not be submitted.
    fn run_document(&self, opened: Opened) -> Option<Summary> {
        let Opened { file, doc, lane } = opened;
        let mut bar = self.progress.start(&file, lane, doc.page_count());
        let doc = Arc::new(doc);
        let job = loop {
            match self.host.submit(doc.clone(), &self.options, &file) {
                Ok(job) => break job,
                // Not with the default lanes, whose queues hold more than
                // `--open`; with smaller ones, wait for a place.
                Err(SubmitError::LaneFull { .. }) => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => {
                    self.progress.say(&format!("warmlane: {file}: {e}"));
                    bar.finish(0);
                    return None;
                }
            }
        };
        drop(doc);
        let summary = job.run(&mut |event| {
            let line = match event {
                Event::Chunk(c) => json!({
                    "doc": file, "chunk": c.index, "first_page": c.first_page, "last_page": c.last_page,
                    "start": c.start, "end": c.end, "text": c.text,
                }),
                Event::PageError { page, error } => {
                    json!({ "doc": file, "page": page, "error": error })
                }
                Event::Page { page, text } => json!({ "doc": file, "page": page, "text": text }),
                Event::Progress { done, .. } => {
                    bar.pages(done);
                    return;
                }
            };
            self.write(line.to_string());
        });
        bar.finish(summary.pages);
        Some(summary)
    }

    /// Writes one record, unless writing has already failed.
    fn write(&self, line: String) {
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        if out.error.is_none()
            && let Err(e) = writeln!(out.writer, "{line}")
        {
            out.error = Some(e);
        }
    }
}
