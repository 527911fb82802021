//! Tortie's BFD against FRR's `bfdd`, each in its own network namespace.
//! Scenario and numbered checks: `common/scenario.rs`.

mod common;

use common::daemons::Kind;

#[tokio::test]
async fn frr_sessions_up_admin_down_and_detection() {
    common::scenario::run(Kind::Frr, "frr_sessions_up_admin_down_and_detection").await;
}
