//! Checks a tool's input against the JSON Schema the tool declared, before
//! any instance is taken, so a caller learns what is wrong with its input
//! whether or not the tool checks it too.
//!
//! The schema is compiled once, when the tool is loaded, by the `jsonschema`
//! crate: every keyword of the draft the schema names in `$schema` (4, 6,
//! 7, 2019-09 or 2020-12; 2020-12 when it names none), `$ref` and `$defs`
//! within the schema, `pattern`, and `format` checked as an assertion.
//! References to other documents are not fetched: a schema that needs one,
//! or that is not a valid schema, is refused when its tool loads.

use jsonschema::Validator;
use serde_json::Value;

/// Problems named in one refusal, at most.
const MAX_PROBLEMS: usize = 8;

/// A tool's input schema, compiled.
pub struct InputSchema {
    validator: Validator,
}

impl InputSchema {
    /// Compiles `schema`; why it is not a usable schema otherwise.
    pub fn compile(schema: &Value) -> Result<InputSchema, String> {
        jsonschema::options()
            .should_validate_formats(true)
            .build(schema)
            .map(|validator| InputSchema { validator })
            .map_err(|e| format!("{}: {e}", show(&e.instance_path().to_string())))
    }

    /// Whether `input` satisfies the schema; if not, for each problem (the
    /// first [`MAX_PROBLEMS`]) where it is (its JSON Pointer), what is
    /// wrong, and the rule it breaks.
    pub fn check(&self, input: &Value) -> Result<(), String> {
        if self.validator.is_valid(input) {
            return Ok(());
        }
        let problems: Vec<String> = self
            .validator
            .iter_errors(input)
            .take(MAX_PROBLEMS)
            .map(|e| {
                let rule = e.schema_path().to_string();
                let rule = rule.rsplit('/').next().unwrap_or_default();
                format!("{}: {e} ({rule})", show(&e.instance_path().to_string()))
            })
            .collect();
        Err(problems.join("; "))
    }
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
    ) && let Ok(compiled) = InputSchema::compile(&schema)
    {
        let _ = compiled.check(&input);
    }
}

fn show(path: &str) -> &str {
    if path.is_empty() { "the input" } else { path }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(schema: &Value, input: &Value) -> Result<(), String> {
        InputSchema::compile(schema).unwrap().check(input)
    }

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
    fn each_problem_is_named_with_where_it_is_and_the_rule() {
        let cases = [
            (json!([]), "the input: [] is not of type \"object\" (type)"),
            (
                json!({"text":"x"}),
                "the input: \"action\" is a required property (required)",
            ),
            (json!({"action":"fly"}), "/action: \"fly\" is not one of"),
            (
                json!({"action":"add","text":7}),
                "/text: 7 is not of type \"string\" (type)",
            ),
            (
                json!({"action":"add","text":"toolong"}),
                "/text: \"toolong\" is longer than 5 characters (maxLength)",
            ),
            (json!({"action":"add","weight":1}), "(additionalProperties)"),
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
        let err = |input| check(&s, &input).unwrap_err();
        assert!(err(json!({"n":0})).starts_with("/n: 0 is less than the minimum of 1 (minimum)"));
        assert!(err(json!({"n":2.5})).contains("(type)"));
        assert!(err(json!({"xs":[1,"a"]})).starts_with("/xs/1: \"a\" is not of type \"number\""));
        assert!(err(json!({"xs":[1,2,3]})).contains("(maxItems)"));
        assert!(err(json!({"either":1})).contains("(anyOf)"));
    }

    /// What generated schemas use: `$defs` and `$ref`, `pattern`,
    /// `format`, `prefixItems`, `dependentRequired`.
    #[test]
    fn the_keywords_generated_schemas_use_are_checked() {
        let s = json!({
            "$defs": {"name": {"type": "string", "pattern": "^[a-z]+$"}},
            "type": "object",
            "properties": {
                "who": {"$ref": "#/$defs/name"},
                "when": {"type": "string", "format": "date"},
                "mail": {"type": "string", "format": "email"},
                "pair": {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}]},
                "card": {"type": "string"}, "cvc": {"type": "string"},
            },
            "dependentRequired": {"card": ["cvc"]},
        });
        check(
            &s,
            &json!({"who": "ada", "when": "2026-12-01", "pair": ["a", 1], "card": "4", "cvc": "1"}),
        )
        .unwrap();
        let err = |input| check(&s, &input).unwrap_err();
        assert!(
            err(json!({"who": "Ada"}))
                .starts_with("/who: \"Ada\" does not match \"^[a-z]+$\" (pattern)")
        );
        assert!(
            err(json!({"when": "2026-13-40"}))
                .starts_with("/when: \"2026-13-40\" is not a \"date\" (format)")
        );
        assert!(err(json!({"mail": "nobody"})).contains("(format)"));
        assert!(
            err(json!({"pair": ["a", "b"]}))
                .starts_with("/pair/1: \"b\" is not of type \"integer\"")
        );
        assert!(err(json!({"card": "4"})).contains("(dependentRequired)"));
    }

    /// A schema pydantic generated from a real model
    /// (`tests/data/pydantic_model.py`).
    #[test]
    fn a_pydantic_schema_is_checked_through_its_refs() {
        let s: Value =
            serde_json::from_str(include_str!("../../tests/data/pydantic-schema.json")).unwrap();
        let good = json!({
            "query": "lanes", "limit": 5, "unit": "characters",
            "pages": {"first_page": 1, "last_page": 3},
            "filters": [{"kind": "include", "pattern": "wasm-host"}],
            "since": "2026-01-31",
        });
        check(&s, &good).unwrap();
        check(&s, &json!({"query": "x", "pages": null, "since": null})).unwrap();
        let err = |patch: Value| {
            let mut input = good.clone();
            for (k, v) in patch.as_object().unwrap() {
                input[k] = v.clone();
            }
            check(&s, &input).unwrap_err()
        };
        assert!(err(json!({"unit": "pages"})).starts_with("/unit: \"pages\" is not one of"));
        assert!(err(json!({"pages": {"first_page": 0, "last_page": 1}})).starts_with("/pages"));
        assert!(
            err(json!({"filters": [{"kind": "include", "pattern": "Bad!"}]}))
                .starts_with("/filters/0/pattern: \"Bad!\" does not match")
        );
        assert!(err(json!({"since": "yesterday"})).starts_with("/since"));
        assert!(
            err(json!({"limit": 500}))
                .starts_with("/limit: 500 is greater than the maximum of 100")
        );
        assert!(
            check(&s, &json!({"limit": 5}))
                .unwrap_err()
                .contains("\"query\" is a required property")
        );
    }

    #[test]
    fn a_schema_that_is_not_one_is_refused_with_why() {
        for bad in [
            json!({"type": "strnig"}),
            json!({"type": "object", "properties": {"x": {"minimum": "one"}}}),
            json!({"$ref": "https://example.com/remote.json"}),
            json!({"pattern": "(unclosed"}),
        ] {
            let why = InputSchema::compile(&bad)
                .err()
                .unwrap_or_else(|| panic!("{bad} compiled"));
            assert!(!why.is_empty(), "{bad}");
        }
    }
}
