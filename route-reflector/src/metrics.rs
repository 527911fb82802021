//! Prometheus metrics for `/metrics`.
//!
//! The per-peer BGP families come from the speaker's status snapshot at
//! scrape time ([`tortie_daemon::metrics::SpeakerCollector`]). Only the
//! reload counter is state of our own.

use std::sync::Arc;

use bgp_speaker::Status;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tortie_daemon::metrics::SpeakerCollector;

pub use tortie_daemon::metrics::CONTENT_TYPE;

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
        registry.register_collector(Box::new(SpeakerCollector::new(status)));
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
        tortie_daemon::metrics::render(&self.registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bgp_speaker::{PeerStatus, SessionState};

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
            routes_unsendable: 1,
            last_error: None,
            negotiated: None,
            bfd: None,
        }
    }

    #[test]
    fn families_come_from_the_snapshot() {
        let status = Status {
            loc_rib_prefixes: 42,
            refused: bgp_speaker::Refused {
                not_a_peer: 4,
                peer_limit: 1,
                superseded: 0,
                ttl_security: 3,
            },
            kernel_min_ttl_drops: Some(12),
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
            "tortie_bgp_routes_unsendable_total{peer=\"fd00::2\",asn=\"64512\"} 1",
            "tortie_bgp_loc_rib_prefixes 42",
            "# TYPE tortie_bgp_connections_refused counter",
            "tortie_bgp_connections_refused_total{reason=\"not_a_peer\"} 4",
            "tortie_bgp_connections_refused_total{reason=\"peer_limit\"} 1",
            "tortie_bgp_connections_refused_total{reason=\"superseded\"} 0",
            "tortie_bgp_connections_refused_total{reason=\"ttl_security\"} 3",
            "# TYPE tortie_bgp_gtsm_kernel_drops counter",
            "tortie_bgp_gtsm_kernel_drops_total 12",
            "tortie_rr_config_reloads_total{result=\"error\"} 1",
            "tortie_rr_config_reloads_total{result=\"success\"} 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in:\n{text}"
            );
        }

        assert!(
            !text.contains("tortie_bfd"),
            "no BFD, no BFD families:\n{text}"
        );

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
    fn bfd_families_come_from_the_snapshot() {
        use bgp_speaker::{
            BfdCounters, BfdDiag, BfdDiscardReason, BfdSessionView, BfdState, PeerBfd,
        };
        let mut tor = peer("172.30.0.2", SessionState::Active);
        tor.bfd = Some(PeerBfd {
            min_rx_ms: 100,
            min_tx_ms: 100,
            multiplier: 3,
            session: Some(BfdSessionView {
                multihop: false,
                local: Some("172.30.0.1".parse().unwrap()),
                interface: Some("eth0".into()),
                state: BfdState::Down,
                local_diag: BfdDiag::ControlDetectionTimeExpired,
                remote_state: BfdState::Up,
                remote_diag: BfdDiag::None,
                tx_interval_ms: Some(1000),
                detection_time_ms: Some(300),
                ups: 1,
                downs: 1,
            }),
            holding: true,
            bgp_downs: 1,
            note: None,
        });
        let mut counters = BfdCounters::default();
        counters.rx_packets = 40;
        counters.tx_packets = 41;
        counters.discard(BfdDiscardReason::BadTtl);
        let status = Status {
            peers: vec![tor, peer("172.30.0.3", SessionState::Established)],
            bfd: Some(counters),
            ..Status::default()
        };
        let (_tx, rx) = watch::channel(Arc::new(status));
        let text = Metrics::new(rx).render();
        for line in [
            "# TYPE tortie_bfd_session_state gauge",
            "tortie_bfd_session_state{peer=\"172.30.0.2\",asn=\"64512\"} 1",
            "tortie_bfd_bgp_held{peer=\"172.30.0.2\",asn=\"64512\"} 1",
            "tortie_bfd_session_downs_total{peer=\"172.30.0.2\",asn=\"64512\"} 1",
            "tortie_bfd_bgp_downs_total{peer=\"172.30.0.2\",asn=\"64512\"} 1",
            "tortie_bfd_packets_received_total 40",
            "tortie_bfd_packets_sent_total 41",
            "tortie_bfd_send_errors_total 0",
            "tortie_bfd_discards_total{reason=\"bad_ttl\"} 1",
            "tortie_bfd_discards_total{reason=\"no_session\"} 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in:\n{text}"
            );
        }
        assert!(
            !text.contains("tortie_bfd_session_state{peer=\"172.30.0.3\""),
            "{text}"
        );
    }
}
