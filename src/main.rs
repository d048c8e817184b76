//! The `warmlane` command: run documents through warm WebAssembly workers,
//! call agent tools, serve them over HTTP and MCP, and look at the budgets
//! and jobs they share.

mod cli;
mod commands;
mod layers;
mod progress;

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
    init_logging();
    let result = match cli.command {
        Command::Run(args) => commands::run::main(args),
        Command::Tools(args) => commands::tools::main(args),
        Command::Serve(args) => commands::serve::main(args),
        Command::Jobs(args) => commands::jobs::main(args),
        Command::Mcp(args) => commands::mcp::main(args),
        Command::Budget(args) => commands::budget::main(args),
        Command::Compile(args) => commands::compile::main(args),
        Command::Config(args) => commands::config::main(args),
        Command::Completions { shell } => commands::completions(shell),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("warmlane: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn init_logging() {
    let level = match std::env::var("WARMLANE_LOG")
        .unwrap_or_default()
        .to_ascii_lowercase()
        .as_str()
    {
        "trace" => tracing::Level::TRACE,
        "debug" => tracing::Level::DEBUG,
        "info" => tracing::Level::INFO,
        "error" => tracing::Level::ERROR,
        _ => tracing::Level::WARN,
    };
    let logs = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false);
    if std::env::var("WARMLANE_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")) {
        logs.json()
            .with_current_span(true)
            .with_span_list(true)
            .init();
    } else {
        logs.init();
    }
}
