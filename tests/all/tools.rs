//! Tools: described once, called with JSON, state only through the host.

use warmlane_host::{SessionId, StoreError, ToolError};

use crate::support;

#[test]
fn built_in_tools_describe_themselves() {
    let tools = support::host().tools();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
    assert!(
        names.contains(&"text-stats") && names.contains(&"notes"),
        "{names:?}"
    );
    for t in &tools {
        assert_eq!(t.input_schema["type"], "object", "{}", t.name);
        assert!(!t.description.is_empty());
    }
}

#[test]
fn stateless_tool_answers() {
    let out = support::host()
        .call_tool("text-stats", r#"{"text":"One two three. Four!"}"#, None)
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["words"], 4);
    assert_eq!(v["sentences"], 2);
}

#[test]
fn notes_survive_across_fresh_instances() {
    let host = support::host();
    let session = SessionId::parse("notes-test").unwrap();
    host.open_session(&session).unwrap();
    let before = host
        .pool_stats()
        .into_iter()
        .find(|(n, _)| n == "notes")
        .unwrap()
        .1;
    for i in 0..5 {
        host.call_tool(
            "notes",
            &format!(r#"{{"action":"add","text":"note {i}"}}"#),
            Some(&session),
        )
        .unwrap();
    }
    let out = host
        .call_tool("notes", r#"{"action":"list"}"#, Some(&session))
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let notes: Vec<&str> = v["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert_eq!(notes, ["note 0", "note 1", "note 2", "note 3", "note 4"]);
    // Six calls, each on an instance of its own: the state lived in the host.
    let after = host
        .pool_stats()
        .into_iter()
        .find(|(n, _)| n == "notes")
        .unwrap()
        .1;
    assert!(after.hits + after.misses >= before.hits + before.misses + 6);
    // Another session sees none of it.
    let other = SessionId::parse("notes-other").unwrap();
    host.open_session(&other).unwrap();
    let out = host
        .call_tool("notes", r#"{"action":"list"}"#, Some(&other))
        .unwrap();
    assert_eq!(out, r#"{"notes":[]}"#);
    let out = host
        .call_tool("notes", r#"{"action":"clear"}"#, Some(&session))
        .unwrap();
    assert_eq!(out, r#"{"cleared":5}"#);
}

#[test]
fn stateful_tool_without_a_session_says_so() {
    let e = support::host()
        .call_tool("notes", r#"{"action":"list"}"#, None)
        .unwrap_err();
    // The component asked for its session, got none, and failed: the host
    // says what was missing rather than pass on a generic failure.
    assert!(
        matches!(&e, ToolError::NeedsSession(m) if m.contains("session")),
        "{e}"
    );
    assert!(e.to_string().contains("called outside one"), "{e}");
}

#[test]
fn bad_input_is_named() {
    let host = support::host();
    assert!(
        matches!(host.call_tool("nope", "{}", None), Err(ToolError::UnknownTool(n)) if n == "nope")
    );
    assert!(
        matches!(host.call_tool("text-stats", "{not json", None), Err(ToolError::InvalidInput(m)) if m.contains("not JSON"))
    );
    match host.call_tool("text-stats", r#"{"txt":1}"#, None) {
        Err(ToolError::InvalidInput(m)) => assert!(
            m.contains("the input: \"text\" is a required property (required)"),
            "{m}"
        ),
        other => panic!("expected invalid input, got {other:?}"),
    }
}

#[test]
fn sessions_must_exist_and_account_for_their_calls() {
    let host = support::host();
    let unknown = SessionId::parse("never-created").unwrap();
    match host.call_tool("notes", r#"{"action":"list"}"#, Some(&unknown)) {
        Err(e @ ToolError::Session(StoreError::NoSession)) => {
            assert!(e.to_string().contains("no such session"), "{e}")
        }
        other => panic!("expected an unknown session, got {other:?}"),
    }
    let session = host.create_session().unwrap();
    assert!(session.as_str().starts_with("s-"));
    for _ in 0..3 {
        host.call_tool("notes", r#"{"action":"add","text":"x"}"#, Some(&session))
            .unwrap();
    }
    let usage = host.session_usage(&session).unwrap();
    assert_eq!((usage.calls, usage.tokens), (3, 0));
    assert!(usage.micros > 0 && usage.cpu_nanos > 0, "{usage:?}");
    assert!(host.delete_session(&session).unwrap());
    assert!(matches!(
        host.call_tool("notes", r#"{"action":"list"}"#, Some(&session)),
        Err(ToolError::Session(StoreError::NoSession))
    ));
}

/// A model's parallel tool calls in one session: every `add` gets its own
/// number (the count is one atomic `increment`), in memory and in Redis.
#[test]
fn parallel_calls_in_one_session_lose_no_note() {
    let server = crate::redis_server::RedisServer::start();
    for redis in [None, Some(server.url())] {
        let mut config = warmlane_host::Config::default();
        config.redis.url = redis.clone();
        let host = warmlane_host::Host::new(config).unwrap();
        let session = SessionId::random();
        host.open_session(&session).unwrap();
        const CALLS: usize = 24;
        std::thread::scope(|scope| {
            for i in 0..CALLS {
                let (host, session) = (&host, &session);
                scope.spawn(move || {
                    let input = format!(r#"{{"action":"add","text":"note {i}"}}"#);
                    host.call_tool("notes", &input, Some(session)).unwrap();
                });
            }
        });
        let out = host
            .call_tool("notes", r#"{"action":"list"}"#, Some(&session))
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let mut notes: Vec<String> = v["notes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap().to_string())
            .collect();
        notes.sort_by_key(|n| n[5..].parse::<usize>().unwrap());
        let expected: Vec<String> = (0..CALLS).map(|i| format!("note {i}")).collect();
        assert_eq!(notes, expected, "redis: {redis:?}");
    }
}
