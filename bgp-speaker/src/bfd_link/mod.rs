//! BFD with the peers that ask for it (`PeerConfig::bfd`): RFC 5880
//! sessions from the `bfd` crate, and what BGP does with them (RFC 5882,
//! RFC 9384).
//!
//! ```text
//!  instance --Op (after each batch, in order)--> client task --BfdHandle--> bfd service
//!     ^                                              | spawns, per session:
//!     +----- Input::BfdStatus ------ forwarder task <+ (the session's watch)
//!     +----- Input::BfdFailed, Input::BfdCounters ---+
//! ```
//!
//! - **When**: a peer's BFD session is made when its BGP session first
//!   reaches Established, and kept while the peer is configured (BGP
//!   going down for other reasons leaves it). Established tells us what
//!   the session needs: our address (a multihop session is known by it,
//!   RFC 5883 §3) and whether the peer is directly connected. A later
//!   Established on another address or interface remakes it.
//! - **Single hop or multihop**: single hop (RFC 5881, bound to the
//!   interface, TTL 255) when the peer is on a subnet of our session
//!   address's interface; multihop (RFC 5883) otherwise, or none at all
//!   for `directly_connected_only` (Calico's `BFDIfDirectlyConnected`).
//! - **Down**: a transition to Down after Up takes the Established BGP
//!   session down at once: NOTIFICATION Cease / BFD Down (RFC 9384; as a
//!   Hard Reset carrying it, RFC 8538 §3, to a peer that set the N bit)
//!   and the peer's routes are withdrawn, never kept as stale: BFD says
//!   the path is gone, and our best path has no stale depreference (no
//!   LLGR) that would move traffic off it.
//! - **Held down**: until BFD is Up again we do not connect, and a
//!   connection the peer opens is closed with the same Cease at its OPEN
//!   (a choice RFC 5882 leaves to the client). No dampening beyond that
//!   (RFC 5882 §3.1 leaves it optional).
//! - **AdminDown** (ours or the peer's) is not a failure (RFC 5882 §3.2):
//!   BGP is left alone.
//!
//! Here: the per-peer state ([`PeerLink`]) and the instance's handlers;
//! `client`: the task that talks to the service, and the forwarders.

use std::net::IpAddr;
use std::time::Duration;

use bfd::{Bfd, BfdHandle, Diag, SessionConfig, SessionKey, SessionStatus, State, Timers};
use tokio::sync::{mpsc, oneshot};

use crate::config::BfdConfig;
use crate::instance::{jitter_ms, Instance};
use crate::neighbor::negotiate::code;
use crate::neighbor::session::{cease, ConnId};
use crate::packet::Notification;
use crate::rib::PeerId;
use crate::status::{BfdSessionView, PeerBfd};

mod client;

/// Requests queued to the client task.
const OPS: usize = 256;
/// How long a stopping speaker waits for the service to say AdminDown.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(1);
/// How long a stopping speaker waits after its BGP sessions closed before
/// BFD says AdminDown: a peer that handles BFD apart from BGP (BIRD: in
/// its own thread) could otherwise take the AdminDown before it has read
/// the NOTIFICATION or the close, and end the session on BFD instead
/// (seen in `tests/tests/node_bfd.rs`: BIRD's last error was `BFD session
/// down`, not our Cease, in one run of eight).
const ADMIN_DOWN_AFTER: Duration = Duration::from_millis(100);

/// What the instance asks of the BFD service, in order.
#[derive(Debug)]
pub(crate) enum Op {
    /// Make a session and forward its status as `Input::BfdStatus(id, gen, _)`.
    Add {
        id: PeerId,
        gen: u64,
        cfg: SessionConfig,
    },
    Remove(SessionKey),
    Reconfigure(SessionKey, Timers),
    /// Answered with `Input::BfdCounters`.
    Counters,
    /// AdminDown on every session, then stop.
    Shutdown(oneshot::Sender<()>),
}

