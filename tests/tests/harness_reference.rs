//! Reference runs of the tortie-rr interop scenarios (`common/mod.rs`) with
//! a BIRD in tortie-rr's place, built from the same tortie-rr config. They
//! run now, with daemons only, and prove that each scenario's topology and
//! expectations hold on real BGP speakers, so a failing interop test points
//! at tortie-rr, not at the test. Checks of tortie-rr's /status counters
//! are skipped here.

mod common;

use common::MiddleKind::Bird as Ref;
use tortie_tests::daemons::Kind;

macro_rules! reference {
    ($($name:ident => $scenario:ident($($arg:expr),*);)*) => {
        $(
            #[test]
            fn $name() {
                common::$scenario(Ref, $($arg),*);
            }
        )*
    };
}

reference! {
    bird_ibgp_routes_flow => routes_flow(Kind::Bird, false);
    bird_ebgp_routes_flow => routes_flow(Kind::Bird, true);
    frr_ibgp_routes_flow => routes_flow(Kind::Frr, false);
    frr_ebgp_routes_flow => routes_flow(Kind::Frr, true);
    gobgp_ibgp_routes_flow => routes_flow(Kind::Gobgp, false);
    gobgp_ebgp_routes_flow => routes_flow(Kind::Gobgp, true);
    bird_md5 => md5(Kind::Bird);
    frr_md5 => md5(Kind::Frr);
    gobgp_md5 => md5(Kind::Gobgp);
    bird_reflection_attributes => reflection(Kind::Bird);
    frr_reflection_attributes => reflection(Kind::Frr);
    gobgp_reflection_attributes => reflection(Kind::Gobgp);
    bird_graceful_restart => graceful_restart(Kind::Bird);
    frr_graceful_restart => graceful_restart(Kind::Frr);
    gobgp_graceful_restart => graceful_restart(Kind::Gobgp);
}
