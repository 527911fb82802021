//! Prometheus families built from the BGP speaker's status snapshot.
//!
//! [`SpeakerCollector`] encodes the per-peer families at scrape time from
//! the speaker's status `watch`, so they can never drift from `/status`, and
//! a removed peer disappears at once.
//!
//! `tortie_bgp_peer_state` values follow the BGP4-MIB `bgpPeerState`
//! numbering: 1 Idle, 2 Connect, 3 Active, 4 OpenSent, 5 OpenConfirm,
//! 6 Established.

use std::sync::Arc;

use bgp_speaker::{BfdState, PeerBfd, PeerStatus, SessionState, Status};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

/// Content type of the text we serve (OpenMetrics text, which Prometheus
/// scrapes natively).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A per-peer family: name, help, and how to read the value off a peer.
type PeerFamily<T> = (&'static str, &'static str, fn(&PeerStatus) -> T);

/// Encodes the speaker's status snapshot at scrape time.
#[derive(Debug)]
pub struct SpeakerCollector {
    status: watch::Receiver<Arc<Status>>,
}

impl SpeakerCollector {
    /// A collector reading `status` (the speaker's status watch).
    pub fn new(status: watch::Receiver<Arc<Status>>) -> SpeakerCollector {
        SpeakerCollector { status }
    }
}

// ===== impl SpeakerCollector =====

impl Collector for SpeakerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let status = self.status.borrow().clone();
        let gauges: [PeerFamily<i64>; 3] = [
            (
                "tortie_bgp_peer_state",
                "BGP session state: 1 Idle, 2 Connect, 3 Active, 4 OpenSent, 5 OpenConfirm, 6 Established",
                |p| state_number(p.state),
            ),
            (
                "tortie_bgp_prefixes_received",
                "Prefixes in the peer's Adj-RIB-In",
                |p| saturating(p.prefixes_received),
            ),
            (
                "tortie_bgp_prefixes_advertised",
                "Prefixes in the peer's Adj-RIB-Out",
                |p| saturating(p.prefixes_advertised),
            ),
        ];
        for (name, help, value) in gauges {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for peer in &status.peers {
                let labels = peer_labels(peer);
                ConstGauge::new(value(peer)).encode(family.encode_family(&labels)?)?;
            }
        }
        // Counters: the encoder appends `_total` to the name.
        let counters: [PeerFamily<u64>; 4] = [
            (
                "tortie_bgp_updates_received",
                "UPDATE messages received from the peer",
                |p| p.updates_received,
            ),
            (
                "tortie_bgp_updates_sent",
                "UPDATE messages sent to the peer",
                |p| p.updates_sent,
            ),
            (
                "tortie_bgp_peer_flaps",
                "Times the session left Established",
                |p| p.flaps,
            ),
            (
                "tortie_bgp_routes_unsendable",
                "Routes withdrawn from the peer because they could not be encoded for it \
                 (attributes too large for its message size)",
                |p| p.routes_unsendable,
            ),
        ];
        for (name, help, value) in counters {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for peer in &status.peers {
                let labels = peer_labels(peer);
                ConstCounter::new(value(peer)).encode(family.encode_family(&labels)?)?;
            }
        }
        let rib = encoder.encode_descriptor(
            "tortie_bgp_loc_rib_prefixes",
            "Prefixes with a best path in the Loc-RIB",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(saturating(status.loc_rib_prefixes)).encode(rib)?;
        let mut refused = encoder.encode_descriptor(
            "tortie_bgp_connections_refused",
            "Inbound connections closed at once: not_a_peer (no configured or dynamic peer), \
             peer_limit (the dynamic prefix has its maxPeers), superseded (an unfinished \
             connection replaced by a newer one from the same address), ttl_security (GTSM: \
             the SYN arrived with a TTL below the peer's minimum)",
            None,
            MetricType::Counter,
        )?;
        let r = status.refused;
        for (reason, n) in [
            ("not_a_peer", r.not_a_peer),
            ("peer_limit", r.peer_limit),
            ("superseded", r.superseded),
            ("ttl_security", r.ttl_security),
        ] {
            ConstCounter::new(n).encode(refused.encode_family(&[("reason", reason)])?)?;
        }
        encode_bfd(&status, &mut encoder)?;
        if let Some(n) = status.kernel_min_ttl_drops {
            let drops = encoder.encode_descriptor(
                "tortie_bgp_gtsm_kernel_drops",
                "While a peer uses GTSM (ttlSecurity): segments the kernel dropped for a TTL \
                 below a socket's minimum (TcpExt TCPMinTTLDrop of this network namespace, \
                 every program's, since boot; SYNs refused by the listener among them)",
                None,
                MetricType::Counter,
            )?;
            ConstCounter::new(n).encode(drops)?;
        }
        Ok(())
    }
}

