//! Real BGP daemons in a namespace: one module per daemon, one shared
//! description of what to run ([`DaemonConfig`]) and one way to ask them
//! things ([`BgpDaemon`]).
//!
//! Every daemon gets its own temp dir (config, control socket, pid file,
//! log) and is killed on drop. Sessions carry one family each: a neighbour
//! given by an IPv4 address carries IPv4 unicast, one given by an IPv6
//! address carries IPv6 unicast (as Calico does). Mixing IPv6 routes into an
//! IPv4 session breaks between BIRD and FRR (see docs/testing.md).

pub mod bird;
mod bird_parse;
pub mod frr;
pub mod gobgp;
pub mod tortie;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
pub use ipnet::IpNet;

use crate::netns::Host;
use crate::wait_until;

/// Address family of a route or session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Afi {
    /// IPv4 unicast.
    V4,
    /// IPv6 unicast.
    V6,
}

/// Which daemon, for tests that run the same checks against each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// BIRD 2 (`bird`, `birdc`).
    Bird,
    /// FRR `bgpd` alone (no zebra), queried with `vtysh`.
    Frr,
    /// GoBGP (`gobgpd`, `gobgp`).
    Gobgp,
}

/// One BGP neighbour of a daemon.
#[derive(Clone, Debug, PartialEq)]
pub struct Neighbor {
    /// The peer's address; its family picks the session's family.
    pub address: IpAddr,
    /// The peer's AS; equal to ours means iBGP.
    pub asn: u32,
    /// Only accept the session, never connect.
    pub passive: bool,
    /// TCP MD5 (RFC 2385) key.
    pub password: Option<String>,
    /// This neighbour is our route reflector client (needs `cluster_id`).
    pub rr_client: bool,
    /// The peer's TCP port (179 unless a test runs a peer elsewhere).
    pub port: u16,
    /// GTSM (RFC 5082) for a peer this many hops away: send with TTL 255,
    /// take only 256 - hops and up. BIRD: `ttl security on; multihop
    /// hops` (as Calico renders `ttlSecurity`); FRR: `neighbor X
    /// ttl-security hops N`. Not GoBGP.
    pub ttl_security: Option<u8>,
    /// BFD on the session (BIRD's `bfd on` and a `protocol bfd` with this
    /// interval in both directions and multiplier); the session is then
    /// `direct` (single-hop BFD) for a peer on the segment. BIRD only.
    pub bfd: Option<(Duration, u8)>,
}

/// What a daemon runs with: identity, neighbours, originated routes.
#[derive(Clone, Debug, PartialEq)]
pub struct DaemonConfig {
    /// BGP identifier.
    pub router_id: Ipv4Addr,
    /// Our AS.
    pub asn: u32,
    /// Source address for IPv4 sessions (the host's segment address).
    pub local_v4: Ipv4Addr,
    /// Source address for IPv6 sessions.
    pub local_v6: Ipv6Addr,
    /// Set: act as a route reflector with this cluster id.
    pub cluster_id: Option<Ipv4Addr>,
    /// Advertise and keep graceful restart (RFC 4724) on every session.
    pub graceful_restart: bool,
    /// Neighbours.
    pub neighbors: Vec<Neighbor>,
    /// Prefixes this daemon originates (v4 and v6 mixed).
    pub routes: Vec<IpNet>,
    /// Install learned routes in the namespace's kernel table: BIRD with
    /// a `kernel` protocol, FRR with zebra beside bgpd (which also lets
    /// bgpd keep routes with a link-local IPv6 next hop); GoBGP cannot.
    pub kernel: bool,
}

/// A BGP route as a daemon holds it, learned from a peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// Destination.
    pub prefix: IpNet,
    /// NEXT_HOP / MP_REACH next hop (the global one for IPv6).
    pub next_hop: Option<IpAddr>,
    /// AS_PATH flattened (sets included in order).
    pub as_path: Vec<u32>,
    /// LOCAL_PREF when present.
    pub local_pref: Option<u32>,
    /// ORIGINATOR_ID (RFC 4456) when present.
    pub originator_id: Option<Ipv4Addr>,
    /// CLUSTER_LIST (RFC 4456), first = most recent reflector.
    pub cluster_list: Vec<Ipv4Addr>,
    /// Kept from a restarting peer (RFC 4724), not yet refreshed.
    pub stale: bool,
    /// The daemon's best path for this prefix.
    pub best: bool,
    /// Which peer it came from, when the daemon says.
    pub from: Option<IpAddr>,
}

