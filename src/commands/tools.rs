//! `warmlane tools`: list the tools, or call one.

use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;
use warmlane_host::{Host, SessionId};

use crate::cli::ConfigArgs;

/// `warmlane tools`' options.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    pub(crate) config: ConfigArgs,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// One JSON line per tool: name, description, input schema, component.
    List,
    /// Call a tool once; its output on stdout.
    Call {
        /// The tool's name.
        name: String,
        /// Its input, as JSON text.
        input: String,
        /// Continue this session (else the call gets a session of its own).
        #[arg(long, value_name = "ID")]
        session: Option<String>,
    },
}

pub(crate) fn main(args: Args) -> Result<ExitCode> {
    let config = args.config.load()?;
    match args.command {
        Command::List => {
            let host = Host::new(config)?;
            for tool in host.tools() {
                println!(
                    "{}",
                    json!({ "name": tool.name, "description": tool.description, "input_schema": tool.input_schema, "component": tool.component })
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Call {
            name,
            input,
            session,
        } => call(&Host::new(config)?, &name, &input, session.as_deref()),
    }
}

/// Calls tool `name` with `input` in session `session` (continued), or in a
/// session of its own (which lives as long as this process or, with Redis,
/// its time to live); the output on stdout, or the error on stderr and a
/// failing exit code.
pub(crate) fn call(
    host: &Host,
    name: &str,
    input: &str,
    session: Option<&str>,
) -> Result<ExitCode> {
    let session = match session {
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
