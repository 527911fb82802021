//! The rig of `node_bfd`: the lab with its BIRD ToR over IPv4 or IPv6
//! ([`Family`], [`lab_with_tor`], [`bird_conf`]), the cut ([`Cut`],
//! [`cut_and_measure`]), and what the tests read from the node, its
//! kernel and BIRD.

use std::io::Write as _;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;
use tortie_ctl::lab::{net, Encap, Lab, Stack, ADMIN};
use tortie_tests::lab::{add_host6, spec};
use tortie_tests::tor::{bird_here, paths, BirdTor, TOR_AS};
use tortie_tests::wait_until;

use super::{REJECTED, REJECTED6, RESOURCES, RESOURCES6, ROUTE, ROUTE6, TOR, TOR6, WAIT};

/// The family of the lab and of the BGP session with the ToR: IPv4 (a
/// one-subnet IPv4 lab, [`RESOURCES`]) or IPv6 (an IPv6-only lab,
/// [`RESOURCES6`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Family {
    V4,
    V6,
}

/// An nftables table in a namespace that drops every packet in and out
/// (one `nft -f`); removed on drop.
pub(crate) struct Cut {
    ns: String,
}

// ===== impl Family =====

impl Family {
    /// The lab's family.
    pub(crate) fn of(lab: &Lab) -> Family {
        if lab.spec.stack == Stack::Ipv6 {
            Family::V6
        } else {
            Family::V4
        }
    }

    /// The ToR's address, the BGPPeer's `peerIP`.
    pub(crate) fn tor(self) -> IpAddr {
        match self {
            Family::V4 => TOR.into(),
            Family::V6 => TOR6.into(),
        }
    }

    /// What the ToR announces that the filter lets in.
    pub(crate) fn route(self) -> &'static str {
        match self {
            Family::V4 => ROUTE,
            Family::V6 => ROUTE6,
        }
    }

    /// What the ToR announces that the filter keeps out.
    pub(crate) fn rejected(self) -> &'static str {
        match self {
            Family::V4 => REJECTED,
            Family::V6 => REJECTED6,
        }
    }

    /// `ip`'s family option.
    pub(crate) fn ip(self) -> &'static str {
        match self {
            Family::V4 => "-4",
            Family::V6 => "-6",
        }
    }

    /// The next hop the ToR sees on node `i`'s routes, as BIRD prints it
    /// (`BGP.next_hop: ...`): its address, and over IPv6 (the ToR on its
    /// subnet) its `eth0` link-local address besides (RFC 2545 §3).
    pub(crate) fn next_hop(self, lab: &Lab, i: usize) -> Result<String> {
        let global = self.node(lab, i);
        if self == Family::V4 {
            return Ok(global.to_string());
        }
        let addrs = net::ip_in_output(
            &lab.nodes[i].ns,
            &["-6", "-o", "addr", "show", "dev", "eth0", "scope", "link"],
        )?;
        let ll = addrs
            .split_whitespace()
            .skip_while(|w| *w != "inet6")
            .nth(1)
            .and_then(|a| a.split('/').next())
            .with_context(|| format!("no link-local address on eth0: {addrs}"))?;
        Ok(format!("{global} {ll}"))
    }

    /// The address of the lab's node `i` in this family.
    pub(crate) fn node(self, lab: &Lab, i: usize) -> IpAddr {
        match (self, lab.nodes[i].address6) {
            (Family::V6, Some(a)) => a.into(),
            _ => lab.nodes[i].address.into(),
        }
    }
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

