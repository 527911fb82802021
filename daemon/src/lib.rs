//! What Tortie's daemons (`tortie-rr`, `tortie-node`) share, so that they
//! log, restart and report alike.
//!
//! # Layout
//!
//! - [`http`]: admin HTTP responses (JSON, text, 404).
//! - [`logging`]: the `--log-level` / `--log-format` setup.
//! - [`marker`]: the graceful restart marker in the state directory.
//! - [`metrics`]: Prometheus families built from the BGP speaker's status.

pub mod http;
pub mod logging;
pub mod marker;
pub mod metrics;
