//! The host's metrics in Prometheus' text format, and its readiness.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use warmlane_host::{Config, Host};

use crate::redis_server::RedisServer;
use crate::serve::{Serve, request};
use crate::support;

/// Checks `text` against the exposition format as Prometheus reads it, and
/// returns every sample by its name and labels.
fn parse(text: &str) -> BTreeMap<String, f64> {
    let mut families: BTreeMap<String, String> = BTreeMap::new();
    let mut helped = BTreeSet::new();
    let mut samples = BTreeMap::new();
    let mut buckets: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap();
            assert!(helped.insert(name.to_string()), "HELP twice for {name}");
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let (name, kind) = (parts.next().unwrap(), parts.next().unwrap());
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            assert!(helped.contains(name), "TYPE before HELP: {line}");
            assert!(
                families
                    .insert(name.to_string(), kind.to_string())
                    .is_none(),
                "{line}"
            );
        } else {
            let (series, value) = line.rsplit_once(' ').expect("a sample is `series value`");
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("bad value: {line}"));
            let name = series.split('{').next().unwrap();
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{line}"
            );
            let family = [
                name,
                name.trim_end_matches("_bucket"),
                name.trim_end_matches("_sum"),
                name.trim_end_matches("_count"),
            ]
            .into_iter()
            .find(|f| families.contains_key(*f))
            .unwrap_or_else(|| panic!("sample of no declared family: {line}"));
            if families[family] == "counter" {
                assert!(name.ends_with("_total") && value >= 0.0, "{line}");
            }
            if name.ends_with("_bucket") {
                // `le` may come anywhere among the labels.
                let inner = series[name.len()..]
                    .trim_start_matches('{')
                    .trim_end_matches('}');
                let (mut others, mut le) = (Vec::new(), None);
                for label in inner.split(',') {
                    match label.strip_prefix("le=") {
                        Some(v) => le = Some(v.trim_matches('"').to_string()),
                        None => others.push(label),
                    }
                }
                let labels = format!("{name}{{{}}}", others.join(","));
                let le = le.unwrap_or_else(|| panic!("a bucket without le: {line}"));
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap()
                };
                buckets
                    .entry(labels.to_string())
                    .or_default()
                    .push((le, value));
            }
            assert!(
                samples.insert(series.to_string(), value).is_none(),
                "twice: {line}"
            );
        }
    }
    for (series, b) in &buckets {
        assert!(
            b.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
            "{series}: {b:?}"
        );
        assert_eq!(b.last().unwrap().0, f64::INFINITY, "{series}");
    }
    samples
}

