//! Metrics, through `prometheus-client`: what each part of the host
//! reports (a [`Report`], gathered at scrape time), encoded in the
//! OpenMetrics text format, or in Prometheus' text format 0.0.4 unless the
//! scraper asks for OpenMetrics. Serving it is the server's.

use std::fmt;
use std::sync::atomic::Ordering::Relaxed;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeCounterValue, EncodeGaugeValue, EncodeMetric, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::host::{ComponentInfo, Host, SkippedPlugin};
use crate::stats::{BUCKETS, Histogram};
use crate::upstream::{Denied, UpstreamStats};
use crate::{BudgetStats, LaneStats, PoolStats, tools::ToolStats};

/// A sample's labels.
pub(crate) type Labels<'a> = &'a [(&'a str, &'a str)];

/// What one part of the host reports: its families, written at a scrape
/// from what it gathered before it.
pub(crate) trait Report: Send + Sync + 'static {
    fn report(&self, families: &mut Families<'_, '_>) -> fmt::Result;
}

/// Writes a scrape's families, each with its samples.
pub(crate) struct Families<'a, 'b> {
    encoder: &'a mut DescriptorEncoder<'b>,
}

impl Families<'_, '_> {
    /// A gauge family.
    pub(crate) fn gauge<'l, V: EncodeGaugeValue + fmt::Debug>(
        &mut self,
        name: &str,
        help: &str,
        samples: impl IntoIterator<Item = (Labels<'l>, V)>,
    ) -> fmt::Result {
        self.constants(name, help, MetricType::Gauge, samples, ConstGauge::new)
    }

    /// A counter family; `name` ends in `_total`, as its samples are named.
    pub(crate) fn counter<'l, V: EncodeCounterValue + fmt::Debug>(
        &mut self,
        name: &str,
        help: &str,
        samples: impl IntoIterator<Item = (Labels<'l>, V)>,
    ) -> fmt::Result {
        let name = name.strip_suffix("_total").unwrap_or(name);
        self.constants(name, help, MetricType::Counter, samples, ConstCounter::new)
    }

    /// A family of `kind` whose samples are `metric(value)`.
    fn constants<'l, V, M: EncodeMetric>(
        &mut self,
        name: &str,
        help: &str,
        kind: MetricType,
        samples: impl IntoIterator<Item = (Labels<'l>, V)>,
        metric: fn(V) -> M,
    ) -> fmt::Result {
        let mut family = self.encoder.encode_descriptor(name, help, None, kind)?;
        for (labels, value) in samples {
            if labels.is_empty() {
                // The family's one sample.
                return metric(value).encode(family);
            }
            metric(value).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }

    /// A histogram family in seconds, from ours (powers of two of µs).
    pub(crate) fn histogram<'l>(
        &mut self,
        name: &str,
        help: &str,
        samples: impl IntoIterator<Item = (Labels<'l>, &'l Histogram)>,
    ) -> fmt::Result {
        let mut family = self
            .encoder
            .encode_descriptor(name, help, None, MetricType::Histogram)?;
        for (labels, h) in samples {
            let buckets: Vec<(f64, u64)> = (0..BUCKETS)
                .map(|i| {
                    let le = if i + 1 < BUCKETS {
                        Histogram::upper_bound(i).as_secs_f64()
                    } else {
                        f64::INFINITY
                    };
                    (le, h.counts[i])
                })
                .collect();
            family
                .encode_family(&labels)?
                .encode_histogram::<NoLabelSet>(
                    h.total_nanos as f64 / 1e9,
                    h.count(),
                    &buckets,
                    None,
                )?;
        }
        Ok(())
    }
}

/// The text format a scraper gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// Prometheus' text format 0.0.4: what a scraper gets unless it asks.
    Prometheus,
    /// OpenMetrics 1.0.0 text, for an `Accept` that names it.
    OpenMetrics,
}

impl Format {
    /// The format an `Accept` header asks for.
    pub(crate) fn for_accept(accept: Option<&str>) -> Format {
        if accept.is_some_and(|a| a.contains("application/openmetrics-text")) {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        }
    }

