//! Latency histograms shared by the pools, the lanes and the budgets:
//! recorded lock-free, read as snapshots.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Buckets in a [`Histogram`].
pub const BUCKETS: usize = 28;

/// A snapshot of durations sorted into powers of two of microseconds:
/// bucket `i` counts durations under `2^i` µs (the last bucket: the rest,
/// from about 67 s up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Histogram {
    /// Count per bucket.
    pub counts: [u64; BUCKETS],
    /// Sum of every recorded duration, in nanoseconds.
    pub total_nanos: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: [0; BUCKETS],
            total_nanos: 0,
        }
    }
}

impl Histogram {
    /// Durations recorded.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The upper bound of bucket `i`: `2^i` µs.
    pub fn upper_bound(i: usize) -> Duration {
        Duration::from_micros(1 << i.min(BUCKETS - 1))
    }

    /// An upper bound on the `q`-quantile (0..=1); zero when empty.
    pub fn quantile(&self, q: f64) -> Duration {
        let total = self.count();
        if total == 0 {
            return Duration::ZERO;
        }
        let want = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= want {
                return Self::upper_bound(i);
            }
        }
        Self::upper_bound(BUCKETS - 1)
    }
}

/// Where durations are recorded.
pub(crate) struct Recorder {
    counts: [AtomicU64; BUCKETS],
    total_nanos: AtomicU64,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            total_nanos: AtomicU64::new(0),
        }
    }
}

impl Recorder {
    pub(crate) fn record(&self, d: Duration) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let bucket = (64 - (nanos / 1000).leading_zeros() as usize).min(BUCKETS - 1);
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.total_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Histogram {
        Histogram {
            counts: std::array::from_fn(|i| self.counts[i].load(Ordering::Relaxed)),
            total_nanos: self.total_nanos.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_land_in_their_power_of_two() {
        let r = Recorder::default();
        r.record(Duration::from_nanos(500));
        r.record(Duration::from_micros(3));
        r.record(Duration::from_micros(3));
        r.record(Duration::from_secs(1000));
        let h = r.snapshot();
        assert_eq!(h.counts[0], 1);
        assert_eq!(h.counts[2], 2);
        assert_eq!(h.counts[BUCKETS - 1], 1);
        assert_eq!(h.quantile(0.5), Duration::from_micros(4));
        assert_eq!(h.quantile(0.25), Duration::from_micros(1));
        assert_eq!(h.count(), 4);
    }
}