/// A two-node lab of `family` (no encapsulation, one subnet, node1
/// labelled `rack=rack1`; IPv6: IPv6 only) with the resources of the
/// family and the BIRD ToR on a host of subnet A.
pub(crate) fn lab_with_tor(prefix: &str, gr: bool, family: Family) -> Result<(Lab, BirdTor)> {
    let mut spec = spec(prefix, 2)?;
    spec.encap = Encap::None;
    spec.one_subnet = true;
    (spec.stack, spec.resources) = match family {
        Family::V4 => (Stack::Ipv4, RESOURCES.into()),
        Family::V6 => (Stack::Ipv6, RESOURCES6.into()),
    };
    spec.per_node_args
        .insert(1, vec!["--labels".into(), "rack=rack1".into()]);
    let mut lab = Lab::up(spec)?;
    let (ns, addr) = match family {
        Family::V4 => lab.add_host("tor").map(|(ns, a)| (ns, IpAddr::from(a)))?,
        Family::V6 => add_host6(&mut lab, "tor").map(|(ns, a)| (ns, IpAddr::from(a)))?,
    };
    if addr != family.tor() {
        bail!("the ToR host got {addr}, the BGPPeer says {}", family.tor());
    }
    let conf = bird_conf(family.node(&lab, 0), gr, "on");
    let tor = BirdTor::start_conf(&lab, &ns, "tor", &conf)?;
    Ok((lab, tor))
}

/// The ToR host's namespace.
fn tor_ns(lab: &Lab) -> String {
    lab.hosts[0].0.clone()
}

/// Waits until the ToR session is Established with BFD Up and both of
/// the ToR's prefixes received, BIRD's BFD session with the node's address
/// (of the lab's family) is Up, the family's route is in the node's
/// kernel and the node's block is in BIRD's table, via the node; the
/// peer's row. (Established comes before the ToR's UPDATE, and with
/// graceful restart the route can be in the kernel, stale, before it: a
/// row read then says 0 prefixes. BIRD has the node's UPDATE some time
/// after the node is Established: a stop before then finds nothing of
/// the node's in BIRD's table to keep or withdraw.)
pub(crate) fn wait_up(lab: &Lab, tor: &BirdTor, round: u32) -> Result<Value> {
    let p = wait_until(
        WAIT,
        "Established, BFD Up at 300 ms, 2 prefixes, the ToR's route in the kernel",
        || {
            let p = tor_peer(lab).map_err(|e| format!("{e:#}"))?;
            // Up starts on the slow timers (1 s): the 100 ms ones apply
            // once the Poll sequence that follows ends (RFC 5880 §6.8.3).
            let up = p["state"] == "Established"
                && p["bfd"]["session"]["state"] == "up"
                && p["bfd"]["session"]["detectionTimeMs"] == 300
                && p["prefixesReceived"] == 2;
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
        let node = Family::of(lab).node(lab, 0).to_string();
        if out
            .lines()
            .any(|l| l.split_whitespace().next() == Some(node.as_str()) && l.contains(" Up "))
        {
            Ok(())
        } else {
            Err(out)
        }
    })?;
    let block = node_block(lab)?;
    wait_until(WAIT, "the node's block in BIRD's table", || {
        let t = tor.table().map_err(|e| format!("{e:#}"))?;
        if has_block(&t, &block) {
            Ok(())
        } else {
            Err(format!("no {block} via the node:\n{t}"))
        }
    })
    .with_context(|| format!("round {round}"))?;
    Ok(p)
}

