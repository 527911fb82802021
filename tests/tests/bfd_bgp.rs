//! BFD drives BGP: tortie-rr with `bfd` on its peer, against BIRD 2 with
//! `bfd on` on the BGP protocol and a `protocol bfd` (100 ms x 3 both
//! sides), in network namespaces. Part of the tortie-rr interop tests
//! (`TORTIE_INTEROP=0` skips them); needs `bird`, `nft` and the built
//! binaries (`cargo build --workspace --bins`).
//!
//! ```text
//! h1 tortie-rr AS 64512 ---- eth0 ---- h2 BIRD AS 65002, originates 10.2.0.0/24
//!    172.30.0.1                            172.30.0.2
//! ```
//!
//! Checks (`bfd_down_takes_bgp_down_bird`), three rounds:
//! 1. BGP Established, BIRD's route received; tortie-rr's BFD session to
//!    BIRD is single hop on eth0 (the peer is on its subnet) and Up; BIRD
//!    shows its session Up.
//! 2. Everything to and from h2 is dropped (nftables in h2's namespace:
//!    no RST, TCP notices nothing; the hold time is 90 s): tortie-rr's
//!    session leaves Established within [`LIMIT`] of the cut (BFD
//!    detects at most 300 ms after the last packet) and BIRD's route is
//!    gone from its RIB; its `lastError` says BFD. The times are printed.
//! 3. While h2 is cut off BFD stays down and the session does not come
//!    back (for 2 s, polled).
//! 4. The drop removed: BFD Up, the session Established again, the route
//!    back.

use std::io::Write as _;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;
use tortie_tests::daemons::bird::Bird;
use tortie_tests::daemons::tortie::{TortieConfig, TortieRr};
use tortie_tests::daemons::{DaemonConfig, Neighbor};
use tortie_tests::netns::{Netns, Topology};
use tortie_tests::{interop_enabled, wait_until};

const AS_RR: u32 = 64512;
const AS_BIRD: u32 = 65002;
const WAIT: Duration = Duration::from_secs(30);
const INTERVAL: Duration = Duration::from_millis(100);
/// Cut to "not Established" at most: the 300 ms detection time after the
/// last packet, plus the instance's reaction, the `nft` command and our
/// polling on two shared cores in a debug build.
const LIMIT: Duration = Duration::from_millis(450);
const ROUTE: &str = "10.2.0.0/24";

/// An nftables table in a namespace that drops every packet in and out
/// (applied at once: one `nft -f`); removed on drop.
struct Cut {
    ns: Netns,
    _dir: tempfile::TempDir,
}

