//! Budgets: token buckets that costly calls draw from, kept in process or
//! in Redis, so parser and LLM spend stays within what operators allow.
//!
//! A [`Budget`] owns its arithmetic (`level`), where its state lives
//! (`Store`: memory or Redis), and what happens when Redis cannot be
//! reached. A [`Draw`] ties one component to its budget and counts what
//! each of its calls costs, by the rule its configuration gives.

mod level;
mod redis;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use std::sync::Arc;

use crate::config::{BudgetConfig, CostRule, RedisConfig, Unreachable as Policy};
use crate::error::BudgetError;
use crate::lanes::Lane;
use crate::stats::{Histogram, Recorder};

pub(crate) use level::{Levels, Op, Outcome, Params, Part};

/// What a call draws from a budget, in the budget's tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cost(pub u64);

/// A component's budget and how its calls are counted.
#[derive(Debug, Clone)]
pub(crate) struct Draw {
    pub(crate) budget: Arc<Budget>,
    pub(crate) rule: CostRule,
}

impl Draw {
    /// Draws `cost` for a call in `lane`; see [`Budget::acquire`].
    pub(crate) fn charge(
        &self,
        lane: Lane,
        cost: Cost,
        limit: WaitLimit<'_>,
    ) -> Result<Charge<'_>, BudgetError> {
        let grant = self.budget.acquire(lane, cost, limit)?;
        Ok(Charge { draw: self, grant })
    }

    /// The cost of a call handed `pages` pages.
    pub(crate) fn for_pages(&self, pages: usize) -> Cost {
        match self.rule {
            CostRule::Pages => Cost(pages as u64),
            _ => Cost(1),
        }
    }

    /// The cost of a tool call with `input` (JSON text, parsed as `value`);
    /// an error names what the input lacks.
    pub(crate) fn for_input(&self, input: &str, value: &serde_json::Value) -> Result<Cost, String> {
        match &self.rule {
            CostRule::InputBytes => Ok(Cost((input.len() as u64).max(1))),
            CostRule::Field(pointer) => {
                let n = value.pointer(pointer).and_then(|v| {
                    v.as_u64()
                        .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f.ceil() as u64))
                });
                n.map(|n| Cost(n.max(1))).ok_or_else(|| {
                    format!(
                        "the call's cost is read from `{pointer}`, which the input lacks or is not a non-negative number"
                    )
                })
            }
            _ => Ok(Cost(1)),
        }
    }
}

/// Tokens one call drew.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Charge<'a> {
    draw: &'a Draw,
    grant: Grant,
}

impl Charge<'_> {
    /// The tokens drawn.
    pub(crate) fn cost(&self) -> Cost {
        self.grant.cost
    }

    /// Gives the tokens back: the call failed before it used them.
    pub(crate) fn refund(self) {
        self.draw.budget.refund(self.grant);
    }
}

/// Redis could not be asked (down, refused, timed out, or said something
/// unexpected).
#[derive(Debug, Clone)]
pub(crate) struct Unreachable(pub(crate) String);

/// Where a budget's levels live.
pub(crate) trait Store: Send + Sync {
    /// Applies `op`, at `now_us` if given (tests), else at the store's clock.
    fn step(&self, p: &Params, op: Op, now_us: Option<i64>) -> Result<Outcome, Unreachable>;
    /// `"memory"` or `"redis"`.
    fn describe(&self) -> &'static str;
}

/// Levels in this process, timed by a monotonic clock.
#[derive(Default)]
pub(crate) struct MemoryStore {
    levels: Mutex<Option<Levels>>,
}

/// Microseconds on this process's monotonic clock.
fn local_now_us() -> i64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_micros() as i64
}

impl Store for MemoryStore {
    fn step(&self, p: &Params, op: Op, now_us: Option<i64>) -> Result<Outcome, Unreachable> {
        let mut levels = self.levels.lock().unwrap_or_else(|e| e.into_inner());
        let outcome = level::step(*levels, p, op, now_us.unwrap_or_else(local_now_us));
        if !matches!(op, Op::Peek) {
            *levels = Some(outcome.levels);
        }
        Ok(outcome)
    }

    fn describe(&self) -> &'static str {
        "memory"
    }
}

/// How long a draw may wait, and what makes it give up.
#[derive(Debug, Clone, Copy)]
pub enum WaitLimit<'a> {
    /// Wait as long as it takes, unless `cancel` is set.
    UntilCancelled(&'a AtomicBool),
    /// Refuse at once if the tokens would take longer than this.
    AtMost(Duration),
}

/// Tokens drawn and not given back; pass to [`Budget::refund`] if the call
/// fails before it uses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a grant is refunded or kept on purpose"]
pub struct Grant {
    part: Part,
    cost: Cost,
    ticket: u64,
    local: bool,
    at_us: i64,
}

