//! The command line: every command, its options and their help. Each
//! command's own options are declared beside it, in `commands/`.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use warmlane_host::{Config, Lane};

use crate::commands;

const AFTER_HELP: &str = "\
Logs go to stderr; set WARMLANE_LOG=debug|info|warn|error (default warn), and
WARMLANE_LOG_FORMAT=json for one JSON object per line.";

/// Run AI-service workers (PDF parsing, chunking, agent tools) as pre-warmed
/// WebAssembly components.
#[derive(Debug, Parser)]
#[command(name = "warmlane", version, after_help = AFTER_HELP, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Parse and chunk PDFs; NDJSON on stdout.
    Run(commands::run::Args),
    /// List the tools and their input schemas, or call one.
    Tools(commands::tools::Args),
    /// Serve HTTP (documents, tools, sessions, MCP at /mcp, /metrics,
    /// /livez, /readyz) until SIGTERM; with Redis, as one replica of several.
    Serve(commands::serve::Args),
    /// The document jobs replicas share through Redis.
    Jobs(commands::jobs::Args),
    /// Serve the tools to an MCP client on stdin/stdout.
    Mcp(commands::mcp::Args),
    /// Look at the budgets, or draw from one by hand.
    Budget(commands::budget::Args),
    /// Compile plugins to native code ahead of time, for a host that then
    /// starts without compiling them.
    Compile(commands::compile::Args),
    /// Check a configuration file and print the configuration in effect.
    Config(commands::config::Args),
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// The options that say where the configuration is.
#[derive(Debug, Clone, Args)]
pub(crate) struct ConfigArgs {
    /// TOML configuration (every value has a default).
    #[arg(long, value_name = "FILE", global = true)]
    pub(crate) config: Option<PathBuf>,
}

impl ConfigArgs {
    /// The configuration from `--config`, or the defaults.
    pub(crate) fn load(&self) -> Result<Config> {
        match &self.config {
            Some(p) => Config::from_file(p),
            None => Ok(Config::default()),
        }
    }
}

/// `--config` and `--redis`.
#[derive(Debug, Clone, Args)]
pub(crate) struct SharedArgs {
    #[command(flatten)]
    pub(crate) config: ConfigArgs,
    /// Redis URL, for what replicas share (overrides `redis.url`).
    #[arg(long, value_name = "URL", global = true)]
    pub(crate) redis: Option<String>,
}

impl SharedArgs {
    /// The configuration, with `--redis` applied and checked.
    pub(crate) fn load(&self) -> Result<Config> {
        let mut config = self.config.load()?;
        if let Some(url) = &self.redis {
            config.redis.url = Some(url.clone());
        }
        config.validate()?;
        Ok(config)
    }
}

/// A lane, on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum LaneArg {
    Light,
    Heavy,
}

impl From<LaneArg> for Lane {
    fn from(lane: LaneArg) -> Lane {
        match lane {
            LaneArg::Light => Lane::Light,
            LaneArg::Heavy => Lane::Heavy,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
