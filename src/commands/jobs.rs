//! `warmlane jobs`: the document jobs replicas share through Redis — list
//! them, show one, follow its records, cancel it.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Result, bail};
use warmlane_host::SharedJobs;

use crate::args::Args;

pub(crate) fn main(raw: &[String]) -> Result<ExitCode> {
    let args = Args::parse(raw, &["config", "redis"], &[])?;
    let mut config = super::load_config(args.value("config"))?;
    if let Some(url) = args.value("redis") {
        config.redis.url = Some(url.to_string());
    }
    config.validate()?;
    let jobs = SharedJobs::new(&config)?;
    let mut out = std::io::stdout().lock();
    let positional: Vec<&str> = args.positional.iter().map(String::as_str).collect();
    match positional.as_slice() {
        ["list"] => {
            for job in jobs.list()? {
                writeln!(out, "{job}")?;
            }
        }
        ["show", id] => match jobs.show(id)? {
            Some(state) => writeln!(out, "{state}")?,
            None => return not_found(id),
        },
        ["chunks", id] => {
            let mut failed = None;
            let found = jobs.chunks(id, &mut |line| {
                if failed.is_none()
                    && let Err(e) = writeln!(out, "{line}")
                {
                    failed = Some(e);
                }
            })?;
            if let Some(e) = failed {
                return Err(e.into());
            }
            if !found {
                return not_found(id);
            }
        }
        ["cancel", id] => match jobs.cancel(id)? {
            Some(true) => writeln!(out, "{{\"job\":\"{id}\",\"cancelled\":true}}")?,
            Some(false) => writeln!(out, "{{\"job\":\"{id}\",\"cancelled\":false}}")?,
            None => return not_found(id),
        },
        _ => bail!(
            "`jobs` takes `list`, `show ID`, `chunks ID` or `cancel ID` (with --redis URL or --config FILE); run `warmlane help`"
        ),
    }
    Ok(ExitCode::SUCCESS)
}

fn not_found(id: &str) -> Result<ExitCode> {
    eprintln!("warmlane: no job `{id}` (never submitted, expired, or its results were dropped)");
    Ok(ExitCode::from(1))
}