    /// Its `Content-Type`.
    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// The reports for `prometheus-client`'s registry.
struct Reports(Vec<Box<dyn Report>>);

impl fmt::Debug for Reports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} reports", self.0.len())
    }
}

impl Collector for Reports {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let mut families = Families {
            encoder: &mut encoder,
        };
        self.0.iter().try_for_each(|r| r.report(&mut families))
    }
}

/// `reports` in `format`, every name prefixed with `warmlane_`.
pub(crate) fn expose(reports: Vec<Box<dyn Report>>, format: Format) -> String {
    let mut registry = Registry::with_prefix("warmlane");
    registry.register_collector(Box::new(Reports(reports)));
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &registry) {
        tracing::warn!("metrics could not be encoded: {e}");
    }
    match format {
        Format::OpenMetrics => text,
        Format::Prometheus => prometheus_text(&text),
    }
}

/// OpenMetrics text as Prometheus' 0.0.4 text: no `# EOF` or `# UNIT`, and
/// a counter's family named as its samples are (`_total`).
fn prometheus_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut help: Option<&str> = None;
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if line.starts_with("# HELP ") {
            help = Some(line);
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            let name = if kind == "counter" {
                format!("{name}_total")
            } else {
                name.to_string()
            };
            if let Some(h) = help.take() {
                let text = h.splitn(4, ' ').nth(3).unwrap_or("");
                out.push_str(&format!("# HELP {name} {text}\n"));
            }
            out.push_str(&format!("# TYPE {name} {kind}\n"));
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// What the host has done: its components, pools, lanes, budgets,
/// documents and tools, as gathered at a scrape.
pub(crate) struct HostReport {
    components: Vec<ComponentInfo>,
    skipped: Vec<SkippedPlugin>,
    pools: Vec<(String, PoolStats)>,
    lanes: [LaneStats; 2],
    budgets: Vec<BudgetStats>,
    documents: [u64; 5],
    tools: Vec<ToolStats>,
    upstreams: (Vec<UpstreamStats>, Denied),
}

impl HostReport {
    pub(crate) fn of(host: &Host) -> HostReport {
        let d = &host.documents;
        HostReport {
            components: host.components().to_vec(),
            skipped: host.skipped_plugins().to_vec(),
            pools: host.pool_stats(),
            lanes: host.lane_stats(),
            budgets: host.budget_stats(),
            documents: [
                d.jobs.load(Relaxed),
                d.pages.load(Relaxed),
                d.page_errors.load(Relaxed),
                d.chunks.load(Relaxed),
                d.cpu_budget_pages.load(Relaxed),
            ],
            tools: host.tool_stats(),
            upstreams: host.upstream_stats(),
        }
    }
}

impl Report for HostReport {
    fn report(&self, f: &mut Families<'_, '_>) -> fmt::Result {
        self.components(f)?;
        self.pools(f)?;
        self.lanes(f)?;
        self.budgets(f)?;
        self.documents(f)?;
        self.tools(f)?;
        self.upstreams(f)
    }
}

impl HostReport {
    fn upstreams(&self, f: &mut Families<'_, '_>) -> fmt::Result {
        let (upstreams, denied) = &self.upstreams;
        let responses: Vec<([(&str, &str); 3], u64)> = upstreams
            .iter()
            .flat_map(|u| {
                u.responses.iter().map(|(component, status, n)| {
                    (
                        [
                            ("upstream", u.name.as_str()),
                            ("component", component.as_str()),
                            ("status", status.as_str()),
                        ],
                        *n,
                    )
                })
            })
            .collect();
        f.counter(
            "upstream_requests_total",
            "Requests to upstreams, by component and outcome: the HTTP status, or how it failed (timeout, unreachable, too-large, budget, uncountable, error).",
            responses.iter().map(|(l, n)| (&l[..], *n)),
        )?;
        let denied: Vec<([(&str, &str); 1], u64)> = denied
            .iter()
            .map(|(c, n)| ([("component", c.as_str())], *n))
            .collect();
        f.counter(
            "upstream_denied_total",
            "Requests refused because their URL is none of the component's upstreams.",
            denied.iter().map(|(l, n)| (&l[..], *n)),
        )?;
        let names: Vec<[(&str, &str); 1]> = upstreams
            .iter()
            .map(|u| [("upstream", u.name.as_str())])
            .collect();
        for (name, help, get) in [
            (
                "upstream_sent_bytes_total",
                "Request body bytes sent.",
                (|u| u.sent_bytes) as fn(&UpstreamStats) -> u64,
            ),
            (
                "upstream_received_bytes_total",
                "Response body bytes received.",
                |u| u.received_bytes,
            ),
            (
                "upstream_retries_total",
                "Requests sent again after a pause the upstream asked for.",
                |u| u.retries,
            ),
            (
                "upstream_connections_total",
                "Connections opened to the upstream; each kept open serves many requests.",
                |u| u.connections,
            ),
            (
                "upstream_tokens_reserved_total",
                "Budget tokens reserved on requests' estimates.",
                |u| u.tokens_reserved,
            ),
            (
                "upstream_tokens_used_total",
                "Tokens the upstream reported using: what the estimates were settled to.",
                |u| u.tokens_used,
            ),
        ] {
            f.counter(
                name,
                help,
                names.iter().zip(upstreams).map(|(l, u)| (&l[..], get(u))),
            )?;
        }
        f.histogram(
            "upstream_request_seconds",
            "From a component's request to its response's end, waits for budget and retries included.",
            names.iter().zip(upstreams).map(|(l, u)| (&l[..], &u.latency)),
        )
    }

    fn components(&self, f: &mut Families<'_, '_>) -> fmt::Result {
        let by_origin: Vec<[(&str, &str); 2]> = self
            .components
            .iter()
            .map(|c| {
                [
                    ("component", c.name.as_str()),
                    ("origin", c.origin.as_str()),
                ]
            })
            .collect();
        let names: Vec<[(&str, &str); 1]> = self
            .components
            .iter()
            .map(|c| [("component", c.name.as_str())])
            .collect();
        f.gauge(
            "component_load_seconds",
            "Time getting the component's native code took at start, by where it came from: embedded (compiled when warmlane was built), precompiled (`warmlane compile`), cached, or compiled at start.",
            by_origin
                .iter()
                .zip(&self.components)
                .map(|(l, c)| (&l[..], c.load_time.as_secs_f64())),
        )?;
        f.gauge(
            "component_precompiled_refused",
            "1 when the component's code compiled ahead of time did not fit this machine or engine (so it was compiled at start).",
            names
                .iter()
                .zip(&self.components)
                .map(|(l, c)| (&l[..], u64::from(c.refused.is_some()))),
        )?;
        let skipped: Vec<[(&str, &str); 2]> = self
            .skipped
            .iter()
            .map(|p| [("component", p.name.as_str()), ("stage", p.stage.as_str())])
            .collect();
        f.gauge(
            "plugin_skipped",
            "1 for each plugin the host started without (plugins.on_error = \"skip\"), by the step of loading it that failed: read, name, compile, world, imports, exports, describe or config. /readyz says why in full.",
            skipped.iter().map(|l| (&l[..], 1u64)),
        )
    }

    fn pools(&self, f: &mut Families<'_, '_>) -> fmt::Result {
        let names: Vec<[(&str, &str); 1]> = self
            .pools
            .iter()
            .map(|(c, _)| [("component", c.as_str())])
            .collect();
        let by = |get: fn(&PoolStats) -> u64| {
            names
                .iter()
                .zip(&self.pools)
                .map(move |(l, (_, s))| (&l[..], get(s)))
        };
        f.gauge(
            "pool_ready_instances",
            "Instances ready in the pool now.",
            by(|s| s.ready as u64),
        )?;
        f.gauge(
            "pool_bound_instances",
            "Instances waiting for their caller's (a session's or a document's) next call.",
            by(|s| s.bound as u64),
        )?;
        f.gauge(
            "pool_warm_target",
            "Instances the pool keeps ready.",
            by(|s| s.target as u64),
        )?;
        let takes: Vec<_> = self
            .pools
            .iter()
            .flat_map(|(c, s)| {
                [("hit", s.hits), ("miss", s.misses), ("reuse", s.reuses)]
                    .map(|(result, n)| ([("component", c.as_str()), ("result", result)], n))
            })
            .collect();
        f.counter(
            "pool_takes_total",
            "Instances taken: from the warm pool (hit), instantiated on demand (miss), or the one the caller's last call used (reuse).",
            takes.iter().map(|(l, n)| (&l[..], *n)),
        )?;
        let failures: Vec<_> = self
            .pools
            .iter()
            .flat_map(|(c, s)| {
                [
                    ("timeout", s.timeouts),
                    ("cpu_limit", s.cpu_limits),
                    ("out_of_memory", s.out_of_memory),
                    ("trap", s.traps),
                ]
                .map(|(kind, n)| ([("component", c.as_str()), ("kind", kind)], n))
            })
            .collect();
        f.counter(
            "instance_failures_total",
            "Calls stopped, by kind: wall-clock deadline, CPU time, memory cap, or another trap.",
            failures.iter().map(|(l, n)| (&l[..], *n)),
        )?;
        f.gauge(
            "instance_memory_peak_bytes",
            "The largest linear memory any instance of the component has grown to.",
            by(|s| s.memory_peak),
        )?;
        f.histogram(
            "pool_acquire_seconds",
            "Time to take an instance.",
            names
                .iter()
                .zip(&self.pools)
                .map(|(l, (_, s))| (&l[..], &s.acquire)),
        )
    }

    fn lanes(&self, f: &mut Families<'_, '_>) -> fmt::Result {
        let names: Vec<[(&str, &str); 1]> = self
            .lanes
            .iter()
            .map(|s| [("lane", s.lane.as_str())])
            .collect();
        let by = |get: fn(&LaneStats) -> u64| {
            names
                .iter()
                .zip(&self.lanes)
                .map(move |(l, s)| (&l[..], get(s)))
        };
        f.gauge(
            "lane_queued_jobs",
            "Jobs waiting for their turn to start.",
            by(|s| s.queued as u64),
        )?;
        f.gauge(
            "lane_running_jobs",
            "Jobs taking turns.",
            by(|s| s.running as u64),
        )?;
        f.gauge(
            "lane_busy_batches",
            "Batches of the lane's jobs running now.",
            by(|s| s.busy as u64),
        )?;
        let jobs: Vec<_> = self
            .lanes
            .iter()
            .flat_map(|s| {
                [
                    ("admitted", s.admitted),
                    ("refused", s.refused),
                    ("finished", s.finished),
                ]
                .map(|(outcome, n)| ([("lane", s.lane.as_str()), ("outcome", outcome)], n))
            })
            .collect();
        f.counter(
            "lane_jobs_total",
            "Jobs admitted to the lane, refused because its queue was full, and finished.",
            jobs.iter().map(|(l, n)| (&l[..], *n)),
        )?;
        f.counter(
            "lane_batches_total",
            "Batches run for the lane's jobs.",
            by(|s| s.batches),
        )?;
        f.counter(
            "lane_borrowed_batches_total",
            "Batches of the lane's jobs run by the other lane's workers.",
            by(|s| s.borrowed),
        )?;
        f.histogram(
            "lane_wait_seconds",
            "Time from submission to a job's first batch.",
            names
                .iter()
                .zip(&self.lanes)
                .map(|(l, s)| (&l[..], &s.wait)),
        )
    }

    fn budgets(&self, f: &mut Families<'_, '_>) -> fmt::Result {
        let names: Vec<[(&str, &str); 1]> = self
            .budgets
            .iter()
            .map(|s| [("budget", s.name.as_str())])
            .collect();
        let backends: Vec<[(&str, &str); 2]> = self
            .budgets
            .iter()
            .map(|s| [("budget", s.name.as_str()), ("backend", s.backend)])
            .collect();
        f.gauge(
            "budget_reachable",
            "1 if the budget's backend answered last time.",
            backends
                .iter()
                .zip(&self.budgets)
                .map(|(l, s)| (&l[..], u64::from(s.reachable))),
        )?;
        let drawn: Vec<_> = self
            .budgets
            .iter()
            .flat_map(|s| {
                [("light", s.drawn_light), ("heavy", s.drawn_heavy)]
                    .map(|(lane, n)| ([("budget", s.name.as_str()), ("lane", lane)], n))
            })
            .collect();
        f.counter(
            "budget_tokens_drawn_total",
            "Tokens granted, by lane.",
            drawn.iter().map(|(l, n)| (&l[..], *n)),
        )?;
        for (name, help, get) in [
            (
                "budget_grants_total",
                "Draws granted.",
                (|s| s.grants) as fn(&BudgetStats) -> u64,
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
            (
                "budget_pauses_total",
                "Times an upstream answered 429 or 503 and paused the budget.",
                |s| s.pauses,
            ),
        ] {
            f.counter(
                name,
                help,
                names
                    .iter()
                    .zip(&self.budgets)
                    .map(|(l, s)| (&l[..], get(s))),
            )?;
        }
        f.histogram(
            "budget_wait_seconds",
            "Time granted draws waited for their tokens.",
            names
                .iter()
                .zip(&self.budgets)
                .map(|(l, s)| (&l[..], &s.wait)),
        )
    }

    fn documents(&self, f: &mut Families<'_, '_>) -> fmt::Result {
        let [jobs, pages, errors, chunks, over] = self.documents;
        for (name, help, n) in [
            ("documents_total", "Documents processed to the end.", jobs),
            ("pages_processed_total", "Pages parsed, read or not.", pages),
            ("page_errors_total", "Pages that could not be read.", errors),
            ("chunks_total", "Chunks produced.", chunks),
            (
                "pages_over_cpu_budget_total",
                "Pages not parsed because their document had used up its CPU budget.",
                over,
            ),
        ] {
            f.counter(name, help, [(&[][..], n)])?;
        }
        Ok(())
    }

    fn tools(&self, f: &mut Families<'_, '_>) -> fmt::Result {
        let names: Vec<[(&str, &str); 1]> = self
            .tools
            .iter()
            .map(|s| [("tool", s.name.as_str())])
            .collect();
        let calls: Vec<_> = self
            .tools
            .iter()
            .flat_map(|s| {
                [("ok", s.ok), ("error", s.failed)]
                    .map(|(outcome, n)| ([("tool", s.name.as_str()), ("outcome", outcome)], n))
            })
            .collect();
        f.counter(
            "tool_calls_total",
            "Tool calls, by outcome.",
            calls.iter().map(|(l, n)| (&l[..], *n)),
        )?;
        f.counter(
            "tool_cpu_seconds_total",
            "CPU time tool calls used on the threads that ran them.",
            names
                .iter()
                .zip(&self.tools)
                .map(|(l, s)| (&l[..], s.cpu_nanos as f64 / 1e9)),
        )?;
        f.counter(
            "tool_tokens_total",
            "Budget tokens tool calls kept.",
            names
                .iter()
                .zip(&self.tools)
                .map(|(l, s)| (&l[..], s.tokens)),
        )?;
        f.histogram(
            "tool_call_seconds",
            "Wall-clock time per tool call, budget waits included.",
            names
                .iter()
                .zip(&self.tools)
                .map(|(l, s)| (&l[..], &s.time)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_names_counter_families_as_their_samples() {
        let om = "# HELP warmlane_x_jobs Jobs.\n# TYPE warmlane_x_jobs counter\nwarmlane_x_jobs_total{lane=\"a\"} 3\n# HELP warmlane_g A gauge.\n# TYPE warmlane_g gauge\nwarmlane_g 1.5\n# EOF\n";
        assert_eq!(
            prometheus_text(om),
            "# HELP warmlane_x_jobs_total Jobs.\n# TYPE warmlane_x_jobs_total counter\nwarmlane_x_jobs_total{lane=\"a\"} 3\n# HELP warmlane_g A gauge.\n# TYPE warmlane_g gauge\nwarmlane_g 1.5\n"
        );
    }

    #[test]
    fn an_accept_header_chooses_the_format() {
        assert_eq!(Format::for_accept(None), Format::Prometheus);
        assert_eq!(
            Format::for_accept(Some(
                "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
            )),
            Format::OpenMetrics
        );
        assert_eq!(Format::for_accept(Some("text/plain")), Format::Prometheus);
    }
}
