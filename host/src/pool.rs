//! Warm pools: ready instances of one component, instantiated ahead of need.
//!
//! Each pool keeps at least `warm` instances instantiated from the
//! component's `InstancePre`, each in its own `Store` with its limits set,
//! and, when the pool has time, primed (a tool has described itself, so the
//! pages every call writes are written already). Taking one costs a lock
//! and a pop; when none is ready the caller instantiates on demand (a
//! *miss*). A background thread refills the pool and drops used instances,
//! so neither instantiation nor teardown sits on the hot path. A miss raises the pool's target (up to
//! what its share of instance slots allows), so that a burst or a run of
//! calls faster than one refill is absorbed next time; a target that has
//! not been needed for a while comes back down. An instance that served a
//! caller (a session's tool call, a document's batch) and did not fail
//! waits, bound to that caller, for its next call (a *reuse*: no
//! instantiation, and its pages are written already); it never serves
//! another caller. Ready and bound instances together stay within the
//! target. A pool never decides what to call; it hands out instances and
//! takes them back.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use wasmtime::component::InstancePre;
use wasmtime::{Engine, PoolConcurrencyLimitError, Store, Trap, UpdateDeadline};

use crate::config::InstanceConfig;
use crate::error::CallError;
use crate::lanes::Lane;
use crate::meter::{Allowance, Stop};
use crate::session::{SessionBinding, SessionId};
use crate::state::HostState;
use crate::stats::{Histogram, Recorder};
use crate::upstream::{Gate, Traffic};

/// A world whose instances a pool can hold: how to check a component
/// against it once, and how to instantiate it.
pub(crate) trait World: Sized + Send + 'static {
    /// The checked, import-resolved form of a component of this world.
    type Pre: Send + Sync + 'static;
    /// Checks the component's exports against the world.
    fn pre(pre: InstancePre<HostState>) -> wasmtime::Result<Self::Pre>;
    /// Instantiates into `store`.
    fn instantiate(pre: &Self::Pre, store: &mut Store<HostState>) -> wasmtime::Result<Self>;
    /// Readies a new instance for its call, before it is handed out, without
    /// changing what the call will see (a tool's `describe`, which may not
    /// depend on state): the pages a call always writes are then written in
    /// the background, not on the caller's time. By default nothing.
    fn prime(&self, _store: &mut Store<HostState>) -> wasmtime::Result<()> {
        Ok(())
    }
}

/// What a pool has done, for metrics and readiness.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Instances ready now.
    pub ready: usize,
    /// Instances the pool keeps ready.
    pub target: usize,
    /// Takes served from the ready instances.
    pub hits: u64,
    /// Takes that had to instantiate on demand.
    pub misses: u64,
    /// Takes served by the instance the caller's last call used (a
    /// session's, or a document's).
    pub reuses: u64,
    /// Instances waiting for their caller's next call.
    pub bound: usize,
    /// Calls stopped at their wall-clock deadline.
    pub timeouts: u64,
    /// Calls stopped when they had used their CPU time.
    pub cpu_limits: u64,
    /// Calls stopped at their memory cap.
    pub out_of_memory: u64,
    /// Calls that trapped otherwise.
    pub traps: u64,
    /// The largest linear memory any instance has grown to, in bytes: what
    /// `memory_mib` must leave room for.
    pub memory_peak: u64,
    /// How long takes took.
    pub acquire: Histogram,
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    reuses: AtomicU64,
    timeouts: AtomicU64,
    cpu_limits: AtomicU64,
    out_of_memory: AtomicU64,
    traps: AtomicU64,
    memory_peak: AtomicU64,
    acquire: Recorder,
}

struct Warm<W> {
    store: Store<HostState>,
    world: W,
    calls: u32,
    /// Whether it has been primed (or has served a call already).
    primed: bool,
}

/// Whom an instance may serve again: one session, or one document's job.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Owner {
    Session(SessionId),
    Job(Arc<str>),
}

