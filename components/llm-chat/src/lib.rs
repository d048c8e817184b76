//! An agent tool that talks to an OpenAI-compatible chat-completions API
//! through the host (upstream `llm`: `http://llm/chat/completions`), keeping
//! the conversation in its session, so every instance stays disposable and
//! any replica can carry the conversation on. The host injects the API key
//! and counts the tokens: reserved on `max_tokens`, settled on the
//! response's `usage`.

wit_bindgen::generate!({ path: "../../wit", world: "tool-component", generate_all });

#[path = "../../hosted-parser/src/outbound.rs"]
mod outbound;

use exports::warmlane::worker::tool::{Description, Guest, ToolError};
use serde_json::{Value, json};
use warmlane::worker::session::{self, SessionError};

/// Where the conversation is kept in the session.
const HISTORY: &str = "llm-chat/messages";
/// Messages kept (the oldest go first), so a session stays within its size.
const KEEP: usize = 40;

struct LlmChat;

impl Guest for LlmChat {
    fn describe() -> Description {
        Description {
            name: "chat".into(),
            description: "Sends a message to the configured chat model and returns its reply; the conversation so far (kept in the session) goes with it.".into(),
            input_schema: json!({
                "type": "object",
                "properties": {
                    "message": { "type": "string", "minLength": 1 },
                    "max_tokens": { "type": "integer", "minimum": 1, "maximum": 32768, "default": 256 },
                    "model": { "type": "string", "default": "default" }
                },
                "required": ["message"],
                "additionalProperties": false
            })
            .to_string(),
        }
    }

    fn invoke(input: String) -> Result<String, ToolError> {
        let input: Value =
            serde_json::from_str(&input).map_err(|e| ToolError::InvalidInput(e.to_string()))?;
        let message = input["message"].as_str().unwrap_or_default().to_string();
        let max_tokens = input["max_tokens"].as_u64().unwrap_or(256);
        let model = input["model"].as_str().unwrap_or("default").to_string();

        let mut messages = history()?;
        messages.push(json!({ "role": "user", "content": message }));
        let request = json!({ "model": model, "max_tokens": max_tokens, "messages": messages });
        let answer = outbound::post(
            "http://llm/chat/completions",
            "application/json",
            request.to_string().as_bytes(),
        )
        .map_err(ToolError::Failed)?;
        if answer.status != 200 {
            let retry = answer
                .retry_after
                .map(|s| format!(" (retry after {s} s)"))
                .unwrap_or_default();
            return Err(ToolError::Failed(format!(
                "the model's API answered {}{retry}: {}",
                answer.status,
                String::from_utf8_lossy(&answer.body)
            )));
        }
        let reply: Value = serde_json::from_slice(&answer.body)
            .map_err(|e| ToolError::Failed(format!("the model's answer is not JSON: {e}")))?;
        let content = reply["choices"][0]["message"]["content"]
            .as_str()
            .ok_or_else(|| ToolError::Failed("the model's answer has no message".into()))?
            .to_string();
        messages.push(json!({ "role": "assistant", "content": content }));
        let keep_from = messages.len().saturating_sub(KEEP);
        save(&messages[keep_from..])?;
        Ok(json!({
            "reply": content,
            "usage": reply["usage"],
            "turns": messages.len() / 2,
        })
        .to_string())
    }
}

/// The conversation so far: none without a session.
fn history() -> Result<Vec<Value>, ToolError> {
    match session::get(HISTORY) {
        Ok(Some(bytes)) => serde_json::from_slice(&bytes)
            .map_err(|e| ToolError::Failed(format!("the stored conversation is damaged: {e}"))),
        Ok(None) | Err(SessionError::NoSession) => Ok(Vec::new()),
        Err(e) => Err(ToolError::Failed(format!(
            "the session cannot be read: {e:?}"
        ))),
    }
}

fn save(messages: &[Value]) -> Result<(), ToolError> {
    let bytes = serde_json::to_vec(messages).expect("JSON values serialize");
    match session::set(HISTORY, &bytes) {
        Ok(()) | Err(SessionError::NoSession) => Ok(()),
        Err(e) => Err(ToolError::Failed(format!(
            "the conversation was not kept: {e:?}"
        ))),
    }
}

export!(LlmChat);
