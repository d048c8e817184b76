//! The cost of checking a tool's input against its JSON Schema, per call:
//! the `jsonschema` crate's validator the host compiles once per tool,
//! against the hand-written checker it replaced (kept here, as it was, as
//! the baseline), on the built-in tools' schemas and a pydantic-generated
//! one, for valid input and for input with a mistake, in the same run.
//!
//! Run: `cargo bench --bench schema`.

mod support;

use std::hint::black_box;

use serde_json::{Value, json};
use support::median;
use warmlane_host::bench::InputSchema;

/// The hand-written checker of the keywords tool schemas used most, before
/// the host moved to the `jsonschema` crate.
mod baseline {
    use serde_json::Value;

    /// Whether `input` satisfies `schema`; if not, where and why (the first
    /// problem found, with its JSON Pointer).
    pub(crate) fn check(schema: &Value, input: &Value) -> Result<(), String> {
        at(schema, input, "")
    }

    fn type_name(v: &Value) -> &'static str {
        match v {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        }
    }

    fn is_type(v: &Value, t: &str) -> bool {
        match t {
            "null" => v.is_null(),
            "boolean" => v.is_boolean(),
            "integer" => v.as_f64().is_some_and(|f| f.fract() == 0.0),
            "number" => v.is_number(),
            "string" => v.is_string(),
            "array" => v.is_array(),
            "object" => v.is_object(),
            // An unknown type name is the schema's problem, not the input's.
            _ => true,
        }
    }

    fn at(schema: &Value, v: &Value, path: &str) -> Result<(), String> {
        let Some(s) = schema.as_object() else {
            // `true`, or anything that is not a schema object, accepts all;
            // `false` accepts nothing.
            return if schema == &Value::Bool(false) {
                Err(format!("{}: no value is allowed here", show(path)))
            } else {
                Ok(())
            };
        };
        let fail = |why: String| Err(format!("{}: {why}", show(path)));
        match s.get("type") {
            Some(Value::String(t)) if !is_type(v, t) => {
                return fail(format!("expected {}, got {}", article(t), type_name(v)));
            }
            Some(Value::Array(ts))
                if !ts.iter().any(|t| t.as_str().is_some_and(|t| is_type(v, t))) =>
            {
                let names: Vec<String> =
                    ts.iter().filter_map(|t| t.as_str().map(article)).collect();
                return fail(format!(
                    "expected {}, got {}",
                    names.join(" or "),
                    type_name(v)
                ));
            }
            _ => {}
        }
        if let Some(Value::Array(allowed)) = s.get("enum")
            && !allowed.contains(v)
        {
            let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
            return fail(format!("{v} is not one of {}", list.join(", ")));
        }
        if let Some(c) = s.get("const")
            && c != v
        {
            return fail(format!("must be {c}"));
        }
        if let Some(n) = v.as_f64() {
            bounds(s, "minimum", "maximum", n, |b| format!("{n} is {b}"), path)?;
        }
        if let Some(text) = v.as_str() {
            let len = text.chars().count() as f64;
            bounds(
                s,
                "minLength",
                "maxLength",
                len,
                |b| format!("{len} characters, {b}"),
                path,
            )?;
        }
        if let Some(items) = v.as_array() {
            let len = items.len() as f64;
            bounds(
                s,
                "minItems",
                "maxItems",
                len,
                |b| format!("{len} items, {b}"),
                path,
            )?;
            if let Some(item) = s.get("items") {
                for (i, x) in items.iter().enumerate() {
                    at(item, x, &format!("{path}/{i}"))?;
                }
            }
        }
        if let Some(fields) = v.as_object() {
            let properties = s.get("properties").and_then(Value::as_object);
            if let Some(Value::Array(required)) = s.get("required") {
                for name in required.iter().filter_map(Value::as_str) {
                    if !fields.contains_key(name) {
                        return fail(format!("`{name}` is required"));
                    }
                }
            }
            for (name, x) in fields {
                let here = format!("{path}/{}", name.replace('~', "~0").replace('/', "~1"));
                match properties.and_then(|p| p.get(name)) {
                    Some(sub) => at(sub, x, &here)?,
                    None => match s.get("additionalProperties") {
                        Some(Value::Bool(false)) => {
                            let known: Vec<&str> = properties
                                .map(|p| p.keys().map(String::as_str).collect())
                                .unwrap_or_default();
                            return fail(format!(
                                "`{name}` is not allowed (allowed: {})",
                                known.join(", ")
                            ));
                        }
                        Some(extra @ Value::Object(_)) => at(extra, x, &here)?,
                        _ => {}
                    },
                }
            }
        }
        if let Some(Value::Array(all)) = s.get("allOf") {
            for sub in all {
                at(sub, v, path)?;
            }
        }
        if let Some(Value::Array(any)) = s.get("anyOf")
            && !any.iter().any(|sub| at(sub, v, path).is_ok())
        {
            return fail("matches none of the schemas in anyOf".into());
        }
        if let Some(Value::Array(one)) = s.get("oneOf") {
            let n = one.iter().filter(|sub| at(sub, v, path).is_ok()).count();
            if n != 1 {
                return fail(format!(
                    "matches {n} of the schemas in oneOf, not exactly one"
                ));
            }
        }
        Ok(())
    }

    /// `value` against the schema's `min` and `max` keywords; `say` words the
    /// failure ("less than the minimum 1", "more than 5").
    fn bounds(
        s: &serde_json::Map<String, Value>,
        min: &str,
        max: &str,
        value: f64,
        say: impl Fn(String) -> String,
        path: &str,
    ) -> Result<(), String> {
        let limit = |key| s.get(key).and_then(Value::as_f64);
        let why = match (limit(min), limit(max)) {
            (Some(lo), _) if value < lo => say(format!("less than the minimum {lo}")),
            (_, Some(hi)) if value > hi => say(format!("more than the maximum {hi}")),
            _ => return Ok(()),
        };
        Err(format!("{}: {why}", show(path)))
    }

    fn article(t: &str) -> String {
        match t {
            "integer" | "array" | "object" => format!("an {t}"),
            "null" => "null".into(),
            _ => format!("a {t}"),
        }
    }

    fn show(path: &str) -> &str {
        if path.is_empty() { "the input" } else { path }
    }
}

