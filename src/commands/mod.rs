//! One module per subcommand, each with its options.

pub(crate) mod budget;
pub(crate) mod compile;
pub(crate) mod component;
pub(crate) mod config;
pub(crate) mod jobs;
pub(crate) mod mcp;
pub(crate) mod run;
pub(crate) mod serve;
pub(crate) mod tools;

use std::process::ExitCode;

use anyhow::Result;
use clap::CommandFactory;

/// `warmlane completions SHELL`: the completion script on stdout.
pub(crate) fn completions(shell: clap_complete::Shell) -> Result<ExitCode> {
    let mut command = crate::cli::Cli::command();
    clap_complete::generate(shell, &mut command, "warmlane", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}

/// The name a component given by its file is loaded under: the file's,
/// without `.wasm` (as in a plugin directory).
pub(crate) fn component_name(file: &std::path::Path) -> String {
    file.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}