/// An instance waiting for its owner's next call.
struct Bound<W> {
    owner: Owner,
    warm: Warm<W>,
    since: Instant,
}

struct Shared<W: World> {
    name: Arc<str>,
    engine: Engine,
    pre: W::Pre,
    limits: InstanceConfig,
    tick: Duration,
    ready: Mutex<VecDeque<Warm<W>>>,
    /// Instances bound to an owner, oldest first. Locked after `ready`
    /// when both are.
    bound: Mutex<Vec<Bound<W>>>,
    /// Signalled when the refill thread has work, or when an instance becomes ready.
    changed: Condvar,
    graveyard: Mutex<Vec<Store<HostState>>>,
    closed: AtomicBool,
    /// Set once the pool first held its warm instances.
    warmed: AtomicBool,
    /// Why the refill thread's last attempt failed, while it keeps failing.
    refill_error: Mutex<Option<String>>,
    /// Instances to keep ready now: `limits.warm`, raised by misses up to
    /// `most`.
    target: AtomicUsize,
    /// The highest target: the pool's share of the engine's instance slots.
    most: usize,
    /// When the target last rose or fell.
    retargeted: Mutex<Instant>,
    /// Leases out now.
    in_flight: AtomicUsize,
    /// Cleared when priming an instance fails: the pool then stops priming
    /// rather than make and lose instances in a loop.
    priming: AtomicBool,
    /// The door every instance's outgoing requests pass.
    gate: Gate,
    counters: Counters,
}

/// How long a raised target stays unneeded before it falls by one.
const TARGET_DECAY: Duration = Duration::from_secs(30);
/// How long an instance waits for its owner's next call.
const OWNER_KEEP: Duration = Duration::from_secs(30);

/// A warm pool of one component's instances.
pub(crate) struct Pool<W: World> {
    shared: Arc<Shared<W>>,
}

