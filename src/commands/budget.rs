//! `warmlane budget`: look at the configured budgets, or draw from one by
//! hand (to see what a call would wait, or to load-test a shared budget).

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::json;
use warmlane_host::{Budget, Config, Cost, Lane, WaitLimit};

use crate::cli::{LaneArg, SharedArgs};

/// `warmlane budget`'s options.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    pub(crate) shared: SharedArgs,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// One JSON line per budget: its size and its tokens now.
    Show,
    /// Draw by hand, one JSON line per grant (to see what a call would wait,
    /// or to load-test a shared budget).
    #[command(group(clap::ArgGroup::new("how_much").required(true).multiple(true).args(["count", "seconds"])))]
    Draw {
        /// The budget's name.
        name: String,
        /// Tokens per draw.
        #[arg(long, default_value_t = 1, value_name = "N")]
        cost: u64,
        /// The lane drawing.
        #[arg(long, value_enum, default_value = "heavy")]
        lane: LaneArg,
        /// Stop after this many grants.
        #[arg(long, value_name = "K")]
        count: Option<u64>,
        /// Stop after this many seconds.
        #[arg(long = "for", value_name = "SECONDS")]
        seconds: Option<f64>,
    },
}

pub(crate) fn main(args: Args) -> Result<ExitCode> {
    let config = args.shared.load()?;
    match args.command {
        Command::Show => show(&config),
        Command::Draw {
            name,
            cost,
            lane,
            count,
            seconds,
        } => draw(&config, &name, lane.into(), Cost(cost), count, seconds),
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