#[test]
fn metrics_count_what_the_host_did_in_prometheus_text_format() {
    let config = Config::from_toml(
        "[budgets.calls]\ncapacity = 100\nburst = 100\n[components.text-stats]\nbudget = \"calls\"\n",
    )
    .unwrap();
    let host = Host::new(config).unwrap();
    assert!(host.wait_warm(Duration::from_secs(60)));
    let doc = support::open("en-lppl.pdf", None);
    let summary = host
        .process(doc, &host.document_options(), "m", &mut |_| {})
        .unwrap();
    host.call_tool("text-stats", r#"{"text":"a b"}"#, None)
        .unwrap();
    host.call_tool("text-stats", r#"{"text":"c"}"#, None)
        .unwrap();
    host.call_tool("text-stats", r#"{"nope":1}"#, None)
        .unwrap_err();

    let m = parse(&host.metrics());
    let get = |series: &str| *m.get(series).unwrap_or_else(|| panic!("no {series}"));
    assert_eq!(get("warmlane_documents_total"), 1.0);
    assert_eq!(get("warmlane_pages_processed_total"), 8.0);
    assert_eq!(get("warmlane_chunks_total"), summary.chunks as f64);
    assert_eq!(
        get(r#"warmlane_tool_calls_total{tool="text-stats",outcome="ok"}"#),
        2.0
    );
    assert_eq!(
        get(r#"warmlane_tool_calls_total{tool="text-stats",outcome="error"}"#),
        1.0
    );
    // Input the schema refuses is turned away before it costs anything.
    assert_eq!(get(r#"warmlane_tool_tokens_total{tool="text-stats"}"#), 2.0);
    assert_eq!(
        get(r#"warmlane_tool_call_seconds_count{tool="text-stats"}"#),
        3.0
    );
    assert_eq!(
        get(r#"warmlane_budget_tokens_drawn_total{budget="calls",lane="light"}"#),
        2.0
    );
    assert_eq!(
        get(r#"warmlane_lane_jobs_total{lane="light",outcome="admitted"}"#),
        1.0
    );
    assert_eq!(get(r#"warmlane_lane_batches_total{lane="light"}"#), 1.0);
    assert_eq!(
        get(r#"warmlane_lane_wait_seconds_count{lane="light"}"#),
        1.0
    );
    assert!(get(r#"warmlane_pool_takes_total{component="pdf-pages",result="hit"}"#) >= 1.0);
    assert_eq!(
        get(r#"warmlane_pool_warm_target{component="chunker"}"#),
        2.0
    );
    assert_eq!(
        get(r#"warmlane_budget_reachable{budget="calls",backend="memory"}"#),
        1.0
    );
}

#[test]
fn readiness_follows_redis_under_fail_closed() {
    let mut server = RedisServer::start();
    let config = Config::from_toml(&format!(
        "[redis]\nurl = \"{}\"\ntimeout_ms = 200\n[budgets.pages]\ncapacity = 10\nburst = 10\n",
        server.url()
    ))
    .unwrap();
    let host = Host::new(config).unwrap();
    assert!(host.wait_warm(Duration::from_secs(60)));
    assert!(host.readiness().is_ready(), "{:?}", host.readiness());
    server.stop();
    let r = host.readiness();
    assert!(!r.is_ready());
    assert!(
        r.not_ready.iter().any(|w| w.contains("budget `pages`")),
        "{r:?}"
    );
    assert!(r.not_ready.iter().any(|w| w.contains("sessions")), "{r:?}");
    server.restart();
    assert!(host.readiness().is_ready(), "{:?}", host.readiness());
}

/// The families a scrape declares, by name, with their types; `text` in
/// Prometheus' 0.0.4 format is checked by [`parse`] first.
fn families(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|rest| {
            let (name, kind) = rest.split_once(' ').unwrap();
            (name.to_string(), kind.to_string())
        })
        .collect()
}

/// The series the README documents: name, type, and which servers serve it.
fn documented() -> Vec<(String, String, String)> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    readme
        .lines()
        .filter(|l| l.starts_with("| `warmlane_"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (
                cells[1].trim_matches('`').to_string(),
                cells[2].to_string(),
                cells[4].to_string(),
            )
        })
        .collect()
}

/// `/metrics` in both formats: the 0.0.4 text's families, checked, and
/// the OpenMetrics text's, with each counter named as in 0.0.4.
fn scrape(server: &Serve) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let plain = server.get("/metrics");
    assert_eq!(
        plain.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let plain = String::from_utf8(plain.body).unwrap();
    parse(&plain);
    let om = request(
        &server.addr,
        "GET",
        "/metrics",
        &[(
            "Accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )],
        b"",
    );
    assert_eq!(
        om.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    let om = String::from_utf8(om.body).unwrap();
    assert!(om.ends_with("# EOF\n"), "{om}");
    let om_families = families(&om)
        .into_iter()
        .map(|(name, kind)| match kind.as_str() {
            "counter" => (format!("{name}_total"), kind),
            _ => (name, kind),
        })
        .collect();
    (families(&plain), om_families)
}

#[test]
fn metrics_serves_every_documented_series() {
    let docs = documented();
    assert!(docs.len() > 40, "{docs:?}");
    // A server on its own, with a budget, before and after some work.
    let alone = Serve::start(
        "[budgets.calls]\ncapacity = 100\nburst = 100\n[components.text-stats]\nbudget = \"calls\"\n",
    );
    alone.wait_ready();
    let before = scrape(&alone);
    let r = alone.post(
        "/v1/tools/text-stats",
        "application/json",
        br#"{"text":"a b"}"#,
    );
    assert_eq!(r.status, 200);
    let pdf = std::fs::read(support::data("en-lppl.pdf")).unwrap();
    let r = alone.post("/v1/documents", "application/pdf", &pdf);
    assert_eq!(r.status, 202);
    alone.wait_done(r.json()["job"].as_str().unwrap());
    let after = scrape(&alone);
    assert_eq!(before.0, after.0, "the same families before and after");
    // One with Redis: the API and workers of every lane in one replica.
    let redis = RedisServer::start();
    let shared = Serve::start(&format!(
        "[redis]\nurl = \"{}\"\n[budgets.calls]\ncapacity = 100\nburst = 100\n",
        redis.url()
    ));
    shared.wait_ready();
    let with_redis = scrape(&shared);
    for (scraped, what) in [
        (&after.0, "alone"),
        (&after.1, "alone, OpenMetrics"),
        (&with_redis.0, "with Redis"),
        (&with_redis.1, "with Redis, OpenMetrics"),
    ] {
        let redis = what.starts_with("with Redis");
        for (name, kind, served_by) in &docs {
            let expected = match served_by.as_str() {
                "every replica" => true,
                "without Redis" => !redis,
                _ => redis,
            };
            if expected {
                assert_eq!(
                    scraped.get(name),
                    Some(kind),
                    "{name} ({kind}, {served_by}) {what}"
                );
            }
        }
        for name in scraped.keys() {
            assert!(
                docs.iter().any(|(n, _, _)| n == name),
                "{name} is served ({what}) but not in the README's table"
            );
        }
    }
}
