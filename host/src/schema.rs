//! Checks a tool's input against the JSON Schema the tool declared, before
//! any instance is taken, so a caller learns what is wrong with its input
//! whether or not the tool checks it too.
//!
//! The keywords checked are the ones tool schemas use to say what a valid
//! input is: `type`, `enum`, `const`, `properties`, `required`,
//! `additionalProperties` (false or a schema), `items`, `minimum`,
//! `maximum`, `minLength`, `maxLength`, `minItems`, `maxItems`, and
//! `anyOf` / `oneOf` / `allOf`. Other keywords (`pattern`, `format`,
//! `$ref`, …) are left to the tool.

use serde_json::Value;

/// Whether `input` satisfies `schema`; if not, where and why (the first
/// problem found, with its JSON Pointer).
pub(crate) fn check(schema: &Value, input: &Value) -> Result<(), String> {
    at(schema, input, "")
}

/// The entry point for the fuzz target (`fuzz/`) and the test suite's short
/// fuzz run: bytes up to the first NUL as a schema, the rest as an input;
/// must neither panic nor hang.
#[doc(hidden)]
pub fn fuzz(data: &[u8]) {
    let mut parts = data.splitn(2, |&c| c == 0);
    let (Some(schema), Some(input)) = (parts.next(), parts.next()) else {
        return;
    };
    if let (Ok(schema), Ok(input)) = (
        serde_json::from_slice::<Value>(schema),
        serde_json::from_slice::<Value>(input),
    ) {
        let _ = check(&schema, &input);
    }
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
        Some(Value::Array(ts)) if !ts.iter().any(|t| t.as_str().is_some_and(|t| is_type(v, t))) => {
            let names: Vec<String> = ts.iter().filter_map(|t| t.as_str().map(article)).collect();
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn notes() -> Value {
        json!({"type":"object","properties":{"action":{"type":"string","enum":["add","list","clear"]},"text":{"type":"string","maxLength":5}},"required":["action"],"additionalProperties":false})
    }

    #[test]
    fn valid_input_passes() {
        check(&notes(), &json!({"action":"add","text":"hi"})).unwrap();
        check(&json!(true), &json!(42)).unwrap();
        check(&json!({}), &json!({"anything": [1, 2]})).unwrap();
    }

    #[test]
    fn each_problem_is_named_with_where_it_is() {
        let cases = [
            (json!([]), "the input: expected an object, got an array"),
            (json!({"text":"x"}), "`action` is required"),
            (json!({"action":"fly"}), "/action: \"fly\" is not one of"),
            (
                json!({"action":"add","text":7}),
                "/text: expected a string, got an integer",
            ),
            (
                json!({"action":"add","text":"toolong"}),
                "/text: 7 characters, more than the maximum 5",
            ),
            (
                json!({"action":"add","weight":1}),
                "`weight` is not allowed (allowed: action, text)",
            ),
        ];
        for (input, want) in cases {
            let err = check(&notes(), &input).unwrap_err();
            assert!(err.contains(want), "{input}: {err}");
        }
    }

    #[test]
    fn numbers_arrays_and_combinators() {
        let s = json!({"type":"object","properties":{
            "n":{"type":"integer","minimum":1,"maximum":10},
            "xs":{"type":"array","items":{"type":"number"},"maxItems":2},
            "either":{"anyOf":[{"type":"string"},{"type":"null"}]}}});
        check(&s, &json!({"n":3,"xs":[1.5],"either":null})).unwrap();
        assert!(
            check(&s, &json!({"n":0}))
                .unwrap_err()
                .contains("/n: 0 is less than the minimum 1")
        );
        assert!(
            check(&s, &json!({"n":2.5}))
                .unwrap_err()
                .contains("expected an integer")
        );
        assert!(
            check(&s, &json!({"xs":[1,"a"]}))
                .unwrap_err()
                .contains("/xs/1: expected a number")
        );
        assert!(
            check(&s, &json!({"xs":[1,2,3]}))
                .unwrap_err()
                .contains("3 items, more than the maximum 2")
        );
        assert!(
            check(&s, &json!({"either":1}))
                .unwrap_err()
                .contains("anyOf")
        );
    }
}
