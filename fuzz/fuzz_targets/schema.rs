#![no_main]

// The host's JSON Schema check, compiled here on its own (it needs only
// serde_json) rather than with the whole host.
#[path = "../../host/src/schema.rs"]
#[allow(dead_code)]
mod schema;

libfuzzer_sys::fuzz_target!(|data: &[u8]| schema::fuzz(data));
