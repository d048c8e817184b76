//! A stateful tool that keeps nothing in itself: notes live in the host's
//! session through the `session` import, so every call may run in a fresh
//! instance and still see the notes earlier calls added.

wit_bindgen::generate!({ path: "../../wit", world: "tool-component", generate_all });

use exports::warmlane::worker::tool::{Description, Guest, ToolError};
use serde_json::{Value, json};
use warmlane::worker::log::{Level, write};
use warmlane::worker::session::{self, IncrementError, SessionError};

struct Notes;

const PREFIX: &str = "note/";

const SCHEMA: &str = r#"{"type":"object","properties":{"action":{"type":"string","enum":["add","list","clear"]},"text":{"type":"string","description":"The note to add (for `add`)."}},"required":["action"],"additionalProperties":false}"#;

fn session_error(e: SessionError) -> ToolError {
    ToolError::Failed(match e {
        SessionError::NoSession => "this tool needs a session: call it within one".into(),
        SessionError::TooLarge(limit) => {
            format!("the session would exceed its limit of {limit} bytes")
        }
        SessionError::Unavailable(why) => format!("session store unavailable: {why}"),
    })
}

fn list() -> Result<Vec<String>, ToolError> {
    let keys = session::list_keys().map_err(session_error)?;
    let mut notes = Vec::new();
    for key in keys.iter().filter(|k| k.starts_with(PREFIX)) {
        if let Some(v) = session::get(key).map_err(session_error)? {
            notes.push(String::from_utf8_lossy(&v).into_owned());
        }
    }
    Ok(notes)
}

impl Guest for Notes {
    fn describe() -> Description {
        Description {
            name: "notes".into(),
            description: "Keeps notes for the session: add a note, list the notes, or clear them."
                .into(),
            input_schema: SCHEMA.into(),
        }
    }

    fn invoke(input: String) -> Result<String, ToolError> {
        let input: Value = serde_json::from_str(&input)
            .map_err(|e| ToolError::InvalidInput(format!("input is not JSON: {e}")))?;
        match input.get("action").and_then(Value::as_str) {
            Some("add") => {
                let text = input
                    .get("text")
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| {
                        ToolError::InvalidInput("`add` needs a non-empty `text`".into())
                    })?;
                // One atomic step, so parallel calls in a session never
                // share a number (and overwrite each other's notes).
                let next = session::increment("count", 1).map_err(|e| match e {
                    IncrementError::Session(e) => session_error(e),
                    IncrementError::NotACounter => {
                        ToolError::Failed("the session's note count is not a number".into())
                    }
                })?;
                // Zero-padded keys keep the notes in the order they were added.
                session::set(&format!("{PREFIX}{next:010}"), text.as_bytes())
                    .map_err(session_error)?;
                write(Level::Info, &format!("added note {next}"));
                Ok(json!({ "added": next, "notes": list()?.len() }).to_string())
            }
            Some("list") => Ok(json!({ "notes": list()? }).to_string()),
            Some("clear") => {
                let mut cleared = 0;
                for key in session::list_keys().map_err(session_error)? {
                    if session::delete(&key).map_err(session_error)? && key.starts_with(PREFIX) {
                        cleared += 1;
                    }
                }
                Ok(json!({ "cleared": cleared }).to_string())
            }
            Some(other) => Err(ToolError::InvalidInput(format!(
                "unknown action `{other}`: use add, list or clear"
            ))),
            None => Err(ToolError::InvalidInput(
                "`action` (add, list or clear) is required".into(),
            )),
        }
    }
}

export!(Notes);
