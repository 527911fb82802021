//! A neighbour: its configuration, its connections (two while a collision
//! is being resolved), its timers, its graceful-restart state and counters.

mod link;
pub mod negotiate;
mod outbox;
mod reader;
pub mod session;
pub mod tcp;
pub mod transport;

use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;

use crate::api::ShutdownMode;
use crate::config::PeerConfig;
use crate::packet::{GracefulRestartCap, Notification};
use crate::rib::PeerId;
use crate::route::Afi;
use crate::status::{PeerStatus, SessionState};

use negotiate::{code, Agreed};
use session::{cease, AbortOnDrop, ConnId, Counters, ToSession};

/// One TCP connection of a neighbour.
#[derive(Debug)]
pub struct Conn {
    pub id: ConnId,
    /// The peer opened it (we accepted).
    pub inbound: bool,
    pub state: SessionState,
    pub tx: mpsc::Sender<ToSession>,
    /// Set once the peer's OPEN passed our checks.
    pub agreed: Option<Agreed>,
    /// Told to close (a collision lost, a stale attempt): it never
    /// becomes the session, though its own task may still report
    /// Established (it waits for the peer's KEEPALIVE before it reads
    /// our verdict).
    pub closing: bool,
    pub _task: AbortOnDrop<()>,
}

/// Graceful restart state of a neighbour (RFC 4724 §4.2, helper side).
#[derive(Debug, Default)]
pub struct GrHelper {
    /// Families whose routes we keep stale.
    pub stale: Vec<Afi>,
    /// Runs while the peer is down: on expiry its stale routes go.
    pub restart_timer: Option<AbortOnDrop<()>>,
    /// Runs after the peer came back: on expiry remaining stale routes go.
    pub stale_timer: Option<AbortOnDrop<()>>,
}

/// One configured or dynamic neighbour.
#[derive(Debug)]
pub struct Neighbor {
    pub id: PeerId,
    pub config: PeerConfig,
    pub dynamic: bool,
    pub conns: Vec<Conn>,
    /// The connection that reached Established.
    pub established: Option<ConnId>,
    /// Our address on the established session.
    pub local_addr: Option<IpAddr>,
    /// Our link-local address toward the peer when it shares our subnet
    /// (RFC 2545 §3; `link.rs`), on the established session.
    pub local_link_local: Option<Ipv6Addr>,
    pub since: SystemTime,
    pub up_since: Option<Instant>,
    /// Next connection attempt (active peers).
    pub connect_timer: Option<AbortOnDrop<()>>,
    pub connecting: bool,
    /// Attempts since the last Established: the retry delay grows with
    /// them (see `connect::retry_delay`).
    pub attempts: u32,
    pub counters: Arc<Counters>,
    pub flaps: u64,
    pub last_error: Option<String>,
    pub gr: GrHelper,
    /// Families whose End-of-RIB we received on this session.
    pub eor_received: Vec<Afi>,
    /// Whether our End-of-RIB was sent on this session.
    pub eor_sent: bool,
    /// Max-prefix warning was logged for this session.
    pub max_prefix_warned: bool,
    /// Families to send a ROUTE-REFRESH for (its import filters changed),
    /// as soon as the session has room.
    pub refresh_due: Vec<Afi>,
    /// BFD, when configured.
    pub bfd: Option<crate::bfd_link::PeerLink>,
}

// ===== impl Conn =====

impl Conn {
    /// Tells the session to send `n` and close: at once when its queue has
    /// room, else after what is queued (never dropped: a peer must learn
    /// why its session ends).
    pub fn close(&self, n: Notification) {
        self.send_close(Some(n));
    }

    /// Closes the connection for a stop of the speaker, like
    /// [`Self::close`], with the NOTIFICATION [`stop_notification`] picks,
    /// or without any: to a peer with graceful restart a TCP connection
    /// closed so is our restart (RFC 4724 §4), and it keeps our routes as
    /// stale for our restart time.
    pub fn stop(&self, mode: ShutdownMode, established: bool) {
        let peer_gr = self.agreed.as_ref().and_then(|a| a.peer_gr.as_ref());
        self.send_close(stop_notification(mode, established, peer_gr));
    }

    fn send_close(&self, n: Option<Notification>) {
        if let Err(mpsc::error::TrySendError::Full(cmd)) = self.tx.try_send(ToSession::Close(n)) {
            let tx = self.tx.clone();
            tokio::spawn(async move {
                let _ = tx.send(cmd).await;
            });
        }
    }
}

// ===== impl Neighbor =====

impl Neighbor {
    /// A neighbour with no connection yet.
    pub fn new(id: PeerId, config: PeerConfig, dynamic: bool) -> Neighbor {
        Neighbor {
            bfd: config.bfd.map(crate::bfd_link::PeerLink::new),
            id,
            config,
            dynamic,
            conns: Vec::new(),
            established: None,
            local_addr: None,
            local_link_local: None,
            since: SystemTime::now(),
            up_since: None,
            connect_timer: None,
            connecting: false,
            attempts: 0,
            counters: Arc::new(Counters::default()),
            flaps: 0,
            last_error: None,
            gr: GrHelper::default(),
            eor_received: Vec::new(),
            eor_sent: false,
            max_prefix_warned: false,
            refresh_due: Vec::new(),
        }
    }

