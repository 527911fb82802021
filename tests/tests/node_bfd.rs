//! tortie-node with a BIRD top-of-rack router over BFD: the BGPPeer of
//! `docs/tor-peering.md` (Calico's `failureDetectionMode:
//! BFDIfDirectlyConnected` with Tortie's `bfd` timers, 100 ms x 3;
//! `ttlSecurity: 1`; a BGPFilter; BGPConfiguration communities) against
//! BIRD 2.0.12 with `bfd on`, `ttl security on` and a `protocol bfd` at
//! the same timers, eBGP (ToR AS 65000, node AS 64512), in the lab's
//! namespaces.
//!
//! ```text
//!   node1 172.30.1.11 (tortie-node) ── subnet A ── tor 172.30.1.2 (BIRD)
//!                                                   announces 10.244.250.0/24,
//!                                                   10.244.251.0/24
//!   IPv6 only:
//!   node1 fd30:1::11 ────────────────── subnet A ── tor fd30:1::2
//!                                                   announces fd00:10:244:fa::/64,
//!                                                   fd00:10:244:fb::/64
//! ```
//!
//! Checks (`bird_tor_bfd_takes_the_route_out_of_the_kernel`, and the same
//! in an IPv6-only lab, `bird_tor_bfd_over_ipv6_takes_the_route_out_of_the_kernel`:
//! [`RESOURCES6`], a BGPPeer at fd30:1::2 with `bfd: {enabled: true, ...}`,
//! BIRD's session, BFD and routes over IPv6):
//! 1. The session is Established with BFD Up (single hop on eth0, from
//!    the node's address of the family, detection time 300 ms); BIRD's
//!    BFD session with the node's address is Up; the filter let
//!    10.244.251.0/24 (fd00:10:244:fb::/64) in (in the node's kernel, via
//!    the ToR's address: received 2, accepted 1) and kept 10.244.250.0/24
//!    (fd00:10:244:fa::/64) out; the ToR has the node's block with the
//!    communities and the node's address as next hop (over IPv6 with its
//!    link-local address besides, RFC 2545 §3); the ToR's row of
//!    `tortiectl node status` says `Established, BFD up`.
//! 2. Every packet to and from the ToR is dropped (nftables in its
//!    namespace: TCP notices nothing, the hold time is 90 s): the node's
//!    session leaves Established within [`LIMIT`] of the cut, the ToR's
//!    route leaves the node's kernel table (times printed); `lastError`
//!    says BFD, the ToR's row of `tortiectl node status` says `BFD down,
//!    BGP held`, `/metrics` counts the BGP session BFD took down.
//! 3. While the ToR is cut off the session stays down (2 s, polled) and
//!    the route stays out of the kernel.
//! 4. The drop removed: BFD Up, Established, the route back in the kernel.
//!    Two rounds.
//! 5. A planned stop of the node (SIGTERM) with graceful restart not
//!    negotiated (BIRD `graceful restart off`): BIRD's session ends on
//!    the node's Cease ("Received: Administrative reset"), not on BFD
//!    (the node says AdminDown 100 ms after its sessions closed), and the
//!    node's block leaves BIRD's table at once.
//!
//! Checks (`bird_tor_bfd_with_graceful_restart`), BIRD with `graceful
//! restart on` (the node always does graceful restart, RFC 4724, with the
//! N bit of RFC 8538):
//! 1. Established, graceful restart negotiated, BFD Up, the route in the
//!    kernel.
//! 2. The cut: the route leaves the kernel as without graceful restart
//!    (BFD says the path is gone: not kept as stale; `docs/bfd.md`, "With
//!    BGP"), within [`LIMIT`] for the session.
//! 3. A planned stop of the node (SIGTERM): it closes the session
//!    without a NOTIFICATION (graceful restart without the N bit: BIRD
//!    2.0.12 has none), then its BFD says AdminDown. BIRD's log: no
//!    "Received:", "Connection closed", "Neighbor graceful restart
//!    detected". The node's kernel keeps the ToR's route while it is
//!    away. Twice:
//!    - BIRD `bfd on`: BIRD takes the AdminDown as "BFD session down"
//!      (BIRD 2.0.12 does so for the peer's AdminDown, unlike RFC 5882
//!      §3.2 says), which stops the session and withdraws the node's
//!      block from its table although the restart was detected.
//!    - BIRD `bfd graceful` (`birdc configure`): BFD Down is a graceful
//!      restart to it, so the block stays in BIRD's table as stale
//!      (`show protocols all`: "Neighbor graceful restart active",
//!      "Restart timer"; polled for 2 s) until the node is back:
//!      Established, "Neighbor graceful restart done", the block there
//!      all along.
//! 4. A planned restart of the ToR (`birdc graceful restart`, BIRD
//!    started again with `-R`): BIRD closes the session without a
//!    NOTIFICATION, so the node keeps its route as stale (RFC 4724); its
//!    BFD then goes Down (BIRD stopped without AdminDown), which holds BGP
//!    down but does not withdraw the stale route: it stays in the kernel
//!    the whole time (1.5 s, polled), `bgpDowns` stays 0. BIRD back:
//!    Established, BFD Up, the route there.
//!
//! The lab, the ToR's config, the cut and the reads are in
//! `node_bfd/rig.rs`.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use anyhow::Result;
use tortie_ctl::lab::{net, Signal};
use tortie_tests::tor::TOR_AS;
use tortie_tests::wait_until;

