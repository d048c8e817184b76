//! counter-rust: a warmlane tool written in Rust.
//!
//! It keeps named counters in the host's session store, so a count outlives
//! the instance that served the call (every instance serves one call and is
//! then thrown away). Build it with `build.sh` beside this file.

wit_bindgen::generate!({ path: "../../../wit", world: "tool-component", generate_all });

use exports::warmlane::worker::tool::{Description, Guest, ToolError};
use serde_json::{Value, json};
use warmlane::worker::log::{Level, write};
use warmlane::worker::session::{self, IncrementError, SessionError};

const SCHEMA: &str = r#"{
  "type": "object",
  "properties": {
    "counter": {"type": "string", "minLength": 1, "maxLength": 64},
    "by": {"type": "integer", "minimum": -1000000, "maximum": 1000000},
    "expect": {"type": "integer", "description": "Add only if the counter is this now."}
  },
  "required": ["counter"],
  "additionalProperties": false
}"#;

struct Counter;

fn refused(e: SessionError) -> ToolError {
    ToolError::Failed(format!("the session store refused: {e:?}"))
}

/// Adds `by` to the counter under `key` only if it is `expect` now.
fn add_if(key: &str, by: i64, expect: i64) -> Result<i64, ToolError> {
    let stored = session::get(key).map_err(refused)?;
    let now = match &stored {
        Some(v) => std::str::from_utf8(v)
            .ok()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| ToolError::Failed(format!("{key} holds something else")))?,
        None => 0,
    };
    if now != expect {
        return Err(ToolError::Failed(format!("{key} is {now}, not {expect}")));
    }
    let value = now + by;
    // Stored only if nobody changed it since it was read.
    if !session::compare_and_swap(key, stored.as_deref(), Some(value.to_string().as_bytes()))
        .map_err(refused)?
    {
        return Err(ToolError::Failed(format!(
            "{key} changed while it was being updated"
        )));
    }
    Ok(value)
}

impl Guest for Counter {
    fn describe() -> Description {
        Description {
            name: "counter-rust".into(),
            description: "Adds `by` (default 1) to the session's counter named `counter` \
                          (only if it is `expect`, when given) and returns its new value."
                .into(),
            input_schema: SCHEMA.into(),
        }
    }

    fn invoke(input: String) -> Result<String, ToolError> {
        // The host has checked `input` against SCHEMA already.
        let args: Value = serde_json::from_str(&input)
            .map_err(|e| ToolError::InvalidInput(format!("input is not JSON: {e}")))?;
        let name = args["counter"].as_str().unwrap_or_default();
        let by = args["by"].as_i64().unwrap_or(1);
        let key = format!("counter:{name}");
        let value = match args["expect"].as_i64() {
            Some(expect) => add_if(&key, by, expect)?,
            // One atomic step: parallel calls in one session lose nothing
            // (a get followed by a set would).
            None => session::increment(&key, by).map_err(|e| match e {
                IncrementError::Session(e) => refused(e),
                IncrementError::NotACounter => {
                    ToolError::Failed(format!("{key} holds something else"))
                }
            })?,
        };
        write(Level::Debug, &format!("{name} = {value}"));
        Ok(json!({ "counter": name, "value": value }).to_string())
    }
}

export!(Counter);
