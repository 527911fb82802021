//! Reference runs of the tortie-rr interop scenarios (`common/mod.rs`) with
//! a daemon in tortie-rr's place, built from the same tortie-rr config. They
//! run now, with daemons only, and prove that each scenario's topology and
//! expectations hold on real BGP speakers, so a failing interop test points
//! at tortie-rr, not at the test. Checks of tortie-rr's /status counters
//! are skipped here. The BIRD middle runs every scenario; FRR and GoBGP
//! middles run reflection and eBGP transit (which also proves their
//! route-reflector configs).

mod common;

use common::MiddleKind::{Bird as RefBird, Frr as RefFrr, Gobgp as RefGobgp};
use tortie_tests::daemons::Kind;

macro_rules! reference {
    ($($name:ident => $scenario:ident($middle:expr, $($arg:expr),*);)*) => {
        $(
            #[test]
            fn $name() {
                common::$scenario($middle, $($arg),*);
            }
        )*
    };
}

reference! {
    bird_ibgp_routes_flow => routes_flow(RefBird, Kind::Bird, false);
    bird_ebgp_routes_flow => routes_flow(RefBird, Kind::Bird, true);
    frr_ibgp_routes_flow => routes_flow(RefBird, Kind::Frr, false);
    frr_ebgp_routes_flow => routes_flow(RefBird, Kind::Frr, true);
    gobgp_ibgp_routes_flow => routes_flow(RefBird, Kind::Gobgp, false);
    gobgp_ebgp_routes_flow => routes_flow(RefBird, Kind::Gobgp, true);
    bird_md5 => md5(RefBird, Kind::Bird);
    frr_md5 => md5(RefBird, Kind::Frr);
    gobgp_md5 => md5(RefBird, Kind::Gobgp);
    bird_reflection_attributes => reflection(RefBird, Kind::Bird);
    frr_reflection_attributes => reflection(RefBird, Kind::Frr);
    gobgp_reflection_attributes => reflection(RefBird, Kind::Gobgp);
    bird_graceful_restart => graceful_restart(RefBird, Kind::Bird);
    frr_graceful_restart => graceful_restart(RefBird, Kind::Frr);
    gobgp_graceful_restart => graceful_restart(RefBird, Kind::Gobgp);
    frr_middle_reflection_to_bird => reflection(RefFrr, Kind::Bird);
    frr_middle_reflection_to_gobgp => reflection(RefFrr, Kind::Gobgp);
    frr_middle_ebgp_routes_flow_bird => routes_flow(RefFrr, Kind::Bird, true);
    gobgp_middle_reflection_to_bird => reflection(RefGobgp, Kind::Bird);
    gobgp_middle_reflection_to_frr => reflection(RefGobgp, Kind::Frr);
    gobgp_middle_ebgp_routes_flow_bird => routes_flow(RefGobgp, Kind::Bird, true);
}
