//! A deliberately misbehaving tool, for the host's tests: it loops forever,
//! allocates without bound, traps, panics, or answers normally, as asked. It is
//! built with the other components but never embedded in the binary.

wit_bindgen::generate!({ path: "../../wit", world: "tool-component", generate_all });

use exports::warmlane::worker::tool::{Description, Guest, ToolError};

struct Hostile;

impl Guest for Hostile {
    fn describe() -> Description {
        Description {
            name: "hostile".into(),
            description: "Misbehaves on request: loop, allocate, trap, panic, or echo.".into(),
            input_schema: r#"{"type":"object","properties":{"do":{"type":"string","enum":["loop","alloc","trap","panic","echo"]}},"required":["do"]}"#.into(),
        }
    }

    fn invoke(input: String) -> Result<String, ToolError> {
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
