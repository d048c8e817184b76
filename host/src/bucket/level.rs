//! The arithmetic of one budget, with time passed in: two token buckets
//! refilled continuously and drawn by reservation. `script.lua` is the same
//! arithmetic for Redis, step for step; the tests hold the two together.
//!
//! A budget of `capacity` tokens per `period` with `burst` is split into a
//! *shared* bucket (`1 - light_share` of rate and burst) and a *reserved*
//! one (`light_share`) that only the light lane can take below half full.
//! A draw always succeeds: it takes its tokens at once, letting the bucket
//! go negative, and waits until the refill has paid them back. Later draws
//! see the debt, so draws on one bucket are granted in arrival order and a
//! large one is never starved by small ones. Over any window of one period
//! the budget grants at most `capacity + burst`, as long as each draw fits
//! the bucket it is drawn from (at most `(1 - light_share) × burst`); a
//! larger draw is still granted, after waiting for its whole cost, and the
//! window it lands in may exceed the bound by its excess.

use crate::lanes::Lane;

/// One of a budget's two buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    /// Open to both lanes.
    Shared,
    /// Held for the light lane.
    Reserved,
}

impl Part {
    pub(crate) fn code(self) -> &'static str {
        match self {
            Part::Shared => "s",
            Part::Reserved => "r",
        }
    }

    pub(crate) fn from_code(code: &str) -> Option<Part> {
        match code {
            "s" => Some(Part::Shared),
            "r" => Some(Part::Reserved),
            _ => None,
        }
    }
}

/// A budget's size, as the arithmetic sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Params {
    /// Tokens per period.
    pub(crate) capacity: f64,
    /// The period, in microseconds.
    pub(crate) period_us: f64,
    /// Tokens that may be drawn at once after a quiet spell.
    pub(crate) burst: f64,
    /// Fraction of rate and burst held for the light lane, in `[0, 1)`.
    pub(crate) light_share: f64,
}

impl Params {
    fn rate(&self, part: Part) -> f64 {
        self.capacity / self.period_us * self.fraction(part)
    }

    fn cap(&self, part: Part) -> f64 {
        self.burst * self.fraction(part)
    }

    fn fraction(&self, part: Part) -> f64 {
        match part {
            Part::Shared => 1.0 - self.light_share,
            Part::Reserved => self.light_share,
        }
    }

    /// The same budget divided among `n` replicas.
    pub(crate) fn divided(&self, n: u32) -> Params {
        let n = f64::from(n.max(1));
        Params {
            capacity: self.capacity / n,
            burst: self.burst / n,
            ..*self
        }
    }
}

/// Token levels as last written. A budget never written is full.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Levels {
    pub(crate) shared: f64,
    pub(crate) reserved: f64,
    /// When they were true, in microseconds.
    pub(crate) at_us: i64,
    /// Draws made on each bucket so far (shared, reserved): a draw's number
    /// tells a refund whether anyone drew after it.
    pub(crate) draws: [u64; 2],
    /// Until when the budget is paused (an upstream pushed back), in
    /// microseconds: nothing refills and no draw may be used before it. 0
    /// for never.
    pub(crate) hold_us: i64,
}

impl Levels {
    fn level(&mut self, part: Part) -> &mut f64 {
        match part {
            Part::Shared => &mut self.shared,
            Part::Reserved => &mut self.reserved,
        }
    }

    fn draws(&mut self, part: Part) -> &mut u64 {
        &mut self.draws[part as usize]
    }
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Outcome {
    /// The bucket drawn from (for a refund: the one refunded).
    pub(crate) part: Part,
    /// Whether a draw was made (false: it would have waited too long and
    /// nothing changed).
    pub(crate) granted: bool,
    /// How long the draw waits before it may use its tokens, in µs.
    pub(crate) wait_us: f64,
    /// The draw's number on its bucket, for a refund.
    pub(crate) ticket: u64,
    /// Tokens a refund gave back.
    pub(crate) returned: f64,
    /// Levels after the step.
    pub(crate) levels: Levels,
}

/// A step on a budget.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Op {
    /// Draw `cost` tokens for `lane`, unless they would take longer than
    /// `max_wait_us` to be there.
    Reserve {
        lane: Lane,
        cost: f64,
        max_wait_us: Option<f64>,
    },
    /// Give back `cost` tokens of draw `ticket` on `part`.
    Refund { part: Part, cost: f64, ticket: u64 },
    /// Pause the budget for `for_us` from now (or longer, if it is already
    /// paused longer): both buckets are emptied, nothing refills until the
    /// pause ends, and every draw waits for it.
    Pause { for_us: f64 },
    /// Read the levels.
    Peek,
}

