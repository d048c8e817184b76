#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chunker::fuzz::chunk(data));
