//! `warmlane run`: PDFs in, NDJSON chunks and page errors out.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::json;
use warmlane_host::config::ChunkUnit;
use warmlane_host::{Event, Host, Lane};

use crate::args::Args;

pub(crate) fn main(raw: &[String]) -> Result<ExitCode> {
    let args = Args::parse(
        raw,
        &[
            "config",
            "password",
            "batch-pages",
            "workers",
            "chunk-size",
            "overlap",
            "unit",
        ],
        &["quiet", "pages"],
    )?;
    if args.positional.is_empty() {
        bail!("`run` needs at least one PDF file; run `warmlane help`");
    }
    let mut config = super::load_config(args.value("config"))?;
    let p = &mut config.pipeline;
    if let Some(n) = args.number("batch-pages")? {
        p.batch_pages = n;
    }
    if let Some(n) = args.number("workers")? {
        p.workers = n;
    }
    if let Some(n) = args.number("chunk-size")? {
        p.chunk_size = n;
    }
    if let Some(n) = args.number("overlap")? {
        p.chunk_overlap = n;
    }
    match args.value("unit") {
        None => {}
        Some("tokens") => p.chunk_unit = ChunkUnit::Tokens,
        Some("characters") => p.chunk_unit = ChunkUnit::Characters,
        Some(other) => bail!("--unit takes `tokens` or `characters`, not `{other}`"),
    }
    config.validate()?;
    let host = Host::new(config)?;
    let quiet = args.flag("quiet");
    let progress = !quiet && std::io::stderr().is_terminal();
    let mut options = host.document_options();
    options.emit_pages = args.flag("pages");
    let password = args.value("password");

    let started = Instant::now();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let (mut pages, mut chunks, mut errors, mut failed_files) = (0u64, 0u64, 0u64, 0usize);
    for file in &args.positional {
        let doc = match host.open_pdf(Path::new(file), password) {
            Ok(doc) => doc,
            Err(e) => {
                out.flush()?;
                eprintln!("warmlane: {file}: {e:#}");
                failed_files += 1;
                continue;
            }
        };
        let mut write_error: Option<std::io::Error> = None;
        let mut last_draw = Instant::now() - Duration::from_secs(1);
        let lane = host.lane_for(&doc);
        let summary = host.process(doc, &options, file, &mut |event| {
            let line = match event {
                Event::Chunk(c) => json!({
                    "doc": file, "chunk": c.index, "first_page": c.first_page, "last_page": c.last_page,
                    "start": c.start, "end": c.end, "text": c.text,
                }),
                Event::PageError { page, error } => json!({ "doc": file, "page": page, "error": error }),
                Event::Page { page, text } => json!({ "doc": file, "page": page, "text": text }),
                Event::Progress { done, total } => {
                    if progress && (last_draw.elapsed() > Duration::from_millis(100) || done == total) {
                        last_draw = Instant::now();
                        draw_progress(file, lane, done, total);
                    }
                    return;
                }
            };
            if write_error.is_none()
                && let Err(e) = writeln!(out, "{line}")
            {
                write_error = Some(e);
            }
        })?;
        if progress {
            eprint!("\r\x1b[2K");
        }
        if let Some(e) = write_error {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(ExitCode::SUCCESS);
            }
            return Err(e.into());
        }
        if std::env::var_os("WL_PEAK").is_some() {
            for (n, s) in host.pool_stats() {
                eprintln!("PEAK {n} {}", s.memory_peak >> 20);
            }
        }
        pages += summary.pages as u64;
        chunks += summary.chunks as u64;
        errors += summary.page_errors as u64;
    }
    out.flush()?;
    let seconds = started.elapsed().as_secs_f64();
    if !quiet {
        eprintln!(
            "warmlane: {} file(s), {pages} pages, {chunks} chunks, {errors} page errors, {} unreadable file(s), {seconds:.2} s, {:.0} pages/s",
            args.positional.len(),
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

fn draw_progress(file: &str, lane: Lane, done: u32, total: u32) {
    const WIDTH: usize = 30;
    let filled = (done as usize * WIDTH)
        .checked_div(total as usize)
        .unwrap_or(WIDTH);
    eprint!(
        "\r\x1b[2K{file} ({lane} lane) [{}{}] {done}/{total} pages",
        "#".repeat(filled),
        "-".repeat(WIDTH - filled)
    );
}
