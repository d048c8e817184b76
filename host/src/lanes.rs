//! Heavy and light lanes: which job's batch runs next, and on which worker.
//!
//! Every job is classified by size into a lane. Each lane has workers of its
//! own; a worker serves its own lane first and lends itself to the other
//! lane only when that lane's own workers are all busy and fewer than
//! `parallelism` batches run, so lending fills idle cores and never
//! oversubscribes them. Workers return to their own
//! lane between batches: nothing in flight is ever interrupted. Within a
//! lane, running jobs take turns batch by batch, the next turn going to the
//! job that has had the least CPU time so far (fewest turns in flight
//! breaking ties, then round-robin order): a new job's first batch goes
//! before the next batch of jobs already running, and a job whose batches
//! are slow falls behind the others instead of holding them back. A turn
//! may hand its work back as several smaller turns (a batch retried page
//! by page), each of which waits for its turn like any other. Jobs beyond
//! `running` wait in order, and beyond `queue` more are refused. A job's
//! caller may run its job's turn itself, in the place of an idle worker of
//! its lane ([`Ticket::run_here`]).
//!
//! `lanes` hands out turns; it never touches a document or a `Store`.

use std::collections::VecDeque;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::error::SubmitError;
use crate::stats::{Histogram, Recorder};

/// The lane a job runs in.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Lane {
    /// Small jobs: they start at once, whatever heavy work is running.
    Light = 0,
    /// Large jobs: they share what the light lane leaves.
    Heavy = 1,
}

impl Lane {
    /// Both lanes, light first.
    pub const ALL: [Lane; 2] = [Lane::Light, Lane::Heavy];

    /// `"light"` or `"heavy"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Lane::Light => "light",
            Lane::Heavy => "heavy",
        }
    }

    fn other(self) -> Lane {
        match self {
            Lane::Light => Lane::Heavy,
            Lane::Heavy => Lane::Light,
        }
    }
}

impl fmt::Display for Lane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One lane's sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LaneSettings {
    /// Worker threads that serve this lane first.
    pub(crate) workers: usize,
    /// Jobs that take turns at once.
    pub(crate) running: usize,
    /// Jobs that may wait for a turn; more are refused.
    pub(crate) queue: usize,
}

/// The scheduler's sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Settings {
    /// Jobs of at least this many pages are heavy.
    pub(crate) heavy_from_pages: u32,
    /// Batches that may run at once before workers stop lending themselves.
    pub(crate) parallelism: usize,
    /// Batches of one job handed out and not yet consumed.
    pub(crate) window: usize,
    /// Per lane, light first.
    pub(crate) lanes: [LaneSettings; 2],
}

impl Settings {
    /// The lane for a job of `pages` pages.
    pub(crate) fn classify(&self, pages: u32) -> Lane {
        if pages >= self.heavy_from_pages {
            Lane::Heavy
        } else {
            Lane::Light
        }
    }
}

/// What a turn came to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Ran {
    /// CPU time it took, charged to its job's service.
    pub(crate) cpu: Duration,
    /// Turns it handed its work back as (0: it did its work and reported
    /// it). A turn that hands back reports nothing itself.
    pub(crate) split_into: usize,
}

/// The turns of one job, as the workers see them.
pub(crate) trait Batches: Send + Sync {
    /// Runs turn `index` (the job's turns are numbered as they are handed
    /// out), on `worker`'s lane (the job's, or a lender's). Each turn
    /// either reports its results, to be [`Ticket::consumed`], or hands its
    /// work back as `split_into` new turns.
    fn run(&self, index: usize, worker: Lane) -> Ran;
    /// Turn `index` panicked; say so to whoever waits for it.
    fn lost(&self, index: usize, why: String);
}

/// A lane's figures, for metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaneStats {
    /// The lane.
    pub lane: Lane,
    /// Jobs waiting for their turn to start.
    pub queued: usize,
    /// Jobs taking turns.
    pub running: usize,
    /// Batches of this lane's jobs running now.
    pub busy: usize,
    /// Jobs accepted.
    pub admitted: u64,
    /// Jobs refused because the queue was full.
    pub refused: u64,
    /// Jobs finished or abandoned.
    pub finished: u64,
    /// Batches run for this lane's jobs.
    pub batches: u64,
    /// Of those, batches run by the other lane's workers.
    pub borrowed: u64,
    /// Time from submission to a job's first batch.
    pub wait: Histogram,
}

