//! `cargo fuzz run bgp_message`: see `tortie_fuzz::bgp_message` and docs/fuzzing.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tortie_fuzz::bgp_message::run(data));