#[path = "node_bfd/rig.rs"]
mod rig;
use rig::{
    bird_conf, block_gone, cut_and_measure, gr_negotiated, has_block, has_route, lab_get,
    lab_with_tor, node_block, node_status_table, route_all, say, status_row, tools, tor_peer,
    wait_proto, wait_up, Family,
};

/// Cut to "not Established" at most. BFD's 300 ms after the last packet
/// (which came at most one TX interval, 75-100 ms, before the cut) plus
/// the speaker's reaction and our polling is what an idle machine shows
/// (231-303 ms); the <= 350 ms target is measured by the benchmark
/// (`cargo bench -p bfd --bench sessions`, docs/benchmarks.md), not here.
/// This bound only has to tell BFD from BGP's own detection (a hold time
/// of 3 s at the least, 90 s here) on a loaded CI machine running tests
/// side by side, where a debug build's timers can run hundreds of ms late.
const LIMIT: Duration = Duration::from_millis(1500);
/// Cut to "route gone from the kernel" at most: the above plus felix's
/// pass.
const KERNEL_LIMIT: Duration = Duration::from_millis(2500);
const WAIT: Duration = Duration::from_secs(40);
/// What the ToR announces that the filter lets in (inside the pool: it is
/// programmed).
const ROUTE: &str = "10.244.251.0/24";
/// What the filter keeps out.
const REJECTED: &str = "10.244.250.0/24";

/// The ToR's address: the lab's first extra host.
const TOR: Ipv4Addr = Ipv4Addr::new(172, 30, 1, 2);

/// The IPv6 test's [`ROUTE`]: inside the lab's IPv6 pool
/// (fd00:10:244::/48), away from the nodes' /122 blocks.
const ROUTE6: &str = "fd00:10:244:fb::/64";
/// The IPv6 test's [`REJECTED`].
const REJECTED6: &str = "fd00:10:244:fa::/64";
/// The ToR's address in the IPv6-only lab: `add_host6`'s fd30:1::2.
const TOR6: Ipv6Addr = Ipv6Addr::new(0xfd30, 1, 0, 0, 0, 0, 0, 2);

/// The resources of `docs/tor-peering.md`'s example, for a ToR at
/// 172.30.1.2. Node1 is in rack1; node2 (the lab has at least two nodes)
/// is not, and has no BGP neighbour at all (the mesh is off).
const RESOURCES: &str = "apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata:
  name: default
spec:
  nodeToNodeMeshEnabled: false
  communities:
    - {name: rack1, value: '65000:101'}
  prefixAdvertisements:
    - cidr: 10.244.0.0/16
      communities: [rack1, '65000:1:2']
---
apiVersion: projectcalico.org/v3
kind: BGPFilter
metadata:
  name: from-tor
spec:
  importV4:
    - {action: Reject, matchOperator: Equal, cidr: 10.244.250.0/24}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: rack1-tor
spec:
  nodeSelector: rack == 'rack1'
  peerIP: 172.30.1.2
  asNumber: 65000
  failureDetectionMode: BFDIfDirectlyConnected
  bfd: {minRx: 100ms, minTx: 100ms, multiplier: 3}
  ttlSecurity: 1
  filters: [from-tor]