/// The speaker's side of the BFD service.
#[derive(Debug, Default)]
pub(crate) struct BfdService {
    /// A service given to `start_with_bfd` (tests: an in-memory network);
    /// otherwise a UDP one is started at the first session.
    given: Option<BfdHandle>,
    /// To the client task, once started.
    ops: Option<mpsc::Sender<Op>>,
    /// Decided during a batch, sent after it.
    pending: Vec<Op>,
    /// The service's counters, refreshed every second while it runs.
    pub counters: Option<bfd::Counters>,
    /// A session's state or a peer's hold changed: publish now.
    pub changed: bool,
    next_gen: u64,
}

/// One peer's BFD.
#[derive(Debug)]
pub(crate) struct PeerLink {
    pub config: BfdConfig,
    session: Option<Session>,
    /// BFD went down after Up and is not Up again: BGP stays down.
    pub holding: bool,
    /// BGP sessions BFD took down.
    bgp_downs: u64,
    /// Why there is no session.
    note: Option<String>,
}

/// A session asked of the service.
#[derive(Debug)]
struct Session {
    key: SessionKey,
    /// Tells its status from that of a session it replaced.
    gen: u64,
    last: Option<SessionStatus>,
}

// ===== impl BfdService =====

impl BfdService {
    /// No service yet; `given` is used instead of a UDP one.
    pub fn new(given: Option<BfdHandle>) -> BfdService {
        BfdService {
            given,
            ..BfdService::default()
        }
    }

    fn push(&mut self, op: Op) {
        self.pending.push(op);
    }

    /// Forgets a removed peer's session.
    pub fn forget(&mut self, link: Option<PeerLink>) {
        if let Some(s) = link.and_then(|l| l.session) {
            self.push(Op::Remove(s.key));
        }
    }
}

// ===== impl PeerLink =====

impl PeerLink {
    /// A peer's BFD before its first Established.
    pub fn new(config: BfdConfig) -> PeerLink {
        PeerLink {
            config,
            session: None,
            holding: false,
            bgp_downs: 0,
            note: Some("waiting for the BGP session to be Established".into()),
        }
    }

    /// The status row.
    pub fn status(&self) -> PeerBfd {
        PeerBfd {
            min_rx_ms: millis(self.config.min_rx),
            min_tx_ms: millis(self.config.min_tx),
            multiplier: self.config.multiplier,
            session: self.session.as_ref().map(|s| {
                let st = s.last;
                BfdSessionView {
                    multihop: s.key.multihop,
                    local: s.key.local,
                    interface: s.key.interface.clone(),
                    state: st.map_or(State::Down, |x| x.state),
                    local_diag: st.map_or(Diag::None, |x| x.local_diag),
                    remote_state: st.map_or(State::Down, |x| x.remote_state),
                    remote_diag: st.map_or(Diag::None, |x| x.remote_diag),
                    tx_interval_ms: st.and_then(|x| x.tx_interval).map(millis),
                    detection_time_ms: st.and_then(|x| x.detection_time).map(millis),
                    ups: st.map_or(0, |x| x.ups),
                    downs: st.map_or(0, |x| x.downs),
                }
            }),
            holding: self.holding,
            bgp_downs: self.bgp_downs,
            note: self.note.clone(),
        }
    }
}

// ===== impl Instance: BFD =====

impl Instance {
    /// The BGP session of `id` is Established from `local`: makes its BFD
    /// session, or remakes it if it was for another address or link.
    pub(crate) fn bfd_established(&mut self, id: PeerId, local: IpAddr) {
        // A session accepted on the IPv6 listener has a v4-mapped local
        // address (::ffff:a.b.c.d): the IPv4 address is what the
        // interfaces hold and what BFD must use.
        let local = local.to_canonical();
        let Some(n) = self.neighbors.get_mut(&id) else {
            return;
        };
        let peer = n.config.address;
        let Some(link) = n.bfd.as_mut() else { return };
        let iface = connected_interface(local, peer);
        let timers = timers_of(&link.config);
        let want = match (&iface, link.config.directly_connected_only) {
            (Some(name), _) => Some(
                SessionConfig::single_hop(peer)
                    .with_local(local)
                    .with_interface(name),
            ),
            (None, false) => Some(SessionConfig::multihop(peer, local)),
            (None, true) => None,
        }
        .map(|c| c.with_timers(timers));
        let want_key = want.as_ref().map(SessionConfig::key);
        if link.session.as_ref().map(|s| &s.key) == want_key.as_ref() && want.is_some() {
            return;
        }
        if let Some(old) = link.session.take() {
            self.bfd.push(Op::Remove(old.key));
        }
        self.bfd.changed = true;
        let Some(cfg) = want else {
            link.note = Some(format!(
                "{peer} is not on a subnet of {local}: no BFD (failureDetectionMode \
                 BFDIfDirectlyConnected asks for directly connected peers only)"
            ));
            return;
        };
        self.bfd.next_gen += 1;
        let gen = self.bfd.next_gen;
        tracing::info!(peer = %peer, local = %local, interface = ?iface, multihop = cfg.multihop, "BFD session requested");
        link.session = Some(Session {
            key: cfg.key(),
            gen,
            last: None,
        });
        link.note = None;
        self.bfd.push(Op::Add { id, gen, cfg });
    }

