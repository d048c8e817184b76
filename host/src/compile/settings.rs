//! The engine settings that decide what compiled code looks like. The
//! host's engine starts from them, and `build.rs` precompiles the built-in
//! components with them, so what the binary embeds is exactly what the host
//! would have compiled. Nothing here may depend on the rest of the crate:
//! the build script includes this file on its own.

use wasmtime::Config;

/// The settings every compile of a warmlane component uses.
pub(crate) fn config() -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    // Compile with all cores; a component is compiled at most once per
    // machine (the built-ins never, at run time).
    config.parallel_compilation(true);
    config
}

/// The x86-64 CPU levels an artifact can be compiled for ahead of time,
/// beside `native` (the building machine's own features).
pub(crate) const CPU_LEVELS: &[(&str, &[&str])] = &[
    ("x86-64", &[]),
    (
        "x86-64-v2",
        &[
            "has_sse3",
            "has_ssse3",
            "has_sse41",
            "has_sse42",
            "has_popcnt",
        ],
    ),
    (
        "x86-64-v3",
        &[
            "has_sse3",
            "has_ssse3",
            "has_sse41",
            "has_sse42",
            "has_popcnt",
            "has_avx",
            "has_avx2",
            "has_bmi1",
            "has_bmi2",
            "has_fma",
            "has_lzcnt",
        ],
    ),
];

/// The settings for compiling ahead of time for CPU level `cpu` (`native`
/// or one of [`CPU_LEVELS`]), for another machine of this architecture and
/// operating system.
pub(crate) fn config_for_cpu(cpu: &str) -> Result<Config, String> {
    let mut config = config();
    if cpu == "native" {
        return Ok(config);
    }
    let Some((_, flags)) = CPU_LEVELS.iter().find(|(name, _)| *name == cpu) else {
        let known: Vec<&str> = CPU_LEVELS.iter().map(|(n, _)| *n).collect();
        return Err(format!(
            "unknown CPU level `{cpu}`; use native or one of {}",
            known.join(", ")
        ));
    };
    if !cfg!(target_arch = "x86_64") {
        return Err(format!("CPU level `{cpu}` is for x86-64 machines"));
    }
    // An explicit target turns off the detection of this machine's features;
    // the level's features are then enabled one by one.
    config
        .target(&target_lexicon_host())
        .map_err(|e| format!("{e}"))?;
    for flag in *flags {
        // SAFETY: this only decides which instructions the compiled code
        // may use. Whoever loads it checks the machine has them first:
        // wasmtime refuses an artifact whose ISA flags the loading CPU lacks
        // (and warmlane then compiles for that CPU instead).
        #[allow(unsafe_code)]
        unsafe {
            config.cranelift_flag_enable(flag);
        }
    }
    Ok(config)
}

/// This machine's target triple, as wasmtime spells it.
fn target_lexicon_host() -> String {
    format!(
        "{}-unknown-{}",
        std::env::consts::ARCH,
        std::env::consts::OS
    )
}