impl Grant {
    /// The tokens drawn.
    pub fn cost(&self) -> Cost {
        self.cost
    }

    /// When the tokens became the caller's, in microseconds on the clock of
    /// the store that granted them (the Redis server's, or this process's
    /// monotonic clock): comparable across the hosts sharing a Redis.
    pub fn granted_at_us(&self) -> i64 {
        self.at_us
    }

    /// Whether the local fallback granted it while Redis was unreachable.
    pub fn from_fallback(&self) -> bool {
        self.local
    }
}

/// A budget's figures, for metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetStats {
    /// The budget's name.
    pub name: String,
    /// `"memory"` or `"redis"`.
    pub backend: &'static str,
    /// Whether its backend answered the last time it was asked.
    pub reachable: bool,
    /// Tokens granted to the light lane.
    pub drawn_light: u64,
    /// Tokens granted to the heavy lane.
    pub drawn_heavy: u64,
    /// Grants.
    pub grants: u64,
    /// Tokens given back by calls that failed before using them.
    pub refunded: u64,
    /// Tokens such calls could not give back: other draws were waiting and
    /// had been promised their times, so returning them could have let the
    /// period be overspent.
    pub forfeited: u64,
    /// Draws refused because they would have waited too long.
    pub refused: u64,
    /// Times Redis could not be reached.
    pub unreachable: u64,
    /// Grants made by the local fallback while Redis was unreachable.
    pub fallback_grants: u64,
    /// Times an upstream pushed back (429 or 503) and paused the budget.
    pub pauses: u64,
    /// How long granted draws waited for their tokens.
    pub wait: Histogram,
}

#[derive(Default)]
struct Counters {
    drawn: [AtomicU64; 2],
    grants: AtomicU64,
    refunded: AtomicU64,
    forfeited: AtomicU64,
    refused: AtomicU64,
    unreachable: AtomicU64,
    fallback_grants: AtomicU64,
    pauses: AtomicU64,
    wait: Recorder,
}

/// A named budget that calls draw tokens from.
pub struct Budget {
    name: String,
    params: Params,
    store: Box<dyn Store>,
    policy: Policy,
    /// Used while Redis is unreachable under [`Policy::Local`]: this
    /// replica's share of the budget.
    fallback: Option<(MemoryStore, Params)>,
    reachable: AtomicBool,
    counters: Counters,
}

impl std::fmt::Debug for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budget")
            .field("name", &self.name)
            .field("backend", &self.store.describe())
            .finish_non_exhaustive()
    }
}

/// A sleep slice while waiting, so cancellation is noticed promptly.
const SLICE: Duration = Duration::from_millis(20);

impl Budget {
    /// Budget `name` of `config`: in Redis when `redis.url` is set, else in
    /// this process.
    pub fn from_config(name: &str, config: &crate::Config) -> anyhow::Result<Budget> {
        let Some(b) = config.budgets.get(name) else {
            let known: Vec<&str> = config.budgets.keys().map(String::as_str).collect();
            anyhow::bail!(
                "no budget named `{name}`; the configuration has: {}",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            );
        };
        Self::new(name, b, &config.redis)
    }

    /// Budget `name` as configured: in Redis when `redis` has a URL, else in
    /// this process.
    pub(crate) fn new(
        name: &str,
        config: &BudgetConfig,
        redis: &RedisConfig,
    ) -> anyhow::Result<Budget> {
        let params = Params {
            capacity: config.capacity as f64,
            period_us: config.period_secs * 1e6,
            burst: config.burst as f64,
            light_share: config.light_share,
        };
        let (store, fallback): (Box<dyn Store>, _) = match &redis.url {
            None => (Box::new(MemoryStore::default()), None),
            Some(url) => {
                let store = redis::RedisStore::new(
                    url,
                    &redis.key_prefix,
                    name,
                    Duration::from_millis(redis.timeout_ms),
                )
                .map_err(|e| anyhow::anyhow!("redis.url is not a Redis URL: {e}"))?;
                let fallback = (redis.on_unreachable == Policy::Local)
                    .then(|| (MemoryStore::default(), params.divided(redis.replicas)));
                (Box::new(store), fallback)
            }
        };
        Ok(Budget {
            name: name.to_string(),
            params,
            store,
            policy: redis.on_unreachable,
            fallback,
            reachable: AtomicBool::new(true),
            counters: Counters::default(),
        })
    }

    /// The budget's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the budget can be drawn from now: its backend answered last
    /// time, or Redis is down but the policy falls back to a local bucket.
    pub fn ready(&self) -> bool {
        self.reachable.load(Ordering::Relaxed) || self.policy == Policy::Local
    }

    /// Asks the backend now (a read, no draw); whether it answered.
    pub fn probe(&self) -> bool {
        self.step(Op::Peek, None).is_ok()
    }