/// The levels of `stored` brought forward to `now_us`.
pub(crate) fn refilled(stored: Option<Levels>, p: &Params, now_us: i64) -> Levels {
    let Some(l) = stored else {
        return Levels {
            shared: p.cap(Part::Shared),
            reserved: p.cap(Part::Reserved),
            at_us: now_us,
            draws: [0; 2],
            hold_us: 0,
        };
    };
    // A clock that steps back refills nothing and never moves `at` back;
    // a paused budget refills from the end of its pause.
    let dt = (now_us - l.at_us.max(l.hold_us)).max(0) as f64;
    Levels {
        shared: (l.shared + dt * p.rate(Part::Shared)).min(p.cap(Part::Shared)),
        reserved: (l.reserved + dt * p.rate(Part::Reserved)).min(p.cap(Part::Reserved)),
        at_us: l.at_us.max(now_us),
        draws: l.draws,
        hold_us: l.hold_us,
    }
}

/// The bucket a draw of `cost` for `lane` takes from.
fn choose(l: &Levels, p: &Params, lane: Lane, cost: f64) -> Part {
    if p.light_share <= 0.0 {
        return Part::Shared;
    }
    match lane {
        Lane::Light if l.reserved >= cost => Part::Reserved,
        Lane::Light if l.shared >= cost => Part::Shared,
        // Too big for the reserve to hold at once: queue where it fits.
        Lane::Light if cost > p.cap(Part::Reserved) => Part::Shared,
        Lane::Light => {
            let wait_r = (cost - l.reserved) / p.rate(Part::Reserved);
            let wait_s = (cost - l.shared) / p.rate(Part::Shared);
            if wait_r <= wait_s {
                Part::Reserved
            } else {
                Part::Shared
            }
        }
        // The heavy lane may skim the reserve only above half full.
        Lane::Heavy if l.reserved - cost >= p.cap(Part::Reserved) / 2.0 => Part::Reserved,
        Lane::Heavy => Part::Shared,
    }
}

