//! `cargo fuzz run cni_request`: see `tortie_fuzz::cni_request` and docs/fuzzing.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tortie_fuzz::cni_request::run(data));
