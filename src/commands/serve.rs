//! `warmlane serve`: the host over HTTP until SIGTERM or Ctrl-C.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use warmlane_host::Host;

use crate::args::Args;

pub(crate) fn main(raw: &[String]) -> Result<ExitCode> {
    let args = Args::parse(raw, &["config", "listen", "redis"], &[])?;
    let mut config = super::load_config(args.value("config"))?;
    if let Some(listen) = args.value("listen") {
        config.server.listen = listen.to_string();
    }
    if let Some(url) = args.value("redis") {
        config.redis.url = Some(url.to_string());
    }
    config.validate()?;
    let listen = config.server.listen.clone();
    // Components are compiled and checked before the port opens; the pools
    // warm in the background and /readyz says when they are.
    let host = Arc::new(Host::new(config)?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let addr = listener.local_addr()?;
        eprintln!("warmlane: listening on http://{addr}");
        warmlane_host::server::serve(host, listener, stop_signal()).await?;
        eprintln!("warmlane: stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// SIGTERM (what Kubernetes sends) or Ctrl-C.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
