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
//! ```
//!
//! Checks (`bird_tor_bfd_takes_the_route_out_of_the_kernel`):
//! 1. The session is Established with BFD Up (single hop on eth0,
//!    detection time 300 ms); BIRD's BFD session is Up; the filter let
//!    10.244.251.0/24 in (in the node's kernel, via the ToR) and kept
//!    10.244.250.0/24 out; the ToR has the node's block with the
//!    communities; `tortiectl node status` says `Established, BFD up`.
//! 2. Every packet to and from the ToR is dropped (nftables in its
//!    namespace: TCP notices nothing, the hold time is 90 s): the node's
//!    session leaves Established within [`LIMIT`] of the cut, the ToR's
//!    route leaves the node's kernel table (times printed); `lastError`
//!    says BFD, `tortiectl node status` says `BFD down, BGP held`,
//!    `/metrics` counts the BGP session BFD took down.
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

use std::io::Write as _;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;
use tortie_ctl::lab::{net, Encap, Lab, Signal, ADMIN};
use tortie_tests::lab::spec;
use tortie_tests::tor::{bird_here, paths, BirdTor, TOR_AS};
use tortie_tests::wait_until;

/// Cut to "not Established" at most: BFD's 300 ms after the last packet
/// (which came at most one TX interval, 75-100 ms, before the cut), the
/// speaker's reaction, and our polling.
const LIMIT: Duration = Duration::from_millis(350);
/// Cut to "route gone from the kernel" at most: the above plus felix's
/// pass.
const KERNEL_LIMIT: Duration = Duration::from_millis(1000);
const WAIT: Duration = Duration::from_secs(40);
/// What the ToR announces that the filter lets in (inside the pool: it is
/// programmed).
const ROUTE: &str = "10.244.251.0/24";
/// What the filter keeps out.
const REJECTED: &str = "10.244.250.0/24";

/// The ToR's address: the lab's first extra host.
const TOR: Ipv4Addr = Ipv4Addr::new(172, 30, 1, 2);

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

/// An nftables table in a namespace that drops every packet in and out
/// (one `nft -f`); removed on drop.
struct Cut {
    ns: String,
}

