//! Tortie's BFD against BIRD 2's `protocol bfd`, each in its own network
//! namespace: one test per set of sessions (IPv4 and IPv6 mixed; IPv6
//! only, link-local too). Scenario and numbered checks:
//! `common/scenario.rs`.

mod common;

use common::daemons::Kind;
use common::scenario::Family;

#[tokio::test]
async fn bird_sessions_up_admin_down_and_detection() {
    let test = "bird_sessions_up_admin_down_and_detection";
    common::scenario::run(Kind::Bird, Family::Dual, test).await;
}

#[tokio::test]
async fn bird_ipv6_sessions_up_admin_down_and_detection() {
    let test = "bird_ipv6_sessions_up_admin_down_and_detection";
    common::scenario::run(Kind::Bird, Family::Ipv6, test).await;
}
