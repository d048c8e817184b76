//! Limits on every instance: a component that loops is stopped by its
//! deadline, one that allocates without bound by its memory cap, one that
//! traps is reported; and the host serves the next call normally.

use std::time::{Duration, Instant};

use warmlane_host::{CallError, ToolError};

use crate::support;

fn hostile(action: &str) -> Result<String, ToolError> {
    support::host().call_tool("hostile", &format!(r#"{{"do":"{action}"}}"#), None)
}

fn next_call_is_normal() {
    assert_eq!(hostile("echo").unwrap(), r#"{"do":"echo"}"#);
    assert!(
        support::host()
            .call_tool("text-stats", r#"{"text":"still here"}"#, None)
            .is_ok()
    );
}

#[test]
fn a_loop_is_stopped_at_the_deadline_and_its_cpu_time_is_counted() {
    let cpu = || {
        support::host()
            .tool_stats()
            .into_iter()
            .find(|t| t.name == "hostile")
            .unwrap()
            .cpu_nanos
    };
    let before = cpu();
    let start = Instant::now();
    let e = hostile("loop").unwrap_err();
    let took = start.elapsed();
    assert!(
        matches!(&e, ToolError::Call(CallError::Timeout { component, deadline }) if component == "hostile" && *deadline == Duration::from_millis(300)),
        "{e}"
    );
    assert!(took < Duration::from_secs(5), "stopped after {took:?}");
    assert!(e.to_string().contains("deadline"), "{e}");
    // A loop burns CPU until its 300 ms deadline, and it is counted: on a
    // busy test machine the thread may get only part of those 300 ms, but
    // far more than the microseconds of a normal call.
    let burned = Duration::from_nanos(cpu() - before);
    assert!(burned >= Duration::from_millis(10), "{burned:?}");
    next_call_is_normal();
}

#[test]
fn unbounded_allocation_is_stopped_at_the_cap() {
    let e = hostile("alloc").unwrap_err();
    assert!(
        matches!(&e, ToolError::Call(CallError::OutOfMemory { limit, .. }) if *limit == 32 << 20),
        "{e}"
    );
    next_call_is_normal();
}

#[test]
fn a_trap_is_reported_as_one() {
    let e = hostile("trap").unwrap_err();
    let ToolError::Call(CallError::Trap { message, .. }) = &e else {
        panic!("{e}")
    };
    assert!(message.contains("unreachable"), "{message}");
    next_call_is_normal();
}

#[test]
fn a_panic_is_the_tool_failing_with_its_message() {
    let e = hostile("panic").unwrap_err();
    let ToolError::Failed(message) = &e else {
        panic!("{e}")
    };
    assert!(
        message.starts_with("panicked at ") && message.ends_with(": asked to panic"),
        "{message}"
    );
    next_call_is_normal();
}

#[test]
fn failures_are_counted_per_pool() {
    let _ = hostile("trap");
    let stats = support::host()
        .pool_stats()
        .into_iter()
        .find(|(n, _)| n == "hostile")
        .unwrap()
        .1;
    assert!(stats.traps >= 1);
    assert!(stats.hits + stats.misses >= 1);
}

/// With few instance slots and calls back to back from two threads, used
/// instances waiting to be thrown away hold slots; a call waits for one
/// rather than failing.
#[test]
fn a_tight_loop_of_calls_never_runs_out_of_slots() {
    let config = warmlane_host::Config::from_toml("[engine]\ninstance_slots = 12\n").unwrap();
    let host = warmlane_host::Host::new(config).unwrap();
    assert!(host.wait_warm(Duration::from_secs(60)));
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..300 {
                    host.call_tool("text-stats", r#"{"text":"a b"}"#, None)
                        .expect("every call gets an instance");
                }
            });
        }
    });
}
