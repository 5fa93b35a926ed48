#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| userz_security::widget_auth::fuzz_check(data));