struct Entry {
    id: u64,
    work: Arc<dyn Batches>,
    /// Turns the job has: its batches, and the turns they split into.
    batches: usize,
    next: usize,
    /// Turns handed out whose results are not yet consumed.
    in_flight: usize,
    /// CPU time its finished turns took.
    service: Duration,
    submitted: Instant,
}

#[derive(Default)]
struct LaneState {
    queued: VecDeque<Entry>,
    running: Vec<Entry>,
    cursor: usize,
    busy: usize,
}

impl LaneState {
    /// Starts waiting jobs, in order, while fewer than `running` run.
    fn promote(&mut self, running: usize) {
        while self.running.len() < running
            && let Some(e) = self.queued.pop_front()
        {
            self.running.push(e);
        }
    }
}

#[derive(Default)]
struct LaneCounters {
    admitted: AtomicU64,
    refused: AtomicU64,
    finished: AtomicU64,
    batches: AtomicU64,
    borrowed: AtomicU64,
    wait: Recorder,
}

struct State {
    lanes: [LaneState; 2],
    /// Workers running a batch, by the lane they belong to.
    working: [usize; 2],
    next_id: u64,
    shutdown: bool,
}

struct Shared {
    settings: Settings,
    state: Mutex<State>,
    /// Signalled when there may be a turn to hand out.
    turn: Condvar,
    counters: [LaneCounters; 2],
}

/// The scheduler: owns the worker threads. Dropping it stops them after
/// their current batch and abandons the jobs not yet run.
pub(crate) struct Lanes {
    shared: Arc<Shared>,
}

/// A job's place in its lane. Call [`Ticket::consumed`] as each batch's
/// results are taken; drop it when the job is finished or abandoned.
pub(crate) struct Ticket {
    shared: Arc<Shared>,
    id: u64,
    lane: Lane,
}

impl Lanes {
    /// Starts the workers.
    pub(crate) fn new(settings: Settings) -> std::io::Result<Lanes> {
        let shared = Arc::new(Shared {
            settings,
            state: Mutex::new(State {
                lanes: Default::default(),
                working: [0; 2],
                next_id: 0,
                shutdown: false,
            }),
            turn: Condvar::new(),
            counters: Default::default(),
        });
        for lane in Lane::ALL {
            for n in 0..settings.lanes[lane as usize].workers {
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("warmlane-{lane}-{n}"))
                    .spawn(move || shared.work(lane))?;
            }
        }
        Ok(Lanes { shared })
    }

    /// The scheduler's sizes.
    pub(crate) fn settings(&self) -> &Settings {
        &self.shared.settings
    }

    /// Queues a job of `batches` batches in `lane`, or refuses it when the
    /// lane's queue is full; `start` says who takes its first turn.
    pub(crate) fn submit(
        &self,
        lane: Lane,
        batches: usize,
        work: Arc<dyn Batches>,
        start: Start,
    ) -> Result<Ticket, SubmitError> {
        let s = &self.shared;
        let limits = s.settings.lanes[lane as usize];
        let mut state = s.lock();
        if state.shutdown {
            return Err(SubmitError::ShuttingDown);
        }
        let l = &state.lanes[lane as usize];
        if l.running.len() >= limits.running && l.queued.len() >= limits.queue {
            s.counters[lane as usize]
                .refused
                .fetch_add(1, Ordering::Relaxed);
            return Err(SubmitError::LaneFull {
                lane,
                queued: l.queued.len(),
            });
        }
        let id = state.next_id;
        state.next_id += 1;
        let l = &mut state.lanes[lane as usize];
        l.queued.push_back(Entry {
            id,
            work,
            batches,
            next: 0,
            in_flight: 0,
            service: Duration::ZERO,
            submitted: Instant::now(),
        });
        l.promote(limits.running);
        s.counters[lane as usize]
            .admitted
            .fetch_add(1, Ordering::Relaxed);
        drop(state);
        if start == Start::Workers {
            s.turn.notify_all();
        }
        Ok(Ticket {
            shared: s.clone(),
            id,
            lane,
        })
    }

    /// Both lanes' figures, light first.
    pub(crate) fn stats(&self) -> [LaneStats; 2] {
        let s = &self.shared;
        let state = s.lock();
        Lane::ALL.map(|lane| {
            let l = &state.lanes[lane as usize];
            let c = &s.counters[lane as usize];
            LaneStats {
                lane,
                queued: l.queued.len(),
                running: l.running.len(),
                busy: l.busy,
                admitted: c.admitted.load(Ordering::Relaxed),
                refused: c.refused.load(Ordering::Relaxed),
                finished: c.finished.load(Ordering::Relaxed),
                batches: c.batches.load(Ordering::Relaxed),
                borrowed: c.borrowed.load(Ordering::Relaxed),
                wait: c.wait.snapshot(),
            }
        })
    }
}

