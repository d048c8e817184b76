//! `warmlane serve`: the host over HTTP until SIGTERM or Ctrl-C.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use warmlane_host::config::Role;
use warmlane_host::{Host, Lane};

use crate::args::Args;

pub(crate) fn main(raw: &[String]) -> Result<ExitCode> {
    let args = Args::parse(raw, &["config", "listen", "redis", "role", "lanes"], &[])?;
    let mut config = super::load_config(args.value("config"))?;
    if let Some(listen) = args.value("listen") {
        config.server.listen = listen.to_string();
    }
    if let Some(url) = args.value("redis") {
        config.redis.url = Some(url.to_string());
    }
    match args.value("role") {
        None => {}
        Some("all") => config.server.role = Role::All,
        Some("api") => config.server.role = Role::Api,
        Some("worker") => config.server.role = Role::Worker,
        Some(other) => bail!("--role takes `all`, `api` or `worker`, not `{other}`"),
    }
    if let Some(lanes) = args.value("lanes") {
        config.server.lanes = lanes
            .split(',')
            .map(|l| match l.trim() {
                "light" => Ok(Lane::Light),
                "heavy" => Ok(Lane::Heavy),
                other => bail!("--lanes takes `light`, `heavy` or `light,heavy`, not `{other}`"),
            })
            .collect::<Result<_>>()?;
    }
    config.validate()?;
    // A replica warms only the instances its role calls: an API replica
    // parses nothing, a worker calls no tools.
    let pipeline = [
        config.pipeline.parser.clone(),
        config.pipeline.chunker.clone(),
    ];
    match config.server.role {
        Role::All => {}
        Role::Api => {
            for name in pipeline {
                config.components.entry(name).or_default().warm = Some(0);
            }
        }
        Role::Worker => {
            for name in pipeline {
                let warm = config.limits_for(&name).warm;
                config.components.entry(name).or_default().warm = Some(warm);
            }
            config.instances.warm = 0;
        }
    }
    let listen = config.server.listen.clone();
    let config_role = config.server.role.as_str();
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
        eprintln!(
            "warmlane: listening on http://{addr} (role {})",
            config_role
        );
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
