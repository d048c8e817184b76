//! One suite, two stores: every behaviour of a budget is checked in memory
//! and against a real `redis-server`, with a fake clock where the numbers
//! matter and the real one where waiting does.

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use super::level::{self, Op, Outcome, Params, Part};
use super::redis::RedisStore;
use super::{Budget, Cost, MemoryStore, Store, WaitLimit};
use crate::config::{BudgetConfig, RedisConfig, Unreachable as Policy};
use crate::error::BudgetError;
use crate::lanes::Lane;

use crate::redis_server::RedisServer;

const SECOND: i64 = 1_000_000;

fn params() -> Params {
    Params {
        capacity: 600.0,
        period_us: 60.0 * SECOND as f64,
        burst: 100.0,
        light_share: 0.2,
    }
}

fn redis_store(server: &RedisServer, name: &str) -> RedisStore {
    RedisStore::new(&server.url(), "warmlane-test", name, Duration::from_secs(1)).unwrap()
}

fn reserve(store: &dyn Store, lane: Lane, cost: f64, at: i64) -> Outcome {
    store
        .step(
            &params(),
            Op::Reserve {
                lane,
                cost,
                max_wait_us: None,
            },
            Some(at),
        )
        .expect("the store answers")
}

fn give_back(store: &dyn Store, drawn: &Outcome, cost: f64, at: i64) -> Outcome {
    let op = Op::Refund {
        part: drawn.part,
        cost,
        ticket: drawn.ticket,
    };
    store
        .step(&params(), op, Some(at))
        .expect("the store answers")
}

/// The behaviours, on a fake clock.
fn suite(store: &dyn Store) {
    let p = params();
    // Starts full: 80 shared, 20 reserved.
    let o = store.step(&p, Op::Peek, Some(0)).unwrap();
    assert_eq!((o.levels.shared, o.levels.reserved), (80.0, 20.0));
    // Heavy drains the shared bucket, then waits for the refill (8/s).
    let o = reserve(store, Lane::Heavy, 80.0, 0);
    assert_eq!((o.part, o.wait_us), (Part::Shared, 0.0));
    let o = reserve(store, Lane::Heavy, 16.0, 0);
    assert!((o.wait_us - 2.0 * SECOND as f64).abs() < 1.0, "{o:?}");
    // Light still goes at once, from its reserve.
    let o = reserve(store, Lane::Light, 5.0, 0);
    assert_eq!((o.part, o.wait_us), (Part::Reserved, 0.0));
    // Draws larger than the burst are reservations, in order.
    let big = reserve(store, Lane::Heavy, 150.0, SECOND);
    // (Too big to skim the light reserve, so it queues behind.)
    let small = reserve(store, Lane::Heavy, 8.0, SECOND);
    assert!(big.wait_us > 15.0 * SECOND as f64 && small.wait_us > big.wait_us);
    // A refund while others wait is forfeit; once nobody waits it returns.
    let r = give_back(store, &big, 10.0, SECOND);
    assert_eq!(r.returned, 0.0);
    // The last draw can always be taken back, as if it had never been.
    let r = give_back(store, &small, 8.0, SECOND);
    assert_eq!(r.returned, 8.0);
    // A draw that would wait too long takes nothing.
    let max_wait_us = Some(SECOND as f64);
    let o = store
        .step(
            &p,
            Op::Reserve {
                lane: Lane::Heavy,
                cost: 11.0,
                max_wait_us,
            },
            Some(SECOND),
        )
        .unwrap();
    assert!(!o.granted && o.levels.shared == r.levels.shared, "{o:?}");
    let later = 200 * SECOND;
    let o = reserve(store, Lane::Heavy, 30.0, later);
    assert_eq!(o.wait_us, 0.0);
    let r = give_back(store, &o, 30.0, later);
    assert_eq!(r.returned, 30.0);
    // Refilled to the burst and no further.
    let o = store
        .step(&p, Op::Peek, Some(later + 3600 * SECOND))
        .unwrap();
    assert_eq!((o.levels.shared, o.levels.reserved), (80.0, 20.0));
}

