//! Budgets shared through a real Redis by separate `warmlane` processes.

use std::process::{Command, Stdio};

use crate::redis_server::RedisServer;
use crate::support;

/// Three processes draw from one Redis budget as fast as it lets them,
/// through a `SCRIPT FLUSH` mid-run: no window of one period admits more
/// than capacity + burst, and together they get at least 95% of what the
/// budget allows.
#[test]
fn three_processes_share_one_budget_without_overspending_it() {
    let server = RedisServer::start();
    let dir = support::scratch("shared-budget");
    let config = dir.join("warmlane.toml");
    let (capacity, burst, period_us) = (100.0, 20.0, 1_000_000i64);
    std::fs::write(
        &config,
        format!(
            "[budgets.pages]\ncapacity = {capacity}\nburst = {burst}\nperiod_secs = 1\nlight_share = 0.2\n\
             [redis]\nurl = \"{}\"\nkey_prefix = \"contention\"\n",
            server.url()
        ),
    )
    .unwrap();
    let children: Vec<_> = [("1", "heavy"), ("3", "heavy"), ("4", "light")]
        .iter()
        .map(|(cost, lane)| {
            Command::new(env!("CARGO_BIN_EXE_warmlane"))
                .args([
                    "budget", "draw", "pages", "--for", "5", "--cost", cost, "--lane", lane,
                ])
                .arg("--config")
                .arg(&config)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start warmlane")
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_secs(2));
    server.command(&["SCRIPT", "FLUSH"]);
    let mut grants: Vec<(i64, f64)> = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for line in String::from_utf8(out.stdout).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["fallback"], false);
            grants.push((
                v["granted_at_us"].as_i64().unwrap(),
                v["cost"].as_f64().unwrap(),
            ));
        }
    }
    grants.sort_by_key(|g| g.0);
    let (mut from, mut sum, mut most) = (0, 0.0, 0.0f64);
    for &(t, cost) in &grants {
        sum += cost;
        while grants[from].0 < t - period_us {
            sum -= grants[from].1;
            from += 1;
        }
        most = most.max(sum);
    }
    assert!(
        most <= capacity + burst,
        "{most} tokens granted within one period; the budget allows {}",
        capacity + burst
    );
    let span = (grants.last().unwrap().0 - grants[0].0) as f64 / period_us as f64;
    let allowed = burst + capacity * span;
    let total: f64 = grants.iter().map(|g| g.1).sum();
    assert!(
        total >= 0.95 * allowed,
        "{total} tokens granted over {span:.2} periods; the budget allowed {allowed}"
    );
    eprintln!(
        "{} grants, {total} tokens over {span:.2} s: {:.1}% of the budget, busiest period {most} of {}",
        grants.len(),
        100.0 * total / allowed,
        capacity + burst
    );
}
