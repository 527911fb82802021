//! Codec tests of `bgp_speaker::packet`: byte tables both ways, the
//! malformed-input table (RFC 4271 §6 / RFC 7606), and property tests.

mod common;
mod malformed;
mod props;
mod tables;