#[test]
fn the_memory_store_passes_the_suite() {
    suite(&MemoryStore::default());
}

#[test]
fn the_redis_store_passes_the_suite_and_keeps_its_keys_under_one_hash_tag() {
    let server = RedisServer::start();
    let store = redis_store(&server, "suite");
    suite(&store);
    assert_eq!(store.key(), "warmlane-test:{budget:suite}");
    // The key expires once the buckets would be full again.
    match server.command(&["PTTL", store.key()]) {
        redis::Value::Int(ms) => assert!(ms > 0, "PTTL {ms}"),
        other => panic!("PTTL answered {other:?}"),
    }
}

#[test]
fn the_script_and_the_rust_arithmetic_agree_step_for_step() {
    let server = RedisServer::start();
    let store = redis_store(&server, "agree");
    let p = params();
    let mut local = None;
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut now = 0;
    for i in 0..300 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        now += (x % 3_000_000) as i64;
        let lane = if x.is_multiple_of(3) {
            Lane::Light
        } else {
            Lane::Heavy
        };
        let op = match x % 7 {
            0 => Op::Refund {
                part: if x.is_multiple_of(2) {
                    Part::Shared
                } else {
                    Part::Reserved
                },
                cost: (x % 40) as f64,
                ticket: local.map_or(0, |l: level::Levels| l.draws[(x % 2) as usize]) - x % 2,
            },
            6 => Op::Peek,
            5 if x.is_multiple_of(4) => Op::Pause {
                for_us: (x % 5_000_000) as f64,
            },
            _ => Op::Reserve {
                lane,
                cost: 1.0 + (x % 120) as f64,
                max_wait_us: x.is_multiple_of(5).then_some(20.0 * SECOND as f64),
            },
        };
        let want = level::step(local, &p, op, now);
        if !matches!(op, Op::Peek) {
            local = Some(want.levels);
        }
        let got = store.step(&p, op, Some(now)).unwrap();
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-6 * a.abs().max(1.0);
        assert!(
            got.part == want.part
                && got.granted == want.granted
                && got.ticket == want.ticket
                && close(got.wait_us, want.wait_us)
                && close(got.returned, want.returned)
                && close(got.levels.shared, want.levels.shared)
                && close(got.levels.reserved, want.levels.reserved),
            "step {i} {op:?}: redis {got:?}, rust {want:?}"
        );
    }
}

fn budget(url: Option<String>, policy: Policy, capacity: u64, burst: u64) -> Budget {
    let config = BudgetConfig {
        capacity,
        burst,
        period_secs: 1.0,
        light_share: 0.0,
    };
    let redis = RedisConfig {
        url,
        key_prefix: format!("warmlane-test-{}", std::process::id()),
        timeout_ms: 200,
        on_unreachable: policy,
        replicas: 2,
    };
    Budget::new("pages", &config, &redis).unwrap()
}

fn acquire_within(b: &Budget, cost: u64, max: Duration) -> Result<super::Grant, BudgetError> {
    b.acquire(Lane::Heavy, Cost(cost), WaitLimit::AtMost(max))
}