impl Drop for Lanes {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.shutdown = true;
        // Dropping the jobs drops their result senders: whoever waits on
        // them learns that the rest will not come.
        for l in &mut state.lanes {
            l.queued.clear();
            l.running.clear();
        }
        drop(state);
        self.shared.turn.notify_all();
    }
}

impl Ticket {
    /// The job's lane.
    pub(crate) fn lane(&self) -> Lane {
        self.lane
    }

    /// Runs the job's next turn on the calling thread, when the job is the
    /// one its lane would serve next and one of the lane's own workers is
    /// idle: the caller takes that worker's place while it runs, so the
    /// lane runs no more at once than it has workers, and a small job never
    /// waits for a worker to wake or crosses threads. Whether it ran one.
    /// When it does not, it wakes the workers if a turn is waiting (a job
    /// submitted with [`Start::Caller`] woke none).
    pub(crate) fn run_here(&self) -> bool {
        let s = &*self.shared;
        let mut state = s.lock();
        let at = if state.shutdown
            || state.working[self.lane as usize] >= s.settings.lanes[self.lane as usize].workers
        {
            None
        } else {
            s.next_job(&mut state, self.lane)
                .filter(|&at| state.lanes[self.lane as usize].running[at].id == self.id)
        };
        let Some(at) = at else {
            s.wake(state);
            return false;
        };
        let turn = s.hand_out(&mut state, self.lane, at);
        s.run(state, turn, self.lane);
        true
    }

    /// One batch's results were taken: the job may have another in flight.
    pub(crate) fn consumed(&self) {
        let mut state = self.shared.lock();
        if let Some(e) = state.lanes[self.lane as usize]
            .running
            .iter_mut()
            .find(|e| e.id == self.id)
        {
            e.in_flight = e.in_flight.saturating_sub(1);
        }
        self.shared.wake(state);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        let l = &mut state.lanes[self.lane as usize];
        let before = l.running.len() + l.queued.len();
        l.running.retain(|e| e.id != self.id);
        l.queued.retain(|e| e.id != self.id);
        let removed = before != l.running.len() + l.queued.len();
        l.promote(self.shared.settings.lanes[self.lane as usize].running);
        if removed {
            self.shared.counters[self.lane as usize]
                .finished
                .fetch_add(1, Ordering::Relaxed);
        }
        self.shared.wake(state);
    }
}

/// Who takes a new job's first turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    /// A worker, woken at submission.
    Workers,
    /// The submitting thread, which goes on at once to collect the job's
    /// results and so runs the turn itself where the lane has a place for
    /// it ([`Ticket::run_here`], which wakes the workers when it has not):
    /// no worker is woken for a turn its caller is about to take.
    Caller,
}

