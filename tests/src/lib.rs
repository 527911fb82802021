//! Test harness: network namespaces and real routing daemons (BIRD 2, FRR
//! bgpd, GoBGP) plus a `tortie-rr` launcher, all cleaned up on drop.
//!
//! # Layout
//!
//! - [`netns`]: namespaces, veth links, a bridge "switch" for 3+ hosts,
//!   commands, processes and TCP sockets inside a namespace.
//! - [`http`]: a minimal HTTP/1.1 GET over a socket opened in a namespace.
//! - [`lab`]: helpers for the tests of real tortie-node agents in the lab.
//! - [`daemons`]: one module per daemon: config builder, start, queries
//!   (sessions, routes with their BGP attributes), runtime announce/withdraw.
//! - [`tor`]: a BIRD top-of-rack router peering with every lab node, and
//!   what it received from which node.
//! - [`tor_frr`]: the same with FRR bgpd, read from its JSON.
//!
//! Polling, never fixed sleeps: [`wait_until`] retries a check until it
//! passes or a deadline expires, and reports the last reason it failed.

pub mod daemons;
pub mod http;
pub mod lab;
pub mod netns;
pub mod tor;
pub mod tor_frr;

use std::time::{Duration, Instant};

/// The environment variable that turns the tortie-rr interop tests off
/// (`TORTIE_INTEROP=0`); they run by default.
pub const INTEROP_ENV: &str = "TORTIE_INTEROP";

/// Polls `check` every 100 ms until it returns `Ok`, or fails after
/// `deadline` with `what` and the last `Err` reason.
pub fn wait_until<T>(
    deadline: Duration,
    what: &str,
    mut check: impl FnMut() -> Result<T, String>,
) -> anyhow::Result<T> {
    let start = Instant::now();
    loop {
        match check() {
            Ok(v) => return Ok(v),
            Err(reason) => {
                if start.elapsed() >= deadline {
                    anyhow::bail!("timed out after {deadline:?} waiting for {what}: {reason}");
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `true` unless the tortie-rr interop tests were turned off; otherwise
/// prints the one-line reason they are skipped.
pub fn interop_enabled(test: &str) -> bool {
    if std::env::var(INTEROP_ENV).as_deref() != Ok("0") {
        return true;
    }
    // Straight to stderr: libtest captures print!/eprint! of passing
    // tests, and a skip must be visible.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIP {test}: tortie-rr interop tests turned off by {INTEROP_ENV}=0"
    );
    false
}
