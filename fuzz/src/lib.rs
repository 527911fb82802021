//! The bodies of Tortie's fuzz targets, as plain functions: the targets in
//! `fuzz_targets/` call them under libFuzzer (nightly, `cargo fuzz`), and
//! `tests/replay.rs` runs them on stable over the committed seeds, any
//! crash inputs kept in `regressions/`, and proptest's random inputs.
//! See docs/fuzzing.md.
//!
//! # Layout
//!
//! - `input`: the byte cursor the structured inputs are read with.
//! - `bgp_message`: framing and decoding, re-encoding checks.
//! - `bgp_session`: a speaker on in-memory connections fed operations.
//! - `cni_request`: `tortie-cni`'s network config, environment and
//!   annotations.
//! - `resources_yaml`: the multi-document resource loader.

pub mod bgp_message;
pub mod bgp_session;
pub mod cni_request;
pub mod input;
pub mod resources_yaml;

/// Every target: its name (as `cargo fuzz run NAME`) and body.
pub const TARGETS: [(&str, fn(&[u8])); 4] = [
    ("bgp_message", bgp_message::run),
    ("bgp_session", bgp_session::run),
    ("cni_request", cni_request::run),
    ("resources_yaml", resources_yaml::run),
];
