//! Prometheus metrics for `/metrics`.
//!
//! Per-peer families are built from the speaker's status snapshot at scrape
//! time by a custom [`Collector`], so they can never drift from `/status` and
//! a removed peer disappears at once. Only the reload counter is state of
//! our own.
//!
//! `tortie_bgp_peer_state` values follow the BGP4-MIB `bgpPeerState`
//! numbering: 1 Idle, 2 Connect, 3 Active, 4 OpenSent, 5 OpenConfirm,
//! 6 Established.

use std::sync::Arc;

use bgp_speaker::{PeerStatus, SessionState, Status};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

/// Content type of the text we serve (OpenMetrics text, which Prometheus
/// scrapes natively).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A per-peer family: name, help, and how to read the value off a peer.
type PeerFamily<T> = (&'static str, &'static str, fn(&PeerStatus) -> T);

/// Labels of `tortie_rr_config_reloads_total`.
type ReloadLabels = [(&'static str, &'static str); 1];

/// The registry plus the handles we update ourselves.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reloads: Family<ReloadLabels, Counter>,
}

/// Whether a reload was applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReloadResult {
    /// The new file was valid and the speaker took it.
    Success,
    /// The file could not be read, was invalid, or the speaker rejected it;
    /// the running configuration stayed.
    Error,
}

/// Encodes the speaker's status snapshot at scrape time.
#[derive(Debug)]
struct SpeakerCollector {
    status: watch::Receiver<Arc<Status>>,
}

// ===== impl Metrics =====

impl Metrics {
    /// A registry reading peers from `status` (the speaker's status watch).
    pub fn new(status: watch::Receiver<Arc<Status>>) -> Metrics {
        let mut registry = Registry::default();
        let reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "tortie_rr_config_reloads",
            "Configuration reloads (SIGHUP or file change), by result: success or error",
            reloads.clone(),
        );
        registry.register_collector(Box::new(SpeakerCollector { status }));
        // Both series exist from the start, so rate() works on the first error.
        for result in ["success", "error"] {
            let _ = reloads.get_or_create(&[("result", result)]);
        }
        Metrics { registry, reloads }
    }

    /// Counts one reload.
    pub fn reload(&self, result: ReloadResult) {
        let label = match result {
            ReloadResult::Success => "success",
            ReloadResult::Error => "error",
        };
        self.reloads.get_or_create(&[("result", label)]).inc();
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
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
        let counters: [PeerFamily<u64>; 3] = [
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
        Ok(())
    }
}

// ===== helpers =====

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

fn peer_labels(peer: &PeerStatus) -> [(&'static str, String); 2] {
    [
        ("peer", peer.address.to_string()),
        ("asn", peer.asn.to_string()),
    ]
}

fn saturating(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(address: &str, state: SessionState) -> PeerStatus {
        PeerStatus {
            address: address.parse().unwrap(),
            asn: 64512,
            dynamic: false,
            rr_client: true,
            state,
            since_unix: 0,
            uptime_secs: 0,
            prefixes_received: 7,
            prefixes_accepted: 7,
            prefixes_advertised: 3,
            updates_received: 11,
            updates_sent: 5,
            messages_received: 20,
            messages_sent: 20,
            flaps: 2,
            last_error: None,
            negotiated: None,
        }
    }

    #[test]
    fn families_come_from_the_snapshot() {
        let status = Status {
            loc_rib_prefixes: 42,
            peers: vec![
                peer("127.0.0.2", SessionState::Established),
                peer("fd00::2", SessionState::Active),
            ],
            ..Status::default()
        };
        let (tx, rx) = watch::channel(Arc::new(status));
        let metrics = Metrics::new(rx);
        metrics.reload(ReloadResult::Error);
        let text = metrics.render();
        for line in [
            "# TYPE tortie_bgp_peer_state gauge",
            "tortie_bgp_peer_state{peer=\"127.0.0.2\",asn=\"64512\"} 6",
            "tortie_bgp_peer_state{peer=\"fd00::2\",asn=\"64512\"} 3",
            "tortie_bgp_prefixes_received{peer=\"127.0.0.2\",asn=\"64512\"} 7",
            "tortie_bgp_prefixes_advertised{peer=\"127.0.0.2\",asn=\"64512\"} 3",
            "# TYPE tortie_bgp_updates_received counter",
            "tortie_bgp_updates_received_total{peer=\"127.0.0.2\",asn=\"64512\"} 11",
            "tortie_bgp_updates_sent_total{peer=\"127.0.0.2\",asn=\"64512\"} 5",
            "tortie_bgp_peer_flaps_total{peer=\"fd00::2\",asn=\"64512\"} 2",
            "tortie_bgp_loc_rib_prefixes 42",
            "tortie_rr_config_reloads_total{result=\"error\"} 1",
            "tortie_rr_config_reloads_total{result=\"success\"} 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in:\n{text}"
            );
        }

        // A peer removed from the snapshot is gone from the next scrape.
        tx.send(Arc::new(Status::default())).unwrap();
        let text = metrics.render();
        assert!(!text.contains("127.0.0.2"), "{text}");
        assert!(
            text.lines().any(|l| l == "tortie_bgp_loc_rib_prefixes 0"),
            "{text}"
        );
    }

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