/// Applies `op` at `now_us`; returns the outcome, whose levels are the new
/// state.
pub(crate) fn step(stored: Option<Levels>, p: &Params, op: Op, now_us: i64) -> Outcome {
    let mut l = refilled(stored, p, now_us);
    let mut out = Outcome {
        part: Part::Shared,
        granted: false,
        wait_us: 0.0,
        ticket: 0,
        returned: 0.0,
        levels: l,
    };
    match op {
        Op::Reserve {
            lane,
            cost,
            max_wait_us,
        } => {
            let part = choose(&l, p, lane, cost);
            let after = *l.level(part) - cost;
            out.part = part;
            let paused = (l.hold_us - now_us).max(0) as f64;
            out.wait_us = paused
                + if after < 0.0 {
                    -after / p.rate(part)
                } else {
                    0.0
                };
            if max_wait_us.is_some_and(|max| out.wait_us > max) {
                return out;
            }
            *l.level(part) = after;
            *l.draws(part) += 1;
            out.granted = true;
            out.ticket = *l.draws(part);
        }
        Op::Refund { part, cost, ticket } => {
            // Tokens come back if nobody drew on this bucket since (as if
            // the draw had never been), or if nobody waits on it. Otherwise
            // later draws were promised times that count these tokens as
            // spent, and handing them to a newcomer could grant more than
            // the period allows: they are forfeit.
            let last = *l.draws(part) == ticket;
            let cap = p.cap(part);
            let level = l.level(part);
            let before = *level;
            if last || before >= 0.0 {
                *level = (before + cost).min(cap);
            }
            out.part = part;
            out.returned = *level - before;
        }
        Op::Pause { for_us } => {
            l.hold_us = l.hold_us.max(now_us + for_us.ceil() as i64);
            l.shared = l.shared.min(0.0);
            l.reserved = l.reserved.min(0.0);
        }
        Op::Peek => {}
    }
    out.levels = l;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 1_000_000;

    fn draw(levels: Option<Levels>, p: &Params, lane: Lane, cost: f64, at: i64) -> Outcome {
        let op = Op::Reserve {
            lane,
            cost,
            max_wait_us: None,
        };
        step(levels, p, op, at)
    }

    fn give_back(
        levels: Option<Levels>,
        p: &Params,
        drawn: &Outcome,
        cost: f64,
        at: i64,
    ) -> Outcome {
        let op = Op::Refund {
            part: drawn.part,
            cost,
            ticket: drawn.ticket,
        };
        step(levels, p, op, at)
    }

    fn params(capacity: f64, burst: f64, light_share: f64) -> Params {
        Params {
            capacity,
            period_us: 60.0 * SECOND as f64,
            burst,
            light_share,
        }
    }

    /// A tiny deterministic generator, so failures reproduce.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    #[test]
    fn a_new_budget_is_full_and_refills_at_its_rate() {
        let p = params(600.0, 100.0, 0.0);
        let o = step(None, &p, Op::Peek, 0);
        assert_eq!(o.levels.shared, 100.0);
        let o = draw(None, &p, Lane::Heavy, 100.0, 0);
        assert_eq!((o.levels.shared, o.wait_us), (0.0, 0.0));
        // 600 a minute is 10 a second.
        let later = step(Some(o.levels), &p, Op::Peek, 3 * SECOND);
        assert!((later.levels.shared - 30.0).abs() < 1e-9);
        // Never above the burst.
        let much_later = step(Some(o.levels), &p, Op::Peek, 3600 * SECOND);
        assert_eq!(much_later.levels.shared, 100.0);
    }

    #[test]
    fn a_pause_empties_the_budget_and_holds_every_draw_until_it_ends() {
        let p = params(600.0, 100.0, 0.2);
        let o = draw(None, &p, Lane::Heavy, 10.0, 0);
        let paused = step(Some(o.levels), &p, Op::Pause { for_us: 2e6 }, SECOND);
        assert_eq!((paused.levels.shared, paused.levels.reserved), (0.0, 0.0));
        // Nothing refills during the pause.
        let during = step(Some(paused.levels), &p, Op::Peek, 2 * SECOND);
        assert_eq!(during.levels.shared, 0.0);
        // A draw during it waits for its end, then for its tokens at the
        // rate (8 a second shared, 2 reserved).
        let d = draw(Some(during.levels), &p, Lane::Heavy, 8.0, 2 * SECOND);
        assert!((d.wait_us - 2.0 * SECOND as f64).abs() < 1.0, "{d:?}");
        // A shorter pause does not shorten a longer one.
        let again = step(Some(d.levels), &p, Op::Pause { for_us: 1.0 }, 2 * SECOND);
        assert_eq!(again.levels.hold_us, 3 * SECOND);
        // After it, the refill starts from its end.
        let after = step(Some(paused.levels), &p, Op::Peek, 4 * SECOND);
        assert!((after.levels.shared - 8.0).abs() < 1e-9, "{after:?}");
    }

    #[test]
    fn a_draw_beyond_the_level_waits_for_the_refill() {
        let p = params(600.0, 100.0, 0.0);
        let o = draw(None, &p, Lane::Heavy, 100.0, 0);
        let o = draw(Some(o.levels), &p, Lane::Heavy, 20.0, 0);
        assert!((o.wait_us - 2.0 * SECOND as f64).abs() < 1.0);
    }

    #[test]
    fn a_draw_larger_than_the_burst_is_a_reservation_not_a_refusal() {
        let p = params(600.0, 100.0, 0.0);
        let o = draw(None, &p, Lane::Heavy, 250.0, 0);
        // It takes the 100 there are and waits 15 s for the other 150.
        assert!((o.wait_us - 15.0 * SECOND as f64).abs() < 1.0);
    }

    #[test]
    fn waiters_are_served_in_order_so_small_draws_do_not_starve_a_large_one() {
        let p = params(600.0, 10.0, 0.0);
        let big = draw(None, &p, Lane::Heavy, 50.0, 0);
        let mut levels = big.levels;
        for i in 1..20 {
            let small = draw(Some(levels), &p, Lane::Heavy, 1.0, i);
            assert!(
                small.wait_us > big.wait_us - i as f64,
                "a small draw went first"
            );
            levels = small.levels;
        }
    }

    #[test]
    fn refunds_come_back_but_never_above_the_burst() {
        let p = params(600.0, 100.0, 0.0);
        let o = draw(None, &p, Lane::Heavy, 40.0, 0);
        let r = give_back(Some(o.levels), &p, &o, 40.0, 0);
        assert_eq!((r.levels.shared, r.returned), (100.0, 40.0));
        let r = give_back(Some(r.levels), &p, &o, 40.0, 0);
        assert_eq!((r.levels.shared, r.returned), (100.0, 0.0));
    }

    #[test]
    fn a_draw_that_would_wait_too_long_changes_nothing() {
        let p = params(600.0, 100.0, 0.0);
        let a = draw(None, &p, Lane::Heavy, 100.0, 0);
        let max = Some(SECOND as f64);
        let b = step(
            Some(a.levels),
            &p,
            Op::Reserve {
                lane: Lane::Heavy,
                cost: 50.0,
                max_wait_us: max,
            },
            0,
        );
        assert!(!b.granted && b.wait_us > 4.0 * SECOND as f64);
        assert_eq!(b.levels, a.levels);
        let c = step(
            Some(b.levels),
            &p,
            Op::Reserve {
                lane: Lane::Heavy,
                cost: 5.0,
                max_wait_us: max,
            },
            0,
        );
        assert!(c.granted && (c.wait_us - 0.5 * SECOND as f64).abs() < 1.0);
    }

    #[test]
    fn the_last_draw_can_always_be_given_back_as_if_it_had_never_been() {
        let p = params(600.0, 100.0, 0.0);
        let a = draw(None, &p, Lane::Heavy, 100.0, 0);
        let b = draw(Some(a.levels), &p, Lane::Heavy, 50.0, 0);
        // B gives up waiting; nobody drew after it.
        let r = give_back(Some(b.levels), &p, &b, 50.0, SECOND);
        assert_eq!(r.returned, 50.0);
        assert!((r.levels.shared - 10.0).abs() < 1e-9);
    }

    #[test]
    fn a_refund_never_lets_a_newcomer_past_those_already_waiting() {
        let p = params(600.0, 100.0, 0.0);
        let a = draw(None, &p, Lane::Heavy, 100.0, 0);
        let b = draw(Some(a.levels), &p, Lane::Heavy, 50.0, 0);
        assert!(b.wait_us > 0.0);
        // A fails before use while B waits: its tokens are forfeit.
        let r = give_back(Some(b.levels), &p, &a, 100.0, 1);
        assert_eq!(r.returned, 0.0);
        let c = draw(Some(r.levels), &p, Lane::Heavy, 10.0, 1);
        assert!(c.wait_us > b.wait_us - 1.0);
    }

    #[test]
    fn the_light_lane_keeps_its_share_when_heavy_work_drains_the_rest() {
        let p = params(600.0, 100.0, 0.2);
        // Heavy work drains the shared 80 and queues far into the future.
        let mut levels = None;
        for _ in 0..50 {
            levels = Some(draw(levels, &p, Lane::Heavy, 10.0, 0).levels);
        }
        let l = levels.unwrap();
        assert!(l.shared < -300.0);
        // Heavy took the reserve down to half and no further.
        assert!(l.reserved >= 10.0 - 1e-9, "{l:?}");
        // A light draw is served at once from the reserve.
        let light = draw(levels, &p, Lane::Light, 5.0, 0);
        assert_eq!((light.part, light.wait_us), (Part::Reserved, 0.0));
        // A heavy draw still waits behind the heavy queue.
        let heavy = draw(levels, &p, Lane::Heavy, 5.0, 0);
        assert_eq!(heavy.part, Part::Shared);
        assert!(heavy.wait_us > 30.0 * SECOND as f64);
    }

    #[test]
    fn without_a_share_both_lanes_draw_the_same_bucket() {
        let p = params(600.0, 100.0, 0.0);
        let o = draw(None, &p, Lane::Light, 5.0, 0);
        assert_eq!(o.part, Part::Shared);
        assert_eq!(o.levels.reserved, 0.0);
    }

    #[test]
    fn a_clock_that_steps_back_refills_nothing() {
        let p = params(600.0, 100.0, 0.0);
        let o = draw(None, &p, Lane::Heavy, 50.0, 10 * SECOND);
        let back = step(Some(o.levels), &p, Op::Peek, 5 * SECOND);
        assert_eq!(back.levels.shared, 50.0);
        assert_eq!(back.levels.at_us, 10 * SECOND);
    }

    /// Three clients on one budget, each drawing again soon after its last
    /// draw is granted; `light` and `refunds` are the fractions of draws
    /// that are light and that fail before use. Returns the largest total
    /// granted within one period, the total granted, and what the budget
    /// allowed over the run.
    fn simulate(seed: u64, p: &Params, light: f64, refunds: f64, max_cost: u64) -> (f64, f64, f64) {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let chance = |rng: &mut Rng, f: f64| (rng.below(1000) as f64) < f * 1000.0;
        let period = p.period_us as i64;
        let mut levels = None;
        let mut next_at = [0i64; 3];
        let mut refund: [Option<(Part, f64, u64)>; 3] = [None; 3];
        let mut grants: Vec<(i64, f64)> = Vec::new();
        let end = 10 * period;
        loop {
            let (who, &now) = next_at.iter().enumerate().min_by_key(|(_, t)| **t).unwrap();
            if now >= end {
                break;
            }
            if let Some((part, cost, ticket)) = refund[who].take() {
                levels = Some(step(levels, p, Op::Refund { part, cost, ticket }, now).levels);
            }
            let lane = if chance(&mut rng, light) {
                Lane::Light
            } else {
                Lane::Heavy
            };
            let cost = 1.0 + rng.below(max_cost) as f64;
            let o = step(
                levels,
                p,
                Op::Reserve {
                    lane,
                    cost,
                    max_wait_us: None,
                },
                now,
            );
            levels = Some(o.levels);
            let granted = now + o.wait_us.ceil() as i64;
            if chance(&mut rng, refunds) {
                refund[who] = Some((o.part, cost, o.ticket));
            } else {
                grants.push((granted, cost));
            }
            next_at[who] = granted + rng.below(2000) as i64;
        }
        grants.sort_by_key(|g| g.0);
        let (mut from, mut sum, mut most) = (0, 0.0, 0.0f64);
        for &(t, c) in &grants {
            sum += c;
            while grants[from].0 < t - period {
                sum -= grants[from].1;
                from += 1;
            }
            most = most.max(sum);
        }
        let total = grants.iter().filter(|g| g.0 < end).map(|g| g.1).sum();
        (most, total, p.burst + p.capacity * 10.0)
    }

    /// Property: whatever the mix of lanes, costs, refunds and timing, no
    /// window of one period grants more than capacity + burst while each
    /// draw fits the shared bucket.
    #[test]
    fn no_window_grants_more_than_capacity_plus_burst() {
        for seed in 1..60u64 {
            let mut rng = Rng(seed);
            let capacity = 50.0 + rng.below(1000) as f64;
            let burst = 2.0 + rng.below(capacity as u64) as f64;
            let share = [0.0, 0.1, 0.2, 0.5][rng.below(4) as usize];
            let p = Params {
                capacity,
                period_us: SECOND as f64,
                burst,
                light_share: share,
            };
            let fits = (burst * (1.0 - share)).floor().max(1.0) as u64;
            let (most, total, allowed) = simulate(seed, &p, 0.3, 0.1, fits);
            assert!(
                most <= capacity + burst + 1e-6,
                "seed {seed}: {most} granted within one period of {p:?}"
            );
            assert!(total <= allowed + 1e-6, "seed {seed}: {total} of {allowed}");
        }
    }

    /// Property: a saturating load of draws small beside the burst gets at
    /// least 95% of what the budget allows, heavy-only (skimming the idle
    /// light reserve) or mixed.
    #[test]
    fn a_busy_budget_is_used_to_within_five_percent() {
        for seed in 1..30u64 {
            for (share, light) in [(0.0, 0.0), (0.2, 0.0), (0.2, 0.3)] {
                let p = Params {
                    capacity: 600.0,
                    period_us: SECOND as f64,
                    burst: 100.0,
                    light_share: share,
                };
                let (_, total, allowed) = simulate(seed, &p, light, 0.0, 5);
                assert!(
                    total >= 0.95 * allowed,
                    "seed {seed}, share {share}, light {light}: {total} of {allowed}"
                );
            }
        }
    }
}
