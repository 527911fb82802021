//! Every input of the instance, one dispatch, one handler per variant.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::api::Command;
use crate::instance::Instance;
use crate::memory;
use crate::neighbor::negotiate::{code, Agreed};
use crate::neighbor::session::{
    cease, notification_text, CloseInfo, ConnId, FromSession, ToSession,
};
use crate::neighbor::transport::Stream;
use crate::neighbor::Conn;
use crate::packet::{Notification, Open, Update};
use crate::rib::best_path::PeerFacts;
use crate::rib::{PeerId, RibPeer};
use crate::route::Afi;
use crate::status::SessionState;

/// Local routes taken in one go before the instance yields to the
/// runtime (a slice takes a few milliseconds).
const LOCAL_SLICE: usize = 4096;

/// An input of the instance task.
#[derive(Debug)]
pub(crate) enum Input {
    Command(Command),
    Session(ConnId, FromSession),
    /// The listener accepted a connection (or the caller handed one over).
    Accepted(Stream, SocketAddr),
    /// ConnectRetry timer expired (RFC 4271 event 9).
    ConnectRetry(PeerId),
    /// An outgoing connection attempt ended.
    Connected(PeerId, io::Result<Stream>),
    /// A restarting peer did not come back in its restart time.
    RestartTimerExpired(PeerId),
    /// A restarted peer did not send End-of-RIB in time.
    StaleTimerExpired(PeerId),
    /// We restarted and waited long enough for the peers' End-of-RIB.
    DeferralExpired,
    /// A BFD session's status (`bfd_link`): the peer, which of its
    /// sessions, the status.
    BfdStatus(PeerId, u64, bfd::SessionStatus),
    /// The BFD service refused a session.
    BfdFailed(PeerId, u64, String),
    /// The BFD service's counters.
    BfdCounters(bfd::Counters),
    /// Periodic: refresh the status snapshot.
    Tick,
}

// ===== impl Instance: dispatch =====

impl Instance {
    pub(crate) async fn dispatch(&mut self, input: Input) {
        match input {
            Input::Command(c) => self.on_command(c).await,
            Input::Session(conn, ev) => self.on_session(conn, ev),
            Input::Accepted(stream, from) => self.on_accepted(stream, from),
            Input::ConnectRetry(id) => self.on_connect_retry(id),
            Input::Connected(id, res) => self.on_connected(id, res),
            Input::RestartTimerExpired(id) => self.on_restart_expired(id),
            Input::StaleTimerExpired(id) => self.on_stale_expired(id),
            Input::DeferralExpired => self.end_deferral("deferral timer expired"),
            Input::BfdStatus(id, gen, s) => self.on_bfd_status(id, gen, s),
            Input::BfdFailed(id, gen, why) => self.on_bfd_failed(id, gen, why),
            Input::BfdCounters(c) => self.bfd.counters = Some(c),
            Input::Tick => {
                self.bfd_tick();
                if self.trimmer.tick() {
                    // It walks the whole heap: not on the runtime.
                    tokio::task::spawn_blocking(|| {
                        if memory::give_back() {
                            tracing::debug!(
                                "route burst over: free memory given back to the kernel"
                            );
                        }
                    });
                }
            }
        }
    }