fn main() {
    let notes = json!({"type":"object","properties":{"action":{"type":"string","enum":["add","list","clear"]},"text":{"type":"string","maxLength":1000}},"required":["action"],"additionalProperties":false});
    let stats = json!({"type":"object","properties":{"text":{"type":"string"}},"required":["text"],"additionalProperties":false});
    let pydantic: Value = serde_json::from_str(include_str!("../tests/data/pydantic-schema.json"))
        .expect("the pydantic schema");
    let cases: [(&str, &Value, Value); 5] = [
        (
            "notes, valid",
            &notes,
            json!({"action": "add", "text": "remember the lanes"}),
        ),
        ("notes, a mistake", &notes, json!({"action": "fly"})),
        (
            "text-stats, valid",
            &stats,
            json!({"text": "one two three four five six seven"}),
        ),
        (
            "pydantic model, valid",
            &pydantic,
            json!({"query": "lanes", "limit": 5, "pages": {"first_page": 1, "last_page": 3},
                   "filters": [{"kind": "include", "pattern": "wasm-host"}], "since": "2026-01-31"}),
        ),
        (
            "pydantic model, a mistake",
            &pydantic,
            json!({"query": "lanes", "limit": 500}),
        ),
    ];
    println!("one input checked, medians of 20,001, same run");
    println!(
        "{:<28} {:>12} {:>12} {:>8}",
        "", "hand-written", "jsonschema", "ratio"
    );
    for (name, schema, input) in cases {
        let compiled = InputSchema::compile(schema).expect("a valid schema");
        let old = median(20_001, || {
            let _ = black_box(baseline::check(schema, &input));
        });
        let new = median(20_001, || {
            let _ = black_box(compiled.check(&input));
        });
        println!(
            "{name:<28} {old:>12.2?} {new:>12.2?} {:>7.2}x",
            new.as_secs_f64() / old.as_secs_f64()
        );
    }
}
