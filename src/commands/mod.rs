//! One module per subcommand.

pub(crate) mod budget;
pub(crate) mod jobs;
pub(crate) mod mcp;
pub(crate) mod run;
pub(crate) mod serve;
pub(crate) mod tools;

use std::path::Path;

use anyhow::Result;
use warmlane_host::Config;

/// The configuration from `--config`, or the defaults.
pub(crate) fn load_config(path: Option<&str>) -> Result<Config> {
    match path {
        Some(p) => Config::from_file(Path::new(p)),
        None => Ok(Config::default()),
    }
}
