#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pdf_pages::fuzz::parse_batch(data));