    /// The established connection.
    pub fn est(&self) -> Option<&Conn> {
        let id = self.established?;
        self.conns.iter().find(|c| c.id == id)
    }

    /// The connection with this id.
    pub fn conn_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        self.conns.iter_mut().find(|c| c.id == id)
    }

    /// The state shown to users: the most advanced connection's state, or
    /// Connect/Active/Idle when there is none.
    pub fn state(&self) -> SessionState {
        let rank = |s: SessionState| match s {
            SessionState::Idle => 0,
            SessionState::Active => 1,
            SessionState::Connect => 2,
            SessionState::OpenSent => 3,
            SessionState::OpenConfirm => 4,
            SessionState::Established => 5,
        };
        let best = self.conns.iter().map(|c| c.state).max_by_key(|s| rank(*s));
        match best {
            Some(s) => s,
            None if self.connecting => SessionState::Connect,
            None => SessionState::Active,
        }
    }

    /// Marks a state change time.
    pub fn touch(&mut self) {
        self.since = SystemTime::now();
    }

    /// The status row.
    pub fn status(&self, received: (u64, u64), advertised: u64) -> PeerStatus {
        let c = &self.counters;
        PeerStatus {
            address: self.config.address,
            asn: self.config.asn,
            dynamic: self.dynamic,
            rr_client: self.config.rr_client,
            state: self.state(),
            since_unix: self
                .since
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            uptime_secs: self.up_since.map(|t| t.elapsed().as_secs()).unwrap_or(0),
            prefixes_received: received.0,
            prefixes_accepted: received.1,
            prefixes_advertised: advertised,
            updates_received: c.updates_in.load(Ordering::Relaxed),
            updates_sent: c.updates_out.load(Ordering::Relaxed),
            messages_received: c.messages_in.load(Ordering::Relaxed),
            messages_sent: c.messages_out.load(Ordering::Relaxed),
            flaps: self.flaps,
            routes_unsendable: c.unsendable.load(Ordering::Relaxed),
            last_error: self.last_error.clone(),
            negotiated: self
                .est()
                .and_then(|c| c.agreed.as_ref())
                .map(|a| a.status()),
            bfd: self.bfd.as_ref().map(|l| l.status()),
        }
    }
}

// ===== helpers =====

/// What a connection is told when the speaker stops: the NOTIFICATION to
/// send, or `None` to close the TCP connection without one. `peer_gr` is
/// the peer's graceful restart capability when both sides sent one (ours
/// always sets the N bit).
///
/// - Hard: Cease / Hard Reset carrying Administrative Shutdown (RFC 8538
///   §3): every peer drops our routes at once.
/// - Graceful, an Established session:
///   - graceful restart with the N bit on both sides: Cease /
///     Administrative Reset; RFC 8538 makes the peer keep our routes as
///     stale after it, and it says why.
///   - graceful restart without the N bit (BIRD 2.0): no NOTIFICATION,
///     the TCP connection just closes. RFC 4724 §4: the peer takes that
///     for our restart and keeps our routes as stale for our restart
///     time; a NOTIFICATION would make it drop them at once.
///   - no graceful restart: Cease / Administrative Reset: our routes go
///     anyway, the NOTIFICATION tells why.
/// - Graceful, a session not yet Established: Cease / Administrative
///   Reset (there are no routes to keep).
pub fn stop_notification(
    mode: ShutdownMode,
    established: bool,
    peer_gr: Option<&GracefulRestartCap>,
) -> Option<Notification> {
    match mode {
        ShutdownMode::Hard => Some(Notification {
            code: code::CEASE,
            subcode: code::HARD_RESET,
            data: vec![code::ADMIN_SHUTDOWN],
        }),
        ShutdownMode::Graceful => match peer_gr {
            Some(gr) if established && !gr.notification => None,
            _ => Some(cease(code::ADMIN_RESET)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gr(n_bit: bool) -> GracefulRestartCap {
        GracefulRestartCap {
            restart_state: false,
            notification: n_bit,
            restart_time: 120,
            families: vec![(Afi::Ipv4, true)],
        }
    }

    #[test]
    fn a_graceful_stop_hangs_up_only_on_established_peers_with_gr_and_no_n_bit() {
        let reset = Some(cease(code::ADMIN_RESET));
        let (with_n, without_n) = (gr(true), gr(false));
        let g = ShutdownMode::Graceful;
        assert_eq!(stop_notification(g, true, Some(&with_n)), reset);
        assert_eq!(stop_notification(g, true, Some(&without_n)), None);
        assert_eq!(stop_notification(g, true, None), reset);
        for peer_gr in [Some(&with_n), Some(&without_n), None] {
            assert_eq!(stop_notification(g, false, peer_gr), reset, "{peer_gr:?}");
            let hard = stop_notification(ShutdownMode::Hard, true, peer_gr).unwrap();
            assert_eq!(
                (hard.code, hard.subcode, hard.data),
                (code::CEASE, code::HARD_RESET, vec![code::ADMIN_SHUTDOWN])
            );
        }
    }
}