/// Real clock: a draw beyond the level waits; one that would wait too long
/// is refused with the time to retry, and its tokens are not kept.
fn waits_and_refusals(b: &Budget) {
    // 10 tokens a second, burst 5.
    let _ = acquire_within(b, 5, Duration::ZERO).unwrap();
    let start = Instant::now();
    let _ = acquire_within(b, 2, Duration::from_secs(1)).unwrap();
    assert!(
        start.elapsed() >= Duration::from_millis(150),
        "{:?}",
        start.elapsed()
    );
    match acquire_within(b, 50, Duration::from_millis(10)) {
        Err(BudgetError::Exhausted { retry_after, .. }) => {
            assert!(retry_after > Duration::from_secs(4), "{retry_after:?}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // The refused draw did not keep its tokens: a small one soon succeeds.
    let _ = acquire_within(b, 1, Duration::from_millis(500)).unwrap();
    let s = b.stats();
    assert_eq!((s.grants, s.refused, s.drawn_heavy), (3, 1, 8));
    assert!(s.wait.count() == 3);
}

#[test]
fn draws_wait_and_refuse_the_same_in_memory_and_in_redis() {
    waits_and_refusals(&budget(None, Policy::FailClosed, 10, 5));
    let server = RedisServer::start();
    waits_and_refusals(&budget(Some(server.url()), Policy::FailClosed, 10, 5));
}

#[test]
fn a_script_flush_is_survived() {
    let server = RedisServer::start();
    let b = budget(Some(server.url()), Policy::FailClosed, 1000, 1000);
    let _ = acquire_within(&b, 1, Duration::ZERO).unwrap();
    server.command(&["SCRIPT", "FLUSH"]);
    let _ = acquire_within(&b, 1, Duration::ZERO).unwrap();
    assert_eq!(b.stats().unreachable, 0);
}

#[test]
fn fail_closed_stops_drawing_while_redis_is_down_and_resumes_after_a_restart() {
    let mut server = RedisServer::start();
    let b = budget(Some(server.url()), Policy::FailClosed, 1000, 1000);
    let _ = acquire_within(&b, 1, Duration::ZERO).unwrap();
    assert!(b.ready());
    server.stop();
    match acquire_within(&b, 1, Duration::from_millis(100)) {
        Err(e @ BudgetError::Unavailable { .. }) => {
            assert!(e.to_string().contains("fail-closed"), "{e}")
        }
        other => panic!("expected unavailable, got {other:?}"),
    }
    assert!(!b.ready() && !b.probe());
    // A job's draw waits through the outage instead of failing.
    std::thread::scope(|s| {
        let waiting = s.spawn(|| {
            let never = AtomicBool::new(false);
            b.acquire(Lane::Heavy, Cost(1), WaitLimit::UntilCancelled(&never))
        });
        std::thread::sleep(Duration::from_millis(300));
        assert!(!waiting.is_finished(), "the draw did not wait for Redis");
        server.restart();
        let _ = waiting.join().unwrap().expect("granted once Redis is back");
    });
    assert!(b.ready() && b.probe());
    let s = b.stats();
    assert!(s.unreachable >= 2 && s.fallback_grants == 0, "{s:?}");
}

#[test]
fn the_local_policy_draws_this_replicas_share_while_redis_is_down() {
    let mut server = RedisServer::start();
    // 10 a second, burst 10, two replicas: 5 each while Redis is down.
    let b = budget(Some(server.url()), Policy::Local, 10, 10);
    server.stop();
    assert!(b.ready(), "the local policy stays ready");
    let _ = acquire_within(&b, 5, Duration::ZERO).unwrap();
    match acquire_within(&b, 3, Duration::ZERO) {
        Err(BudgetError::Exhausted { retry_after, .. }) => {
            // 3 tokens at 5 a second.
            assert!(retry_after >= Duration::from_millis(550), "{retry_after:?}")
        }
        other => panic!("the local share was overspent: {other:?}"),
    }
    let s = b.stats();
    assert!(
        !s.reachable && s.fallback_grants == 1 && s.refused == 1,
        "{s:?}"
    );
    server.restart();
    let _ = acquire_within(&b, 10, Duration::ZERO).expect("Redis is back, with its full burst");
    assert!(b.stats().reachable);
}

#[test]
fn cancelling_a_wait_gives_the_tokens_back() {
    let b = budget(None, Policy::FailClosed, 10, 5);
    let _ = acquire_within(&b, 5, Duration::ZERO).unwrap();
    let cancel = AtomicBool::new(false);
    std::thread::scope(|s| {
        let waiting =
            s.spawn(|| b.acquire(Lane::Heavy, Cost(20), WaitLimit::UntilCancelled(&cancel)));
        std::thread::sleep(Duration::from_millis(50));
        cancel.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(matches!(
            waiting.join().unwrap(),
            Err(BudgetError::Cancelled { .. })
        ));
    });
    assert_eq!(b.stats().grants, 1);
}