/// A batch handed to a worker.
struct Turn {
    work: Arc<dyn Batches>,
    /// The job's id in its lane.
    id: u64,
    index: usize,
    lane: Lane,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A worker of lane `own`: takes turns until shutdown.
    fn work(&self, own: Lane) {
        let mut state = self.lock();
        loop {
            if state.shutdown {
                return;
            }
            let other = own.other();
            // Lend only to a lane whose own workers are all busy, and only
            // onto an idle core.
            let lend = state.working[other as usize] >= self.settings.lanes[other as usize].workers
                && state.working.iter().sum::<usize>() < self.settings.parallelism;
            // A caller running its own turn holds one of this lane's places.
            let serve = state.working[own as usize] < self.settings.lanes[own as usize].workers;
            let turn = serve
                .then(|| self.pick(&mut state, own))
                .flatten()
                .or_else(|| lend.then(|| self.pick(&mut state, other)).flatten());
            let Some(turn) = turn else {
                state = self.turn.wait(state).unwrap_or_else(|p| p.into_inner());
                continue;
            };
            self.run(state, turn, own);
            state = self.lock();
        }
    }

    /// Runs `turn` on this thread in a place of lane `own`, with `state`'s
    /// lock released; books what it came to and wakes the workers.
    fn run(&self, mut state: MutexGuard<'_, State>, turn: Turn, own: Lane) {
        state.lanes[turn.lane as usize].busy += 1;
        state.working[own as usize] += 1;
        drop(state);

        let c = &self.counters[turn.lane as usize];
        c.batches.fetch_add(1, Ordering::Relaxed);
        if turn.lane != own {
            c.borrowed.fetch_add(1, Ordering::Relaxed);
        }
        let run = catch_unwind(AssertUnwindSafe(|| turn.work.run(turn.index, own)));
        let ran = match run {
            Ok(ran) => ran,
            Err(panic) => {
                let why = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a batch panicked".into());
                tracing::error!(lane = %turn.lane, batch = turn.index, "batch panicked: {why}");
                turn.work.lost(turn.index, why);
                Ran::default()
            }
        };

        let mut state = self.lock();
        let l = &mut state.lanes[turn.lane as usize];
        l.busy -= 1;
        if let Some(e) = l.running.iter_mut().find(|e| e.id == turn.id) {
            e.service += ran.cpu;
            if ran.split_into > 0 {
                // Its work comes back as new turns; it reports nothing.
                e.batches += ran.split_into;
                e.in_flight = e.in_flight.saturating_sub(1);
            }
        }
        state.working[own as usize] -= 1;
        // A worker may lend itself, or take its place back, now that fewer
        // batches run.
        self.wake(state);
    }

    /// Whether any job has a turn to hand out: only then may a waiting
    /// worker find something to do.
    fn turns_waiting(&self, state: &State) -> bool {
        let window = self.settings.window;
        state.lanes.iter().any(|l| {
            !l.queued.is_empty()
                || l.running
                    .iter()
                    .any(|e| e.next < e.batches && e.in_flight < window)
        })
    }

    /// Releases `state` and wakes the workers if one of them may now have
    /// a turn to take; a change that leaves none to hand out wakes nobody
    /// (a 1-page job's end would otherwise wake every worker for nothing).
    fn wake(&self, state: MutexGuard<'_, State>) {
        let waiting = self.turns_waiting(&state);
        drop(state);
        if waiting {
            self.turn.notify_all();
        }
    }

    /// The next turn in `lane`: of the running jobs with a turn to give
    /// (within their window), the one with the least CPU time so far, then
    /// the fewest turns in flight, then the next in round-robin order.
    fn pick(&self, state: &mut State, lane: Lane) -> Option<Turn> {
        let at = self.next_job(state, lane)?;
        Some(self.hand_out(state, lane, at))
    }

    /// Where in `lane`'s running jobs the next turn comes from (see
    /// [`Shared::pick`]).
    fn next_job(&self, state: &mut State, lane: Lane) -> Option<usize> {
        let l = &mut state.lanes[lane as usize];
        l.promote(self.settings.lanes[lane as usize].running);
        let n = l.running.len();
        (0..n)
            .map(|k| (l.cursor + k) % n)
            .filter(|&at| {
                let e = &l.running[at];
                e.next < e.batches && e.in_flight < self.settings.window
            })
            .min_by_key(|&at| (l.running[at].service, l.running[at].in_flight))
    }

