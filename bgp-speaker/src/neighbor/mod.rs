//! A neighbour: its configuration, its connections (two while a collision
//! is being resolved), its timers, its graceful-restart state and counters.

pub mod negotiate;
mod outbox;
mod reader;
pub mod session;
pub mod tcp;
pub mod transport;

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;

use crate::config::PeerConfig;
use crate::packet::Notification;
use crate::rib::PeerId;
use crate::route::Afi;
use crate::status::{PeerStatus, SessionState};

use negotiate::Agreed;
use session::{AbortOnDrop, ConnId, Counters, ToSession};

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
