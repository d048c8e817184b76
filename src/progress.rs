//! `warmlane run`'s progress on a terminal, by indicatif: a bar for the
//! document being read (pages, pages/s, time left) above one for the whole
//! run (files, pages, pages/s). Hidden when stderr is not a terminal or
//! `--quiet` says so; lines said meanwhile go above the bars.

use std::time::Instant;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use warmlane_host::Lane;

pub(crate) struct Progress {
    multi: MultiProgress,
    overall: ProgressBar,
    document: Option<ProgressBar>,
    started: Instant,
    /// Pages of the documents finished.
    pages_before: u64,
}

impl Progress {
    /// Progress over `files` files, drawn only if `show`.
    pub(crate) fn new(files: usize, show: bool) -> Progress {
        let target = if show {
            ProgressDrawTarget::stderr_with_hz(10)
        } else {
            ProgressDrawTarget::hidden()
        };
        let multi = MultiProgress::with_draw_target(target);
        let overall = multi.add(ProgressBar::new(files as u64));
        overall.set_style(style(
            "all [{elapsed_precise}] {wide_bar} {pos}/{len} files, {msg}",
        ));
        overall.set_message("0 pages");
        Progress {
            multi,
            overall,
            document: None,
            started: Instant::now(),
            pages_before: 0,
        }
    }

    /// `file`, of `pages` pages in `lane`, is being read.
    pub(crate) fn start(&mut self, file: &str, lane: Lane, pages: u32) {
        let bar = self
            .multi
            .insert_before(&self.overall, ProgressBar::new(u64::from(pages)));
        bar.set_style(style(
            "{msg} [{bar:30}] {pos}/{len} pages, {rate}, {eta} left",
        ));
        bar.set_message(format!("{file} ({lane} lane)"));
        self.document = Some(bar);
    }

    /// The current document has `done` pages read.
    pub(crate) fn pages(&self, done: u32) {
        if let Some(bar) = &self.document {
            bar.set_position(u64::from(done));
        }
        self.total(self.pages_before + u64::from(done));
    }

    /// The current document is done (or could not be read), with `pages`.
    pub(crate) fn finish_document(&mut self, pages: u32) {
        if let Some(bar) = self.document.take() {
            bar.finish_and_clear();
        }
        self.pages_before += u64::from(pages);
        self.overall.inc(1);
        self.total(self.pages_before);
    }

    /// Writes `line` to stderr above the bars.
    pub(crate) fn say(&self, line: &str) {
        self.multi.suspend(|| eprintln!("{line}"));
    }

    /// Removes the bars.
    pub(crate) fn finish(&self) {
        self.overall.finish_and_clear();
    }

    fn total(&self, pages: u64) {
        let seconds = self.started.elapsed().as_secs_f64().max(1e-3);
        self.overall.set_message(format!(
            "{pages} pages, {:.0} pages/s",
            pages as f64 / seconds
        ));
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .expect("the templates are fixed and valid")
        .with_key(
            "rate",
            |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.0} pages/s", state.per_sec());
            },
        )
        .progress_chars("#>-")
}