// 1., 2., 3., 4.
#[test]
fn bfd_down_takes_bgp_down_bird() -> Result<()> {
    const TEST: &str = "bfd_down_takes_bgp_down_bird";
    if !interop_enabled(TEST) || !tools(TEST) {
        return Ok(());
    }
    let topo = Topology::new(2)?;
    let (h1, h2) = (&topo.hosts[0], &topo.hosts[1]);
    let bird = Bird::start(
        &h2.ns,
        DaemonConfig::new(h2, AS_BIRD)
            .neighbor(Neighbor::new(h1.v4, AS_RR).bfd(INTERVAL, 3))
            .originate(&[ROUTE]),
    )?;
    let rr = TortieRr::start(
        &h1.ns,
        TortieConfig::new(h1.v4, AS_RR).peer(h2.v4, AS_BIRD, |p| {
            p.bfd = Some("{enabled: true, minRx: 100ms, minTx: 100ms, multiplier: 3}".into());
        }),
    )?;
    let peer = IpAddr::from(h2.v4);
    let mut times = Vec::new();
    for round in 1..=3 {
        // 1.
        let p = wait_until(WAIT, "Established, BFD Up, BIRD's route in", || {
            let p = rr.peer_status(peer).map_err(|e| format!("{e:#}"))?;
            let up = p["state"] == "Established"
                && p["bfd"]["session"]["state"] == "up"
                && p["prefixesReceived"].as_u64() == Some(1);
            if up {
                Ok(p)
            } else {
                Err(p.to_string())
            }
        })
        .with_context(|| format!("round {round}\n{}", rr.log()))?;
        let session = &p["bfd"]["session"];
        assert_eq!(session["multihop"], false, "{p}");
        assert_eq!(session["interface"], "eth0", "{p}");
        assert_eq!(session["detectionTimeMs"], 300, "{p}");
        wait_until(WAIT, "BIRD's BFD session Up", || {
            let out = bird
                .birdc(&["show", "bfd", "sessions"])
                .map_err(|e| format!("{e:#}"))?;
            if out.contains(&h1.v4.to_string()) && out.contains(" Up ") {
                Ok(())
            } else {
                Err(out)
            }
        })?;

        // 2.
        let start = Instant::now();
        let cut = Cut::start(&h2.ns)?;
        let applied = start.elapsed();
        let (mut down, mut withdrawn) = (None, None);
        while down.is_none() || withdrawn.is_none() {
            if start.elapsed() > Duration::from_secs(5) {
                bail!("round {round}: after 5 s, left Established {down:?}, route withdrawn {withdrawn:?}:\n{}", rr.log());
            }
            let s = rr.status()?;
            let at = start.elapsed();
            let p = peer_of(&s, peer)?;
            if down.is_none() && p["state"] != "Established" {
                down = Some((at, p.clone()));
            }
            if withdrawn.is_none() && s["locRibPrefixes"].as_u64() == Some(0) {
                withdrawn = Some(at);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let (down, p) = down.unwrap();
        let withdrawn = withdrawn.unwrap();
        let _ = writeln!(
            std::io::stderr(),
            "{TEST}: round {round}: from the start of `nft -f` (done after {applied:?}): \
             tortie-rr left Established after {down:?}, BIRD's route gone from its RIB \
             after {withdrawn:?} (BFD 100 ms x 3)"
        );
        times.push(down);
        assert!(
            down <= LIMIT,
            "round {round}: left Established {down:?} after the cut (limit {LIMIT:?}): {p}"
        );
        assert!(
            withdrawn <= LIMIT,
            "round {round}: route gone after {withdrawn:?}"
        );
        let why = p["lastError"].as_str().unwrap_or_default();
        assert!(why.starts_with("BFD down"), "round {round}: {p}");
        assert_eq!(p["bfd"]["holding"], true, "{p}");

        // 3.
        let held = Instant::now();
        while held.elapsed() < Duration::from_secs(2) {
            let p = rr.peer_status(peer)?;
            assert_ne!(
                p["state"], "Established",
                "round {round}: up while cut off: {p}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }

        // 4.
        drop(cut);
    }
    let p = rr.peer_status(peer)?;
    assert_eq!(p["bfd"]["bgpDowns"], 3, "{p}");
    let _ = writeln!(
        std::io::stderr(),
        "{TEST}: cut -> not Established: {times:?}"
    );
    Ok(())
}

// ===== impl Cut =====

impl Cut {
    /// Drops everything in `ns`, both ways, from now.
    fn start(ns: &Netns) -> Result<Cut> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("cut.nft");
        std::fs::write(
            &file,
            "table inet tortie_cut {\n\
             \x20 chain in { type filter hook input priority -400; policy drop; }\n\
             \x20 chain out { type filter hook output priority -400; policy drop; }\n}\n",
        )?;
        let path = file.to_str().context("temp path is not UTF-8")?;
        ns.run(&["nft", "-f", path]).context("nft -f cut.nft")?;
        Ok(Cut {
            ns: ns.clone(),
            _dir: dir,
        })
    }
}

impl Drop for Cut {
    fn drop(&mut self) {
        let _ = self
            .ns
            .run(&["nft", "delete", "table", "inet", "tortie_cut"]);
    }
}

// ===== helpers =====

/// `peers[]` entry of `peer` in a `/status`.
fn peer_of(s: &Value, peer: IpAddr) -> Result<Value> {
    s["peers"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["address"] == peer.to_string()))
        .cloned()
        .with_context(|| format!("/status lists no peer {peer}: {s}"))
}

/// Whether BIRD, nft and tortie-rr are here; says why not.
fn tools(test: &str) -> bool {
    let runs = |argv: &[&str]| {
        std::process::Command::new(argv[0])
            .args(&argv[1..])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !runs(&["bird", "--version"]) {
        tortie_testkit::missing(test, "no bird (apt-get install bird2)");
        return false;
    }
    if !runs(&["nft", "--version"]) {
        tortie_testkit::missing(test, "no nft (apt-get install nftables)");
        return false;
    }
    if let Err(e) = TortieRr::binary() {
        tortie_testkit::missing(test, &format!("{e:#} (cargo build --workspace --bins)"));
        return false;
    }
    true
}
