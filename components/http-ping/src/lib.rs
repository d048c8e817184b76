//! A test guest: a tool whose call is one POST of its input to
//! `http://ping/`, answering the response's status and length. Nothing else
//! (no JSON, no session), so the upstream bench measures what a request
//! through the host costs.

wit_bindgen::generate!({ path: "../../wit", world: "tool-component", generate_all });

// The answer's `retry_after` is not read here.
#[allow(dead_code)]
#[path = "../../hosted-parser/src/outbound.rs"]
mod outbound;

use exports::warmlane::worker::tool::{Description, Guest, ToolError};

struct HttpPing;

impl Guest for HttpPing {
    fn describe() -> Description {
        Description {
            name: "ping".into(),
            description: "Sends its input to the `ping` upstream.".into(),
            input_schema: r#"{"type":"object"}"#.into(),
        }
    }

    fn invoke(input: String) -> Result<String, ToolError> {
        let answer = outbound::post("http://ping/", "application/json", input.as_bytes())
            .map_err(ToolError::Failed)?;
        Ok(format!(
            r#"{{"status":{},"bytes":{}}}"#,
            answer.status,
            answer.body.len()
        ))
    }
}

export!(HttpPing);
