//! Tortie's typed configuration: the files users write, loaded with serde
//! and validated with errors that name the field, the value and what is
//! allowed.
//!
//! # Layout
//!
//! - `yaml`: YAML text to a strictly typed value tree (no type coercion),
//!   then serde with the full path of any error (`peers[1].holdTime`).
//! - `peer`: one BGP neighbour as the speaker runs it; the RR file and
//!   tortie-node's resources both come down to it.
//! - `rr`: the route reflector's file (`tortie-rr --config rr.yaml`): the
//!   typed model, its defaults and its loader.
//! - `rr/raw`: the file exactly as written (serde, camelCase, unknown fields
//!   rejected); `rr/validate`: raw to typed with every check.
//! - `node`: `tortie-node`'s settings (flags, environment, file).
//! - `filter`: a peer's import and export rules (BGPFilter, compiled).
//! - `bfd`: a peer's BFD, as written and as the speaker runs it.
//! - `error`: [`ConfigError`].

pub mod bfd;
pub mod error;
pub mod filter;
pub mod node;
pub mod peer;
pub mod resources;
pub mod rr;
mod yaml;

pub use error::ConfigError;
pub use peer::{DynamicPeerConfig, MaxPrefix, PeerConfig};
pub use rr::{DatastoreClients, Family, GracefulRestart, RrConfig};
