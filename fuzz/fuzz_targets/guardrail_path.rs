#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| userz_core::guardrail::fuzz_check(data));
