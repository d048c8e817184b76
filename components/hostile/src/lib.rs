//! A deliberately misbehaving tool, for the host's tests: it loops forever,
//! allocates without bound, traps, panics, or answers normally, as asked;
//! it also says how many calls its instance has served, and talks on
//! stderr at length. It is built with the other components but never
//! embedded in the binary.

wit_bindgen::generate!({ path: "../../wit", world: "tool-component", generate_all });

use std::sync::atomic::{AtomicU32, Ordering};

use exports::warmlane::worker::tool::{Description, Guest, ToolError};

/// Calls this instance has served.
static CALLS: AtomicU32 = AtomicU32::new(0);

struct Hostile;

impl Guest for Hostile {
    fn describe() -> Description {
        Description {
            name: "hostile".into(),
            description: "Misbehaves on request: loop, allocate, trap, panic, echo, count its instance's calls, or chatter on stderr.".into(),
            input_schema: r#"{"type":"object","properties":{"do":{"type":"string","enum":["loop","alloc","trap","panic","echo","count","chatter"]}},"required":["do"]}"#.into(),
        }
    }

    fn invoke(input: String) -> Result<String, ToolError> {
        let calls = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
        if input.contains("\"count\"") {
            return Ok(format!(r#"{{"calls":{calls}}}"#));
        }
        if input.contains("\"chatter\"") {
            // 16 KB, more than the host keeps of a call's stderr.
            for line in 0..256 {
                eprintln!("chatter line {line:03}: {}", "-".repeat(44));
            }
            return Ok(input);
        }
        if input.contains("\"loop\"") {
            let mut x: u64 = 0;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        if input.contains("\"alloc\"") {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        if input.contains("\"trap\"") {
            // A trap with no last words: not a panic.
            core::arch::wasm32::unreachable();
        }
        if input.contains("\"panic\"") {
            panic!("asked to panic");
        }
        Ok(input)
    }
}

export!(Hostile);