";

/// [`RESOURCES`] for the IPv6-only lab: the BGPPeer at the ToR's IPv6
/// address with `bfd: {enabled: true, ...}` (BFD with any peer, single
/// hop as the ToR is on the node's subnet) instead of Calico's
/// `failureDetectionMode`, the filter's rule in `importV6`, the
/// communities on the IPv6 pool's routes.
const RESOURCES6: &str = "apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata:
  name: default
spec:
  nodeToNodeMeshEnabled: false
  communities:
    - {name: rack1, value: '65000:101'}
  prefixAdvertisements:
    - cidr: fd00:10:244::/48
      communities: [rack1, '65000:1:2']
---
apiVersion: projectcalico.org/v3
kind: BGPFilter
metadata:
  name: from-tor
spec:
  importV6:
    - {action: Reject, matchOperator: Equal, cidr: 'fd00:10:244:fa::/64'}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: rack1-tor
spec:
  nodeSelector: rack == 'rack1'
  peerIP: fd30:1::2
  asNumber: 65000
  bfd: {enabled: true, minRx: 100ms, minTx: 100ms, multiplier: 3}
  ttlSecurity: 1
  filters: [from-tor]
";

// 1., 2., 3., 4., 5.
#[test]
fn bird_tor_bfd_takes_the_route_out_of_the_kernel() -> Result<()> {
    takes_the_route_out(
        "bird_tor_bfd_takes_the_route_out_of_the_kernel",
        "nbfd",
        Family::V4,
    )
}

// 1., 2., 3., 4., 5.
#[test]
fn bird_tor_bfd_over_ipv6_takes_the_route_out_of_the_kernel() -> Result<()> {
    takes_the_route_out(
        "bird_tor_bfd_over_ipv6_takes_the_route_out_of_the_kernel",
        "nbfdv6",
        Family::V6,
    )
}

