//! A serde snapshot of the speaker for tortiectl, /status and metrics.
//!
//! The instance task publishes a fresh snapshot through a `watch` channel
//! whenever something a user would see changes, so readers never block the
//! sessions.

use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};

use crate::route::Afi;

/// RFC 4271 §8.2.2 session states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SessionState {
    Idle,
    Connect,
    Active,
    OpenSent,
    OpenConfirm,
    Established,
}

/// The whole speaker.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub router_id: Option<Ipv4Addr>,
    pub asn: u32,
    /// Set when this speaker reflects routes (RFC 4456).
    pub cluster_id: Option<Ipv4Addr>,
    /// The address the listener is bound to (the real port when 0 was asked).
    pub listen: Option<std::net::SocketAddr>,
    /// Prefixes with a best path in the Loc-RIB.
    pub loc_rib_prefixes: u64,
    /// After a restart: still waiting for the peers' End-of-RIB (or the
    /// deferral timer) before sending our routes. A caller that programs
    /// routes waits for this to turn false before it removes any route the
    /// previous run left (RFC 4724 §4.1).
    #[serde(default)]
    pub deferring: bool,
    pub peers: Vec<PeerStatus>,
    /// Inbound connections closed by the listener's limits, since start.
    #[serde(default)]
    pub refused: Refused,
    /// While some peer uses GTSM (`ttl_security`): segments the kernel of
    /// this network namespace dropped for arriving with a TTL below a
    /// socket's minimum (`TcpExt: TCPMinTTLDrop`, since boot). It counts
    /// what never reaches us (SYNs below the listener's minimum, segments
    /// of a GTSM connection from too far), for every program in the
    /// namespace, and cannot tell peers apart. `None`: no peer uses GTSM,
    /// or the counter cannot be read.
    #[serde(default)]
    pub kernel_min_ttl_drops: Option<u64>,
    /// The BFD service's counters (packets, discards by reason), once a
    /// peer has a BFD session; refreshed every second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfd: Option<bfd::Counters>,
}

/// Inbound connections closed at once, by why (counted since start).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refused {
    /// From an address that is no configured peer and in no dynamic prefix.
    pub not_a_peer: u64,
    /// From a dynamic prefix that already has its `max_peers` peers.
    pub peer_limit: u64,
    /// A connection of a peer that had not reached Established, closed
    /// because the same address connected again (the newer one is kept:
    /// one unfinished inbound connection per address at most).
    pub superseded: u64,
    /// From a peer with GTSM (`ttl_security`) whose SYN arrived with a TTL
    /// below the peer's minimum, or an unknown one; closed before BGP read
    /// a byte. (SYNs below the listener's own minimum never become
    /// connections: [`Status::kernel_min_ttl_drops`] counts those.)
    #[serde(default)]
    pub ttl_security: u64,
}

/// One peer, configured or dynamic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeerStatus {
    pub address: IpAddr,
    pub asn: u32,
    /// Accepted through a `dynamicPeers` prefix rather than configured.
    pub dynamic: bool,
    /// Route reflector client (RFC 4456).
    pub rr_client: bool,
    pub state: SessionState,
    /// Unix time (seconds) of the last state change.
    pub since_unix: u64,
    /// Seconds in Established, 0 otherwise.
    pub uptime_secs: u64,
    /// Routes in Adj-RIB-In.
    pub prefixes_received: u64,
    /// Routes in Adj-RIB-In that passed import checks.
    pub prefixes_accepted: u64,
    /// Routes in Adj-RIB-Out.
    pub prefixes_advertised: u64,
    pub updates_received: u64,
    pub updates_sent: u64,
    pub messages_received: u64,
    pub messages_sent: u64,
    /// Session flaps: how many times it left Established.
    pub flaps: u64,
    /// Routes that could not be encoded for this peer (attributes too
    /// large for its message size, an IPv6 next hop for IPv4 without RFC
    /// 8950) and were withdrawn from it instead of sent.
    #[serde(default)]
    pub routes_unsendable: u64,
    /// The last error, e.g. "sent NOTIFICATION 4/0 hold timer expired".
    pub last_error: Option<String>,
    /// What was negotiated, once Established.
    pub negotiated: Option<Negotiated>,
    /// BFD, for a peer configured with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfd: Option<PeerBfd>,
}

/// A peer's BFD (RFC 5880): its settings, its session, and what it did
/// to BGP. camelCase, as the agents' `/status` views that show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerBfd {
    /// Configured Required Min RX Interval.
    pub min_rx_ms: u64,
    /// Configured Desired Min TX Interval.
    pub min_tx_ms: u64,
    /// Configured Detect Mult.
    pub multiplier: u8,
    /// The session, made when the BGP session is first Established.
    pub session: Option<BfdSessionView>,
    /// BFD went down after Up and is not Up again: the BGP session is
    /// held down until it is.
    pub holding: bool,
    /// BGP sessions BFD took down (each counted in `flaps` too).
    pub bgp_downs: u64,
    /// Why there is no session (waiting for Established, not directly
    /// connected, refused by the service).
    pub note: Option<String>,
}

/// A BFD session as the service last reported it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BfdSessionView {
    /// RFC 5883 multihop; single hop (RFC 5881) otherwise.
    pub multihop: bool,
    /// Our address.
    pub local: Option<IpAddr>,
    /// Single hop: the interface the peer is on.
    pub interface: Option<String>,
    pub state: bfd::State,
    /// Why our state last changed.
    pub local_diag: bfd::Diag,
    /// The peer's state as last heard (AdminDown: it turned BFD off).
    pub remote_state: bfd::State,
    pub remote_diag: bfd::Diag,
    /// Negotiated interval between our packets (before jitter).
    pub tx_interval_ms: Option<u64>,
    /// How long a silence of the peer takes the session down.
    pub detection_time_ms: Option<u64>,
    /// Times it went Up.
    pub ups: u64,
    /// Times it went from Up to Down.
    pub downs: u64,
}

/// Capabilities in force on an Established session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Negotiated {
    pub hold_time: u16,
    pub keepalive: u16,
    pub families: Vec<Afi>,
    pub four_octet_as: bool,
    pub route_refresh: bool,
    pub extended_message: bool,
    /// The peer's graceful restart time, if both sides do graceful restart.
    pub graceful_restart: Option<u16>,
    pub peer_router_id: Ipv4Addr,
}
