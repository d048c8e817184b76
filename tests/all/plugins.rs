//! Components from a plugin directory: loaded beside the built-ins, and
//! checked against the world they claim, with errors that say what is wrong.

use std::time::Duration;

use warmlane_host::{Config, Host, SessionId, WorldKind};

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

/// A directory with two bad plugins (the wrong signatures; a core module,
/// not a component) and a good one.
fn mixed_plugins(name: &str) -> std::path::PathBuf {
    let dir = support::plugin_dir(
        name,
        &[
            ("mismatched", "bad-tool"),
            ("legacy_counter", "legacy-counter"),
        ],
    );
    std::fs::write(dir.join("junk.wasm"), b"\0asm\x01\0\0\0").unwrap();
    dir
}

#[test]
fn every_bad_plugin_is_named_when_the_host_refuses_to_start() {
    let text = format!(
        "{:#}",
        host_with(mixed_plugins("plugin-refuse")).err().unwrap()
    );
    assert!(text.contains("2 plugins could not be loaded"), "{text}");
    assert!(text.contains("on_error = \"skip\""), "{text}");
    // Each by name, at the step it failed, the bad signatures function by
    // function with both types.
    assert!(
        text.contains("plugin `bad-tool`") && text.contains("at exports"),
        "{text}"
    );
    assert!(
        text.contains("function `invoke` is `func(input: u32) -> u32`; the world's is `func(input: string) -> result<string, variant { invalid-input(string), failed(string) }>`"),
        "{text}"
    );
    assert!(
        text.contains("plugin `junk`") && text.contains("at compile"),
        "{text}"
    );
    assert!(!text.contains("legacy-counter"), "{text}");
}

#[test]
fn with_on_error_skip_the_host_starts_without_bad_plugins_and_says_why() {
    let dir = mixed_plugins("plugin-skip");
    let server = crate::serve::Serve::start(&format!(
        "[plugins]\ndir = {:?}\non_error = \"skip\"\n[components.legacy-counter]\nwarm = 1\n",
        dir.display().to_string()
    ));
    server.wait_ready();
    let ready = server.get("/readyz");
    assert_eq!(ready.status, 200);
    let skipped = ready.json()["skipped"].as_array().unwrap().clone();
    let by_name = |name: &str| {
        skipped
            .iter()
            .find(|s| s["plugin"] == name)
            .unwrap_or_else(|| panic!("{name} not in {skipped:?}"))
            .clone()
    };
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert_eq!(by_name("bad-tool")["stage"], "exports");
    assert!(
        by_name("bad-tool")["reason"]
            .as_str()
            .unwrap()
            .contains("function `describe` is `func() -> string`")
    );
    assert_eq!(by_name("junk")["stage"], "compile");
    assert!(
        by_name("junk")["path"]
            .as_str()
            .unwrap()
            .ends_with("junk.wasm")
    );
    assert_eq!(
        server.metric(
            "warmlane_plugin_skipped",
            "component=\"bad-tool\",stage=\"exports\""
        ),
        1.0
    );
    assert_eq!(
        server.metric("warmlane_plugin_skipped", "component=\"junk\""),
        1.0
    );
    assert_eq!(
        server.metric("warmlane_plugin_skipped", "legacy-counter"),
        0.0
    );
    // The good plugin serves.
    let session = server.post("/v1/sessions", "application/json", b"").json()["session"]
        .as_str()
        .unwrap()
        .to_string();
    let r = server.post(
        &format!("/v1/tools/legacy-counter?session={session}"),
        "application/json",
        b"{}",
    );
    assert_eq!(r.status, 200, "{}", r.json());
}

