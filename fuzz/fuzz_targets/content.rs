#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pdf_pages::fuzz::content(data));