impl<W: World> Pool<W> {
    /// Starts a pool; it fills in the background (see [`Pool::wait_warm`]).
    /// `most_ready` bounds how far misses raise the number of instances
    /// kept ready (at least `limits.warm`).
    pub(crate) fn new(
        name: Arc<str>,
        engine: Engine,
        pre: W::Pre,
        limits: InstanceConfig,
        most_ready: usize,
        tick: Duration,
        gate: Gate,
    ) -> Self {
        let shared = Arc::new(Shared {
            name,
            engine,
            pre,
            limits: limits.clone(),
            tick,
            ready: Mutex::new(VecDeque::new()),
            bound: Mutex::new(Vec::new()),
            changed: Condvar::new(),
            graveyard: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
            warmed: AtomicBool::new(false),
            refill_error: Mutex::new(None),
            target: AtomicUsize::new(limits.warm),
            most: most_ready.max(limits.warm),
            retargeted: Mutex::new(Instant::now()),
            in_flight: AtomicUsize::new(0),
            priming: AtomicBool::new(true),
            gate,
            counters: Counters::default(),
        });
        let worker = shared.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("warmlane-pool-{}", shared.name))
            .spawn(move || worker.refill_loop());
        if let Err(e) = spawned {
            // Without a refill thread every take is a miss; the pool still works.
            tracing::warn!(component = %shared.name, error = %e, "cannot start the refill thread");
        }
        Pool { shared }
    }

    /// The checked component the pool instantiates.
    pub(crate) fn limits(&self) -> &InstanceConfig {
        &self.shared.limits
    }

    pub(crate) fn pre(&self) -> &W::Pre {
        &self.shared.pre
    }

    /// Takes an instance bound to `session` and `job`: the one the
    /// session's last call used if it waits, else a ready one if there is
    /// one, else a new one.
    pub(crate) fn take(
        &self,
        session: Option<SessionBinding>,
        job: Option<Arc<str>>,
    ) -> Result<Lease<'_, W>, CallError> {
        let owner = session.as_ref().map(|s| Owner::Session(s.id.clone()));
        self.take_as(owner, session, job)
    }

    /// Takes an instance for one of `job`'s calls. With `reuse`, the one
    /// its last call used if it waits, else as [`Pool::take`] does; the
    /// caller then calls [`Pool::forget_job`] when the job is done.
    pub(crate) fn take_for_job(
        &self,
        job: Arc<str>,
        reuse: bool,
    ) -> Result<Lease<'_, W>, CallError> {
        let owner = reuse.then(|| Owner::Job(job.clone()));
        self.take_as(owner, None, Some(job))
    }

    fn take_as(
        &self,
        owner: Option<Owner>,
        session: Option<SessionBinding>,
        job: Option<Arc<str>>,
    ) -> Result<Lease<'_, W>, CallError> {
        let start = Instant::now();
        let shared = &*self.shared;
        let in_flight = shared.in_flight.fetch_add(1, Ordering::AcqRel) + 1;
        // Counted out until dropped, whether or not an instance comes.
        let mut lease = Lease {
            pool: shared,
            warm: None,
            owner: None,
            poisoned: false,
            cpu: Duration::ZERO,
        };
        // The refill thread is woken when the lease is dropped, after the
        // call, so that refilling never competes with the call it serves.
        let reused = owner.as_ref().and_then(|o| shared.take_bound(o));
        let mut warm = match reused {
            Some(warm) => {
                shared.counters.reuses.fetch_add(1, Ordering::Relaxed);
                warm
            }
            None => shared.take_ready(in_flight)?,
        };
        let data = warm.store.data_mut();
        data.gate
            .bind(session.as_ref().map(|s| s.id.as_str()), job.as_ref());
        data.session = session;
        data.job = job;
        shared.counters.acquire.record(start.elapsed());
        lease.warm = Some(warm);
        lease.owner = owner;
        Ok(lease)
    }

    /// Waits until the pool holds its target of ready instances, or `timeout`
    /// passes; whether it is warm.
    /// Whether the pool has held its warm instances at least once (it may
    /// be refilling after a burst of calls; that does not make it unready).
    pub(crate) fn warmed(&self) -> bool {
        self.shared.warmed.load(Ordering::Acquire) || self.shared.limits.warm == 0
    }

    /// Why the pool cannot make instances, while that lasts.
    pub(crate) fn refill_error(&self) -> Option<String> {
        self.shared
            .refill_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn wait_warm(&self, timeout: Duration) -> bool {
        let shared = &*self.shared;
        let deadline = Instant::now() + timeout;
        let mut ready = shared.lock_ready();
        while ready.len() < shared.limits.warm {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            ready = shared
                .changed
                .wait_timeout(ready, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        shared.warmed.store(true, Ordering::Release);
        true
    }

    /// Throws away the instances waiting for `session`'s next call (the
    /// session ended: a new one of the same id starts afresh).
    pub(crate) fn forget_session(&self, session: &SessionId) {
        self.forget(&Owner::Session(session.clone()));
    }

    /// Throws away the instances waiting for `job`'s next call (it is done:
    /// they would only hold the room of ready ones).
    pub(crate) fn forget_job(&self, job: &Arc<str>) {
        self.forget(&Owner::Job(job.clone()));
    }

    fn forget(&self, owner: &Owner) {
        self.shared.discard_bound(|b| b.owner == *owner);
    }

    /// What the pool has done so far.
    pub(crate) fn stats(&self) -> PoolStats {
        let c = &self.shared.counters;
        PoolStats {
            ready: self.shared.lock_ready().len(),
            bound: self.shared.lock_bound().len(),
            reuses: c.reuses.load(Ordering::Relaxed),
            target: self.shared.target.load(Ordering::Relaxed),
            hits: c.hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            timeouts: c.timeouts.load(Ordering::Relaxed),
            cpu_limits: c.cpu_limits.load(Ordering::Relaxed),
            out_of_memory: c.out_of_memory.load(Ordering::Relaxed),
            traps: c.traps.load(Ordering::Relaxed),
            memory_peak: c.memory_peak.load(Ordering::Relaxed),
            acquire: c.acquire.snapshot(),
        }
    }
}

impl<W: World> Drop for Pool<W> {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.changed.notify_all();
    }
}

impl<W: World> Shared<W> {
    fn lock_ready(&self) -> MutexGuard<'_, VecDeque<Warm<W>>> {
        self.ready.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_bound(&self) -> MutexGuard<'_, Vec<Bound<W>>> {
        self.bound.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The instance waiting for `owner`'s next call, if one does.
    fn take_bound(&self, owner: &Owner) -> Option<Warm<W>> {
        if self.limits.reuse_calls <= 1 {
            return None;
        }
        let mut bound = self.lock_bound();
        let at = bound.iter().rposition(|b| b.owner == *owner)?;
        Some(bound.remove(at).warm)
    }

    /// A ready instance, or a new one made on the caller's time.
    fn take_ready(&self, in_flight: usize) -> Result<Warm<W>, CallError> {
        if let Some(warm) = self.lock_ready().pop_front() {
            self.counters.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(warm);
        }
        self.counters.misses.fetch_add(1, Ordering::Relaxed);
        self.raise_target(in_flight);
        self.instantiate_under_pressure()
    }

    /// Keeps `warm`, which served `owner`'s call, for its next call. The
    /// oldest bound instance makes way when as many wait as the target,
    /// and ready instances beyond the target are thrown away, so ready and
    /// bound together stay within it (a call that then finds none ready
    /// misses, and raises the target).
    fn bind(&self, owner: Owner, warm: Warm<W>) {
        let target = self.target.load(Ordering::Relaxed);
        let mut ready = self.lock_ready();
        let mut bound = self.lock_bound();
        let mut gone = Vec::new();
        if bound.len() >= target.max(1) {
            gone.push(bound.remove(0).warm);
        }
        bound.push(Bound {
            owner,
            warm,
            since: Instant::now(),
        });
        while ready.len() + bound.len() > target.max(1) {
            match ready.pop_back() {
                Some(warm) => gone.push(warm),
                None => break,
            }
        }
        drop((ready, bound));
        for warm in gone {
            self.dispose(warm.store);
        }
    }

    /// Throws away bound instances whose owner has not called again
    /// within [`OWNER_KEEP`].
    fn expire_bound(&self) {
        self.discard_bound(|b| b.since.elapsed() >= OWNER_KEEP);
    }

    /// Throws away the bound instances `gone` picks.
    fn discard_bound(&self, gone: impl Fn(&Bound<W>) -> bool) {
        let gone: Vec<Bound<W>> = {
            let mut bound = self.lock_bound();
            if bound.is_empty() {
                return;
            }
            let (gone, kept) = std::mem::take(&mut *bound).into_iter().partition(gone);
            *bound = kept;
            gone
        };
        for b in gone {
            self.dispose(b.warm.store);
        }
    }

    /// After a miss with `in_flight` leases out: keep one more ready, and
    /// at least enough for that many calls at once beside `warm` more.
    fn raise_target(&self, in_flight: usize) {
        if self.limits.warm == 0 {
            return;
        }
        let now = self.target.load(Ordering::Relaxed);
        let want = (now + 1).max(in_flight + self.limits.warm).min(self.most);
        if want > now {
            self.target.fetch_max(want, Ordering::Relaxed);
        }
        *self.retargeted.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    /// Lowers a raised target by one once it has gone unneeded for
    /// [`TARGET_DECAY`]; what it no longer keeps is thrown away.
    fn lower_target(&self) {
        let now = self.target.load(Ordering::Relaxed);
        if now <= self.limits.warm {
            return;
        }
        let mut since = self.retargeted.lock().unwrap_or_else(|p| p.into_inner());
        if since.elapsed() < TARGET_DECAY {
            return;
        }
        *since = Instant::now();
        drop(since);
        self.target.store(now - 1, Ordering::Relaxed);
        let surplus: Vec<Warm<W>> = {
            let mut ready = self.lock_ready();
            let keep = ready.len().min(now - 1);
            ready.drain(keep..).collect()
        };
        drop(surplus);
    }

    fn instantiate(&self) -> Result<Warm<W>, CallError> {
        let mut store = Store::new(
            &self.engine,
            HostState::new(
                self.name.clone(),
                self.limits.memory_bytes(),
                self.tick,
                self.gate.clone(),
            ),
        );
        store.limiter(|s| &mut s.limiter);
        let first = store.data_mut().meter.start(self.allowance());
        store.set_epoch_deadline(first);
        store.epoch_deadline_callback(|mut ctx| match ctx.data_mut().meter.check() {
            Ok(ticks) => Ok(UpdateDeadline::Continue(ticks)),
            Err(_) => Ok(UpdateDeadline::Interrupt),
        });
        match W::instantiate(&self.pre, &mut store) {
            Ok(world) => Ok(Warm {
                store,
                world,
                calls: 0,
                primed: false,
            }),
            Err(e) if e.downcast_ref::<PoolConcurrencyLimitError>().is_some() => {
                Err(CallError::PoolExhausted {
                    component: self.name.to_string(),
                })
            }
            Err(e) => Err(CallError::Trap {
                component: self.name.to_string(),
                message: format!("instantiation failed: {e:#}"),
            }),
        }
    }

    /// What a call may spend by the component's limits.
    fn allowance(&self) -> Allowance {
        Allowance {
            wall: self.limits.deadline(),
            cpu: self.limits.cpu(),
        }
    }

    fn refill_loop(self: Arc<Self>) {
        // Failures are retried with a growing pause, and logged when they
        // start or change, not on every attempt.
        const FIRST_PAUSE: Duration = Duration::from_millis(100);
        let mut pause = FIRST_PAUSE;
        loop {
            let dead: Vec<Store<HostState>> =
                std::mem::take(&mut *self.graveyard.lock().unwrap_or_else(|p| p.into_inner()));
            drop(dead);
            if self.closed.load(Ordering::Acquire) {
                return;
            }
            self.lower_target();
            self.expire_bound();
            let short = {
                let mut ready = self.lock_ready();
                let target = self.target.load(Ordering::Relaxed);
                let idle = ready.len() + self.lock_bound().len();
                if idle >= target && self.graveyard_empty() {
                    // Nothing to make: prime what is ready but not primed
                    // (under a steady load there is no time for it, and
                    // instances go out as they are).
                    let priming = self.priming.load(Ordering::Relaxed);
                    match ready.iter().rposition(|w| priming && !w.primed) {
                        Some(at) => {
                            let unprimed = ready.remove(at);
                            drop(ready);
                            if let Some(warm) = unprimed {
                                self.prime(warm);
                            }
                        }
                        None => {
                            let _ = self.changed.wait_timeout(ready, Duration::from_millis(250));
                        }
                    }
                    continue;
                }
                idle < target
            };
            if !short {
                continue;
            }
            match self.instantiate() {
                Ok(warm) => {
                    pause = FIRST_PAUSE;
                    let recovered = self
                        .refill_error
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .take();
                    if recovered.is_some() {
                        tracing::info!(component = %self.name, "instances can be made again");
                    }
                    let mut ready = self.lock_ready();
                    ready.push_back(warm);
                    if ready.len() >= self.limits.warm {
                        self.warmed.store(true, Ordering::Release);
                    }
                    drop(ready);
                    self.changed.notify_all();
                }
                Err(e) => {
                    if matches!(e, CallError::PoolExhausted { .. }) {
                        // No slot for more: keep only what was asked for.
                        self.target.store(self.limits.warm, Ordering::Relaxed);
                    }
                    let why = e.to_string();
                    let mut last = self.refill_error.lock().unwrap_or_else(|p| p.into_inner());
                    if last.as_deref() != Some(why.as_str()) {
                        tracing::warn!(component = %self.name, error = %why, "cannot pre-instantiate; retrying");
                        *last = Some(why);
                    }
                    drop(last);
                    // Woken early when the pool closes.
                    let _ = self.changed.wait_timeout(self.lock_ready(), pause);
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Primes a ready instance and puts it first in line. One that fails to
    /// prime is thrown away (the refill makes another), and the pool stops
    /// priming.
    fn prime(&self, mut warm: Warm<W>) {
        match warm.world.prime(&mut warm.store) {
            Ok(()) => {
                warm.primed = true;
                self.lock_ready().push_front(warm);
                self.changed.notify_all();
            }
            Err(e) => {
                self.priming.store(false, Ordering::Relaxed);
                tracing::warn!(component = %self.name, error = %e, "an instance failed to prime (to describe itself); this pool no longer primes");
                self.dispose(warm.store);
            }
        }
    }

    /// Instantiates on demand. When every slot is taken, some are usually
    /// held by used instances waiting to be thrown away: free this pool's
    /// at once and give the other pools' refill threads a moment, rather
    /// than fail a call that a slot will serve within milliseconds.
    fn instantiate_under_pressure(&self) -> Result<Warm<W>, CallError> {
        let deadline = Instant::now() + Duration::from_millis(250);
        loop {
            match self.instantiate() {
                Err(CallError::PoolExhausted { .. }) if Instant::now() < deadline => {
                    let mut dead = std::mem::take(
                        &mut *self.graveyard.lock().unwrap_or_else(|p| p.into_inner()),
                    );
                    dead.extend(
                        std::mem::take(&mut *self.lock_bound())
                            .into_iter()
                            .map(|b| b.warm.store),
                    );
                    if dead.is_empty() {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    drop(dead);
                }
                other => return other,
            }
        }
    }

    fn graveyard_empty(&self) -> bool {
        self.graveyard
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    fn dispose(&self, store: Store<HostState>) {
        self.graveyard
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(store);
        self.changed.notify_all();
    }
}

/// An instance taken from a pool. Dropping it gives it back: to be reused if
/// it may serve more calls, else to be thrown away off the hot path.
pub(crate) struct Lease<'a, W: World> {
    pool: &'a Shared<W>,
    warm: Option<Warm<W>>,
    /// Whom the instance may serve again after this call.
    owner: Option<Owner>,
    poisoned: bool,
    /// CPU time the last call used.
    cpu: Duration,
}

impl<W: World> Lease<'_, W> {
    /// Calls into the instance under its limits: its deadline, its CPU
    /// time and its memory cap.
    pub(crate) fn call<R>(
        &mut self,
        f: impl FnOnce(&W, &mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        self.call_within(None, f)
    }

    /// What the instance wrote to stderr (a panic's or an uncaught
    /// exception's message, usually), trimmed.
    pub(crate) fn stderr(&self) -> String {
        self.warm
            .as_ref()
            .map(|w| w.store.data().stderr())
            .unwrap_or_default()
    }

    /// Whether the last call asked for its session without having one.
    pub(crate) fn wanted_session(&self) -> bool {
        self.warm
            .as_ref()
            .is_some_and(|w| w.store.data().wanted_session)
    }

    /// CPU time the last call used (the thread's, from the call's start to
    /// its end).
    pub(crate) fn cpu_used(&self) -> Duration {
        self.cpu
    }

    /// Serves the lease's calls in `lane`: what their outgoing requests draw
    /// from their upstreams' budgets as. Light unless set.
    pub(crate) fn in_lane(&mut self, lane: Lane) {
        if let Some(warm) = self.warm.as_mut() {
            warm.store.data_mut().gate.call.lane = lane;
        }
    }

    /// Counts what the lease's calls send upstream into `traffic`.
    pub(crate) fn count_traffic(&mut self, traffic: Arc<Traffic>) {
        if let Some(warm) = self.warm.as_mut() {
            warm.store.data_mut().gate.call.traffic = Some(traffic);
        }
    }

    /// Like [`Lease::call`], allowing the call at most `cpu` of CPU time
    /// when that is less than the component's own limit.
    pub(crate) fn call_within<R>(
        &mut self,
        cpu: Option<Duration>,
        f: impl FnOnce(&W, &mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        let pool = self.pool;
        let Some(warm) = self.warm.as_mut() else {
            return Err(CallError::Trap {
                component: pool.name.to_string(),
                message: "instance already failed".into(),
            });
        };
        if self.poisoned {
            return Err(CallError::Trap {
                component: pool.name.to_string(),
                message: "instance already failed".into(),
            });
        }
        let span = tracing::debug_span!("call", component = %pool.name);
        let _enter = span.enter();
        let mut allowance = pool.allowance();
        if let Some(cpu) = cpu {
            allowance.cpu = allowance.cpu.min(cpu);
        }
        let first = warm.store.data_mut().meter.start(allowance);
        let now = Instant::now();
        warm.store.data_mut().gate.call.deadline = now
            .checked_add(allowance.wall)
            .unwrap_or(now + Duration::from_secs(86_400));
        warm.store.set_epoch_deadline(first);
        warm.store.data_mut().limiter.hit = false;
        warm.store.data_mut().wanted_session = false;
        warm.store.data().clear_stderr();
        warm.calls += 1;
        let result = f(&warm.world, &mut warm.store);
        self.cpu = warm.store.data().meter.cpu_used();
        result.map_err(|e| {
            self.poisoned = true;
            let component = pool.name.to_string();
            let counters = &pool.counters;
            let state = warm.store.data();
            if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
                let allowance = state.meter.allowance();
                return match state.meter.stopped() {
                    Some(Stop::Cpu) => {
                        counters.cpu_limits.fetch_add(1, Ordering::Relaxed);
                        CallError::CpuLimit {
                            component,
                            limit: allowance.cpu,
                        }
                    }
                    _ => {
                        counters.timeouts.fetch_add(1, Ordering::Relaxed);
                        CallError::Timeout {
                            component,
                            deadline: allowance.wall,
                        }
                    }
                };
            }
            if state.limiter.hit {
                counters.out_of_memory.fetch_add(1, Ordering::Relaxed);
                return CallError::OutOfMemory {
                    component,
                    limit: state.limiter.cap,
                };
            }
            counters.traps.fetch_add(1, Ordering::Relaxed);
            let trap = e
                .downcast_ref::<Trap>()
                .map_or_else(|| format!("{e}"), |t| t.to_string());
            let stderr = state.stderr();
            let message = if stderr.is_empty() {
                trap
            } else {
                format!("{trap}; the component said: {stderr}")
            };
            CallError::Trap { component, message }
        })
    }
}

impl<W: World> Drop for Lease<'_, W> {
    fn drop(&mut self) {
        let pool = self.pool;
        pool.in_flight.fetch_sub(1, Ordering::AcqRel);
        let Some(mut warm) = self.warm.take() else {
            return;
        };
        let peak = warm.store.data().limiter.peak;
        pool.counters.memory_peak.fetch_max(peak, Ordering::Relaxed);
        if self.poisoned {
            pool.dispose(warm.store);
            return;
        }
        warm.primed = true;
        let data = warm.store.data_mut();
        data.session = None;
        data.job = None;
        if let Some(owner) = self.owner.take()
            && warm.calls < pool.limits.reuse_calls
        {
            pool.bind(owner, warm);
            return;
        }
        if warm.calls < pool.limits.calls_per_instance {
            let mut ready = pool.lock_ready();
            if ready.len() < pool.target.load(Ordering::Relaxed) {
                ready.push_front(warm);
                drop(ready);
                pool.changed.notify_all();
                return;
            }
        }
        pool.dispose(warm.store);
    }
}