#[test]
fn a_component_built_against_0_1_0_keeps_loading() {
    let host = host_with(support::plugin_dir(
        "plugin-legacy",
        &[("legacy_counter", "legacy-counter")],
    ))
    .unwrap();
    let session = warmlane_host::SessionId::random();
    host.open_session(&session).unwrap();
    for n in 1..=3 {
        assert_eq!(
            host.call_tool("legacy-counter", "{}", Some(&session))
                .unwrap(),
            format!(r#"{{"n":{n}}}"#)
        );
    }
}

#[test]
fn plugin_files_load_beside_the_directory() {
    let mut config = Config::default();
    config.plugins.files = vec![support::guest("legacy_counter")];
    let host = Host::new(config).unwrap();
    assert!(host.tools().iter().any(|t| t.name == "legacy-counter"));
}

/// Calls that find no ready instance raise the pool's target, so the next
/// as many calls at once find them ready; never past the pool's share of
/// the slots the host sized (warm + 2 per core).
#[test]
fn misses_raise_the_pools_target_within_its_share() {
    let mut config = Config::from_toml("[components.slow]\nwarm = 1\ndeadline_ms = 150\n").unwrap();
    config.plugins.dir = Some(support::plugin_dir("plugin-target", &[("hostile", "slow")]));
    let host = Host::new(config).unwrap();
    assert!(host.wait_warm(Duration::from_secs(60)));
    let target = || {
        host.pool_stats()
            .into_iter()
            .find(|(n, _)| n == "slow")
            .unwrap()
            .1
    };
    assert_eq!(target().target, 1);
    // Four calls at once, each holding its instance until its deadline:
    // they start together, so that none starts after the pool has refilled.
    let start = std::sync::Barrier::new(4);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                start.wait();
                host.call_tool("hostile", r#"{"do":"loop"}"#, None)
                    .unwrap_err()
            });
        }
    });
    let stats = target();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!(stats.misses >= 3, "{stats:?}");
    assert!(
        stats.target >= 3 && stats.target <= 1 + 2 * cores,
        "{stats:?}"
    );
    // The pool fills to its new target.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while target().ready < stats.target {
        assert!(std::time::Instant::now() < deadline, "{:?}", target());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A session's next call takes the instance its last call used, up to
/// `reuse_calls` calls; no instance ever serves two sessions, a call
/// outside a session always gets a fresh one, and neither a failed call's
/// instance nor a deleted session's is used again.
#[test]
fn a_sessions_calls_reuse_its_instance_and_no_other_session_sees_it() {
    let mut config =
        Config::from_toml("[components.counted]\nwarm = 2\nreuse_calls = 3\n").unwrap();
    config.plugins.dir = Some(support::plugin_dir(
        "plugin-reuse",
        &[("hostile", "counted")],
    ));
    let host = Host::new(config).unwrap();
    assert!(host.wait_warm(Duration::from_secs(60)));
    let session = |id: &str| {
        let id = SessionId::parse(id).unwrap();
        host.open_session(&id).unwrap();
        id
    };
    let (a, b) = (session("reuse-a"), session("reuse-b"));
    let count = |s: Option<&SessionId>| -> u64 {
        let out = host.call_tool("hostile", r#"{"do":"count"}"#, s).unwrap();
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["calls"]
            .as_u64()
            .unwrap()
    };
    let stats = || {
        host.pool_stats()
            .into_iter()
            .find(|(n, _)| n == "counted")
            .unwrap()
            .1
    };
    // Interleaved, each session counts on its own instance; three calls
    // each, then a fresh one.
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push((count(Some(&a)), count(Some(&b)), count(None)));
    }
    assert_eq!(seen, [(1, 1, 1), (2, 2, 1), (3, 3, 1), (1, 1, 1)]);
    assert_eq!(stats().reuses, 4, "{:?}", stats());
    // Bound and ready instances together stay within the target.
    let s = stats();
    assert!(s.bound == 2 && s.bound + s.ready <= s.target, "{s:?}");
    // A failed call's instance is thrown away.
    assert_eq!(count(Some(&a)), 2);
    host.call_tool("hostile", r#"{"do":"trap"}"#, Some(&a))
        .unwrap_err();
    assert_eq!(count(Some(&a)), 1);
    // A deleted session's instance is thrown away: the same id starts afresh.
    host.delete_session(&a).unwrap();
    let a = session("reuse-a");
    assert_eq!(count(Some(&a)), 1);
    // An instance that talks on stderr at length keeps serving, and what a
    // failed call says is its own, not the last call's chatter.
    for _ in 0..5 {
        host.call_tool("hostile", r#"{"do":"chatter"}"#, Some(&b))
            .unwrap();
    }
    let e = host
        .call_tool("hostile", r#"{"do":"panic"}"#, Some(&b))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("asked to panic") && !e.contains("chatter"),
        "{e}"
    );
}