    async fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Reconfigure(cfg, reply) => {
                let res = self.reconfigure(cfg);
                let _ = reply.send(res);
            }
            Command::Ping(reply) => {
                let _ = reply.send(());
            }
            Command::Accept(stream, from) => self.on_accepted(stream, from),
            Command::Explain(prefix, reply) => {
                let _ = reply.send(self.explain(prefix));
            }
            Command::Status(reply) => {
                self.publish();
                let _ = reply.send(self.status_now());
            }
            // A large table comes in slices with a yield between them, so
            // that the sessions on this runtime (keepalives, hold timers)
            // never wait for the whole of it.
            Command::Originate(routes) => {
                for (i, r) in routes.into_iter().enumerate() {
                    if i > 0 && i % LOCAL_SLICE == 0 {
                        tokio::task::yield_now().await;
                    }
                    self.rib.local_update(r.prefix, r.attrs);
                }
            }
            Command::Withdraw(prefixes) => {
                for (i, p) in prefixes.into_iter().enumerate() {
                    if i > 0 && i % LOCAL_SLICE == 0 {
                        tokio::task::yield_now().await;
                    }
                    self.rib.local_withdraw(p);
                }
            }
            // Each connection closes as `neighbor::stop_notification`
            // says: a graceful stop hangs up without a NOTIFICATION on
            // peers that keep our routes only so (RFC 4724 §4).
            Command::Shutdown(mode, done) => {
                for nb in self.neighbors.values_mut() {
                    nb.connect_timer = None;
                    for c in &nb.conns {
                        c.stop(mode, nb.established == Some(c.id));
                    }
                }
                self.listener = None;
                self.stopping = Some(done);
            }
        }
    }

    fn on_session(&mut self, conn: ConnId, ev: FromSession) {
        let Some(&id) = self.conn_owner.get(&conn) else {
            if let FromSession::Closed(_) = ev {
                self.closing.remove(&conn);
            }
            return;
        };
        match ev {
            FromSession::OpenReceived(open, agreed) => self.on_open(id, conn, &open, agreed),
            FromSession::Established {
                local_addr,
                link_local,
            } => self.on_established(id, conn, local_addr, link_local),
            FromSession::Update(u) => self.on_update(id, conn, u),
            // Subtypes 1/2 (BoRR/EoRR, RFC 7313) only mark a refresh the
            // peer sends us; a request is subtype 0.
            FromSession::RouteRefresh(afi, subtype) => {
                if subtype == 0 && self.is_established(id, conn) {
                    self.rib.refresh(id, afi);
                }
            }
            // Nothing to record: the flush after this input batch hands the
            // session more routes now that it has room.
            FromSession::Drained => {}
            FromSession::Closed(info) => self.on_closed(id, conn, info),
        }
    }

    fn is_established(&self, id: PeerId, conn: ConnId) -> bool {
        self.neighbors
            .get(&id)
            .is_some_and(|n| n.established == Some(conn))
    }

    /// RFC 4271 §6.8 collision detection, and RFC 4724 §4.2: a new OPEN
    /// while Established.
    ///
    /// - Another connection not yet Established: the one opened by the side
    ///   with the higher identifier stays (of two in one direction, the
    ///   newer).
    /// - An Established session with graceful restart, and the new OPEN
    ///   says the peer restarted (R bit), or the peer opened both
    ///   connections (it started over): the peer restarted; the old
    ///   session goes, its routes stay as stale.
    /// - An Established session with graceful restart, connections of
    ///   opposite directions, no R bit: the two sides connected to each
    ///   other at once and one side got to Established first (a mesh
    ///   coming up). Resolved by identifier as above, so both sides keep
    ///   the same connection; if that is the new one, the old session goes
    ///   as in a restart (routes stale until the new one sends them).
    ///   Taking such an OPEN as a restart reset sessions at bring-up.
    /// - An Established session without graceful restart: the new
    ///   connection is closed (RFC 4271 §6.8).
    fn on_open(&mut self, id: PeerId, conn: ConnId, open: &Open, agreed: Agreed) {
        let local_id = u32::from(self.config.router_id);
        let remote_id = u32::from(open.router_id);
        let restarted = agreed.peer_gr.as_ref().is_some_and(|g| g.restart_state);
        if self.bfd_holds(id) {
            return self.bfd_refuse(id, conn);
        }
        let Some(n) = self.neighbors.get_mut(&id) else {
            return;
        };
        let Some(c) = n.conn_mut(conn) else { return };
        c.state = SessionState::OpenConfirm;
        c.agreed = Some(agreed);
        let this_inbound = c.inbound;
        let addr = n.config.address;
        n.touch();
        let others: Vec<(ConnId, bool, SessionState, bool)> = n
            .conns
            .iter()
            .filter(|o| o.id != conn && !o.closing)
            .map(|o| {
                (
                    o.id,
                    o.inbound,
                    o.state,
                    o.agreed.as_ref().is_some_and(|a| a.peer_gr.is_some()),
                )
            })
            .collect();
        // Keep the connection opened by the side with the higher id.
        let keep_inbound = local_id < remote_id;
        let mut keep_this = true;
        for (other, other_inbound, state, gr) in others {
            if state == SessionState::Established {
                if !gr {
                    keep_this = false;
                } else if restarted || this_inbound == other_inbound {
                    tracing::info!(peer = %addr, r_bit = restarted, "peer restarted (new OPEN while Established): graceful restart");
                    self.drop_conn(id, other, "peer restarted".into(), true);
                } else if keep_inbound == this_inbound {
                    tracing::info!(peer = %addr, "connection collision with the Established session: the new connection wins by identifier; routes kept as stale");
                    self.drop_conn(id, other, "connection collision".into(), true);
                } else {
                    keep_this = false;
                }
                continue;
            }
            if this_inbound == other_inbound {
                // A stale attempt of the same direction: the newer wins.
                self.close_conn(id, other, cease(code::COLLISION));
                continue;
            }
            if keep_inbound == this_inbound {
                self.close_conn(id, other, cease(code::COLLISION));
            } else {
                keep_this = false;
            }
        }
        if let Some(c) = self.neighbors.get_mut(&id).and_then(|n| n.conn_mut(conn)) {
            c.closing |= !keep_this;
            let _ = c.tx.try_send(ToSession::Proceed(keep_this));
        }
    }

    fn on_established(
        &mut self,
        id: PeerId,
        conn: ConnId,
        local_addr: std::net::IpAddr,
        link_local: Option<std::net::Ipv6Addr>,
    ) {
        let local_asn = self.config.asn;
        let Some(n) = self.neighbors.get_mut(&id) else {
            return;
        };
        if n.conns.iter().any(|c| c.id == conn && c.closing) {
            // Closed by our verdict before it read it: not the session.
            tracing::debug!(peer = %n.config.address, "a connection told to close reached Established: ignored");
            return;
        }
        n.attempts = 0;
        let Some(c) = n.conn_mut(conn) else { return };
        c.state = SessionState::Established;
        let agreed = c
            .agreed
            .clone()
            .expect("OPEN was received before Established");
        n.established = Some(conn);
        n.local_addr = Some(local_addr);
        n.local_link_local = link_local;
        n.up_since = Some(Instant::now());
        n.eor_received.clear();
        n.eor_sent = false;
        n.max_prefix_warned = false;
        n.refresh_due.clear();
        n.connect_timer = None;
        n.touch();
        let ebgp = n.config.asn != local_asn;
        tracing::info!(peer = %n.config.address, asn = n.config.asn, "session Established");
        let peer = RibPeer::new(
            PeerFacts {
                address: n.config.address,
                router_id: agreed.peer_router_id,
                ebgp,
            },
            n.config.asn,
            n.config.rr_client,
            crate::repolicy::export_class(&n.config, local_asn, local_addr, link_local),
            agreed.families.clone(),
        )
        .importing_only(n.config.import_within.clone())
        .filtered(&n.config.import_filter, &n.config.export_filter);
        let peer = RibPeer {
            allow_local_as: n.config.allow_local_as,
            ..peer
        };
        // Graceful restart, helper side (RFC 4724 §4.2): stale families the
        // peer no longer preserves go now; the others wait for End-of-RIB.
        n.gr.restart_timer = None;
        let keep: Vec<Afi> = agreed
            .peer_gr
            .as_ref()
            .map(|g| {
                g.families
                    .iter()
                    .filter(|(_, fwd)| *fwd)
                    .map(|(a, _)| *a)
                    .collect()
            })
            .unwrap_or_default();
        let (stale, drop): (Vec<Afi>, Vec<Afi>) = n.gr.stale.iter().partition(|a| keep.contains(a));
        n.gr.stale = stale;
        let stale_time =
            Duration::from_secs(u64::from(self.config.graceful_restart.stale_routes_time));
        let arm_stale = !n.gr.stale.is_empty();
        self.rib.peer_up(id, peer);
        for afi in drop {
            self.rib.sweep_stale(id, afi);
        }
        if arm_stale {
            let t = self.timer(stale_time, Input::StaleTimerExpired(id));
            if let Some(n) = self.neighbors.get_mut(&id) {
                n.gr.stale_timer = Some(t);
            }
        }
        self.bfd_established(id, local_addr);
    }

    fn on_update(&mut self, id: PeerId, conn: ConnId, u: Update) {
        if !self.is_established(id, conn) {
            return;
        }
        let addr = self.neighbors[&id].config.address;
        tracing::debug!(
            peer = %addr,
            withdrawn = u.withdrawn.len(),
            announced = u.announced.iter().map(|a| a.nlri.len()).sum::<usize>(),
            "UPDATE received"
        );
        for issue in &u.issues {
            tracing::warn!(peer = %addr, type_code = issue.type_code, action = ?issue.action, "{}", issue.reason);
        }
        self.trimmer
            .changed(u.withdrawn.len() + u.announced.iter().map(|a| a.nlri.len()).sum::<usize>());
        for p in &u.withdrawn {
            self.rib.withdraw(id, *p);
        }
        for a in u.announced {
            if let Err(why) = self.rib.update(id, a.attrs, &a.nlri) {
                tracing::debug!(peer = %addr, ?why, count = a.nlri.len(), "routes not accepted");
            }
        }
        if let Some(afi) = u.end_of_rib {
            self.on_end_of_rib(id, afi);
        }
        // Checked once per batch, after the decision applied the batch's
        // changes (a check here applied them per UPDATE).
        if self.neighbors[&id].config.max_prefix.is_some() {
            self.max_prefix_due.insert(id);
        }
    }

    fn on_end_of_rib(&mut self, id: PeerId, afi: Afi) {
        let Some(n) = self.neighbors.get_mut(&id) else {
            return;
        };
        if !n.eor_received.contains(&afi) {
            n.eor_received.push(afi);
        }
        if n.gr.stale.contains(&afi) {
            n.gr.stale.retain(|a| *a != afi);
            if n.gr.stale.is_empty() {
                n.gr.stale_timer = None;
            }
            let swept = self.rib.sweep_stale(id, afi);
            tracing::info!(peer = %self.neighbors[&id].config.address, ?afi, swept, "End-of-RIB: stale routes removed");
        }
        if self.deferring.is_some() && self.all_eor_received() {
            self.end_deferral("End-of-RIB received from every peer");
        }
    }

    /// Every configured peer, and every peer we were told to wait for that
    /// can still be one (configured, or inside a dynamic prefix: a restart
    /// marker may name peers the configuration no longer has), is
    /// Established and sent End-of-RIB for all of its families.
    fn all_eor_received(&self) -> bool {
        let done = |n: &crate::neighbor::Neighbor| {
            n.est()
                .and_then(|c| c.agreed.as_ref())
                .is_some_and(|a| a.families.iter().all(|f| n.eor_received.contains(f)))
        };
        self.neighbors.values().filter(|n| !n.dynamic).all(done)
            && self
                .deferral_wait_for
                .iter()
                .filter(|a| self.by_addr.contains_key(*a) || self.dynamic_match(**a).is_some())
                .all(|a| {
                    self.by_addr
                        .get(a)
                        .and_then(|id| self.neighbors.get(id))
                        .is_some_and(done)
                })
    }

    pub(crate) fn end_deferral(&mut self, why: &str) {
        if self.deferring.take().is_some() {
            tracing::info!("restart: sending our routes ({why})");
        }
    }

    /// The max-prefix limit, per family, on the prefixes accepted from the
    /// peer (those the import checks let into the Loc-RIB).
    pub(crate) fn check_max_prefix(&mut self, id: PeerId) {
        let Some(mp) = self.neighbors.get(&id).and_then(|n| n.config.max_prefix) else {
            return;
        };
        let (v4, v6) = self.rib.apply_then_accepted(id);
        let Some((afi, accepted)) = [(Afi::Ipv4, v4), (Afi::Ipv6, v6)]
            .into_iter()
            .find(|(_, n)| *n > mp.limit)
        else {
            return;
        };
        let Some(n) = self.neighbors.get_mut(&id) else {
            return;
        };
        let family = match afi {
            Afi::Ipv4 => "IPv4 unicast",
            Afi::Ipv6 => "IPv6 unicast",
        };
        if mp.teardown {
            n.last_error = Some(format!(
                "max-prefix: {accepted} {family} prefixes accepted, over the limit of {}",
                mp.limit
            ));
            // RFC 4486 §4: data = AFI (2), SAFI (1), limit (4).
            let afi_number: u16 = match afi {
                Afi::Ipv4 => 1,
                Afi::Ipv6 => 2,
            };
            let mut data = afi_number.to_be_bytes().to_vec();
            data.push(1);
            data.extend_from_slice(&(mp.limit.min(u64::from(u32::MAX)) as u32).to_be_bytes());
            if let Some(c) = n.est() {
                c.close(Notification {
                    code: code::CEASE,
                    subcode: code::MAX_PREFIX,
                    data,
                });
            }
        } else if !n.max_prefix_warned {
            n.max_prefix_warned = true;
            tracing::warn!(peer = %n.config.address, family, accepted, limit = mp.limit, "max-prefix limit exceeded");
        }
    }

    fn on_closed(&mut self, id: PeerId, conn: ConnId, info: CloseInfo) {
        self.conn_owner.remove(&conn);
        let was_est = self.is_established(id, conn);
        let n_bit = self
            .neighbors
            .get(&id)
            .and_then(|n| n.conns.iter().find(|c| c.id == conn))
            .and_then(|c| c.agreed.as_ref())
            .and_then(|a| a.peer_gr.as_ref())
            .is_some_and(|g| g.notification);
        let graceful = was_est && gr_applies(&info, n_bit);
        let why = match (&info.sent, &info.received) {
            (Some(n), _) => format!("{}: {}", notification_text("sent", n), info.reason),
            (_, Some(n)) => notification_text("received", n),
            _ => info.reason.clone(),
        };
        self.drop_conn(id, conn, why, graceful);
    }

    /// Forgets a connection; if it was the established one, the peer's
    /// routes go, or stay stale when graceful restart applies. Returns
    /// the connection (dropping it ends its task).
    pub(crate) fn drop_conn(
        &mut self,
        id: PeerId,
        conn: ConnId,
        why: String,
        graceful: bool,
    ) -> Option<Conn> {
        // A connection dropped here before it closed (the old session of
        // a peer that restarted) never reports Closed, which is what
        // removes it elsewhere: each restart by OPEN left an entry.
        self.conn_owner.remove(&conn);
        let n = self.neighbors.get_mut(&id)?;
        let gone = n
            .conns
            .iter()
            .position(|c| c.id == conn)
            .map(|i| n.conns.remove(i));
        let agreed = gone.as_ref().and_then(|c| c.agreed.clone());
        n.touch();
        if n.established == Some(conn) {
            n.established = None;
            n.up_since = None;
            n.flaps += 1;
            n.last_error = Some(why.clone());
            tracing::warn!(peer = %n.config.address, "session down: {why}");
            let gr_families: Vec<Afi> = match agreed.as_ref().and_then(|a| a.peer_gr.as_ref()) {
                Some(g) if graceful => g.families.iter().map(|(a, _)| *a).collect(),
                _ => Vec::new(),
            };
            n.gr.stale = gr_families.clone();
            n.gr.stale_timer = None;
            if !gr_families.is_empty() {
                let secs = agreed
                    .and_then(|a| a.peer_gr)
                    .map(|g| g.restart_time)
                    .unwrap_or(0);
                tracing::info!(peer = %n.config.address, restart_time = secs, "keeping routes as stale");
                let t = self.timer(
                    Duration::from_secs(u64::from(secs)),
                    Input::RestartTimerExpired(id),
                );
                if let Some(n) = self.neighbors.get_mut(&id) {
                    n.gr.restart_timer = Some(t);
                }
            }
            self.rib.peer_down(id, &gr_families);
        } else if n.established.is_none() {
            n.last_error = Some(why);
        }
        self.after_conn_gone(id);
        gone
    }

    /// Asks a connection to close with a NOTIFICATION.
    pub(crate) fn close_conn(&mut self, id: PeerId, conn: ConnId, n: Notification) {
        if let Some(c) = self.neighbors.get_mut(&id).and_then(|nb| nb.conn_mut(conn)) {
            c.closing = true;
            c.close(n);
        }
    }

    /// Removes a neighbour, its sessions and its routes.
    pub(crate) fn remove_neighbor(&mut self, id: PeerId) {
        self.remove_neighbor_with(id, code::PEER_DECONFIGURED);
    }

    /// Removes a neighbour, closing its sessions with Cease/`subcode`
    /// (they live on, owned by no neighbour, until they have sent it).
    pub(crate) fn remove_neighbor_with(&mut self, id: PeerId, subcode: u8) {
        if let Some(n) = self.neighbors.remove(&id) {
            for c in n.conns {
                c.close(cease(subcode));
                self.conn_owner.remove(&c.id);
                self.closing.insert(c.id, c);
            }
            if self.by_addr.get(&n.config.address) == Some(&id) {
                self.by_addr.remove(&n.config.address);
            }
            self.bfd.forget(n.bfd);
            self.rib.peer_down(id, &[]);
        }
    }

    fn on_restart_expired(&mut self, id: PeerId) {
        let Some(n) = self.neighbors.get_mut(&id) else {
            return;
        };
        n.gr.restart_timer = None;
        if n.established.is_some() {
            return;
        }
        tracing::warn!(peer = %n.config.address, "restart time over: removing stale routes");
        self.sweep_all_stale(id);
    }

    fn on_stale_expired(&mut self, id: PeerId) {
        if let Some(n) = self.neighbors.get_mut(&id) {
            n.gr.stale_timer = None;
            tracing::warn!(peer = %n.config.address, "no End-of-RIB in time: removing stale routes");
        }
        self.sweep_all_stale(id);
    }

    fn sweep_all_stale(&mut self, id: PeerId) {
        let Some(n) = self.neighbors.get_mut(&id) else {
            return;
        };
        let stale = std::mem::take(&mut n.gr.stale);
        for afi in stale {
            self.rib.sweep_stale(id, afi);
        }
        let gone = self
            .neighbors
            .get(&id)
            .is_some_and(|n| n.dynamic && n.conns.is_empty());
        if gone {
            self.remove_neighbor(id);
        }
    }
}

