//! What the host has done, in Prometheus' text format: pools, lanes,
//! budgets, documents and tools. Renders only; serving it is the server's.

use std::fmt::Write;

use crate::host::Host;
use crate::stats::{BUCKETS, Histogram};

/// Families and samples, written in order.
struct Text(String);

type Labels<'a> = &'a [(&'a str, &'a str)];

impl Text {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP warmlane_{name} {help}");
        let _ = writeln!(self.0, "# TYPE warmlane_{name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: Labels<'_>, value: impl std::fmt::Display) {
        let _ = write!(self.0, "warmlane_{name}");
        self.labels(labels, None);
        let _ = writeln!(self.0, " {value}");
    }

    fn labels(&mut self, labels: Labels<'_>, le: Option<&str>) {
        if labels.is_empty() && le.is_none() {
            return;
        }
        self.0.push('{');
        let all = labels.iter().copied().chain(le.map(|le| ("le", le)));
        for (i, (k, v)) in all.enumerate() {
            if i > 0 {
                self.0.push(',');
            }
            let v = v
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            let _ = write!(self.0, "{k}=\"{v}\"");
        }
        self.0.push('}');
    }

    /// A histogram in seconds from one of ours (powers of two of µs).
    fn histogram(&mut self, name: &str, labels: Labels<'_>, h: &Histogram) {
        let mut seen = 0;
        for (i, n) in h.counts.iter().enumerate().take(BUCKETS - 1) {
            seen += n;
            let le = format!("{}", Histogram::upper_bound(i).as_secs_f64());
            let _ = write!(self.0, "warmlane_{name}_bucket");
            self.labels(labels, Some(&le));
            let _ = writeln!(self.0, " {seen}");
        }
        let _ = write!(self.0, "warmlane_{name}_bucket");
        self.labels(labels, Some("+Inf"));
        let _ = writeln!(self.0, " {}", h.count());
        self.sample(&format!("{name}_sum"), labels, h.total_nanos as f64 / 1e9);
        self.sample(&format!("{name}_count"), labels, h.count());
    }
}

/// The host's metrics, in the Prometheus text exposition format (0.0.4).
pub(crate) fn render(host: &Host) -> String {
    let mut t = Text(String::new());
    components(&mut t, host);
    pools(&mut t, host);
    lanes(&mut t, host);
    budgets(&mut t, host);
    documents(&mut t, host);
    tools(&mut t, host);
    t.0
}

fn components(t: &mut Text, host: &Host) {
    t.family(
        "component_load_seconds",
        "gauge",
        "Time getting the component's native code took at start, by where it came from: embedded (compiled when warmlane was built), precompiled (`warmlane compile`), cached, or compiled at start.",
    );
    for c in host.components() {
        t.sample(
            "component_load_seconds",
            &[("component", &c.name), ("origin", c.origin.as_str())],
            c.load_time.as_secs_f64(),
        );
    }
    t.family(
        "component_precompiled_refused",
        "gauge",
        "1 when the component's code compiled ahead of time did not fit this machine or engine (so it was compiled at start).",
    );
    for c in host.components() {
        t.sample(
            "component_precompiled_refused",
            &[("component", &c.name)],
            u8::from(c.refused.is_some()),
        );
    }
}

fn pools(t: &mut Text, host: &Host) {
    let stats = host.pool_stats();
    t.family(
        "pool_ready_instances",
        "gauge",
        "Instances ready in the pool now.",
    );
    for (c, s) in &stats {
        t.sample("pool_ready_instances", &[("component", c)], s.ready);
    }
    t.family(
        "pool_warm_target",
        "gauge",
        "Instances the pool keeps ready.",
    );
    for (c, s) in &stats {
        t.sample("pool_warm_target", &[("component", c)], s.target);
    }
    t.family(
        "pool_takes_total",
        "counter",
        "Instances taken: from the warm pool (hit) or instantiated on demand (miss).",
    );
    for (c, s) in &stats {
        t.sample(
            "pool_takes_total",
            &[("component", c), ("result", "hit")],
            s.hits,
        );
        t.sample(
            "pool_takes_total",
            &[("component", c), ("result", "miss")],
            s.misses,
        );
    }
    t.family(
        "instance_failures_total",
        "counter",
        "Calls stopped, by kind: wall-clock deadline, CPU time, memory cap, or another trap.",
    );
    for (c, s) in &stats {
        for (kind, n) in [
            ("timeout", s.timeouts),
            ("cpu_limit", s.cpu_limits),
            ("out_of_memory", s.out_of_memory),
            ("trap", s.traps),
        ] {
            t.sample(
                "instance_failures_total",
                &[("component", c), ("kind", kind)],
                n,
            );
        }
    }
    t.family(
        "instance_memory_peak_bytes",
        "gauge",
        "The largest linear memory any instance of the component has grown to.",
    );
    for (c, s) in &stats {
        t.sample(
            "instance_memory_peak_bytes",
            &[("component", c)],
            s.memory_peak,
        );
    }
    t.family(
        "pool_acquire_seconds",
        "histogram",
        "Time to take an instance.",
    );
    for (c, s) in &stats {
        t.histogram("pool_acquire_seconds", &[("component", c)], &s.acquire);
    }
}

