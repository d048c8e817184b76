//! `warmlane run`'s progress on a terminal, by indicatif: a bar for each
//! document being read (pages, pages/s, time left) above one for the whole
//! run (files, pages, pages/s). Hidden when stderr is not a terminal or
//! `--quiet` says so; lines said meanwhile go above the bars. Shared by the
//! threads that read documents side by side.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use warmlane_host::Lane;

pub(crate) struct Progress {
    multi: MultiProgress,
    overall: ProgressBar,
    started: Instant,
    /// Pages read, of every document.
    pages: AtomicU64,
}

/// One document's bar.
pub(crate) struct DocumentBar<'a> {
    progress: &'a Progress,
    bar: ProgressBar,
    /// Pages of it counted in the run's total.
    counted: u32,
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
            started: Instant::now(),
            pages: AtomicU64::new(0),
        }
    }

    /// `file`, of `pages` pages in `lane`, is being read.
    pub(crate) fn start(&self, file: &str, lane: Lane, pages: u32) -> DocumentBar<'_> {
        let bar = self
            .multi
            .insert_before(&self.overall, ProgressBar::new(u64::from(pages)));
        bar.set_style(style(
            "{msg} [{bar:30}] {pos}/{len} pages, {rate}, {eta} left",
        ));
        bar.set_message(format!("{file} ({lane} lane)"));
        DocumentBar {
            progress: self,
            bar,
            counted: 0,
        }
    }

    /// A file is done (or could not be read).
    pub(crate) fn file_done(&self) {
        self.overall.inc(1);
        self.total(0);
    }

    /// Writes `line` to stderr above the bars.
    pub(crate) fn say(&self, line: &str) {
        self.multi.suspend(|| eprintln!("{line}"));
    }

    /// Removes the bars.
    pub(crate) fn finish(&self) {
        self.overall.finish_and_clear();
    }

    /// Adds `more` pages to the total and shows it.
    fn total(&self, more: u32) {
        let pages = self.pages.fetch_add(u64::from(more), Ordering::Relaxed) + u64::from(more);
        let seconds = self.started.elapsed().as_secs_f64().max(1e-3);
        self.overall.set_message(format!(
            "{pages} pages, {:.0} pages/s",
            pages as f64 / seconds
        ));
    }
}

impl DocumentBar<'_> {
    /// The document has `done` pages read.
    pub(crate) fn pages(&mut self, done: u32) {
        self.bar.set_position(u64::from(done));
        self.count(done);
    }

    /// The document is done, with `pages` pages (0: it could not be read).
    pub(crate) fn finish(mut self, pages: u32) {
        self.bar.finish_and_clear();
        self.count(pages);
        self.progress.file_done();
    }

    fn count(&mut self, done: u32) {
        let more = done.saturating_sub(self.counted);
        self.counted = self.counted.max(done);
        self.progress.total(more);
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
