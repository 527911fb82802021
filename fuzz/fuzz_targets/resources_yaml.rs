//! `cargo fuzz run resources_yaml`: see `tortie_fuzz::resources_yaml` and docs/fuzzing.md.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tortie_fuzz::resources_yaml::run(data));