/// The checks 1. to 5. of the first two tests, over `family`.
fn takes_the_route_out(test: &str, prefix: &str, family: Family) -> Result<()> {
    if !tools(test) {
        return Ok(());
    }
    let (mut lab, tor) = lab_with_tor(prefix, false, family)?;
    let (route, tor_ip) = (family.route(), family.tor());
    let node_ip = family.node(&lab, 0);
    let next_hop = family.next_hop(&lab, 0)?;
    let node = &lab.nodes[0];
    let mut times = Vec::new();
    for round in 1..=2 {
        // 1.
        let p = wait_up(&lab, &tor, round)?;
        let session = &p["bfd"]["session"];
        assert_eq!(session["multihop"], false, "{p}");
        assert_eq!(session["interface"], "eth0", "{p}");
        assert_eq!(session["local"], node_ip.to_string().as_str(), "{p}");
        assert_eq!(p["prefixesReceived"], 2, "{p}");
        assert_eq!(p["prefixesAccepted"], 1, "{p}");
        let routes = net::ip_in_output(&node.ns, &[family.ip(), "route"])?;
        assert!(
            !routes.contains(family.rejected()),
            "filtered, yet:\n{routes}"
        );
        if round == 1 {
            let block = node_block(&lab)?;
            let attrs = wait_until(WAIT, "the node's block at the ToR", || {
                let t = tor.table().map_err(|e| e.to_string())?;
                route_all(&t, &block).ok_or(t)
            })?;
            for want in [
                "BGP.community: (65000,101)",
                "BGP.large_community: (65000, 1, 2)",
                &format!("BGP.next_hop: {next_hop}\n"),
            ] {
                assert!(attrs.contains(want), "no `{want}` at the ToR:\n{attrs}");
            }
        }
        let table = node_status_table(&lab)?;
        assert!(
            status_row(&table, tor_ip).contains("Established, BFD up"),
            "tortiectl node status:\n{table}"
        );
        if round == 1 {
            say(&format!("{test}: tortiectl node status:\n{table}"));
        }

        // 2.
        let (cut, down, gone, p) = cut_and_measure(&lab, round)?;
        say(&format!(
            "{test}: round {round}: from the start of `nft -f`: left Established after \
             {down:?}, {route} gone from the node's kernel after {gone:?} (BFD 100 ms x 3)"
        ));
        times.push((down, gone));
        assert!(down <= LIMIT, "round {round}: down after {down:?}: {p}");
        assert!(
            gone <= KERNEL_LIMIT,
            "round {round}: route gone after {gone:?}"
        );
        let why = p["lastError"].as_str().unwrap_or_default();
        assert!(why.starts_with("BFD down"), "round {round}: {p}");
        let table = node_status_table(&lab)?;
        assert!(
            status_row(&table, tor_ip).contains("BFD down, BGP held"),
            "tortiectl node status:\n{table}"
        );
        if round == 1 {
            say(&format!("{test}: tortiectl node status, cut:\n{table}"));
        }
        let metrics = lab_get(&lab, "/metrics")?;
        let held =
            format!("tortie_bfd_bgp_downs_total{{peer=\"{tor_ip}\",asn=\"{TOR_AS}\"}} {round}");
        assert!(
            metrics.contains(&held),
            "no `{held}` in /metrics:\n{metrics}"
        );

        // 3.
        let since = Instant::now();
        while since.elapsed() < Duration::from_secs(2) {
            let p = tor_peer(&lab)?;
            assert_ne!(
                p["state"], "Established",
                "round {round}: up while cut: {p}"
            );
            assert_eq!(p["bfd"]["holding"], true, "{p}");
            assert!(!has_route(&lab)?, "round {round}: {route} back while cut");
            std::thread::sleep(Duration::from_millis(100));
        }

        // 4.
        drop(cut);
    }
    wait_up(&lab, &tor, 3)?;
    let p = tor_peer(&lab)?;
    assert_eq!(p["bfd"]["bgpDowns"], 2, "{p}");
    say(&format!(
        "{test}: cut -> (not Established, route gone from the kernel): {times:?}"
    ));
    // 5.
    let proto = tor.show(&["protocols", "all", "node1"])?;
    assert!(
        !gr_negotiated(&proto),
        "graceful restart negotiated:\n{proto}"
    );
    let block = node_block(&lab)?;
    let from = tor.log_len();
    lab.stop_node(0, Signal::SIGTERM)?;
    let proto = wait_proto(&tor, "BIRD's session down", "Last error:")?;
    assert!(
        proto.contains("Last error:       Received: Administrative reset"),
        "BIRD took the stop for something else than our Cease:\n{proto}\n{}",
        tor.log_since(from)
    );
    block_gone(&tor, &block)?;
    let log = tor.log_since(from);
    assert!(!log.contains("graceful restart"), "{log}");
    assert!(!log.contains("node1: BFD session down"), "{log}");
    Ok(())
}

