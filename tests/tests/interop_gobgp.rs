//! tortie-rr against GoBGP. Runs by default; `TORTIE_INTEROP=0` skips it
//! (tortie-rr does not speak BGP yet); each skipped test prints why.
//!
//! The topologies and numbered checks are in `common/mod.rs`, above each
//! scenario; this file picks the daemon.

mod common;

use common::MiddleKind;
use tortie_tests::daemons::Kind;
use tortie_tests::interop_enabled;

/// iBGP: tortie-rr (RR) between two GoBGP clients. Checks: `common::routes_flow`.
#[test]
fn gobgp_ibgp_routes_flow() {
    if interop_enabled("gobgp_ibgp_routes_flow") {
        common::routes_flow(MiddleKind::Tortie, Kind::Gobgp, false);
    }
}

/// eBGP: GoBGP AS 65002 -> tortie-rr AS 64512 -> GoBGP AS 65003.
/// Checks: `common::routes_flow`.
#[test]
fn gobgp_ebgp_routes_flow() {
    if interop_enabled("gobgp_ebgp_routes_flow") {
        common::routes_flow(MiddleKind::Tortie, Kind::Gobgp, true);
    }
}

/// TCP MD5 with the right and a wrong password. Checks: `common::md5`.
#[test]
fn gobgp_md5() {
    if interop_enabled("gobgp_md5") {
        common::md5(MiddleKind::Tortie, Kind::Gobgp);
    }
}

/// Reflection between two GoBGP clients: ORIGINATOR_ID and CLUSTER_LIST.
/// Checks: `common::reflection`.
#[test]
fn gobgp_reflection_attributes() {
    if interop_enabled("gobgp_reflection_attributes") {
        common::reflection(MiddleKind::Tortie, Kind::Gobgp);
    }
}

/// Graceful restart: kill -9 tortie-rr; GoBGP keeps the routes stale until it
/// comes back. Checks: `common::graceful_restart`.
#[test]
fn gobgp_graceful_restart() {
    if interop_enabled("gobgp_graceful_restart") {
        common::graceful_restart(MiddleKind::Tortie, Kind::Gobgp);
    }
}
