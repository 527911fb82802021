//! Tortie's BFD against BIRD 2's `protocol bfd`, each in its own network
//! namespace. Scenario and numbered checks: `common/scenario.rs`.

mod common;

use common::daemons::Kind;

#[tokio::test]
async fn bird_sessions_up_admin_down_and_detection() {
    common::scenario::run(Kind::Bird, "bird_sessions_up_admin_down_and_detection").await;
}
