//! A test guest built against `warmlane:worker@0.1.0` (the WIT beside it is
//! that release's, unchanged), so the host is seen to keep serving
//! components built before 0.1.1 added the session's atomic updates: a
//! counter kept with `get` and `set`.

wit_bindgen::generate!({ path: "wit", world: "tool-component" });

use exports::warmlane::worker::tool::{Description, Guest, ToolError};
use warmlane::worker::session;

struct LegacyCounter;

impl Guest for LegacyCounter {
    fn describe() -> Description {
        Description {
            name: "legacy-counter".into(),
            description: "Adds one to the session's counter and returns it.".into(),
            input_schema: r#"{"type":"object"}"#.into(),
        }
    }

    fn invoke(_input: String) -> Result<String, ToolError> {
        let failed = |e: session::SessionError| ToolError::Failed(format!("{e:?}"));
        let now = session::get("n")
            .map_err(failed)?
            .and_then(|v| String::from_utf8(v).ok()?.parse::<u64>().ok())
            .unwrap_or(0);
        session::set("n", (now + 1).to_string().as_bytes()).map_err(failed)?;
        Ok(format!(r#"{{"n":{}}}"#, now + 1))
    }
}

export!(LegacyCounter);
