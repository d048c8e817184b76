//! __NAME__: a warmlane tool. `./build.sh` builds __NAME__.wasm; `./test.sh`
//! builds it and tries it with `warmlane component check` and `call`.
//!
//! Every instance serves one call and is then thrown away: what must outlive
//! a call goes into the host's session store (`session`).

wit_bindgen::generate!({ path: "wit", world: "tool-component", generate_all });

use exports::warmlane::worker::tool::{Description, Guest, ToolError};
use serde_json::{Value, json};
use warmlane::worker::log::{Level, write};
use warmlane::worker::session;

/// The input the host checks every call against before it reaches `invoke`.
const SCHEMA: &str = r#"{
  "type": "object",
  "properties": {"text": {"type": "string", "maxLength": 10000}},
  "required": ["text"],
  "additionalProperties": false
}"#;

struct Tool;

impl Guest for Tool {
    fn describe() -> Description {
        Description {
            name: "__NAME__".into(),
            description: "Returns `text` with its length in characters, and counts the calls \
                          made in the session."
                .into(),
            input_schema: SCHEMA.into(),
        }
    }

    fn invoke(input: String) -> Result<String, ToolError> {
        let input: Value = serde_json::from_str(&input)
            .map_err(|e| ToolError::InvalidInput(format!("input is not JSON: {e}")))?;
        let text = input["text"].as_str().unwrap_or_default();
        // One atomic step, so parallel calls in a session all count.
        let calls = session::increment("calls", 1)
            .map_err(|e| ToolError::Failed(format!("the session refused: {e:?}")))?;
        write(Level::Debug, &format!("call {calls} in this session"));
        Ok(json!({ "text": text, "characters": text.chars().count(), "calls": calls }).to_string())
    }
}

export!(Tool);
