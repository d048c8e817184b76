//! `warmlane mcp`: the host's tools for an MCP client over stdin and
//! stdout, until the client closes the connection.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use warmlane_host::Host;

use crate::cli::SharedArgs;

/// `warmlane mcp`'s options.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) shared: SharedArgs,
}

pub(crate) fn main(args: Args) -> Result<ExitCode> {
    let config = args.shared.load()?;
    let host = Arc::new(Host::new(config)?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    // Stdout carries the protocol: everything else, logs included, goes
    // to stderr.
    runtime.block_on(warmlane_host::server::serve_mcp_stdio(host))?;
    // Tokio's stdin reader may still be blocked in a read; do not wait for it.
    runtime.shutdown_background();
    Ok(ExitCode::SUCCESS)
}
