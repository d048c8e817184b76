//! `warmlane jobs`: the document jobs replicas share through Redis — list
//! them, show one, follow its records, cancel it.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use warmlane_host::SharedJobs;

use crate::cli::SharedArgs;

/// `warmlane jobs`' options.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    pub(crate) shared: SharedArgs,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// One JSON line per job, newest first.
    List,
    /// A job's state: pages, batches, where each stands.
    Show {
        /// The job's id.
        id: String,
    },
    /// A job's records (chunks, page errors) as NDJSON, in order, following
    /// the job until it is done.
    Chunks {
        /// The job's id.
        id: String,
    },
    /// Cancel a job: its batches not yet started are dropped.
    Cancel {
        /// The job's id.
        id: String,
    },
}

pub(crate) fn main(args: Args) -> Result<ExitCode> {
    let config = args.shared.load()?;
    let jobs = SharedJobs::new(&config)?;
    let mut out = std::io::stdout().lock();
    match args.command {
        Command::List => {
            for job in jobs.list()? {
                writeln!(out, "{job}")?;
            }
        }
        Command::Show { id } => match jobs.show(&id)? {
            Some(state) => writeln!(out, "{state}")?,
            None => return not_found(&id),
        },
        Command::Chunks { id } => {
            let mut failed = None;
            let found = jobs.chunks(&id, &mut |line| {
                if failed.is_none()
                    && let Err(e) = writeln!(out, "{line}")
                {
                    failed = Some(e);
                }
            })?;
            if let Some(e) = failed {
                return Err(e.into());
            }
            if !found {
                return not_found(&id);
            }
        }
        Command::Cancel { id } => match jobs.cancel(&id)? {
            Some(true) => writeln!(out, "{{\"job\":\"{id}\",\"cancelled\":true}}")?,
            Some(false) => writeln!(out, "{{\"job\":\"{id}\",\"cancelled\":false}}")?,
            None => return not_found(&id),
        },
    }
    Ok(ExitCode::SUCCESS)
}

fn not_found(id: &str) -> Result<ExitCode> {
    eprintln!("warmlane: no job `{id}` (never submitted, expired, or its results were dropped)");
    Ok(ExitCode::from(1))
}
