//! A document's CPU budgets: what all the calls made for it together may
//! use, in the host and its instances — what keeps a small hostile file
//! from holding workers for minutes. A document has two, one for parsing
//! and one for chunking, so that chunking a page of absurd length cannot
//! starve the parsing of the pages after it. Kept in this process for a
//! job run here, in Redis for a job that replicas share.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::config::PipelineConfig;

/// A CPU budget, wherever it is kept.
pub(crate) trait Budget {
    /// What is left of it.
    fn left(&self) -> Duration;
    /// Charges `cpu` to it.
    fn spend(&self, cpu: Duration);
    /// Why `what` was not done once it is spent.
    fn spent(&self, what: &str) -> String;
}

/// The size of a budget, and the settings that size it (for its errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Size {
    pub(crate) limit: Duration,
    sized_by: &'static str,
}

impl Size {
    /// For parsing: `pipeline.cpu_ms_per_document` plus
    /// `pipeline.cpu_ms_per_page` for each of `pages`.
    pub(crate) fn parsing(config: &PipelineConfig, pages: u32) -> Size {
        let ms = config
            .cpu_ms_per_document
            .saturating_add(config.cpu_ms_per_page.saturating_mul(u64::from(pages)));
        Size::parsing_of(Duration::from_millis(ms))
    }

    /// A parsing budget of `limit` (as sized when its job was accepted).
    pub(crate) fn parsing_of(limit: Duration) -> Size {
        Size {
            limit,
            sized_by: "pipeline.cpu_ms_per_document + pipeline.cpu_ms_per_page for each page",
        }
    }

    /// For chunking: `pipeline.cpu_ms_per_page` for each of `pages`.
    pub(crate) fn chunking(config: &PipelineConfig, pages: u32) -> Size {
        let ms = config
            .cpu_ms_per_page
            .saturating_mul(u64::from(pages.max(1)));
        Size::chunking_of(Duration::from_millis(ms))
    }

    /// A chunking budget of `limit` (as sized when its job was accepted).
    pub(crate) fn chunking_of(limit: Duration) -> Size {
        Size {
            limit,
            sized_by: "pipeline.cpu_ms_per_page for each page",
        }
    }

    /// What is left of it once `used` is spent.
    pub(crate) fn left(&self, used: Duration) -> Duration {
        self.limit.saturating_sub(used)
    }

    /// Why `what` was not done once it is spent.
    pub(crate) fn spent(&self, what: &str) -> String {
        format!(
            "the document used up its CPU budget of {:.1} s ({}) before {what}",
            self.limit.as_secs_f64(),
            self.sized_by
        )
    }
}

/// A budget kept in this process.
pub(crate) struct CpuBudget {
    size: Size,
    used_nanos: AtomicU64,
}

impl CpuBudget {
    /// A budget of `size`, nothing spent.
    pub(crate) fn new(size: Size) -> CpuBudget {
        CpuBudget {
            size,
            used_nanos: AtomicU64::new(0),
        }
    }
}

impl Budget for CpuBudget {
    fn left(&self) -> Duration {
        self.size.left(Duration::from_nanos(
            self.used_nanos.load(Ordering::Relaxed),
        ))
    }

    fn spend(&self, cpu: Duration) {
        self.used_nanos.fetch_add(nanos(cpu), Ordering::Relaxed);
    }

    fn spent(&self, what: &str) -> String {
        self.size.spent(what)
    }
}

/// `d` in nanoseconds, saturating.
pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