    /// The tokens there now, shared and held for the light lane (negative
    /// while draws wait), as the backend reports them.
    pub fn levels(&self) -> Result<(f64, f64), BudgetError> {
        self.step(Op::Peek, None)
            .map(|o| (o.levels.shared, o.levels.reserved))
            .map_err(|Unreachable(reason)| BudgetError::Unavailable {
                budget: self.name.clone(),
                reason,
            })
    }

    /// Tokens per period, burst, period and light share, as configured.
    pub fn size(&self) -> (f64, f64, Duration, f64) {
        let p = &self.params;
        (
            p.capacity,
            p.burst,
            Duration::from_secs_f64(p.period_us / 1e6),
            p.light_share,
        )
    }

    /// One step on the primary store, keeping `reachable` and the log honest.
    fn step(&self, op: Op, now_us: Option<i64>) -> Result<Outcome, Unreachable> {
        let result = self.store.step(&self.params, op, now_us);
        let was = self.reachable.swap(result.is_ok(), Ordering::Relaxed);
        match &result {
            Err(Unreachable(why)) => {
                self.counters.unreachable.fetch_add(1, Ordering::Relaxed);
                if was {
                    tracing::warn!(
                        budget = %self.name,
                        policy = ?self.policy,
                        "budget backend unreachable: {why}"
                    );
                }
            }
            Ok(_) if !was => tracing::info!(budget = %self.name, "budget backend reachable again"),
            Ok(_) => {}
        }
        result
    }

    /// Reserves `cost` for `lane`: from Redis (or memory), or from the
    /// local fallback when Redis is down and the policy allows it.
    fn reserve(&self, op: Op) -> Result<(Outcome, bool), Unreachable> {
        match self.step(op, None) {
            Ok(o) => Ok((o, false)),
            Err(e) => match &self.fallback {
                Some((local, params)) => Ok((local.step(params, op, None)?, true)),
                None => Err(e),
            },
        }
    }

    /// Draws `cost` tokens for `lane`, waiting until they are there.
    ///
    /// Under [`WaitLimit::AtMost`], a draw whose tokens would take longer is
    /// refused without taking anything. Under the fail-closed policy a draw
    /// waits while Redis is unreachable (retrying with backoff) unless the
    /// limit runs out first. The grant is what [`Budget::refund`] takes back.
    pub fn acquire(
        &self,
        lane: Lane,
        cost: Cost,
        limit: WaitLimit<'_>,
    ) -> Result<Grant, BudgetError> {
        let start = Instant::now();
        loop {
            let (grant, waited) = self.acquire_once(lane, cost, limit, start)?;
            // A pause recorded while the draw waited for its time (an
            // upstream pushed back) sends it back in line after the pause:
            // its tokens, promised before the pause, would be spent during
            // it. Given back as a refund is (most likely forfeit: under-
            // spending, never over).
            if waited
                && let Ok(o) = self.step(Op::Peek, None)
                && o.levels.hold_us > o.levels.at_us
            {
                self.refund(grant);
                continue;
            }
            return Ok(grant);
        }
    }

