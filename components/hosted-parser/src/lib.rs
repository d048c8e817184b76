//! A page parser that sends each batch to a hosted parsing service through
//! the host: the batch's PDF goes to `http://parser/parse?first_page=N`
//! (upstream `parser`, as configured), which answers with
//! `{"pages": [{"number": N, "text": "..."} | {"number": N, "error": "..."}]}`.
//! The host meters it (`cost = "pages"` on the component, or per request on
//! the upstream) and injects the service's key.

wit_bindgen::generate!({ path: "../../wit", world: "page-parser-component", generate_all });

mod outbound;

use exports::warmlane::worker::page_parser::{Guest, ParsedPage};
use serde_json::Value;

struct HostedParser;

impl Guest for HostedParser {
    fn parse(pdf: Vec<u8>, first_page: u32) -> Result<Vec<ParsedPage>, String> {
        let url = format!("http://parser/parse?first_page={first_page}");
        let answer = outbound::post(&url, "application/pdf", &pdf)?;
        if answer.status != 200 {
            let retry = answer
                .retry_after
                .map(|s| format!(" (retry after {s} s)"))
                .unwrap_or_default();
            return Err(format!(
                "the parsing service answered {}{retry}: {}",
                answer.status,
                String::from_utf8_lossy(&answer.body)
            ));
        }
        let value: Value = serde_json::from_slice(&answer.body)
            .map_err(|e| format!("the parsing service's answer is not JSON: {e}"))?;
        let pages = value["pages"]
            .as_array()
            .ok_or("the parsing service's answer has no `pages` list")?;
        pages
            .iter()
            .map(|p| {
                let number = p["number"]
                    .as_u64()
                    .ok_or("a page of the answer has no `number`")?
                    as u32;
                let text = match (p["text"].as_str(), p["error"].as_str()) {
                    (Some(text), _) => Ok(text.to_string()),
                    (None, Some(error)) => Err(error.to_string()),
                    (None, None) => {
                        Err("the parsing service returned neither text nor an error".into())
                    }
                };
                Ok(ParsedPage { number, text })
            })
            .collect()
    }
}

export!(HostedParser);
