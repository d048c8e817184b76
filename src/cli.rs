//! The command line: every command, its options and their help. Each
//! command's own options are declared beside it, in `commands/`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use warmlane_host::{Config, Lane};

use crate::commands;
use crate::layers::Layers;

const AFTER_HELP: &str = "\
Configuration: the defaults, then --config FILE, then WARMLANE_ environment
variables naming keys by their path (WARMLANE_REDIS__URL=redis://r:6379,
WARMLANE_LANES__HEAVY_FROM_PAGES=50), then flags; `warmlane config show`
prints what is in effect and where each value came from.

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
    /// Create a component project, check a component, or call one straight
    /// from its file.
    Component(commands::component::Args),
    /// Compile plugins to native code ahead of time, for a host that then
    /// starts without compiling them.
    Compile(commands::compile::Args),
    /// Check a configuration file, or show the configuration in effect and
    /// where each value came from.
    Config(commands::config::Args),
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

impl Command {
    /// Where the command reads its configuration, if it reads one (and
    /// so may send traces).
    pub(crate) fn config(&self) -> Option<&ConfigArgs> {
        match self {
            Command::Run(a) => Some(&a.config),
            Command::Tools(a) => Some(&a.config),
            Command::Serve(a) => Some(&a.shared.config),
            Command::Jobs(a) => Some(&a.shared.config),
            Command::Mcp(a) => Some(&a.shared.config),
            Command::Budget(a) => Some(&a.shared.config),
            Command::Component(a) => Some(&a.config),
            Command::Compile(_) | Command::Config(_) | Command::Completions { .. } => None,
        }
    }
}

/// The options that say where the configuration is.
#[derive(Debug, Clone, Args)]
pub(crate) struct ConfigArgs {
    /// TOML configuration (every value has a default).
    #[arg(long, value_name = "FILE", global = true)]
    pub(crate) config: Option<PathBuf>,
    /// The file's text, read the first time it is needed and kept: the
    /// configuration is loaded more than once (telemetry, then the command),
    /// and a pipe (`--config <(envsubst < w.toml)`, `/dev/stdin`) can be
    /// read only once.
    #[arg(skip)]
    text: OnceLock<String>,
}

impl ConfigArgs {
    /// The defaults, `--config` over them, and the `WARMLANE_` environment
    /// variables over both.
    pub(crate) fn layers(&self) -> Result<Layers> {
        let file = match &self.config {
            Some(path) => Some((path.as_path(), self.text(path)?)),
            None => None,
        };
        Layers::new(file)?.env(environment()?)
    }

    /// `--config`'s text, read once.
    fn text(&self, path: &Path) -> Result<&str> {
        if let Some(text) = self.text.get() {
            return Ok(text);
        }
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        Ok(self.text.get_or_init(|| text))
    }

    /// The configuration those layers make, checked.
    pub(crate) fn load(&self) -> Result<Config> {
        self.layers()?.config()
    }
}

/// The process's environment variables, refusing a `WARMLANE_` one that is
/// not UTF-8 (others are none of ours).
fn environment() -> Result<Vec<(String, String)>> {
    let mut vars = Vec::new();
    for (k, v) in std::env::vars_os() {
        let Some(k) = k.to_str() else { continue };
        match v.into_string() {
            Ok(v) => vars.push((k.to_string(), v)),
            Err(_) if k.starts_with("WARMLANE_") => {
                anyhow::bail!("environment variable {k}: not UTF-8")
            }
            Err(_) => {}
        }
    }
    Ok(vars)
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
    /// The configuration's layers, `--redis` on top.
    pub(crate) fn layers(&self) -> Result<Layers> {
        let layers = self.config.layers()?;
        Ok(match &self.redis {
            Some(url) => layers.flag("--redis", "redis.url", url.clone().into()),
            None => layers,
        })
    }

    /// The configuration those layers make, checked.
    pub(crate) fn load(&self) -> Result<Config> {
        self.layers()?.config()
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
