//! tortie-rr against FRR bgpd. Runs by default; `TORTIE_INTEROP=0` skips it
//! (tortie-rr does not speak BGP yet); each skipped test prints why.
//!
//! The topologies and numbered checks are in `common/mod.rs`, above each
//! scenario; this file picks the daemon.

mod common;

use common::MiddleKind;
use tortie_tests::daemons::Kind;
use tortie_tests::interop_enabled;

/// iBGP: tortie-rr (RR) between two FRR bgpd clients. Checks: `common::routes_flow`.
#[test]
fn frr_ibgp_routes_flow() {
    if interop_enabled("frr_ibgp_routes_flow") {
        common::routes_flow(MiddleKind::Tortie, Kind::Frr, false);
    }
}

/// eBGP: FRR bgpd AS 65002 -> tortie-rr AS 64512 -> FRR bgpd AS 65003.
/// Checks: `common::routes_flow`.
#[test]
fn frr_ebgp_routes_flow() {
    if interop_enabled("frr_ebgp_routes_flow") {
        common::routes_flow(MiddleKind::Tortie, Kind::Frr, true);
    }
}

/// TCP MD5 with the right and a wrong password. Checks: `common::md5`.
#[test]
fn frr_md5() {
    if interop_enabled("frr_md5") {
        common::md5(MiddleKind::Tortie, Kind::Frr);
    }
}

/// Reflection between two FRR bgpd clients: ORIGINATOR_ID and CLUSTER_LIST.
/// Checks: `common::reflection`.
#[test]
fn frr_reflection_attributes() {
    if interop_enabled("frr_reflection_attributes") {
        common::reflection(MiddleKind::Tortie, Kind::Frr);
    }
}

/// Graceful restart: kill -9 tortie-rr; FRR bgpd keeps the routes stale until it
/// comes back. Checks: `common::graceful_restart`.
#[test]
fn frr_graceful_restart() {
    if interop_enabled("frr_graceful_restart") {
        common::graceful_restart(MiddleKind::Tortie, Kind::Frr);
    }
}
