#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| warmlane_pdf::fuzz::open_and_cut(data));
