#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| userz_security::webhooks::fuzz_check(data));