    /// A status from the service: a Down after Up takes BGP down and
    /// holds it; Up lets it come back.
    pub(crate) fn on_bfd_status(&mut self, id: PeerId, gen: u64, s: SessionStatus) {
        let Some(n) = self.neighbors.get_mut(&id) else {
            return;
        };
        let peer = n.config.address;
        let Some(link) = n.bfd.as_mut() else { return };
        let Some(sess) = link.session.as_mut().filter(|x| x.gen == gen) else {
            return;
        };
        let prev = sess.last.replace(s);
        let shown = |x: &SessionStatus| (x.state, x.remote_state, x.local_diag, x.downs);
        if prev.as_ref().map(shown) != Some(shown(&s)) {
            self.bfd.changed = true;
        }
        let went_down = s.downs > prev.map_or(0, |p| p.downs);
        let deliberate = s.state == State::AdminDown || s.remote_state == State::AdminDown;
        if went_down && deliberate {
            tracing::info!(peer = %peer, "BFD AdminDown: not a failure, the BGP session is left alone (RFC 5882 §3.2)");
        } else if went_down {
            // Down and Up again between two looks (`downs` grew) is a
            // failure all the same; it holds nothing if BFD is Up now.
            link.holding = s.state != State::Up;
            self.bfd_teardown(id, &s);
        }
        let Some(n) = self.neighbors.get_mut(&id) else {
            return;
        };
        let Some(link) = n.bfd.as_mut() else { return };
        let release = (s.state == State::Up || deliberate) && link.holding;
        if release {
            link.holding = false;
            tracing::info!(peer = %peer, "BFD {:?}: the BGP session may come back", s.state);
            if !n.config.passive && n.connect_timer.is_none() && !n.connecting && n.conns.is_empty()
            {
                self.schedule_connect(id, Duration::from_millis(jitter_ms(200)));
            }
        }
    }

    /// The service refused a session (the reason is shown until the next
    /// Established tries again).
    pub(crate) fn on_bfd_failed(&mut self, id: PeerId, gen: u64, why: String) {
        let Some(link) = self.neighbors.get_mut(&id).and_then(|n| n.bfd.as_mut()) else {
            return;
        };
        if link.session.as_ref().is_some_and(|s| s.gen == gen) {
            tracing::warn!(peer = ?link.session.as_ref().map(|s| s.key.peer), "BFD session refused: {why}");
            link.session = None;
            link.note = Some(why);
            self.bfd.changed = true;
        }
    }

    /// Whether the peer's BGP session is held down by BFD.
    pub(crate) fn bfd_holds(&self, id: PeerId) -> bool {
        self.neighbors
            .get(&id)
            .and_then(|n| n.bfd.as_ref())
            .is_some_and(|l| l.holding)
    }

    /// Refuses a connection that reached OpenConfirm while BFD holds the
    /// peer down.
    pub(crate) fn bfd_refuse(&mut self, id: PeerId, conn: ConnId) {
        if let Some(n) = self.neighbors.get_mut(&id) {
            n.last_error = Some("BFD is down: the session waits for BFD Up".into());
        }
        self.close_conn(id, conn, cease(code::BFD_DOWN));
    }

