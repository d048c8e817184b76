//! `warmlane run`: PDFs in, NDJSON chunks and page errors out.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;
use serde_json::json;
use warmlane_host::config::ChunkUnit;
use warmlane_host::{Event, Host};

use crate::cli::ConfigArgs;
use crate::progress::Progress;

/// `warmlane run`'s options.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The PDFs, processed one after the other.
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
    let host = Host::new(config)?;
    let quiet = args.quiet;
    let mut progress = Progress::new(args.files.len(), !quiet && std::io::stderr().is_terminal());
    let mut options = host.document_options();
    options.emit_pages = args.pages;
    let password = args.password.as_deref();

    let started = Instant::now();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let (mut pages, mut chunks, mut errors, mut failed_files) = (0u64, 0u64, 0u64, 0usize);
    for path in &args.files {
        let file = &path.display().to_string();
        let doc = match host.open_pdf(path, password) {
            Ok(doc) => doc,
            Err(e) => {
                out.flush()?;
                progress.say(&format!("warmlane: {file}: {e:#}"));
                progress.finish_document(0);
                failed_files += 1;
                continue;
            }
        };
        let mut write_error: Option<std::io::Error> = None;
        progress.start(file, host.lane_for(&doc), doc.page_count());
        let summary = host.process(doc, &options, file, &mut |event| {
            let line = match event {
                Event::Chunk(c) => json!({
                    "doc": file, "chunk": c.index, "first_page": c.first_page, "last_page": c.last_page,
                    "start": c.start, "end": c.end, "text": c.text,
                }),
                Event::PageError { page, error } => json!({ "doc": file, "page": page, "error": error }),
                Event::Page { page, text } => json!({ "doc": file, "page": page, "text": text }),
                Event::Progress { done, .. } => {
                    progress.pages(done);
                    return;
                }
            };
            if write_error.is_none()
                && let Err(e) = writeln!(out, "{line}")
            {
                write_error = Some(e);
            }
        })?;
        progress.finish_document(summary.pages);
        if let Some(e) = write_error {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(ExitCode::SUCCESS);
            }
            return Err(e.into());
        }
        pages += summary.pages as u64;
        chunks += summary.chunks as u64;
        errors += summary.page_errors as u64;
    }
    progress.finish();
    out.flush()?;
    let seconds = started.elapsed().as_secs_f64();
    if !quiet {
        eprintln!(
            "warmlane: {} file(s), {pages} pages, {chunks} chunks, {errors} page errors, {} unreadable file(s), {seconds:.2} s, {:.0} pages/s",
            args.files.len(),
            failed_files,
            pages as f64 / seconds.max(1e-9)
        );
    }
    Ok(if failed_files > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