/// A session as a daemon reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// The neighbour's address.
    pub peer: IpAddr,
    /// The daemon's own word for the state ("Established", "Active", ...).
    pub state: String,
    /// Whether that means Established.
    pub established: bool,
}

/// Questions and runtime changes every daemon answers the same way.
pub trait BgpDaemon {
    /// "bird", "frr", "gobgp", "tortie-rr".
    fn kind_name(&self) -> &'static str;
    /// Sessions with their states.
    fn sessions(&self) -> Result<Vec<Session>>;
    /// Routes learned from peers (not the daemon's own), best and others.
    fn routes(&self, afi: Afi) -> Result<Vec<Route>>;
    /// Starts originating `prefix`.
    fn announce(&mut self, prefix: IpNet) -> Result<()>;
    /// Stops originating `prefix`.
    fn withdraw(&mut self, prefix: IpNet) -> Result<()>;
    /// The daemon's log so far (for failure messages).
    fn log(&self) -> String;

    /// Waits until the session with `peer` is Established.
    fn wait_established(&self, peer: IpAddr, deadline: Duration) -> Result<()> {
        wait_until(
            deadline,
            &format!("{} session with {peer} Established", self.kind_name()),
            || {
                let sessions = self.sessions().map_err(|e| format!("{e:#}"))?;
                match sessions.iter().find(|s| s.peer == peer) {
                    Some(s) if s.established => Ok(()),
                    Some(s) => Err(format!("state {}", s.state)),
                    None => Err(format!("no such session in {sessions:?}")),
                }
            },
        )
        .map_err(|e| e.context(tail(&self.log(), 15)))
    }

    /// Waits until a route for `prefix` is present and passes `check`
    /// (which says what it wants when it fails); returns that route.
    fn wait_route(
        &self,
        prefix: IpNet,
        deadline: Duration,
        check: &dyn Fn(&Route) -> Result<(), String>,
    ) -> Result<Route> {
        let afi = afi_of(&prefix);
        wait_until(
            deadline,
            &format!("{} route {prefix}", self.kind_name()),
            || {
                let routes = self.routes(afi).map_err(|e| format!("{e:#}"))?;
                let mine: Vec<&Route> = routes.iter().filter(|r| r.prefix == prefix).collect();
                if mine.is_empty() {
                    return Err(format!("absent; routes: {:?}", prefixes(&routes)));
                }
                let mut why = Vec::new();
                for r in mine {
                    match check(r) {
                        Ok(()) => return Ok(r.clone()),
                        Err(e) => why.push(format!("{e} in {r:?}")),
                    }
                }
                Err(why.join("; "))
            },
        )
    }

    /// Waits until no route for `prefix` is left.
    fn wait_no_route(&self, prefix: IpNet, deadline: Duration) -> Result<()> {
        let afi = afi_of(&prefix);
        wait_until(
            deadline,
            &format!("{} route {prefix} gone", self.kind_name()),
            || {
                let routes = self.routes(afi).map_err(|e| format!("{e:#}"))?;
                match routes.iter().find(|r| r.prefix == prefix) {
                    Some(r) => Err(format!("still there: {r:?}")),
                    None => Ok(()),
                }
            },
        )
    }
}

// ===== impl Kind =====

impl Kind {
    /// All three daemons.
    pub const ALL: [Kind; 3] = [Kind::Bird, Kind::Frr, Kind::Gobgp];

    /// Starts this daemon on `host`.
    pub fn start(self, host: &Host, cfg: DaemonConfig) -> Result<Box<dyn BgpDaemon>> {
        Ok(match self {
            Kind::Bird => Box::new(bird::Bird::start(&host.ns, cfg)?),
            Kind::Frr => Box::new(frr::Frr::start(&host.ns, cfg)?),
            Kind::Gobgp => Box::new(gobgp::Gobgp::start(&host.ns, cfg)?),
        })
    }
}

// ===== impl Neighbor =====

impl Neighbor {
    /// An active neighbour on port 179 without password or RR role.
    pub fn new(address: impl Into<IpAddr>, asn: u32) -> Neighbor {
        Neighbor {
            address: address.into(),
            asn,
            passive: false,
            password: None,
            rr_client: false,
            port: 179,
            ttl_security: None,
            bfd: None,
        }
    }

