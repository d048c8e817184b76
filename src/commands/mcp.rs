//! `warmlane mcp`: the host's tools for an MCP client over stdin and
//! stdout, until the client closes the connection.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use warmlane_host::Host;

use crate::args::Args;

pub(crate) fn main(raw: &[String]) -> Result<ExitCode> {
    let args = Args::parse(raw, &["config", "redis"], &[])?;
    let mut config = super::load_config(args.value("config"))?;
    if let Some(url) = args.value("redis") {
        config.redis.url = Some(url.to_string());
    }
    config.validate()?;
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