    /// One draw; the grant, and whether it waited for its time.
    fn acquire_once(
        &self,
        lane: Lane,
        cost: Cost,
        limit: WaitLimit<'_>,
        start: Instant,
    ) -> Result<(Grant, bool), BudgetError> {
        let mut backoff = Duration::from_millis(10);
        let (outcome, local) = loop {
            let max_wait_us = match limit {
                WaitLimit::AtMost(max) => {
                    Some(max.saturating_sub(start.elapsed()).as_micros() as f64)
                }
                WaitLimit::UntilCancelled(_) => None,
            };
            let op = Op::Reserve {
                lane,
                cost: cost.0 as f64,
                max_wait_us,
            };
            match self.reserve(op) {
                Ok(r) => break r,
                Err(Unreachable(why)) => {
                    let left = match limit {
                        WaitLimit::AtMost(max) => max.saturating_sub(start.elapsed()),
                        WaitLimit::UntilCancelled(_) => backoff,
                    };
                    if left.is_zero() || cancelled(limit) {
                        return Err(BudgetError::Unavailable {
                            budget: self.name.clone(),
                            reason: why,
                        });
                    }
                    sleep_unless_cancelled(backoff.min(left), limit);
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        };
        let wait = Duration::from_micros(outcome.wait_us.ceil() as u64);
        if !outcome.granted {
            self.counters.refused.fetch_add(1, Ordering::Relaxed);
            return Err(BudgetError::Exhausted {
                budget: self.name.clone(),
                retry_after: wait,
            });
        }
        let grant = Grant {
            part: outcome.part,
            cost,
            ticket: outcome.ticket,
            local,
            at_us: outcome.levels.at_us + outcome.wait_us.ceil() as i64,
        };
        if !sleep_unless_cancelled(wait, limit) {
            self.refund(grant);
            return Err(BudgetError::Cancelled {
                budget: self.name.clone(),
            });
        }
        let c = &self.counters;
        if local {
            c.fallback_grants.fetch_add(1, Ordering::Relaxed);
        }
        c.drawn[lane as usize].fetch_add(cost.0, Ordering::Relaxed);
        c.grants.fetch_add(1, Ordering::Relaxed);
        c.wait.record(start.elapsed());
        Ok((grant, !wait.is_zero()))
    }

    /// Gives back a grant whose call failed before using its tokens. The
    /// tokens return if no later draw on the same bucket is waiting;
    /// otherwise they are forfeit (see [`BudgetStats::forfeited`]).
    pub fn refund(&self, grant: Grant) {
        self.give_back(grant, grant.cost);
    }

    /// Settles a grant drawn on an estimate against what its call really
    /// used: the excess is charged at once (the draws after it wait for
    /// it), and what went unused is given back as [`Budget::refund`] gives.
    pub(crate) fn settle(&self, grant: Grant, lane: Lane, used: Cost) {
        if used.0 < grant.cost.0 {
            self.give_back(grant, Cost(grant.cost.0 - used.0));
        } else if used.0 > grant.cost.0 {
            let extra = used.0 - grant.cost.0;
            let op = Op::Reserve {
                lane,
                cost: extra as f64,
                max_wait_us: None,
            };
            match self.reserve(op) {
                Ok(_) => {
                    self.counters.drawn[lane as usize].fetch_add(extra, Ordering::Relaxed);
                }
                // Overspending is what the budget exists to prevent, but the
                // tokens are used already: all that is lost is their record.
                Err(Unreachable(why)) => {
                    tracing::warn!(budget = %self.name, "{extra} tokens used beyond the estimate were not charged: {why}")
                }
            }
        }
    }

    /// Pauses the budget for `d`, for every host sharing it: an upstream
    /// asked for no requests until then. Nothing refills meanwhile, and
    /// draws wait for the pause to end.
    pub(crate) fn pause(&self, d: Duration) -> Result<(), BudgetError> {
        let op = Op::Pause {
            for_us: d.as_micros() as f64,
        };
        self.reserve(op)
            .map_err(|Unreachable(reason)| BudgetError::Unavailable {
                budget: self.name.clone(),
                reason,
            })?;
        self.counters.pauses.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Gives back `cost` of `grant`'s tokens.
    fn give_back(&self, grant: Grant, cost: Cost) {
        let op = Op::Refund {
            part: grant.part,
            cost: cost.0 as f64,
            ticket: grant.ticket,
        };
        let result = match (&self.fallback, grant.local) {
            (Some((local, params)), true) => local.step(params, op, None),
            _ => self.step(op, None),
        };
        match result {
            Ok(o) => {
                let c = &self.counters;
                c.refunded.fetch_add(o.returned as u64, Ordering::Relaxed);
                c.forfeited
                    .fetch_add(cost.0 - (o.returned as u64).min(cost.0), Ordering::Relaxed);
            }
            // Losing a refund under-spends; it never overspends.
            Err(Unreachable(why)) => {
                tracing::warn!(budget = %self.name, "refund of {} tokens lost: {why}", cost.0)
            }
        }
    }

    /// The budget's figures so far.
    pub fn stats(&self) -> BudgetStats {
        let c = &self.counters;
        BudgetStats {
            name: self.name.clone(),
            backend: self.store.describe(),
            reachable: self.reachable.load(Ordering::Relaxed),
            drawn_light: c.drawn[Lane::Light as usize].load(Ordering::Relaxed),
            drawn_heavy: c.drawn[Lane::Heavy as usize].load(Ordering::Relaxed),
            grants: c.grants.load(Ordering::Relaxed),
            refunded: c.refunded.load(Ordering::Relaxed),
            forfeited: c.forfeited.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            unreachable: c.unreachable.load(Ordering::Relaxed),
            fallback_grants: c.fallback_grants.load(Ordering::Relaxed),
            pauses: c.pauses.load(Ordering::Relaxed),
            wait: c.wait.snapshot(),
        }
    }
}

fn cancelled(limit: WaitLimit<'_>) -> bool {
    matches!(limit, WaitLimit::UntilCancelled(flag) if flag.load(Ordering::Relaxed))
}

/// Sleeps `d` in slices; false if cancelled first.
fn sleep_unless_cancelled(d: Duration, limit: WaitLimit<'_>) -> bool {
    let until = Instant::now() + d;
    loop {
        if cancelled(limit) {
            return false;
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(SLICE));
    }
}

#[cfg(test)]
mod tests;
