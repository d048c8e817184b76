//! `warmlane compile`: plugins compiled to native code ahead of time, so a
//! host (a new pod, say) starts without compiling them.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;

/// `warmlane compile`'s options.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Writes NAME.DIGEST.cwasm beside each NAME.wasm (DIGEST names the component's \
bytes) and removes older ones of the same plugin. A host loading the plugin \
directory uses it when it matches the component's bytes and the host's \
engine, and compiles otherwise. One JSON line per plugin on stdout.")]
pub(crate) struct Args {
    /// A component (.wasm), or a plugin directory (every .wasm in it).
    #[arg(value_name = "FILE.wasm|DIR")]
    path: PathBuf,
    /// The CPUs the code is for: `native` (this machine's features), or an
    /// x86-64 level for a fleet of machines (x86-64, x86-64-v2, x86-64-v3).
    /// A host on a CPU without those features compiles at start instead.
    #[arg(long, default_value = "native")]
    cpu: String,
}

pub(crate) fn main(args: Args) -> Result<ExitCode> {
    for done in warmlane_host::precompile(&args.path, &args.cpu)? {
        println!(
            "{}",
            json!({
                "wasm": done.wasm, "cwasm": done.cwasm, "bytes": done.bytes,
                "compile_ms": done.took.as_millis() as u64, "removed": done.removed,
            })
        );
    }
    Ok(ExitCode::SUCCESS)
}
