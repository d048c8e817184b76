//! Agent tools: components of the `tool-component` world, described once at
//! load and called with JSON, each call in a warm instance bound to the
//! caller's session.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::bindings::tool::ToolComponent;
use crate::bindings::tool::exports::warmlane::worker::tool::ToolError as WitToolError;
use crate::error::{CallError, ToolError};
use crate::pool::{Pool, PoolStats};
use crate::schema::InputSchema;
use crate::session::SessionBinding;
use crate::stats::{Histogram, Recorder};
use crate::upstream::Traffic;

/// What a tool says about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolInfo {
    /// The tool's name, as it is called.
    pub name: String,
    /// What it does, for a model deciding whether to call it.
    pub description: String,
    /// JSON Schema of its input.
    pub input_schema: serde_json::Value,
    /// The component that implements it.
    pub component: String,
}

/// What a tool's calls have come to, for metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolStats {
    /// The tool's name.
    pub name: String,
    /// The component that implements it.
    pub component: String,
    /// Calls that answered.
    pub ok: u64,
    /// Calls that failed, for whatever reason.
    pub failed: u64,
    /// Budget tokens its calls kept.
    pub tokens: u64,
    /// Wall-clock time per call, budget waits included.
    pub time: Histogram,
    /// CPU time the calls used, in nanoseconds.
    pub cpu_nanos: u64,
}

#[derive(Default)]
struct Counters {
    ok: AtomicU64,
    failed: AtomicU64,
    tokens: AtomicU64,
    cpu_nanos: AtomicU64,
    time: Recorder,
}

/// A loaded tool and its pool.
pub(crate) struct Tool {
    pub(crate) info: ToolInfo,
    /// `info.input_schema`, compiled when the tool loaded.
    schema: InputSchema,
    pool: Pool<ToolComponent>,
    counters: Counters,
}

impl Tool {
    /// Asks the component to describe itself, in a fresh instance, and checks
    /// what it says.
    pub(crate) fn new(component: &str, pool: Pool<ToolComponent>) -> Result<Tool> {
        // Describe on a warm instance, so that loading does not count as a miss.
        pool.wait_warm(std::time::Duration::from_secs(10));
        let mut lease = pool
            .take(None, None)
            .with_context(|| format!("cannot instantiate tool component `{component}`"))?;
        let d = lease
            .call(|world, store| world.warmlane_worker_tool().call_describe(store))
            .with_context(|| format!("tool component `{component}` failed in `describe`"))?;
        drop(lease);
        if d.name.is_empty()
            || !d
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            bail!(
                "tool component `{component}` describes itself with an invalid name `{}`",
                d.name
            );
        }
        let input_schema: serde_json::Value = serde_json::from_str(&d.input_schema)
            .with_context(|| format!("tool `{}` has an input schema that is not JSON", d.name))?;
        if !input_schema.is_object() {
            bail!(
                "tool `{}` has an input schema that is not a JSON object",
                d.name
            );
        }
        let schema = InputSchema::compile(&input_schema).map_err(|why| {
            anyhow::anyhow!(
                "tool `{}` has an input schema that is not a valid JSON Schema: {why}",
                d.name
            )
        })?;
        Ok(Tool {
            schema,
            info: ToolInfo {
                name: d.name,
                description: d.description,
                input_schema,
                component: component.to_string(),
            },
            pool,
            counters: Counters::default(),
        })
    }

    /// Parses `input` (JSON text) and checks it against the tool's input
    /// schema.
    pub(crate) fn check(&self, input: &str) -> Result<serde_json::Value, ToolError> {
        let value = serde_json::from_str::<serde_json::Value>(input)
            .map_err(|e| ToolError::InvalidInput(format!("input is not JSON: {e}")))?;
        self.schema.check(&value).map_err(|why| {
            ToolError::InvalidInput(format!("the input does not match the tool's schema: {why}"))
        })?;
        Ok(value)
    }

    /// Calls the tool with `input` (JSON text, already [checked](Tool::check))
    /// in a fresh instance.
    pub(crate) fn call(
        &self,
        input: &str,
        session: Option<SessionBinding>,
        job: Option<Arc<str>>,
        traffic: &Arc<Traffic>,
    ) -> Result<String, ToolError> {
        let mut lease = self.pool.take(session, job)?;
        lease.count_traffic(traffic.clone());
        let called =
            lease.call(|world, store| world.warmlane_worker_tool().call_invoke(&mut *store, input));
        // A panic or an uncaught exception is the tool failing with its
        // message, whatever the language; other traps are what they are.
        let output = match called {
            Ok(output) => output,
            Err(e @ CallError::Trap { .. }) => match exception(&lease.stderr()) {
                Some(message) => {
                    tracing::debug!(tool = %self.info.name, error = %e, "the tool's code raised");
                    Err(WitToolError::Failed(message))
                }
                None => return Err(ToolError::Call(e)),
            },
            Err(e) => return Err(ToolError::Call(e)),
        };
        let output = output.map_err(|e| match e {
            // It failed, and it had asked for a session it did not have.
            WitToolError::InvalidInput(why) | WitToolError::Failed(why)
                if lease.wanted_session() =>
            {
                ToolError::NeedsSession(why)
            }
            WitToolError::InvalidInput(why) => ToolError::InvalidInput(why),
            WitToolError::Failed(why) => ToolError::Failed(why),
        })?;
        serde_json::from_str::<serde_json::Value>(&output)
            .map_err(|e| ToolError::BadOutput(e.to_string()))?;
        Ok(output)
    }

    pub(crate) fn pool(&self) -> &Pool<ToolComponent> {
        &self.pool
    }

    pub(crate) fn stats(&self) -> PoolStats {
        self.pool.stats()
    }

    /// Counts one call: answered or not, and what it cost.
    pub(crate) fn record(&self, ok: bool, usage: &crate::session::Usage) {
        let c = &self.counters;
        if ok { &c.ok } else { &c.failed }.fetch_add(1, Ordering::Relaxed);
        c.tokens.fetch_add(usage.tokens, Ordering::Relaxed);
        c.cpu_nanos.fetch_add(usage.cpu_nanos, Ordering::Relaxed);
        c.time.record(Duration::from_micros(usage.micros));
    }

    pub(crate) fn call_stats(&self) -> ToolStats {
        let c = &self.counters;
        ToolStats {
            name: self.info.name.clone(),
            component: self.info.component.clone(),
            ok: c.ok.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            tokens: c.tokens.load(Ordering::Relaxed),
            time: c.time.snapshot(),
            cpu_nanos: c.cpu_nanos.load(Ordering::Relaxed),
        }
    }
}

