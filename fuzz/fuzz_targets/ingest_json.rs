#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| userz_security::ingest::fuzz_check(data));
