//! `warmlane serve`: the host over HTTP until SIGTERM or Ctrl-C.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use warmlane_host::config::Role;
use warmlane_host::{Host, Lane};

use crate::cli::{LaneArg, SharedArgs};

/// `warmlane serve`'s options.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) shared: SharedArgs,
    /// Address to listen on (overrides `server.listen`; default 127.0.0.1:8080).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// What this replica does (overrides `server.role`): everything, the API
    /// only, or parsing only. `api` and `worker` need Redis.
    #[arg(long, value_enum)]
    role: Option<RoleArg>,
    /// The lanes a worker takes batches from (overrides `server.lanes`).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "LANE,...")]
    lanes: Option<Vec<LaneArg>>,
}

/// `--role`'s values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum RoleArg {
    All,
    Api,
    Worker,
}

pub(crate) fn main(args: Args) -> Result<ExitCode> {
    let mut layers = args.shared.layers()?;
    if let Some(listen) = args.listen {
        layers = layers.flag("--listen", "server.listen", listen.into());
    }
    if let Some(role) = args.role {
        let role = match role {
            RoleArg::All => "all",
            RoleArg::Api => "api",
            RoleArg::Worker => "worker",
        };
        layers = layers.flag("--role", "server.role", role.into());
    }
    if let Some(lanes) = args.lanes {
        let lanes: Vec<toml::Value> = lanes
            .into_iter()
            .map(|l| Lane::from(l).to_string().into())
            .collect();
        layers = layers.flag("--lanes", "server.lanes", lanes.into());
    }
    let mut config = layers.config()?;
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