fn lanes(t: &mut Text, host: &Host) {
    let stats = host.lane_stats();
    for (name, help, get) in [
        (
            "lane_queued_jobs",
            "Jobs waiting for their turn to start.",
            (|s| s.queued) as fn(&crate::LaneStats) -> usize,
        ),
        ("lane_running_jobs", "Jobs taking turns.", |s| s.running),
        (
            "lane_busy_batches",
            "Batches of the lane's jobs running now.",
            |s| s.busy,
        ),
    ] {
        t.family(name, "gauge", help);
        for s in &stats {
            t.sample(name, &[("lane", s.lane.as_str())], get(s));
        }
    }
    t.family(
        "lane_jobs_total",
        "counter",
        "Jobs admitted to the lane, refused because its queue was full, and finished.",
    );
    for s in &stats {
        for (outcome, n) in [
            ("admitted", s.admitted),
            ("refused", s.refused),
            ("finished", s.finished),
        ] {
            t.sample(
                "lane_jobs_total",
                &[("lane", s.lane.as_str()), ("outcome", outcome)],
                n,
            );
        }
    }
    t.family(
        "lane_batches_total",
        "counter",
        "Batches run for the lane's jobs.",
    );
    for s in &stats {
        t.sample(
            "lane_batches_total",
            &[("lane", s.lane.as_str())],
            s.batches,
        );
    }
    t.family(
        "lane_borrowed_batches_total",
        "counter",
        "Batches of the lane's jobs run by the other lane's workers.",
    );
    for s in &stats {
        t.sample(
            "lane_borrowed_batches_total",
            &[("lane", s.lane.as_str())],
            s.borrowed,
        );
    }
    t.family(
        "lane_wait_seconds",
        "histogram",
        "Time from submission to a job's first batch.",
    );
    for s in &stats {
        t.histogram("lane_wait_seconds", &[("lane", s.lane.as_str())], &s.wait);
    }
}

fn budgets(t: &mut Text, host: &Host) {
    let stats = host.budget_stats();
    t.family(
        "budget_reachable",
        "gauge",
        "1 if the budget's backend answered last time.",
    );
    for s in &stats {
        t.sample(
            "budget_reachable",
            &[("budget", &s.name), ("backend", s.backend)],
            u8::from(s.reachable),
        );
    }
    t.family(
        "budget_tokens_drawn_total",
        "counter",
        "Tokens granted, by lane.",
    );
    for s in &stats {
        t.sample(
            "budget_tokens_drawn_total",
            &[("budget", &s.name), ("lane", "light")],
            s.drawn_light,
        );
        t.sample(
            "budget_tokens_drawn_total",
            &[("budget", &s.name), ("lane", "heavy")],
            s.drawn_heavy,
        );
    }
    for (name, help, get) in [
        (
            "budget_grants_total",
            "Draws granted.",
            (|s| s.grants) as fn(&crate::BudgetStats) -> u64,
        ),
        (
            "budget_tokens_refunded_total",
            "Tokens given back by calls that failed before using them.",
            |s| s.refunded,
        ),
        (
            "budget_tokens_forfeited_total",
            "Tokens such calls could not give back because later draws were waiting.",
            |s| s.forfeited,
        ),
        (
            "budget_refusals_total",
            "Draws refused because they would have waited too long.",
            |s| s.refused,
        ),
        (
            "budget_unreachable_total",
            "Times Redis could not be reached.",
            |s| s.unreachable,
        ),
        (
            "budget_fallback_grants_total",
            "Grants made by the local fallback while Redis was unreachable.",
            |s| s.fallback_grants,
        ),
    ] {
        t.family(name, "counter", help);
        for s in &stats {
            t.sample(name, &[("budget", &s.name)], get(s));
        }
    }
    t.family(
        "budget_wait_seconds",
        "histogram",
        "Time granted draws waited for their tokens.",
    );
    for s in &stats {
        t.histogram("budget_wait_seconds", &[("budget", &s.name)], &s.wait);
    }
}

fn documents(t: &mut Text, host: &Host) {
    use std::sync::atomic::Ordering::Relaxed;
    let d = &host.documents;
    for (name, help, n) in [
        (
            "documents_total",
            "Documents processed to the end.",
            d.jobs.load(Relaxed),
        ),
        (
            "pages_processed_total",
            "Pages parsed, read or not.",
            d.pages.load(Relaxed),
        ),
        (
            "page_errors_total",
            "Pages that could not be read.",
            d.page_errors.load(Relaxed),
        ),
        ("chunks_total", "Chunks produced.", d.chunks.load(Relaxed)),
        (
            "pages_over_cpu_budget_total",
            "Pages not parsed because their document had used up its CPU budget.",
            d.cpu_budget_pages.load(Relaxed),
        ),
    ] {
        t.family(name, "counter", help);
        t.sample(name, &[], n);
    }
}

fn tools(t: &mut Text, host: &Host) {
    let stats = host.tool_stats();
    t.family("tool_calls_total", "counter", "Tool calls, by outcome.");
    for s in &stats {
        t.sample(
            "tool_calls_total",
            &[("tool", &s.name), ("outcome", "ok")],
            s.ok,
        );
        t.sample(
            "tool_calls_total",
            &[("tool", &s.name), ("outcome", "error")],
            s.failed,
        );
    }
    t.family(
        "tool_cpu_seconds_total",
        "counter",
        "CPU time tool calls used on the threads that ran them.",
    );
    for s in &stats {
        t.sample(
            "tool_cpu_seconds_total",
            &[("tool", &s.name)],
            s.cpu_nanos as f64 / 1e9,
        );
    }
    t.family(
        "tool_tokens_total",
        "counter",
        "Budget tokens tool calls kept.",
    );
    for s in &stats {
        t.sample("tool_tokens_total", &[("tool", &s.name)], s.tokens);
    }
    t.family(
        "tool_call_seconds",
        "histogram",
        "Wall-clock time per tool call, budget waits included.",
    );
    for s in &stats {
        t.histogram("tool_call_seconds", &[("tool", &s.name)], &s.time);
    }
}
