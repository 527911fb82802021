//! Tortie's BFD against FRR's `bfdd`, each in its own network
//! namespace: one test per set of sessions (IPv4 and IPv6 mixed; IPv6
//! only, link-local too). Scenario and numbered checks:
//! `common/scenario.rs`.

mod common;

use common::daemons::Kind;
use common::scenario::Family;

#[tokio::test]
async fn frr_sessions_up_admin_down_and_detection() {
    let test = "frr_sessions_up_admin_down_and_detection";
    common::scenario::run(Kind::Frr, Family::Dual, test).await;
}

#[tokio::test]
async fn frr_ipv6_sessions_up_admin_down_and_detection() {
    let test = "frr_ipv6_sessions_up_admin_down_and_detection";
    common::scenario::run(Kind::Frr, Family::Ipv6, test).await;
}