// 1., 2., 3., 4.
#[test]
fn bird_tor_bfd_with_graceful_restart() -> Result<()> {
    const TEST: &str = "bird_tor_bfd_with_graceful_restart";
    if !tools(TEST) {
        return Ok(());
    }
    let (mut lab, tor) = lab_with_tor("nbfdgr", true, Family::V4)?;

    // 1.
    wait_up(&lab, &tor, 1)?;
    let proto = tor.show(&["protocols", "all", "node1"])?;
    assert!(
        gr_negotiated(&proto),
        "graceful restart not negotiated:\n{proto}"
    );

    // 2.
    let (cut, down, gone, p) = cut_and_measure(&lab, 1)?;
    say(&format!(
        "{TEST}: with graceful restart: left Established after {down:?}, {ROUTE} gone \
         from the kernel after {gone:?}"
    ));
    assert!(down <= LIMIT, "down after {down:?}: {p}");
    assert!(gone <= KERNEL_LIMIT, "route gone after {gone:?}");
    drop(cut);
    wait_up(&lab, &tor, 2)?;

    // 3. `bfd on`: BIRD takes the node's closing for a restart, then its
    // BFD AdminDown for a failure.
    let block = node_block(&lab)?;
    let from = tor.log_len();
    lab.stop_node(0, Signal::SIGTERM)?;
    let log = wait_until(WAIT, "BIRD's BFD Down", || {
        let log = tor.log_since(from);
        if log.contains("node1: BFD session down") || log.contains("Received:") {
            Ok(log)
        } else {
            Err(log)
        }
    })?;
    assert!(!log.contains("Received:"), "a NOTIFICATION:\n{log}");
    assert!(
        log.contains("node1: Connection closed"),
        "BIRD saw no close:\n{log}"
    );
    // The node's BFD says AdminDown 100 ms after its sessions closed:
    // BIRD has read the close by then.
    let restart = log.find("Neighbor graceful restart detected");
    assert!(
        restart.is_some() && restart < log.find("node1: BFD session down"),
        "BIRD took no restart before the BFD Down:\n{log}"
    );
    block_gone(&tor, &block)?;
    say(&format!(
        "{TEST}: SIGTERM, `bfd on`: BIRD saw the connection close without a NOTIFICATION \
         (graceful restart detected), then the node's BFD AdminDown as `BFD session down`, \
         which stopped the session and withdrew {block} (BIRD 2.0.12 takes the peer's \
         AdminDown as a failure)"
    ));
    assert!(
        has_route(&lab)?,
        "{ROUTE} left the kernel while the node was away"
    );
    lab.start_node(0)?;
    wait_up(&lab, &tor, 3)?;

    // 3. `bfd graceful`: the node's block stays in BIRD's table as stale
    // until the node is back.
    tor.reconfigure(&bird_conf(lab.nodes[0].address.into(), true, "graceful"))?;
    let p = wait_up(&lab, &tor, 4)?;
    assert_eq!(p["bfd"]["bgpDowns"], 0, "a new process counts from 0: {p}");
    let from = tor.log_len();
    lab.stop_node(0, Signal::SIGTERM)?;
    let away = Instant::now();
    let proto = wait_proto(
        &tor,
        "BIRD's graceful restart",
        "Neighbor graceful restart active",
    )?;
    assert!(proto.contains("Restart timer:"), "{proto}");
    while away.elapsed() < Duration::from_secs(2) {
        let t = tor.table()?;
        assert!(
            has_block(&t, &block),
            "{block} left BIRD's table {:?} after the stop:\n{t}\n{}",
            away.elapsed(),
            tor.log_since(from)
        );
        assert!(
            has_route(&lab)?,
            "{ROUTE} left the kernel while the node was away"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = tor.log_since(from);
    assert!(!log.contains("Received:"), "a NOTIFICATION:\n{log}");
    assert!(log.contains("node1: Connection closed"), "{log}");
    let stale = route_all(&tor.table()?, &block).unwrap_or_default();
    say(&format!(
        "{TEST}: SIGTERM, `bfd graceful`: BIRD kept {block} for the 2 s the node was \
         away:\n{stale}{}\nBIRD's log from the stop:\n{log}",
        proto
            .lines()
            .filter(|l| l.contains("graceful") || l.contains("timer") || l.contains("error"))
            .collect::<Vec<_>>()
            .join("\n")
    ));
    lab.start_node(0)?;
    wait_until(WAIT, "BIRD's graceful restart done", || {
        let t = tor.table().map_err(|e| format!("{e:#}"))?;
        if route_all(&t, &block).is_none() {
            return Ok(Err(format!("{block} left BIRD's table:\n{t}")));
        }
        let out = tor
            .show(&["protocols", "all", "node1"])
            .map_err(|e| format!("{e:#}"))?;
        if out.contains("Established") && !out.contains("graceful restart active") {
            Ok(Ok(()))
        } else {
            Err(out)
        }
    })?
    .map_err(anyhow::Error::msg)?;
    let p = wait_up(&lab, &tor, 5)?;
    assert_eq!(p["bfd"]["bgpDowns"], 0, "{p}");
    assert!(
        tor.log_since(from)
            .contains("Neighbor graceful restart done"),
        "{}",
        tor.log_since(from)
    );

    // 4.
    let mut tor = tor;
    let t0 = Instant::now();
    let mut bfd_down_seen = false;
    tor.graceful_restart(|| {
        while t0.elapsed() < Duration::from_millis(1500) {
            let p = tor_peer(&lab)?;
            assert_ne!(p["state"], "Established", "BIRD is away: {p}");
            bfd_down_seen |= p["bfd"]["session"]["state"] == "down";
            assert!(
                has_route(&lab)?,
                "{ROUTE} left the kernel {:?} into BIRD's graceful restart: {p}",
                t0.elapsed()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    })?;
    assert!(bfd_down_seen, "BFD never went down while BIRD was away");
    let p = wait_up(&lab, &tor, 4)?;
    assert_eq!(p["bfd"]["bgpDowns"], 0, "{p}");
    assert_eq!(p["bfd"]["session"]["downs"], 1, "{p}");
    Ok(())
}