/// Cuts the ToR off and polls until the session has left Established and
/// the family's route has left the kernel: the cut, both times from the start of
/// `nft -f`, and the peer's row when it was seen down.
pub(crate) fn cut_and_measure(lab: &Lab, round: u32) -> Result<(Cut, Duration, Duration, Value)> {
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
pub(crate) fn wait_proto(tor: &BirdTor, what: &str, want: &str) -> Result<String> {
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
pub(crate) fn block_gone(tor: &BirdTor, block: &str) -> Result<()> {
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

/// Whether BIRD's `show route all` output `table` has the node's block
/// `block` with a next hop (`via`: not a blackhole of its own).
pub(crate) fn has_block(table: &str, block: &str) -> bool {
    route_all(table, block).is_some_and(|r| r.contains("via "))
}

/// Whether `show protocols all` says both sides announced graceful
/// restart.
pub(crate) fn gr_negotiated(proto: &str) -> bool {
    let caps = |section: &str| {
        proto.split(section).nth(1).is_some_and(|rest| {
            rest.lines()
                .take_while(|l| !l.trim_end().ends_with("capabilities") || l.contains(section))
                .any(|l| l.contains("Graceful restart"))
        })
    };
    caps("Local capabilities") && caps("Neighbor capabilities")
}

/// BIRD's config: eBGP with the node at `node` (IPv4 or IPv6: the
/// session's family, and the only one it carries), BFD 100 ms x 3 with
/// BGP `bfd {bfd}` (`on`: a BFD Down stops the session and drops its
/// routes; `graceful`: a BFD Down is a graceful restart of the
/// neighbour), GTSM, graceful restart `on` if `gr`, else `off` (BIRD
/// announces no capability: not negotiated), announcing the family's
/// route and rejected route ([`Family::route`], [`Family::rejected`]); the
/// log traces the session's states and events.
pub(crate) fn bird_conf(node: IpAddr, gr: bool, bfd: &str) -> String {
    let (channel, family) = if node.is_ipv6() {
        ("ipv6", Family::V6)
    } else {
        ("ipv4", Family::V4)
    };
    let (route, rejected) = (family.route(), family.rejected());
    // BIRD's default is `aware`: it keeps a restarting neighbour's routes
    // (and announces the capability) without restarting gracefully itself.
    let gr = if gr {
        " graceful restart on;"
    } else {
        " graceful restart off;"
    };
    // `error wait time`: BIRD's default waits 60 s after a failure (the
    // BFD Down) before it takes the session back.
    // The router ID is an IPv4-formatted ID in either family.
    format!(
        "log stderr all;\ndebug protocols {{ states, events }};\nrouter id {TOR};\n\
         protocol device {{}}\n\
         protocol static {{ {channel}; route {route} blackhole; route {rejected} blackhole; }}\n\
         protocol bfd {{\n  interface \"eth0\" {{ min rx interval 100 ms; min tx interval 100 ms; multiplier 3; }};\n}}\n\
         protocol bgp node1 {{\n  local as {TOR_AS};\n  neighbor {node} as 64512;\n  \
         bfd {bfd};\n  ttl security on;{gr}\n  error wait time 1, 4;\n  connect delay time 1;\n  \
         {channel} {{ import all; export where source = RTS_STATIC; }};\n}}\n"
    )
}

/// The node's (first) block, as it originates it.
pub(crate) fn node_block(lab: &Lab) -> Result<String> {
    Ok(lab.node_status(0)?["originated"][0]
        .as_str()
        .context("the node's block")?
        .to_string())
}

/// Whether the family's route ([`Family::route`]) is in the node's
/// kernel table, via the ToR's address (`ip -4|-6 route show ROUTE`).
pub(crate) fn has_route(lab: &Lab) -> Result<bool> {
    let f = Family::of(lab);
    let r = net::ip_in_output(&lab.nodes[0].ns, &[f.ip(), "route", "show", f.route()])?;
    Ok(r.contains(&format!("via {} ", f.tor())))
}

/// The node's `/status` row of the ToR.
pub(crate) fn tor_peer(lab: &Lab) -> Result<Value> {
    let s = lab.node_status(0)?;
    let tor = Family::of(lab).tor().to_string();
    s["peers"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["address"] == tor.as_str()))
        .cloned()
        .with_context(|| format!("no ToR peer: {s}"))
}

/// `tortiectl node status` run in the node's namespace (its admin
/// address there).
pub(crate) fn node_status_table(lab: &Lab) -> Result<String> {
    let ctl = lab.spec.ctl_bin.display().to_string();
    net::exec_in(&lab.nodes[0].ns, &[&ctl, "node", "status"])
}

/// The row of `peer` in `tortiectl node status` output `table` (empty
/// if there is none).
pub(crate) fn status_row(table: &str, peer: IpAddr) -> &str {
    let cell = format!("| {peer} ");
    table
        .lines()
        .find(|l| l.starts_with(&cell))
        .unwrap_or_default()
}

/// GET `path` from the node's admin server.
pub(crate) fn lab_get(lab: &Lab, path: &str) -> Result<String> {
    tortie_ctl::lab::get_in(&lab.nodes[0].ns, ADMIN.parse()?, path)
}

/// The lines of `show route all` about `prefix`, if it is there.
pub(crate) fn route_all(table: &str, prefix: &str) -> Option<String> {
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
pub(crate) fn tools(test: &str) -> bool {
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
pub(crate) fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}