    /// With BFD at `interval` both ways, `multiplier` (BIRD only).
    pub fn bfd(mut self, interval: Duration, multiplier: u8) -> Neighbor {
        self.bfd = Some((interval, multiplier));
        self
    }

    /// With GTSM for a peer `hops` hops away.
    pub fn ttl_security(mut self, hops: u8) -> Neighbor {
        self.ttl_security = Some(hops);
        self
    }

    /// With a TCP MD5 password.
    pub fn password(mut self, pw: &str) -> Neighbor {
        self.password = Some(pw.to_string());
        self
    }

    /// As a route reflector client.
    pub fn rr_client(mut self) -> Neighbor {
        self.rr_client = true;
        self
    }

    /// Passive.
    pub fn passive(mut self) -> Neighbor {
        self.passive = true;
        self
    }
}

// ===== impl DaemonConfig =====

impl DaemonConfig {
    /// A config for `host` (router id = its IPv4 address), no neighbours.
    pub fn new(host: &Host, asn: u32) -> DaemonConfig {
        DaemonConfig {
            router_id: host.v4,
            asn,
            local_v4: host.v4,
            local_v6: host.v6,
            cluster_id: None,
            graceful_restart: false,
            neighbors: Vec::new(),
            routes: Vec::new(),
            kernel: false,
        }
    }

    /// Adds neighbours on both families of `peer` (one v4 and one v6
    /// session).
    pub fn peer_both(mut self, peer: &Host, asn: u32, f: impl Fn(Neighbor) -> Neighbor) -> Self {
        self.neighbors.push(f(Neighbor::new(peer.v4, asn)));
        self.neighbors.push(f(Neighbor::new(peer.v6, asn)));
        self
    }

    /// Adds one neighbour.
    pub fn neighbor(mut self, n: Neighbor) -> Self {
        self.neighbors.push(n);
        self
    }

    /// Originates these prefixes.
    pub fn originate(mut self, prefixes: &[&str]) -> Self {
        self.routes.extend(prefixes.iter().map(|p| net(p)));
        self
    }

    /// Route reflector with this cluster id.
    pub fn cluster_id(mut self, id: Ipv4Addr) -> Self {
        self.cluster_id = Some(id);
        self
    }

    /// Graceful restart on.
    pub fn graceful_restart(mut self) -> Self {
        self.graceful_restart = true;
        self
    }

    /// Local address for a session with `peer` (same family).
    pub fn local_for(&self, peer: IpAddr) -> IpAddr {
        match peer {
            IpAddr::V4(_) => self.local_v4.into(),
            IpAddr::V6(_) => self.local_v6.into(),
        }
    }
}

// ===== helpers =====

/// Parses a prefix literal used in tests; panics on a typo in the test.
pub fn net(s: &str) -> IpNet {
    s.parse()
        .unwrap_or_else(|e| panic!("test prefix {s:?} is not a prefix: {e}"))
}

/// The family of a prefix.
pub fn afi_of(p: &IpNet) -> Afi {
    match p {
        IpNet::V4(_) => Afi::V4,
        IpNet::V6(_) => Afi::V6,
    }
}

/// A fresh temp dir for one daemon (kept on disk when `TORTIE_KEEP_LOGS=1`).
pub(crate) fn daemon_dir(kind: &str) -> Result<tempfile::TempDir> {
    let prefix = format!("tortie-{kind}-");
    let mut b = tempfile::Builder::new();
    b.prefix(&prefix);
    if std::env::var("TORTIE_KEEP_LOGS").as_deref() == Ok("1") {
        b.disable_cleanup(true);
    }
    Ok(b.tempdir()?)
}

/// Reads a log file, or says why not.
pub(crate) fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| format!("(no log {}: {e})", path.display()))
}

/// The last `n` lines of `text`, as a headed block for error context.
pub(crate) fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(n);
    format!("last log lines:\n{}", lines[from..].join("\n"))
}

/// Writes `text` to `path`, naming the file on error.
pub(crate) fn write_file(path: &PathBuf, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))
}

fn prefixes(routes: &[Route]) -> Vec<String> {
    routes.iter().map(|r| r.prefix.to_string()).collect()
}
