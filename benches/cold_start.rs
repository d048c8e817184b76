//! Cold start: three ways to serve one small call on each built-in
//! component, measured in the same run. (a) take a warm instance from the
//! pool; (b) instantiate from `InstancePre` per request, as `wasmtime serve`
//! and Spin do; (c) compile from bytes, instantiate and call.
//!
//! Run: `cargo bench --bench cold_start`. Prints medians and the ratios b/a
//! and c/a after criterion's own report. (a) is taking the instance and
//! calling it; handing it back to the pool happens after the caller has its
//! answer and is shown in a column of its own. (b) and (c) include dropping
//! their store, as a per-request host must.

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use warmlane_host::coldstart::{ColdStart, Way};
use warmlane_host::{Config, Host};

const COMPONENTS: [&str; 4] = ["text-stats", "notes", "chunker", "pdf-pages"];

fn host() -> Host {
    let mut config = Config::default();
    config.instances.warm = 8;
    let host = Host::new(config).expect("start the host");
    assert!(host.wait_warm(Duration::from_secs(60)));
    host
}

fn median(samples: usize, mut f: impl FnMut() -> Duration) -> Duration {
    let mut times: Vec<Duration> = (0..samples).map(|_| f()).collect();
    times.sort();
    times[samples / 2]
}

fn cold_start(c: &mut Criterion) {
    let host = host();
    let mut report = Vec::new();
    for name in COMPONENTS {
        let probe = ColdStart::new(&host, name).expect("probe");
        let mut group = c.benchmark_group(format!("cold_start/{name}"));
        for (label, way) in [
            ("a_warm_pool", Way::Warm),
            ("b_instance_pre", Way::InstancePre),
        ] {
            group.bench_function(label, |b| {
                b.iter_custom(|iters| (0..iters).map(|_| probe.serve(way).expect("serve")).sum())
            });
        }
        group.sample_size(10);
        group.bench_function("c_compile", |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| probe.serve(Way::Compile).expect("serve"))
                    .sum()
            })
        });
        group.finish();
        let serve = |way| probe.serve(way).expect("serve");
        let a = median(2001, || serve(Way::Warm));
        let back = median(2001, || probe.hand_back().expect("serve"));
        let b = median(2001, || serve(Way::InstancePre));
        let cc = median(5, || serve(Way::Compile));
        report.push((name, a, back, b, cc));
    }
    println!(
        "\ncold start, medians of the same run; (a) is take + call, hand-back shown beside it"
    );
    println!(
        "{:<12} {:>10} {:>10} {:>14} {:>12} {:>7} {:>8}",
        "component", "(a) warm", "hand-back", "(b) inst-pre", "(c) compile", "b/a", "c/a"
    );
    for (name, a, back, b, cc) in report {
        println!(
            "{name:<12} {a:>10.2?} {back:>10.2?} {b:>14.2?} {cc:>12.2?} {:>6.1}x {:>7.0}x",
            b.as_secs_f64() / a.as_secs_f64(),
            cc.as_secs_f64() / a.as_secs_f64()
        );
    }
}

criterion_group!(benches, cold_start);
criterion_main!(benches);