// 1., 2., 3., 4., 5.
#[test]
fn bird_tor_bfd_takes_the_route_out_of_the_kernel() -> Result<()> {
    const TEST: &str = "bird_tor_bfd_takes_the_route_out_of_the_kernel";
    if !tools(TEST) {
        return Ok(());
    }
    let (mut lab, tor) = lab_with_tor("nbfd", false)?;
    let node = &lab.nodes[0];
    let mut times = Vec::new();
    for round in 1..=2 {
        // 1.
        let p = wait_up(&lab, &tor, round)?;
        let session = &p["bfd"]["session"];
        assert_eq!(session["multihop"], false, "{p}");
        assert_eq!(session["interface"], "eth0", "{p}");
        assert_eq!(session["detectionTimeMs"], 300, "{p}");
        assert_eq!(p["prefixesReceived"], 2, "{p}");
        let routes = net::ip_in_output(&node.ns, &["route"])?;
        assert!(!routes.contains(REJECTED), "filtered, yet:\n{routes}");
        if round == 1 {
            let block = node_block(&lab)?;
            let attrs = wait_until(WAIT, "the node's block at the ToR", || {
                let t = tor.table().map_err(|e| e.to_string())?;
                route_all(&t, &block).ok_or(t)
            })?;
            for want in [
                "BGP.community: (65000,101)",
                "BGP.large_community: (65000, 1, 2)",
            ] {
                assert!(attrs.contains(want), "no `{want}` at the ToR:\n{attrs}");
            }
        }
        let table = node_status_table(&lab)?;
        assert!(
            table.contains("Established, BFD up"),
            "tortiectl node status:\n{table}"
        );
        if round == 1 {
            say(&format!("{TEST}: tortiectl node status:\n{table}"));
        }

        // 2.
        let (cut, down, gone, p) = cut_and_measure(&lab, round)?;
        say(&format!(
            "{TEST}: round {round}: from the start of `nft -f`: left Established after \
             {down:?}, {ROUTE} gone from the node's kernel after {gone:?} (BFD 100 ms x 3)"
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
            table.contains("BFD down, BGP held"),
            "tortiectl node status:\n{table}"
        );
        if round == 1 {
            say(&format!("{TEST}: tortiectl node status, cut:\n{table}"));
        }
        let metrics = lab_get(&lab, "/metrics")?;
        let held = format!("tortie_bfd_bgp_downs_total{{peer=\"{TOR}\",asn=\"{TOR_AS}\"}} {round}");
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
            assert!(!has_route(&lab)?, "round {round}: {ROUTE} back while cut");
            std::thread::sleep(Duration::from_millis(100));
        }

        // 4.
        drop(cut);
    }
    wait_up(&lab, &tor, 3)?;
    let p = tor_peer(&lab)?;
    assert_eq!(p["bfd"]["bgpDowns"], 2, "{p}");
    say(&format!(
        "{TEST}: cut -> (not Established, route gone from the kernel): {times:?}"
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
    let (mut lab, tor) = lab_with_tor("nbfdgr", true)?;

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
    tor.reconfigure(&bird_conf(lab.nodes[0].address, true, "graceful"))?;
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
        let r = route_all(&t, &block);
        assert!(
            r.as_deref().is_some_and(|r| r.contains("via ")),
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

// ===== impl Cut =====

impl Cut {
    /// Drops everything in `ns`, both ways, from now.
    fn start(ns: &str, dir: &std::path::Path) -> Result<Cut> {
        let file = dir.join("cut.nft");
        std::fs::write(
            &file,
            "table inet tortie_cut {\n\
             \x20 chain in { type filter hook input priority -400; policy drop; }\n\
             \x20 chain out { type filter hook output priority -400; policy drop; }\n}\n",
        )?;
        net::exec_in(ns, &["nft", "-f", &file.display().to_string()])?;
        Ok(Cut { ns: ns.into() })
    }
}

impl Drop for Cut {
    fn drop(&mut self) {
        let _ = net::exec_in(&self.ns, &["nft", "delete", "table", "inet", "tortie_cut"]);
    }
}

// ===== helpers =====

/// A two-node lab (no encapsulation, node1 labelled `rack=rack1`) with
/// the resources above and the BIRD ToR on a host of subnet A.
fn lab_with_tor(prefix: &str, gr: bool) -> Result<(Lab, BirdTor)> {
    let mut spec = spec(prefix, 2)?;
    spec.encap = Encap::None;
    spec.one_subnet = true;
    spec.resources = RESOURCES.into();
    spec.per_node_args
        .insert(1, vec!["--labels".into(), "rack=rack1".into()]);
    let mut lab = Lab::up(spec)?;
    let (ns, addr) = lab.add_host("tor")?;
    if addr != TOR {
        bail!("the ToR host got {addr}, the BGPPeer says {TOR}");
    }
    let conf = bird_conf(lab.nodes[0].address, gr, "on");
    let tor = BirdTor::start_conf(&lab, &ns, "tor", &conf)?;
    Ok((lab, tor))
}

/// The ToR host's namespace.
fn tor_ns(lab: &Lab) -> String {
    lab.hosts[0].0.clone()
}

/// Waits until the ToR session is Established with BFD Up, BIRD's BFD
/// session is Up and [`ROUTE`] is in the node's kernel; the peer's row.
fn wait_up(lab: &Lab, tor: &BirdTor, round: u32) -> Result<Value> {
    let p = wait_until(
        WAIT,
        "Established, BFD Up, the ToR's route in the kernel",
        || {
            let p = tor_peer(lab).map_err(|e| format!("{e:#}"))?;
            let up = p["state"] == "Established" && p["bfd"]["session"]["state"] == "up";
            if up && has_route(lab).map_err(|e| format!("{e:#}"))? {
                Ok(p)
            } else {
                Err(p.to_string())
            }
        },
    )
    .with_context(|| format!("round {round}; ToR:\n{}", tor.table().unwrap_or_default()))?;
    wait_until(WAIT, "BIRD's BFD session Up", || {
        let out = tor
            .show(&["bfd", "sessions"])
            .map_err(|e| format!("{e:#}"))?;
        if out.contains(&lab.nodes[0].address.to_string()) && out.contains(" Up ") {
            Ok(())
        } else {
            Err(out)
        }
    })?;
    Ok(p)
}

/// Cuts the ToR off and polls until the session has left Established and
/// [`ROUTE`] has left the kernel: the cut, both times from the start of
/// `nft -f`, and the peer's row when it was seen down.
fn cut_and_measure(lab: &Lab, round: u32) -> Result<(Cut, Duration, Duration, Value)> {
    let start = Instant::now();
    let cut = Cut::start(&tor_ns(lab), &lab.spec.dir)?;
    let (mut down, mut gone) = (None, None);
    while down.is_none() || gone.is_none() {
        if start.elapsed() > Duration::from_secs(5) {
            bail!("round {round}: after 5 s: left Established {down:?}, route gone {gone:?}");
        }
        if down.is_none() {
            let p = tor_peer(lab)?;
            if p["state"] != "Established" {
                down = Some((start.elapsed(), p));
            }
        }
        if gone.is_none() && !has_route(lab)? {
            gone = Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let (down, p) = down.unwrap_or_default();
    Ok((cut, down, gone.unwrap_or_default(), p))
}

/// Waits (up to [`WAIT`]) for `what`: until BIRD's `show protocols all
/// node1` says `want`; that output.
fn wait_proto(tor: &BirdTor, what: &str, want: &str) -> Result<String> {
    wait_until(WAIT, what, || {
        let out = tor
            .show(&["protocols", "all", "node1"])
            .map_err(|e| format!("{e:#}"))?;
        if out.contains(want) {
            Ok(out)
        } else {
            Err(out)
        }
    })
}

/// Waits (up to 5 s) until the node's block `block` has left BIRD's
/// table.
fn block_gone(tor: &BirdTor, block: &str) -> Result<()> {
    wait_until(
        Duration::from_secs(5),
        "the node's block gone from BIRD",
        || {
            let t = tor.table().map_err(|e| format!("{e:#}"))?;
            match route_all(&t, block) {
                None => Ok(()),
                Some(r) => Err(r),
            }
        },
    )
}

/// Whether `show protocols all` says both sides announced graceful
/// restart.
fn gr_negotiated(proto: &str) -> bool {
    let caps = |section: &str| {
        proto.split(section).nth(1).is_some_and(|rest| {
            rest.lines()
                .take_while(|l| !l.trim_end().ends_with("capabilities") || l.contains(section))
                .any(|l| l.contains("Graceful restart"))
        })
    };
    caps("Local capabilities") && caps("Neighbor capabilities")
}

/// BIRD's config: eBGP with the node at `node`, BFD 100 ms x 3 with BGP
/// `bfd {bfd}` (`on`: a BFD Down stops the session and drops its routes;
/// `graceful`: a BFD Down is a graceful restart of the neighbour), GTSM,
/// graceful restart `on` if `gr`, else `off` (BIRD announces no
/// capability: not negotiated), announcing [`ROUTE`] and [`REJECTED`]; the
/// log traces the session's states and events.
fn bird_conf(node: Ipv4Addr, gr: bool, bfd: &str) -> String {
    // BIRD's default is `aware`: it keeps a restarting neighbour's routes
    // (and announces the capability) without restarting gracefully itself.
    let gr = if gr {
        " graceful restart on;"
    } else {
        " graceful restart off;"
    };
    // `error wait time`: BIRD's default waits 60 s after a failure (the
    // BFD Down) before it takes the session back.
    format!(
        "log stderr all;\ndebug protocols {{ states, events }};\nrouter id {TOR};\n\
         protocol device {{}}\n\
         protocol static {{ ipv4; route {ROUTE} blackhole; route {REJECTED} blackhole; }}\n\
         protocol bfd {{\n  interface \"eth0\" {{ min rx interval 100 ms; min tx interval 100 ms; multiplier 3; }};\n}}\n\
         protocol bgp node1 {{\n  local as {TOR_AS};\n  neighbor {node} as 64512;\n  \
         bfd {bfd};\n  ttl security on;{gr}\n  error wait time 1, 4;\n  connect delay time 1;\n  \
         ipv4 {{ import all; export where source = RTS_STATIC; }};\n}}\n"
    )
}

/// The node's (first) block, as it originates it.
fn node_block(lab: &Lab) -> Result<String> {
    Ok(lab.node_status(0)?["originated"][0]
        .as_str()
        .context("the node's block")?
        .to_string())
}

/// Whether [`ROUTE`] is in the node's kernel table, via the ToR.
fn has_route(lab: &Lab) -> Result<bool> {
    let r = net::ip_in_output(&lab.nodes[0].ns, &["route", "show", ROUTE])?;
    Ok(r.contains(&format!("via {TOR} ")))
}

/// The node's `/status` row of the ToR.
fn tor_peer(lab: &Lab) -> Result<Value> {
    let s = lab.node_status(0)?;
    s["peers"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["address"] == TOR.to_string().as_str()))
        .cloned()
        .with_context(|| format!("no ToR peer: {s}"))
}

/// `tortiectl node status` run in the node's namespace (its admin
/// address there).
fn node_status_table(lab: &Lab) -> Result<String> {
    let ctl = lab.spec.ctl_bin.display().to_string();
    net::exec_in(&lab.nodes[0].ns, &[&ctl, "node", "status"])
}

/// GET `path` from the node's admin server.
fn lab_get(lab: &Lab, path: &str) -> Result<String> {
    tortie_ctl::lab::get_in(&lab.nodes[0].ns, ADMIN.parse()?, path)
}

/// The lines of `show route all` about `prefix`, if it is there.
fn route_all(table: &str, prefix: &str) -> Option<String> {
    paths(table).get(prefix)?;
    let mut out = String::new();
    let mut inside = false;
    for line in table.lines() {
        if !line.starts_with(char::is_whitespace) {
            inside = line.split_whitespace().next() == Some(prefix);
        }
        if inside {
            out += line;
            out.push('\n');
        }
    }
    Some(out)
}

/// Whether BIRD and nft are here; says why not (a failure under CI=true).
fn tools(test: &str) -> bool {
    if !bird_here(test) {
        return false;
    }
    let nft = std::process::Command::new("nft")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !nft {
        tortie_testkit::missing(test, "no nft (apt-get install nftables)");
    }
    nft
}

/// A line on the real stderr (libtest does not capture it).
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}
