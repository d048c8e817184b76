//! `warmlane tools`: list the tools, or call one.

use std::process::ExitCode;

use anyhow::{Result, bail};
use serde_json::json;
use warmlane_host::{Host, SessionId};

use crate::args::Args;

pub(crate) fn main(raw: &[String]) -> Result<ExitCode> {
    let args = Args::parse(raw, &["config", "session"], &[])?;
    let config = super::load_config(args.value("config"))?;
    match args.positional.first().map(String::as_str) {
        Some("list") => {
            let host = Host::new(config)?;
            for tool in host.tools() {
                println!(
                    "{}",
                    json!({ "name": tool.name, "description": tool.description, "input_schema": tool.input_schema, "component": tool.component })
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Some("call") => {
            let (Some(name), Some(input)) = (args.positional.get(1), args.positional.get(2)) else {
                bail!("usage: warmlane tools call NAME JSON [--session ID]");
            };
            // Without --session, the call gets a session of its own, which
            // lives as long as this process (or, with Redis, its time to live).
            let host = Host::new(config)?;
            let session = match args.value("session") {
                Some(id) => {
                    let id = SessionId::parse(id).map_err(anyhow::Error::msg)?;
                    host.open_session(&id)?;
                    id
                }
                None => host.create_session()?,
            };
            match host.call_tool(name, input, Some(&session)) {
                Ok(output) => {
                    println!("{output}");
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("warmlane: tool `{name}`: {e}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        _ => bail!("usage: warmlane tools list | warmlane tools call NAME JSON"),
    }
}