// ===== helpers =====

/// The BFD families: per peer with a BFD session (state, downs, BGP
/// sessions taken down, held), and the service's packets and discards.
fn encode_bfd(status: &Status, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let bfd_peers: Vec<(&PeerStatus, &PeerBfd)> = status
        .peers
        .iter()
        .filter_map(|p| p.bfd.as_ref().map(|b| (p, b)))
        .collect();
    if bfd_peers.is_empty() && status.bfd.is_none() {
        return Ok(());
    }
    type BfdFamily = (
        &'static str,
        &'static str,
        MetricType,
        fn(&PeerBfd) -> Option<u64>,
    );
    let families: [BfdFamily; 4] = [
        (
            "tortie_bfd_session_state",
            "BFD session state (RFC 5880): 0 AdminDown, 1 Down, 2 Init, 3 Up",
            MetricType::Gauge,
            |b| b.session.as_ref().map(|s| bfd_state_number(s.state)),
        ),
        (
            "tortie_bfd_bgp_held",
            "1 while BFD holds the BGP session down (BFD went down and is not Up again)",
            MetricType::Gauge,
            |b| Some(u64::from(b.holding)),
        ),
        (
            "tortie_bfd_session_downs",
            "Times the peer's BFD session went from Up to Down",
            MetricType::Counter,
            |b| b.session.as_ref().map(|s| s.downs),
        ),
        (
            "tortie_bfd_bgp_downs",
            "BGP sessions a BFD Down took down",
            MetricType::Counter,
            |b| Some(b.bgp_downs),
        ),
    ];
    for (name, help, kind, value) in families {
        let mut family = encoder.encode_descriptor(name, help, None, kind)?;
        for (peer, b) in &bfd_peers {
            let Some(v) = value(b) else { continue };
            let labels = peer_labels(peer);
            match kind {
                MetricType::Counter => {
                    ConstCounter::new(v).encode(family.encode_family(&labels)?)?
                }
                _ => ConstGauge::new(saturating(v)).encode(family.encode_family(&labels)?)?,
            }
        }
    }
    let Some(c) = &status.bfd else {
        return Ok(());
    };
    for (name, help, v) in [
        (
            "tortie_bfd_packets_received",
            "BFD datagrams read, valid or not",
            c.rx_packets,
        ),
        (
            "tortie_bfd_packets_sent",
            "BFD Control packets sent",
            c.tx_packets,
        ),
        (
            "tortie_bfd_send_errors",
            "BFD packets the kernel refused to send",
            c.tx_errors,
        ),
        (
            "tortie_bfd_receive_errors",
            "BFD socket read errors",
            c.rx_errors,
        ),
    ] {
        let m = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
        ConstCounter::new(v).encode(m)?;
    }
    let mut discards = encoder.encode_descriptor(
        "tortie_bfd_discards",
        "BFD packets discarded, by reason (RFC 5880 §6.8.6, RFC 5881 §5: see docs/bfd.md)",
        None,
        MetricType::Counter,
    )?;
    for (reason, n) in c.discards() {
        ConstCounter::new(n).encode(discards.encode_family(&[("reason", reason.as_str())])?)?;
    }
    Ok(())
}

/// RFC 5880 §4.1 state numbering.
pub fn bfd_state_number(state: BfdState) -> u64 {
    match state {
        BfdState::AdminDown => 0,
        BfdState::Down => 1,
        BfdState::Init => 2,
        BfdState::Up => 3,
    }
}

/// The exposition text of `registry`.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, registry);
    out
}

/// BGP4-MIB `bgpPeerState` numbering (RFC 4273).
pub fn state_number(state: SessionState) -> i64 {
    match state {
        SessionState::Idle => 1,
        SessionState::Connect => 2,
        SessionState::Active => 3,
        SessionState::OpenSent => 4,
        SessionState::OpenConfirm => 5,
        SessionState::Established => 6,
    }
}

pub fn peer_labels(peer: &PeerStatus) -> [(&'static str, String); 2] {
    [
        ("peer", peer.address.to_string()),
        ("asn", peer.asn.to_string()),
    ]
}

pub fn saturating(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_numbers_follow_the_mib() {
        let all = [
            SessionState::Idle,
            SessionState::Connect,
            SessionState::Active,
            SessionState::OpenSent,
            SessionState::OpenConfirm,
            SessionState::Established,
        ];
        let numbers: Vec<i64> = all.into_iter().map(state_number).collect();
        assert_eq!(numbers, vec![1, 2, 3, 4, 5, 6]);
    }
}
