//! What one call into an instance may spend — wall-clock time, and CPU time
//! of the thread running it — enforced from wasmtime's epoch callback. A
//! busy machine stretches an honest call's wall time without failing it; a
//! guest that spins is stopped by the CPU it burns; a guest that waits
//! without burning any (a WASI sleep) is stopped by the wall clock.
//!
//! The meter checks only when the epoch deadline fires, and sets the next
//! deadline at the earliest moment a limit could be reached, so a call
//! pays for a check every few milliseconds at most.

use std::time::{Duration, Instant};

/// What one call may spend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Allowance {
    /// Wall-clock time.
    pub(crate) wall: Duration,
    /// CPU time of the thread running the call.
    pub(crate) cpu: Duration,
}

/// The limit that stopped a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// It ran out of wall-clock time.
    Wall,
    /// It ran out of CPU time.
    Cpu,
}

/// Meters the call running in one store.
#[derive(Debug)]
pub(crate) struct Meter {
    tick: Duration,
    allowance: Allowance,
    started: Instant,
    /// The thread's CPU time when the call started, where the platform
    /// tells it (else only the wall clock is enforced).
    cpu_at_start: Option<Duration>,
    stopped: Option<Stop>,
}

impl Meter {
    /// A meter for an engine whose epoch advances every `tick`.
    pub(crate) fn new(tick: Duration) -> Meter {
        Meter {
            tick: tick.max(Duration::from_micros(1)),
            allowance: Allowance {
                wall: Duration::MAX,
                cpu: Duration::MAX,
            },
            started: Instant::now(),
            cpu_at_start: thread_cpu(),
            stopped: None,
        }
    }

    /// Starts metering a call on this thread under `allowance`; the epoch
    /// ticks until the first check.
    pub(crate) fn start(&mut self, allowance: Allowance) -> u64 {
        self.allowance = allowance;
        self.started = Instant::now();
        self.cpu_at_start = thread_cpu();
        self.stopped = None;
        self.ticks(allowance.wall.min(allowance.cpu))
    }

    /// CPU time this thread has used since the call started.
    pub(crate) fn cpu_used(&self) -> Duration {
        match (self.cpu_at_start, thread_cpu()) {
            (Some(a), Some(b)) => b.saturating_sub(a),
            _ => Duration::ZERO,
        }
    }

    /// The limit that stopped the last call, if one did.
    pub(crate) fn stopped(&self) -> Option<Stop> {
        self.stopped
    }

    /// The call's allowance.
    pub(crate) fn allowance(&self) -> Allowance {
        self.allowance
    }

    /// Called when the epoch deadline fires: the limit the call has reached,
    /// or the ticks until it could reach one.
    pub(crate) fn check(&mut self) -> Result<u64, Stop> {
        let wall = self.started.elapsed();
        if wall >= self.allowance.wall {
            self.stopped = Some(Stop::Wall);
            return Err(Stop::Wall);
        }
        let cpu = self.cpu_used();
        if cpu >= self.allowance.cpu {
            self.stopped = Some(Stop::Cpu);
            return Err(Stop::Cpu);
        }
        // CPU time cannot pass faster than wall time on one thread: neither
        // limit can be reached before the smaller of what is left of each.
        let left = (self.allowance.wall - wall).min(self.allowance.cpu - cpu);
        Ok(self.ticks(left))
    }

    fn ticks(&self, d: Duration) -> u64 {
        // One extra tick: the clock may tick just after the deadline is set.
        let n = d.as_nanos().div_ceil(self.tick.as_nanos());
        u64::try_from(n)
            .unwrap_or(u64::MAX / 2)
            .clamp(1, u64::MAX / 2)
            + 1
    }
}

/// The CPU time the current thread has used.
pub(crate) fn thread_cpu() -> Option<Duration> {
    cpu_time::ThreadTime::try_now()
        .ok()
        .map(|t| t.as_duration())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spin(d: Duration) {
        let start = thread_cpu().unwrap();
        while thread_cpu().unwrap() - start < d {
            std::hint::black_box(0u64);
        }
    }

    #[test]
    fn cpu_is_what_stops_a_spinning_call() {
        let mut m = Meter::new(Duration::from_millis(5));
        let first = m.start(Allowance {
            wall: Duration::from_secs(10),
            cpu: Duration::from_millis(30),
        });
        assert_eq!(first, 7);
        assert!(m.check().is_ok());
        spin(Duration::from_millis(35));
        assert_eq!(m.check(), Err(Stop::Cpu));
        assert_eq!(m.stopped(), Some(Stop::Cpu));
        assert!(m.cpu_used() >= Duration::from_millis(35));
    }

    #[test]
    fn the_wall_clock_stops_a_call_that_waits() {
        let mut m = Meter::new(Duration::from_millis(5));
        m.start(Allowance {
            wall: Duration::from_millis(20),
            cpu: Duration::from_secs(10),
        });
        std::thread::sleep(Duration::from_millis(25));
        assert_eq!(m.check(), Err(Stop::Wall));
        // A new call starts afresh.
        m.start(Allowance {
            wall: Duration::from_secs(1),
            cpu: Duration::from_secs(1),
        });
        assert_eq!(m.stopped(), None);
        // Idle time is not CPU time: the next check is far off.
        assert!(m.check().unwrap() > 100);
    }
}
