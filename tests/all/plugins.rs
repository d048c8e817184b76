//! Components from a plugin directory: loaded beside the built-ins, and
//! checked against the world they claim, with errors that say what is wrong.

use std::time::Duration;

use warmlane_host::{Config, Host, WorldKind};

use crate::support;

fn host_with(dir: std::path::PathBuf) -> anyhow::Result<Host> {
    let mut config = Config::default();
    config.plugins.dir = Some(dir);
    config.instances.warm = 1;
    Host::new(config)
}

#[test]
fn a_plugin_tool_is_loaded_and_callable() {
    let host = host_with(support::plugin_dir("plugin-ok", &[("hostile", "my-tool")])).unwrap();
    assert!(host.wait_warm(Duration::from_secs(60)));
    let info = host
        .components()
        .iter()
        .find(|c| c.name == "my-tool")
        .unwrap()
        .clone();
    assert_eq!((info.world, info.builtin), (WorldKind::Tool, false));
    assert_eq!(
        host.call_tool("hostile", r#"{"do":"echo"}"#, None).unwrap(),
        r#"{"do":"echo"}"#
    );
}

#[test]
fn a_plugin_with_the_wrong_signatures_is_refused_by_name() {
    let err = host_with(support::plugin_dir(
        "plugin-bad",
        &[("mismatched", "bad-tool")],
    ))
    .err()
    .unwrap();
    let text = format!("{err:#}");
    assert!(
        text.contains("bad-tool") && text.contains("tool-component"),
        "{text}"
    );
}

#[test]
fn a_plugin_that_is_not_a_component_is_refused_by_name() {
    let dir = support::scratch("plugin-junk");
    std::fs::write(dir.join("junk.wasm"), b"\0asm\x01\0\0\0").unwrap();
    let text = format!("{:#}", host_with(dir).err().unwrap());
    assert!(
        text.contains("junk") && text.contains("not a valid WebAssembly component"),
        "{text}"
    );
}

#[test]
fn a_plugin_exporting_no_warmlane_world_is_refused() {
    // A page parser renamed is fine; a copy of a built-in under its own name clashes.
    let err = host_with(support::plugin_dir("plugin-clash", &[("notes", "notes")]))
        .err()
        .unwrap();
    assert!(format!("{err:#}").contains("already loaded"), "{err:#}");
}

#[test]
fn unknown_component_overrides_are_refused() {
    let config = Config::from_toml("[components.nonesuch]\nwarm = 1\n").unwrap();
    let err = Host::new(config).err().unwrap();
    assert!(format!("{err:#}").contains("nonesuch"), "{err:#}");
}

#[test]
fn a_plugin_tool_whose_schema_is_not_a_schema_is_refused_at_load() {
    // The hostile tool, its schema's type made one JSON Schema has not
    // (the same length, so the component stays whole).
    let mut wasm = std::fs::read(support::guest("hostile")).unwrap();
    let (from, to) = (
        br#"{"type":"object","properties""#,
        br#"{"type":"objekt","properties""#,
    );
    let at: Vec<usize> = (0..wasm.len().saturating_sub(from.len()))
        .filter(|&i| wasm[i..].starts_with(from))
        .collect();
    assert_eq!(at.len(), 1, "the schema is in the component once");
    wasm[at[0]..at[0] + to.len()].copy_from_slice(to);
    let dir = support::scratch("plugin-bad-schema");
    std::fs::write(dir.join("bad-schema.wasm"), &wasm).unwrap();
    let text = format!("{:#}", host_with(dir).err().unwrap());
    assert!(
        text.contains("hostile") && text.contains("schema") && text.contains("objekt"),
        "{text}"
    );
}