    /// A peer's BFD settings changed (nothing else of it): timers are
    /// renegotiated on the running session (a Poll Sequence, no flap);
    /// turning BFD on or off, or changing `directly_connected_only`,
    /// makes or removes the session. The BGP session stays.
    pub(crate) fn bfd_reconfigure(&mut self, id: PeerId, new: Option<BfdConfig>) {
        let Some(n) = self.neighbors.get_mut(&id) else {
            return;
        };
        n.config.bfd = new;
        self.bfd.changed = true;
        if let (Some(link), Some(cfg)) = (n.bfd.as_mut(), new) {
            if link.config.directly_connected_only == cfg.directly_connected_only {
                link.config = cfg;
                if let Some(s) = &link.session {
                    self.bfd
                        .push(Op::Reconfigure(s.key.clone(), timers_of(&cfg)));
                }
                return;
            }
        }
        let old = std::mem::replace(&mut n.bfd, new.map(PeerLink::new));
        let held = old.as_ref().is_some_and(|l| l.holding);
        self.bfd.forget(old);
        let local = n.established.and(n.local_addr);
        if let Some(local) = local {
            self.bfd_established(id, local);
        } else if held {
            self.after_conn_gone(id);
        }
    }

    /// Sends what the batch decided to the client task (started with the
    /// service on first use).
    pub(crate) async fn bfd_flush(&mut self) {
        if self.bfd.pending.is_empty() {
            return;
        }
        let tx = match &self.bfd.ops {
            Some(tx) => tx.clone(),
            None => {
                let (tx, rx) = mpsc::channel(OPS);
                let (handle, owned) = match self.bfd.given.take() {
                    Some(h) => (h, false),
                    None => (Bfd::spawn(), true),
                };
                tokio::spawn(client::client(handle, owned, rx, self.inputs.clone()));
                self.bfd.ops = Some(tx.clone());
                tx
            }
        };
        for op in std::mem::take(&mut self.bfd.pending) {
            if tx.send(op).await.is_err() {
                return;
            }
        }
    }

    /// Asks for the counters (each second, while the service runs).
    pub(crate) fn bfd_tick(&mut self) {
        if self.bfd.ops.is_some() {
            self.bfd.push(Op::Counters);
        }
    }

    /// Tells every BFD peer AdminDown (so that none takes our going as a
    /// failure, RFC 5882 §3.2), [`ADMIN_DOWN_AFTER`] after the BGP
    /// sessions closed, and stops the service.
    pub(crate) async fn bfd_shutdown(&mut self) {
        self.bfd.pending.clear();
        let Some(tx) = self.bfd.ops.take() else {
            return;
        };
        tokio::time::sleep(ADMIN_DOWN_AFTER).await;
        let (done, wait) = oneshot::channel();
        if tx.send(Op::Shutdown(done)).await.is_ok() {
            let _ = tokio::time::timeout(SHUTDOWN_WAIT, wait).await;
        }
    }

    /// Takes the Established session of `id` down for a BFD Down: its
    /// NOTIFICATION goes out from the closing connection while the routes
    /// go now.
    fn bfd_teardown(&mut self, id: PeerId, s: &SessionStatus) {
        let why = format!("BFD down ({})", diag_text(s.local_diag));
        let Some(n) = self.neighbors.get_mut(&id) else {
            return;
        };
        let others: Vec<ConnId> = n
            .conns
            .iter()
            .filter(|c| Some(c.id) != n.established && !c.closing)
            .map(|c| c.id)
            .collect();
        let n_bit = n
            .est()
            .and_then(|c| c.agreed.as_ref())
            .and_then(|a| a.peer_gr.as_ref())
            .is_some_and(|g| g.notification);
        let est = n.established;
        if est.is_none() {
            n.last_error = Some(why.clone());
            n.touch();
        } else if let Some(l) = n.bfd.as_mut() {
            l.bgp_downs += 1;
        }
        tracing::warn!(peer = %n.config.address, established = est.is_some(), "{why}: BGP session down at once, routes withdrawn");
        for c in others {
            self.close_conn(id, c, cease(code::BFD_DOWN));
        }
        let Some(conn) = est else { return };
        // RFC 8538 §3: to a peer with the N bit a plain Cease means "keep
        // my routes"; the Hard Reset says drop them, as we drop its.
        let notification = if n_bit {
            Notification {
                code: code::CEASE,
                subcode: code::HARD_RESET,
                data: vec![code::BFD_DOWN],
            }
        } else {
            cease(code::BFD_DOWN)
        };
        if let Some(c) = self.drop_conn(id, conn, why, false) {
            self.conn_owner.remove(&c.id);
            c.close(notification);
            self.closing.insert(c.id, c);
        }
    }
}

