//! `cargo fuzz run bgp_session`: see `tortie_fuzz::bgp_session` and docs/fuzzing.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tortie_fuzz::bgp_session::run(data));