/// Whether a closed session leaves the peer's routes as stale: TCP failure
/// or hold timer (RFC 4724), or any NOTIFICATION but Cease/Hard Reset when
/// both sides set the N bit (RFC 8538 §3; ours is always set).
fn gr_applies(info: &CloseInfo, n_bit: bool) -> bool {
    let hard = |n: &Notification| n.code == code::CEASE && n.subcode == code::HARD_RESET;
    match (&info.sent, &info.received) {
        (Some(n), _) | (_, Some(n)) => n_bit && !hard(n),
        (None, None) => true,
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;
    use crate::config::{PeerConfig, SpeakerConfig};
    use crate::packet::GracefulRestartCap;

    /// A peer restarting by a new OPEN while Established (RFC 4724 §4.2)
    /// replaces its session: the old connection is forgotten everywhere,
    /// so a peer that does so all day holds one entry per map, not one
    /// per restart (the flap storm test's collisions did this 67 times).
    #[tokio::test]
    async fn a_session_replaced_by_a_restart_is_forgotten() {
        let peer = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        let mut inst = Instance::idle(&SpeakerConfig::new(Ipv4Addr::new(10, 0, 0, 1), 64512));
        let id = inst.add_neighbor(
            PeerConfig {
                passive: true,
                ..PeerConfig::new(peer, 64512)
            },
            false,
        );
        let open = Open {
            router_id: Ipv4Addr::new(10, 0, 0, 2),
            ..crate::neighbor::negotiate::LocalOffer {
                asn: 64512,
                router_id: Ipv4Addr::new(10, 0, 0, 2),
                hold_time: 90,
                families: vec![Afi::Ipv4],
                graceful_restart: None,
            }
            .open()
        };
        let agreed = Agreed {
            hold_time: 90,
            keepalive: 30,
            families: vec![Afi::Ipv4],
            asn4: true,
            max_len: crate::packet::MAX_LEN,
            route_refresh: true,
            peer_gr: Some(GracefulRestartCap {
                restart_state: false,
                notification: false,
                restart_time: 120,
                families: vec![(Afi::Ipv4, true)],
            }),
            peer_router_id: Ipv4Addr::new(10, 0, 0, 2),
        };
        let mut ends = Vec::new();
        let mut conns = Vec::new();
        for round in 0..3 {
            let (stream, end) = Stream::pipe(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
            ends.push(end);
            inst.spawn_session(id, stream, true);
            let conn = inst.neighbors[&id].conns.last().unwrap().id;
            inst.on_open(id, conn, &open, agreed.clone());
            inst.on_established(id, conn, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), None);
            conns.push(conn);
            let n = &inst.neighbors[&id];
            assert_eq!(n.established, Some(conn), "round {round}");
            assert_eq!(n.conns.len(), 1, "round {round}: the old session went");
            assert_eq!(
                inst.conn_owner.keys().copied().collect::<Vec<_>>(),
                vec![conn],
                "round {round}: only the session's connection is owned"
            );
        }
        assert_eq!(inst.neighbors[&id].flaps, 2);
    }
}
