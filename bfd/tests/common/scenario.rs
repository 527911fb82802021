//! The interop scenario, the same for BIRD and FRR: Tortie in namespace
//! a, the daemon in namespace b (see `common` for the topology), three
//! sessions at 100 ms x 3 (IPv4 single hop bound to the interface, IPv6
//! single hop, IPv4 multihop).
//!
//! Checks:
//! 1. All three Up on both sides; our detection time 300 ms.
//! 2. Tortie holds the IPv4 session AdminDown: the daemon shows it down;
//!    released, Up again on both sides.
//! 3. The daemon's end of the link goes down: each of our sessions is
//!    Down ("control detection time expired") within 350 ms. Link up:
//!    Up again.
//! 4. Our service stops without a word (no AdminDown): the daemon sees
//!    all three down (its detection, polled every 20 ms). A new service
//!    brings them Up again.
//! 5. The daemon is killed (SIGKILL): each of our sessions Down within
//!    350 ms.

use std::time::{Duration, Instant};

use bfd::{Diag, SessionConfig, State, Timers};
use tokio::sync::watch;

use super::daemons::{Daemon, Kind};
use super::*;

const TARGET: Duration = Duration::from_millis(350);

type Sessions = Vec<(
    &'static str,
    SessionConfig,
    watch::Receiver<bfd::SessionStatus>,
)>;

/// Runs the scenario against `kind`; `test` names it in a skip.
pub async fn run(kind: Kind, test: &str) {
    if let Some(why) = kind.missing() {
        tortie_testkit::missing(test, &why);
        return;
    }
    let Some(link) = Link::new(test) else {
        return;
    };
    let mut peer = Daemon::start(kind, &link.b);
    let name = kind.name();
    let mut bfd = NsBfd::start(&link.a);
    let mut ours = add_all(&bfd).await;

    // 1.
    let up_both = |peer: &Daemon| peer.all_in(3, "up");
    for (what, _, rx) in ours.iter_mut() {
        wait_up(rx, what).await;
        wait_status(rx, Duration::from_secs(5), what, |s| {
            s.detection_time == Some(Duration::from_millis(300))
        })
        .await;
    }
    poll_until(
        Duration::from_secs(10),
        &format!("{name}: 3 sessions up"),
        || up_both(&peer),
    )
    .await;

    // 2.
    let v4 = ours[0].1.key();
    bfd.handle.set_admin_down(&v4, true).await.unwrap();
    assert_eq!(ours[0].2.borrow().state, State::AdminDown);
    poll_until(Duration::from_secs(5), &format!("{name}: v4 down"), || {
        let v = peer.sessions()?;
        let downs = v.iter().filter(|p| p.state == "down").count();
        (downs == 1).then_some(()).ok_or(format!("{v:?}"))
    })
    .await;
    bfd.handle.set_admin_down(&v4, false).await.unwrap();
    wait_up(&mut ours[0].2, "v4 after AdminDown").await;
    poll_until(
        Duration::from_secs(10),
        &format!("{name}: up again"),
        || up_both(&peer),
    )
    .await;

    // 3.
    settle(&mut ours).await;
    let t0 = Instant::now();
    link.peer_link(false);
    detected(&mut ours, t0, &format!("tortie<-{name} link down")).await;
    link.peer_link(true);
    for (what, _, rx) in ours.iter_mut() {
        wait_up(rx, &format!("{what} after link up")).await;
    }
    poll_until(
        Duration::from_secs(10),
        &format!("{name}: up after link up"),
        || up_both(&peer),
    )
    .await;

    // 4.
    settle(&mut ours).await;
    let t0 = Instant::now();
    drop(bfd);
    let mut seen = None;
    while t0.elapsed() < Duration::from_secs(10) {
        if peer.all_in(3, "down").is_ok() {
            seen = Some(t0.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seen = seen.unwrap_or_else(|| {
        panic!(
            "{name} did not see us go: {:?}\n{}",
            peer.sessions(),
            peer.log()
        )
    });
    say(&format!(
        "bfd {name}<-tortie stopped: {name} shows all 3 down within {seen:?} (polled every 20 ms)"
    ));
    bfd = NsBfd::start(&link.a);
    ours = add_all(&bfd).await;
    for (what, _, rx) in ours.iter_mut() {
        wait_up(rx, &format!("{what} with a new service")).await;
    }
    poll_until(
        Duration::from_secs(10),
        &format!("{name}: up again"),
        || up_both(&peer),
    )
    .await;

    // 5.
    settle(&mut ours).await;
    let t0 = Instant::now();
    peer.kill9();
    detected(&mut ours, t0, &format!("tortie<-{name} killed")).await;
    drop(bfd);
    drop(peer);
    drop(link);
}

/// Our three sessions.
async fn add_all(bfd: &NsBfd) -> Sessions {
    let t = Timers::new(Duration::from_millis(100), 3);
    let cfgs = [
        (
            "v4",
            SessionConfig::single_hop(ip(B4))
                .with_local(ip(A4))
                .with_interface(IF_A)
                .with_timers(t),
        ),
        (
            "v6",
            SessionConfig::single_hop(ip(B6))
                .with_local(ip(A6))
                .with_timers(t),
        ),
        (
            "v4 multihop",
            SessionConfig::multihop(ip(B4), ip(A4)).with_timers(t),
        ),
    ];
    let mut v = vec![];
    for (what, cfg) in cfgs {
        let rx = bfd.handle.add(cfg.clone()).await.unwrap();
        v.push((what, cfg, rx));
    }
    v
}

/// Waits until every session runs at 100 ms both ways.
async fn settle(ours: &mut Sessions) {
    for (what, _, rx) in ours.iter_mut() {
        wait_status(rx, Duration::from_secs(5), what, |s| {
            s.state == State::Up
                && s.detection_time == Some(Duration::from_millis(300))
                && s.tx_interval == Some(Duration::from_millis(100))
        })
        .await;
    }
    // A few packets at the fast rate.
    tokio::time::sleep(Duration::from_millis(500)).await;
}

/// Every session must go Down by detection within [`TARGET`] of `t0`.
async fn detected(ours: &mut Sessions, t0: Instant, what: &str) {
    for (name, _, rx) in ours.iter_mut() {
        let (took, s) = detection_after(rx, t0, name).await;
        say(&format!(
            "bfd {what} {name}: Down {} ms after (100 ms x 3)",
            took.as_millis()
        ));
        assert_eq!(s.state, State::Down, "{what} {name}");
        assert_eq!(
            s.local_diag,
            Diag::ControlDetectionTimeExpired,
            "{what} {name}"
        );
        assert!(took <= TARGET, "{what} {name}: detected after {took:?}");
    }
}
