//! Cold start: three ways to serve one small call on each built-in
//! component, measured in the same run. (a) take a warm instance from the
//! pool; (b) instantiate from `InstancePre` per request, as `wasmtime serve`
//! and Spin do; (c) compile from bytes, instantiate and call.
//!
//! Run: `cargo bench --bench cold_start`. Prints medians and the ratios a/b
//! and a/c after criterion's own report.

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

fn median(way: Way, probe: &ColdStart<'_>, samples: usize) -> Duration {
    let mut times: Vec<Duration> = (0..samples)
        .map(|_| probe.serve(way).expect("serve"))
        .collect();
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
        let a = median(Way::Warm, &probe, 2001);
        let b = median(Way::InstancePre, &probe, 2001);
        let cc = median(Way::Compile, &probe, 5);
        report.push((name, a, b, cc));
    }
    println!("\ncold start, medians (same run)");
    println!(
        "{:<12} {:>12} {:>14} {:>12} {:>8} {:>8}",
        "component", "(a) warm", "(b) inst-pre", "(c) compile", "b/a", "c/a"
    );
    for (name, a, b, cc) in report {
        println!(
            "{name:<12} {:>12.2?} {:>14.2?} {:>12.2?} {:>7.1}x {:>7.0}x",
            a,
            b,
            cc,
            b.as_secs_f64() / a.as_secs_f64(),
            cc.as_secs_f64() / a.as_secs_f64()
        );
    }
}

criterion_group!(benches, cold_start);
criterion_main!(benches);
