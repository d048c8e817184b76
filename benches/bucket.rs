//! The cost of one draw on a budget: in process, and against Redis on
//! loopback (one atomic script call), beside a bare Redis `PING` on the
//! same connection kind, measured in the same run. The budget is sized so
//! no draw ever waits: this is the bookkeeping, not the rate limit.
//!
//! Run: `cargo bench --bench bucket` (needs `redis-server`; it starts its
//! own on a free loopback port).

mod support;

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use support::median;
use warmlane_host::{Budget, Config, Cost, Lane, WaitLimit};

// The bench uses only part of the test harness.
#[allow(dead_code)]
#[path = "../tests/all/redis_server.rs"]
mod redis_server;

fn budget(redis: Option<String>) -> Budget {
    let mut config = Config::from_toml(
        "[budgets.bench]\ncapacity = 1000000000000\nburst = 1000000000000\nperiod_secs = 1\n",
    )
    .expect("config");
    config.redis.url = redis;
    config.redis.key_prefix = "warmlane-bench".into();
    Budget::from_config("bench", &config).expect("budget")
}

fn draw(b: &Budget) {
    let grant = b
        .acquire(Lane::Heavy, Cost(1), WaitLimit::AtMost(Duration::ZERO))
        .expect("the budget never runs dry");
    let _ = black_box(grant);
}

fn bucket(c: &mut Criterion) {
    let server = redis_server::RedisServer::start();
    let memory = budget(None);
    let redis = budget(Some(server.url()));
    let client = redis::Client::open(server.url()).expect("url");
    let mut con = client.get_connection().expect("connect");
    let mut ping = move || {
        let pong: String = redis::cmd("PING").query(&mut con).expect("PING");
        black_box(pong);
    };

    let mut group = c.benchmark_group("bucket");
    group.bench_function("acquire_in_process", |b| b.iter(|| draw(&memory)));
    group.bench_function("acquire_redis_loopback", |b| b.iter(|| draw(&redis)));
    group.bench_function("redis_ping_loopback", |b| b.iter(&mut ping));
    group.finish();

    let m = median(2001, || draw(&memory));
    let r = median(2001, || draw(&redis));
    let p = median(2001, &mut ping);
    println!("\none draw, medians of 2,001, same run");
    println!("in process:              {m:>10.2?}");
    println!(
        "Redis on loopback:       {r:>10.2?}  ({:.0}x in process, {:.2}x a bare PING)",
        r.as_secs_f64() / m.as_secs_f64(),
        r.as_secs_f64() / p.as_secs_f64()
    );
    println!("bare Redis PING:         {p:>10.2?}");
}

criterion_group!(benches, bucket);
criterion_main!(benches);
