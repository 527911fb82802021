//! tortie-rr against BIRD 2. Runs by default; `TORTIE_INTEROP=0` skips it
//! (tortie-rr does not speak BGP yet); each skipped test prints why.
//!
//! The topologies and numbered checks are in `common/mod.rs`, above each
//! scenario; this file picks the daemon.

mod common;

use common::MiddleKind;
use tortie_tests::daemons::Kind;
use tortie_tests::interop_enabled;

/// iBGP: tortie-rr (RR) between two BIRD 2 clients. Checks: `common::routes_flow`.
#[test]
fn bird_ibgp_routes_flow() {
    if interop_enabled("bird_ibgp_routes_flow") {
        common::routes_flow(MiddleKind::Tortie, Kind::Bird, false);
    }
}

/// eBGP: BIRD 2 AS 65002 -> tortie-rr AS 64512 -> BIRD 2 AS 65003.
/// Checks: `common::routes_flow`.
#[test]
fn bird_ebgp_routes_flow() {
    if interop_enabled("bird_ebgp_routes_flow") {
        common::routes_flow(MiddleKind::Tortie, Kind::Bird, true);
    }
}

/// TCP MD5 with the right and a wrong password. Checks: `common::md5`.
#[test]
fn bird_md5() {
    if interop_enabled("bird_md5") {
        common::md5(MiddleKind::Tortie, Kind::Bird);
    }
}

/// Reflection between two BIRD 2 clients: ORIGINATOR_ID and CLUSTER_LIST.
/// Checks: `common::reflection`.
#[test]
fn bird_reflection_attributes() {
    if interop_enabled("bird_reflection_attributes") {
        common::reflection(MiddleKind::Tortie, Kind::Bird);
    }
}

/// Graceful restart: kill -9 tortie-rr; BIRD 2 keeps the routes stale until it
/// comes back. Checks: `common::graceful_restart`.
#[test]
fn bird_graceful_restart() {
    if interop_enabled("bird_graceful_restart") {
        common::graceful_restart(MiddleKind::Tortie, Kind::Bird);
    }
}
