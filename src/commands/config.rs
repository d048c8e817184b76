//! `warmlane config`: check a configuration file, and print the
//! configuration in effect with every default filled in — and where each
//! value came from.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use warmlane_host::Config;

use crate::cli::SharedArgs;
use crate::layers;

/// `warmlane config`'s options.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Check FILE (unknown keys, wrong types, values that cannot work) and
    /// print the configuration it makes, defaults included, as TOML.
    Check {
        /// The TOML configuration file.
        file: PathBuf,
    },
    /// Print the configuration in effect — the defaults, `--config`, the
    /// WARMLANE_ environment variables and `--redis`, in that order — each
    /// value followed by where it came from.
    Show {
        #[command(flatten)]
        shared: SharedArgs,
    },
}

pub(crate) fn main(args: Args) -> Result<ExitCode> {
    match args.command {
        Command::Check { file } => {
            let config = Config::from_file(&file)?;
            print!("{}", effective(&config)?);
            eprintln!("warmlane: {} is a valid configuration", file.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Show { shared } => {
            let layers = shared.layers()?;
            let config = hidden(&layers.config()?);
            print!("{}", layers::show(&config, &layers)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The configuration as TOML, with any password in the Redis URL hidden.
fn effective(config: &Config) -> Result<String> {
    toml::to_string(&hidden(config)).context("cannot write the configuration as TOML")
}

/// `config` with any password in the Redis URL hidden.
fn hidden(config: &Config) -> Config {
    let mut config = config.clone();
    if let Some(url) = &mut config.redis.url {
        *url = hide_password(url);
    }
    config
}

/// `redis://user:secret@host` → `redis://user:***@host`.
fn hide_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((credentials, host)) = rest.rsplit_once('@') else {
        return url.to_string();
    };
    match credentials.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            hide_password("redis://:s3cret@redis:6379/0"),
            "redis://:***@redis:6379/0"
        );
        assert_eq!(
            hide_password("rediss://app:p@ss@redis"),
            "rediss://app:***@redis"
        );
        assert_eq!(hide_password("redis://redis:6379"), "redis://redis:6379");
    }

    #[test]
    fn the_defaults_print_and_read_back() {
        let text = effective(&Config::default()).unwrap();
        let back: Config = toml::from_str(&text).unwrap();
        assert_eq!(effective(&back).unwrap(), text);
    }
}