// ===== helpers =====

fn timers_of(c: &BfdConfig) -> Timers {
    Timers {
        min_tx: c.min_tx,
        min_rx: c.min_rx,
        multiplier: c.multiplier,
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn diag_text(d: Diag) -> &'static str {
    match d {
        Diag::ControlDetectionTimeExpired => "detection time expired",
        Diag::NeighborSignaledSessionDown => "the neighbour signalled Down",
        Diag::PathDown => "path down",
        Diag::ForwardingPlaneReset => "forwarding plane reset",
        Diag::AdministrativelyDown => "administratively down",
        _ => "down",
    }
}

/// The interface that has `local` with a subnet holding `peer` (`ip
/// -o addr show`): the peer is directly connected there.
fn connected_interface(local: IpAddr, peer: IpAddr) -> Option<String> {
    let addrs = nix::ifaddrs::getifaddrs().ok()?;
    let ours: Vec<(String, IpAddr, u8)> = addrs
        .filter_map(|a| {
            let ip = ip_of(a.address.as_ref()?)?;
            let len = match ip_of(a.netmask.as_ref()?)? {
                IpAddr::V4(m) => u32::from(m).count_ones(),
                IpAddr::V6(m) => u128::from(m).count_ones(),
            };
            Some((a.interface_name, ip, len as u8))
        })
        .collect();
    on_subnet(&ours, local, peer)
}

/// Of `(interface, address, prefix length)`, the interface of `local`
/// whose subnet holds `peer`.
fn on_subnet(ours: &[(String, IpAddr, u8)], local: IpAddr, peer: IpAddr) -> Option<String> {
    ours.iter()
        .filter(|(_, ip, _)| *ip == local)
        .find(|(_, ip, len)| {
            ipnet::IpNet::new(*ip, *len).is_ok_and(|net| net.trunc().contains(&peer))
        })
        .map(|(name, _, _)| name.clone())
}

fn ip_of(s: &nix::sys::socket::SockaddrStorage) -> Option<IpAddr> {
    if let Some(v4) = s.as_sockaddr_in() {
        return Some(IpAddr::V4(v4.ip()));
    }
    s.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_on_our_subnet_is_directly_connected() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let ours = vec![
            ("lo".to_string(), ip("127.0.0.1"), 8),
            ("eth0".to_string(), ip("192.168.1.10"), 24),
            ("eth0".to_string(), ip("fd00::10"), 64),
            ("eth1".to_string(), ip("10.9.0.1"), 32),
        ];
        let found = |local, peer| on_subnet(&ours, ip(local), ip(peer));
        assert_eq!(
            found("192.168.1.10", "192.168.1.254").as_deref(),
            Some("eth0")
        );
        assert_eq!(found("fd00::10", "fd00::1").as_deref(), Some("eth0"));
        assert_eq!(
            found("192.168.1.10", "192.168.2.1"),
            None,
            "routed: multihop"
        );
        assert_eq!(
            found("10.9.0.1", "10.9.0.2"),
            None,
            "a /32 has no neighbours"
        );
        assert_eq!(
            found("192.168.1.11", "192.168.1.254"),
            None,
            "not our address"
        );
    }

    #[test]
    fn the_loopback_is_found_in_this_namespace() {
        assert_eq!(
            connected_interface(IpAddr::from([127, 0, 0, 1]), IpAddr::from([127, 0, 0, 2]))
                .as_deref(),
            Some("lo")
        );
    }

    #[test]
    fn bounds_agree_with_the_bfd_crate() {
        use tortie_config::bfd as c;
        assert_eq!(c::MIN_INTERVAL, bfd::config::MIN_INTERVAL);
        assert_eq!(c::MAX_INTERVAL, bfd::config::MAX_INTERVAL);
        let d = bfd::Timers::default();
        assert_eq!(
            (c::DEFAULT_INTERVAL, c::DEFAULT_MULTIPLIER),
            (d.min_tx, d.multiplier)
        );
        assert_eq!(d.min_rx, c::DEFAULT_INTERVAL);
    }
}