/// The message of the panic or uncaught exception a guest's last words
/// (`stderr`) report, in the form its language gives it: Python's last
/// traceback line (`ValueError: …`), what a JavaScript `invoke` threw
/// (`Error: …`), Rust's panic (`panicked at src/lib.rs:9:5: …`). `None`
/// when they report none: the trap was something else.
fn exception(stderr: &str) -> Option<String> {
    // Python (componentize-py): a traceback, then the runtime's own panic.
    if let Some((_, traceback)) = stderr.rsplit_once("Traceback (most recent call last):") {
        let raised = traceback
            .lines()
            .skip(1)
            .take_while(|l| !l.trim().is_empty())
            .filter(|l| !l.starts_with(' '))
            .last();
        if let Some(line) = raised {
            return Some(line.trim().to_string());
        }
    }
    // JavaScript (componentize-js): what was thrown is not a `tool-error`,
    // so lowering it failed, naming it.
    if let Some((before, _)) = stderr.rsplit_once("`) specified for `ToolError`")
        && let Some((_, thrown)) = before.rsplit_once("(received `")
    {
        return Some(thrown.to_string());
    }
    // Rust: `panicked at FILE:LINE:COLUMN:` and the message on the lines
    // after, up to the hint about backtraces.
    let (_, panic) = stderr.rsplit_once("panicked at ")?;
    let (place, message) = panic.split_once(":\n")?;
    let message: Vec<&str> = message
        .lines()
        .take_while(|l| !l.starts_with("note: run with `RUST_BACKTRACE"))
        .collect();
    Some(format!(
        "panicked at {place}: {}",
        message.join("\n").trim()
    ))
}

#[cfg(test)]
mod tests {
    use super::exception;

    #[test]
    fn a_guest_exception_is_told_by_its_language() {
        let python = "Traceback (most recent call last):\n  File \"/0/app.py\", line 14, in invoke\nValueError: boom from python\n\nthread '<unnamed>' (1) panicked at runtime/src/lib.rs:1293:29:\nPython function threw an unexpected exception\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace";
        assert_eq!(
            exception(python).as_deref(),
            Some("ValueError: boom from python")
        );
        let js = "invalid variant tag value `undefined` (received `Error: boom from js`) specified for `ToolError`\nStack:\n  export_tool_0_1_1$invoke@/tmp/x/sources/initializer.js:823:17\n\nRedirecting call to abort() to mozalloc_abort";
        assert_eq!(exception(js).as_deref(), Some("Error: boom from js"));
        let rust = "\nthread '<unnamed>' panicked at src/lib.rs:35:13:\nasked to trap\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace";
        assert_eq!(
            exception(rust).as_deref(),
            Some("panicked at src/lib.rs:35:13: asked to trap")
        );
        assert_eq!(exception(""), None);
        assert_eq!(exception("wasm trap: out of bounds memory access"), None);
    }
}
