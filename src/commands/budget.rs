//! `warmlane budget`: look at the configured budgets, or draw from one by
//! hand (to see what a call would wait, or to load-test a shared budget).

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::json;
use warmlane_host::{Budget, Config, Cost, Lane, WaitLimit};

use crate::args::Args;

pub(crate) fn main(raw: &[String]) -> Result<ExitCode> {
    let args = Args::parse(
        raw,
        &["config", "redis", "cost", "lane", "count", "for"],
        &[],
    )?;
    let mut config = super::load_config(args.value("config"))?;
    if let Some(url) = args.value("redis") {
        config.redis.url = Some(url.to_string());
        config.validate()?;
    }
    match args.positional.first().map(String::as_str) {
        Some("show") => show(&config),
        Some("draw") => {
            let Some(name) = args.positional.get(1) else {
                bail!(
                    "usage: warmlane budget draw NAME [--cost N] [--lane light|heavy] [--count K] [--for SECONDS]"
                );
            };
            let lane = match args.value("lane").unwrap_or("heavy") {
                "light" => Lane::Light,
                "heavy" => Lane::Heavy,
                other => bail!("--lane takes `light` or `heavy`, not `{other}`"),
            };
            let cost = Cost(args.number("cost")?.unwrap_or(1));
            let count: Option<u64> = args.number("count")?;
            let seconds: Option<f64> = args.number("for")?;
            if count.is_none() && seconds.is_none() {
                bail!("say how much to draw: --count K, --for SECONDS, or both");
            }
            draw(&config, name, lane, cost, count, seconds)
        }
        _ => bail!("usage: warmlane budget show | warmlane budget draw NAME ..."),
    }
}

/// One line per budget: its size and its levels now.
fn show(config: &Config) -> Result<ExitCode> {
    let mut code = ExitCode::SUCCESS;
    for name in config.budgets.keys() {
        let budget = Budget::from_config(name, config)?;
        let (capacity, burst, period, light_share) = budget.size();
        let mut line = json!({
            "budget": name, "backend": budget.stats().backend, "capacity": capacity,
            "burst": burst, "period_secs": period.as_secs_f64(), "light_share": light_share,
        });
        match budget.levels() {
            Ok((shared, reserved)) => {
                line["shared"] = json!(shared);
                line["reserved"] = json!(reserved);
            }
            Err(e) => {
                line["error"] = json!(e.to_string());
                code = ExitCode::FAILURE;
            }
        }
        println!("{line}");
    }
    Ok(code)
}

/// Draws `cost` again and again, one line per grant, until `count` grants
/// or `seconds` have passed.
fn draw(
    config: &Config,
    name: &str,
    lane: Lane,
    cost: Cost,
    count: Option<u64>,
    seconds: Option<f64>,
) -> Result<ExitCode> {
    let budget = Budget::from_config(name, config)?;
    let never = AtomicBool::new(false);
    let start = Instant::now();
    let until = seconds.map(|s| start + Duration::from_secs_f64(s));
    let mut drawn = 0;
    while count.is_none_or(|c| drawn < c) && until.is_none_or(|u| Instant::now() < u) {
        let asked = Instant::now();
        let grant = budget.acquire(lane, cost, WaitLimit::UntilCancelled(&never))?;
        println!(
            "{}",
            json!({
                "budget": name, "lane": lane.as_str(), "cost": grant.cost().0,
                "waited_ms": asked.elapsed().as_secs_f64() * 1e3,
                "granted_at_us": grant.granted_at_us(), "fallback": grant.from_fallback(),
            })
        );
        drawn += 1;
    }
    Ok(ExitCode::SUCCESS)
}