    /// Hands out the next turn of `lane`'s running job `at`.
    fn hand_out(&self, state: &mut State, lane: Lane, at: usize) -> Turn {
        let l = &mut state.lanes[lane as usize];
        let e = &mut l.running[at];
        if e.next == 0 {
            self.counters[lane as usize]
                .wait
                .record(e.submitted.elapsed());
        }
        let index = e.next;
        e.next += 1;
        e.in_flight += 1;
        l.cursor = at + 1;
        Turn {
            work: e.work.clone(),
            id: e.id,
            index,
            lane,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// Work that records which batch ran where, taking `each` per batch.
    struct Recording {
        name: &'static str,
        each: Duration,
        log: mpsc::Sender<(&'static str, usize, Lane)>,
    }

    impl Batches for Recording {
        fn run(&self, index: usize, worker: Lane) -> Ran {
            std::thread::sleep(self.each);
            if index == 7 && self.name == "panics" {
                panic!("batch 7 is cursed");
            }
            let _ = self.log.send((self.name, index, worker));
            Ran {
                cpu: self.each,
                split_into: 0,
            }
        }
        fn lost(&self, index: usize, why: String) {
            assert!(why.contains("cursed"));
            let _ = self.log.send(("lost", index, Lane::Light));
        }
    }

    fn settings(light: usize, heavy: usize, parallelism: usize) -> Settings {
        Settings {
            heavy_from_pages: 10,
            parallelism,
            window: 2 * parallelism,
            lanes: [
                LaneSettings {
                    workers: light,
                    running: 4,
                    queue: 2,
                },
                LaneSettings {
                    workers: heavy,
                    running: 2,
                    queue: 1,
                },
            ],
        }
    }

    fn job(
        lanes: &Lanes,
        lane: Lane,
        name: &'static str,
        batches: usize,
        each: Duration,
    ) -> (Ticket, mpsc::Receiver<(&'static str, usize, Lane)>) {
        submitted(lanes, lane, name, batches, each, Start::Workers)
    }

    /// A light job submitted for its caller to start (no worker woken).
    fn for_caller(
        lanes: &Lanes,
        name: &'static str,
        batches: usize,
        each: Duration,
    ) -> (Ticket, mpsc::Receiver<(&'static str, usize, Lane)>) {
        submitted(lanes, Lane::Light, name, batches, each, Start::Caller)
    }

    fn submitted(
        lanes: &Lanes,
        lane: Lane,
        name: &'static str,
        batches: usize,
        each: Duration,
        start: Start,
    ) -> (Ticket, mpsc::Receiver<(&'static str, usize, Lane)>) {
        let (log, rx) = mpsc::channel();
        let work = Arc::new(Recording { name, each, log });
        (lanes.submit(lane, batches, work, start).unwrap(), rx)
    }

    /// Consumes every batch of a job; returns what ran.
    fn drain(
        ticket: &Ticket,
        rx: &mpsc::Receiver<(&'static str, usize, Lane)>,
        batches: usize,
    ) -> Vec<(&'static str, usize, Lane)> {
        (0..batches)
            .map(|_| {
                let got = rx.recv_timeout(Duration::from_secs(10)).expect("a batch");
                ticket.consumed();
                got
            })
            .collect()
    }

    #[test]
    fn a_light_job_runs_on_its_own_worker_while_heavy_work_fills_every_core() {
        let lanes = Lanes::new(settings(1, 2, 2)).unwrap();
        let (heavy, heavy_rx) = job(&lanes, Lane::Heavy, "heavy", 40, Duration::from_millis(10));
        let mut heavy_ran = drain(&heavy, &heavy_rx, 4);
        let (light, light_rx) = job(&lanes, Lane::Light, "light", 1, Duration::ZERO);
        let ran = drain(&light, &light_rx, 1);
        // The light lane's worker was kept free for it...
        assert_eq!(ran, vec![("light", 0, Lane::Light)]);
        drop(light);
        // ...and the light job was done long before the heavy one.
        assert!(lanes.stats()[1].batches < 40);
        heavy_ran.extend(drain(&heavy, &heavy_rx, 36));
        // Heavy work had every core (two workers) and never took the light
        // worker, which would have oversubscribed them.
        assert!(heavy_ran.iter().all(|r| r.2 == Lane::Heavy));
        let stats = lanes.stats();
        assert_eq!((stats[1].batches, stats[1].borrowed), (40, 0));
        assert_eq!((stats[0].admitted, stats[0].finished), (1, 1));
        assert_eq!(stats[0].wait.count(), 1);
    }

    #[test]
    fn a_job_for_its_caller_wakes_no_worker_unless_its_caller_cannot_run_it() {
        let lanes = Lanes::new(settings(1, 1, 2)).unwrap();
        // Both workers asleep, the light one idle: nobody is woken, and the
        // turn waits for its caller, who runs it.
        std::thread::sleep(Duration::from_millis(100));
        let (mine, rx) = for_caller(&lanes, "mine", 1, Duration::ZERO);
        std::thread::sleep(Duration::from_millis(100));
        assert!(rx.try_recv().is_err());
        assert_eq!(lanes.stats()[0].batches, 0);
        assert!(mine.run_here());
        assert_eq!(rx.try_recv().unwrap(), ("mine", 0, Lane::Light));
        mine.consumed();
        drop(mine);
        // The light worker busy: the caller may not run its turn, so it
        // wakes the workers, and the idle heavy one lends itself at once.
        let (busy, busy_rx) = job(&lanes, Lane::Light, "busy", 1, Duration::from_secs(2));
        while lanes.stats()[0].busy == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let (lent, rx) = for_caller(&lanes, "lent", 1, Duration::ZERO);
        assert!(!lent.run_here());
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(1)).unwrap(),
            ("lent", 0, Lane::Heavy)
        );
        lent.consumed();
        drain(&busy, &busy_rx, 1);
    }

    #[test]
    fn a_caller_runs_its_jobs_turn_only_in_an_idle_workers_place() {
        // No lending (one batch at a time), so only the light worker and a
        // caller in its place can run light turns.
        let lanes = Lanes::new(settings(1, 1, 1)).unwrap();
        let (busy, busy_rx) = job(&lanes, Lane::Light, "busy", 1, Duration::from_millis(300));
        while lanes.stats()[0].busy == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        // The light worker is busy: its caller may not add a second batch.
        let (waiting, waiting_rx) = job(&lanes, Lane::Light, "waiting", 1, Duration::ZERO);
        assert!(!waiting.run_here());
        assert!(waiting_rx.try_recv().is_err());
        drain(&busy, &busy_rx, 1);
        assert_eq!(
            drain(&waiting, &waiting_rx, 1),
            vec![("waiting", 0, Lane::Light)]
        );
        drop((busy, waiting));
        // With the worker idle, a caller runs its job's turn itself, on its
        // own thread: the batch has run when `run_here` returns. (Submitted
        // for its caller, so no worker is woken to race it; but a worker
        // still booking its last turn may leave the caller no place, and
        // then the worker runs it.)
        let mut here = 0;
        for _ in 0..50 {
            let (t, rx) = for_caller(&lanes, "small", 2, Duration::ZERO);
            let mut ran = Vec::new();
            while t.run_here() {
                here += 1;
                ran.push(rx.try_recv().expect("run on this thread"));
                t.consumed();
            }
            ran.extend(drain(&t, &rx, 2 - ran.len()));
            ran.sort();
            assert_eq!(
                ran,
                vec![("small", 0, Lane::Light), ("small", 1, Lane::Light)]
            );
            // Nothing left to run, so no turn for it.
            assert!(!t.run_here());
        }
        assert!(here > 0);
        // (A worker may still be booking its last turn: `busy` is not read.)
        let light = &lanes.stats()[0];
        assert_eq!((light.batches, light.borrowed), (102, 0));
    }

    #[test]
    fn an_idle_lane_lends_its_workers_and_gets_them_back_between_batches() {
        // One worker per lane, room for two batches at once.
        let lanes = Lanes::new(settings(1, 1, 2)).unwrap();
        let (heavy, heavy_rx) = job(&lanes, Lane::Heavy, "heavy", 40, Duration::from_millis(5));
        let first = drain(&heavy, &heavy_rx, 10);
        // Both workers served the heavy job: every core busy.
        assert!(first.iter().any(|r| r.2 == Lane::Light), "{first:?}");
        assert!(first.iter().any(|r| r.2 == Lane::Heavy), "{first:?}");
        // A light job arrives: the light worker comes back after its batch,
        // well before the heavy job is done.
        let (light, light_rx) = job(&lanes, Lane::Light, "light", 1, Duration::ZERO);
        drain(&light, &light_rx, 1);
        assert!(lanes.stats()[1].batches < 40);
        drain(&heavy, &heavy_rx, 30);
        assert!(lanes.stats()[1].borrowed > 0);
        // A light-only host lends the heavy worker the same way.
        let (light, light_rx) = job(&lanes, Lane::Light, "light", 20, Duration::from_millis(5));
        let ran = drain(&light, &light_rx, 20);
        assert!(ran.iter().any(|r| r.2 == Lane::Heavy), "{ran:?}");
    }

    #[test]
    fn heavy_jobs_take_turns_batch_by_batch() {
        let lanes = Lanes::new(settings(1, 1, 1)).unwrap();
        let (gate, gate_rx) = job(&lanes, Lane::Heavy, "first", 6, Duration::from_millis(5));
        let (second, second_rx) = job(&lanes, Lane::Heavy, "second", 6, Duration::from_millis(5));
        // Record the order batches finished across both jobs.
        let (tx, all) = mpsc::channel();
        let relay = |t: Ticket, rx: mpsc::Receiver<_>, tx: mpsc::Sender<_>| {
            std::thread::spawn(move || {
                for _ in 0..6 {
                    let got = rx.recv_timeout(Duration::from_secs(10)).unwrap();
                    t.consumed();
                    tx.send(got).unwrap();
                }
            })
        };
        let a = relay(gate, gate_rx, tx.clone());
        let b = relay(second, second_rx, tx);
        a.join().unwrap();
        b.join().unwrap();
        let order: Vec<&str> = all.iter().map(|r| r.0).collect();
        // Neither job finished before the other started: they alternated.
        let first_second = order.iter().position(|n| *n == "second").unwrap();
        let last_first = order.iter().rposition(|n| *n == "first").unwrap();
        assert!(first_second < last_first, "{order:?}");
    }

    /// Work whose turns cost what `costs` says, and whose turn 0 splits
    /// into `split` turns.
    struct Costly {
        costs: fn(usize) -> Duration,
        split: usize,
        log: mpsc::Sender<(usize, Instant)>,
    }

    impl Batches for Costly {
        fn run(&self, index: usize, _worker: Lane) -> Ran {
            let cost = (self.costs)(index);
            std::thread::sleep(cost);
            if index == 0 && self.split > 0 {
                return Ran {
                    cpu: cost,
                    split_into: self.split,
                };
            }
            let _ = self.log.send((index, Instant::now()));
            Ran {
                cpu: cost,
                split_into: 0,
            }
        }
        fn lost(&self, _index: usize, _why: String) {}
    }

    #[test]
    fn a_slow_job_does_not_hold_back_a_new_one() {
        // One worker; a job of slow turns runs; a job of quick turns comes.
        let lanes = Lanes::new(settings(1, 1, 1)).unwrap();
        let (slow_log, slow_rx) = mpsc::channel();
        let slow = lanes
            .submit(
                Lane::Heavy,
                20,
                Arc::new(Costly {
                    costs: |_| Duration::from_millis(40),
                    split: 0,
                    log: slow_log,
                }),
                Start::Workers,
            )
            .unwrap();
        let relay = std::thread::spawn(move || {
            for _ in 0..20 {
                slow_rx.recv_timeout(Duration::from_secs(10)).unwrap();
                slow.consumed();
            }
        });
        std::thread::sleep(Duration::from_millis(100));
        let (quick_log, quick_rx) = mpsc::channel();
        let arrived = Instant::now();
        let quick = lanes
            .submit(
                Lane::Heavy,
                3,
                Arc::new(Costly {
                    costs: |_| Duration::from_millis(1),
                    split: 0,
                    log: quick_log,
                }),
                Start::Workers,
            )
            .unwrap();
        // Its three turns all come before the slow job's next two: at most
        // one slow turn (the one running) stands in its way.
        for _ in 0..3 {
            let (_, at) = quick_rx.recv_timeout(Duration::from_secs(10)).unwrap();
            quick.consumed();
            assert!(
                at - arrived < Duration::from_millis(80),
                "{:?}",
                at - arrived
            );
        }
        relay.join().unwrap();
    }

    #[test]
    fn a_turn_may_split_into_turns_that_wait_their_turn() {
        let lanes = Lanes::new(settings(1, 1, 1)).unwrap();
        let (log, rx) = mpsc::channel();
        let t = lanes
            .submit(
                Lane::Heavy,
                2,
                Arc::new(Costly {
                    costs: |_| Duration::ZERO,
                    split: 3,
                    log,
                }),
                Start::Workers,
            )
            .unwrap();
        // Turn 0 split into three; with turn 1, four turns report.
        let mut got: Vec<usize> = (0..4)
            .map(|_| {
                let (i, _) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
                t.consumed();
                i
            })
            .collect();
        got.sort();
        assert_eq!(got, vec![1, 2, 3, 4]);
        assert!(rx.recv_timeout(Duration::from_millis(50)).is_err());
        assert_eq!(lanes.stats()[1].batches, 5);
    }

    #[test]
    fn a_full_queue_refuses_and_says_so() {
        let lanes = Lanes::new(settings(1, 1, 1)).unwrap();
        // Heavy: 2 running + 1 queued fit; the fourth is refused.
        let held: Vec<_> = (0..3)
            .map(|_| job(&lanes, Lane::Heavy, "h", 100, Duration::from_millis(1)))
            .collect();
        let (log, _rx) = mpsc::channel();
        let err = lanes
            .submit(
                Lane::Heavy,
                1,
                Arc::new(Recording {
                    name: "x",
                    each: Duration::ZERO,
                    log,
                }),
                Start::Workers,
            )
            .err()
            .expect("refused");
        assert_eq!(
            err,
            SubmitError::LaneFull {
                lane: Lane::Heavy,
                queued: 1
            }
        );
        assert!(err.to_string().contains("heavy lane is full"), "{err}");
        let stats = lanes.stats();
        assert_eq!(
            (stats[1].running, stats[1].queued, stats[1].refused),
            (2, 1, 1)
        );
        // Light is unaffected.
        let (light, light_rx) = job(&lanes, Lane::Light, "light", 1, Duration::ZERO);
        drain(&light, &light_rx, 1);
        // Finishing one heavy job makes room.
        drop(held);
        assert!(lanes.stats()[1].running == 0);
        job(&lanes, Lane::Heavy, "h", 1, Duration::ZERO);
    }

    #[test]
    fn a_job_holds_at_most_its_window_of_unconsumed_batches() {
        let lanes = Lanes::new(settings(1, 2, 2)).unwrap();
        let (t, rx) = job(&lanes, Lane::Heavy, "h", 20, Duration::ZERO);
        std::thread::sleep(Duration::from_millis(50));
        // Nothing consumed: only `window` batches ran.
        assert_eq!(rx.try_iter().count(), 4);
        assert_eq!(lanes.stats()[1].batches, 4);
        drop(t);
    }

    #[test]
    fn a_panicking_batch_is_reported_and_the_worker_carries_on() {
        let lanes = Lanes::new(settings(1, 1, 2)).unwrap();
        let (t, rx) = job(&lanes, Lane::Heavy, "panics", 10, Duration::ZERO);
        let ran = drain(&t, &rx, 10);
        assert_eq!(ran.iter().filter(|r| r.0 == "lost").count(), 1);
        let (t, rx) = job(&lanes, Lane::Heavy, "after", 3, Duration::ZERO);
        assert_eq!(drain(&t, &rx, 3).len(), 3);
    }

    #[test]
    fn shutting_down_abandons_waiting_work() {
        let lanes = Lanes::new(settings(1, 1, 1)).unwrap();
        let (_t, rx) = job(&lanes, Lane::Heavy, "h", 100, Duration::from_millis(5));
        drop(lanes);
        // The job's sender is gone once in-flight batches end: no hang.
        let got: Vec<_> = rx.iter().collect();
        assert!(got.len() < 100);
    }
}
