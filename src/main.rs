//! The `warmlane` command: run documents through warm WebAssembly workers,
//! call agent tools, serve them over HTTP and MCP, and look at the budgets
//! and jobs they share.

mod cli;
mod commands;
mod layers;
mod progress;
mod telemetry;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

/// The static (musl) build's allocator: musl's own is slow under threads.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // `--help` and `--version` are not errors; a usage error exits 2.
            let _ = e.print();
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    // The command loads the configuration again and reports any error in
    // it (`ConfigArgs` keeps the file's text, so a pipe is read once).
    let config = cli.command.config().and_then(|c| c.load().ok());
    let telemetry = telemetry::init(config.as_ref().map(|c| &c.telemetry));
    let result = match cli.command {
        Command::Run(args) => commands::run::main(args),
        Command::Tools(args) => commands::tools::main(args),
        Command::Serve(args) => commands::serve::main(args),
        Command::Jobs(args) => commands::jobs::main(args),
        Command::Mcp(args) => commands::mcp::main(args),
        Command::Budget(args) => commands::budget::main(args),
        Command::Component(args) => commands::component::main(args),
        Command::Compile(args) => commands::compile::main(args),
        Command::Config(args) => commands::config::main(args),
        Command::Completions { shell } => commands::completions(shell),
    };
    drop(telemetry);
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("warmlane: {e:#}");
            ExitCode::from(2)
        }
    }
}
