//! Prometheus metrics for `/metrics`: the BGP families of the speaker
//! (shared with tortie-rr) and the node's own, read from the published
//! snapshots at scrape time; and the writes of the node's
//! `CalicoNodeStatus` (counted by the status reporter).

use std::sync::Arc;

use bgp_speaker::Status as SpeakerStatus;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tortie_daemon::metrics::{saturating, SpeakerCollector};

use crate::status::{NodeStatus, Phase};

/// The registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    status_writes: StatusWrites,
    object_status_writes: StatusWrites,
}

/// Labels of `tortie_node_status_writes_total`.
type WriteLabels = [(&'static str, &'static str); 1];

/// `tortie_node_status_writes_total{result}`: the status reporter's
/// writes of `CalicoNodeStatus` objects, and
/// `tortie_node_object_status_writes_total{result}`: the object status
/// writer's; cheap to clone (one family).
#[derive(Clone, Debug, Default)]
pub struct StatusWrites {
    family: Family<WriteLabels, Counter>,
}

/// Encodes the node snapshot.
#[derive(Debug)]
struct NodeCollector {
    status: watch::Receiver<Arc<NodeStatus>>,
}

// ===== impl Metrics =====

impl Metrics {
    /// Metrics reading the two snapshots.
    pub fn new(
        status: watch::Receiver<Arc<NodeStatus>>,
        bgp: watch::Receiver<Arc<SpeakerStatus>>,
    ) -> Metrics {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(SpeakerCollector::new(bgp)));
        registry.register_collector(Box::new(NodeCollector { status }));
        let status_writes = StatusWrites::default();
        registry.register(
            "tortie_node_status_writes",
            "Writes of this node's CalicoNodeStatus objects, by result: ok or failed (failed ones are retried)",
            status_writes.family.clone(),
        );
        let object_status_writes = StatusWrites::default();
        registry.register(
            "tortie_node_object_status_writes",
            "Writes of this node's problems onto BGPConfiguration, BGPPeer and IPPool statuses, by result: ok or failed (failed ones are retried)",
            object_status_writes.family.clone(),
        );
        // Both series exist from the start, so rate() works on the first failure.
        for result in ["ok", "failed"] {
            let _ = status_writes.family.get_or_create(&[("result", result)]);
            let _ = object_status_writes
                .family
                .get_or_create(&[("result", result)]);
        }
        Metrics {
            registry,
            status_writes,
            object_status_writes,
        }
    }

    /// The counters the object status writer updates.
    pub fn object_status_writes(&self) -> StatusWrites {
        self.object_status_writes.clone()
    }

    /// The counters the status reporter updates.
    pub fn status_writes(&self) -> StatusWrites {
        self.status_writes.clone()
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        tortie_daemon::metrics::render(&self.registry)
    }
}

// ===== impl StatusWrites =====

impl StatusWrites {
    /// Counts one write, made or failed.
    pub fn count(&self, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.family.get_or_create(&[("result", result)]).inc();
    }
}

// ===== impl NodeCollector =====

impl Collector for NodeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = self.status.borrow().clone();
        let gauges: [(&str, &str, i64); 7] = [
            (
                "tortie_node_ready",
                "1 when the node routes (phase running), else 0",
                i64::from(s.phase == Phase::Running),
            ),
            (
                "tortie_node_datastore_synced",
                "1 when every watched kind has been listed and no datastore error is current",
                i64::from(s.datastore.synced && s.datastore.errors.is_empty()),
            ),
            (
                "tortie_node_problems",
                "Configuration and datastore problems the agent works around (see /status)",
                saturating(s.problems.len() as u64),
            ),
            (
                "tortie_node_originated_routes",
                "Prefixes this node announces (its blocks and borrowed addresses)",
                saturating(s.originated.len() as u64),
            ),
            (
                "tortie_node_learned_routes",
                "Routes learned over BGP inside the IP pools",
                saturating(s.learned as u64),
            ),
            (
                "tortie_node_dataplane_routes",
                "Kernel routes felix wants",
                saturating(s.dataplane.routes as u64),
            ),
            (
                "tortie_node_dataplane_failures",
                "Kernel writes that failed in felix's last pass",
                saturating(s.dataplane.failures.len() as u64),
            ),
        ];
        for (name, help, value) in gauges {
            let metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            ConstGauge::new(value).encode(metric)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_families() {
        let status = NodeStatus {
            phase: Phase::Running,
            problems: vec!["BGPPeer/x: spec.peerIP: bad".into()],
            learned: 3,
            ..NodeStatus::default()
        };
        let (_tx, rx) = watch::channel(Arc::new(status));
        let (_btx, brx) = watch::channel(Arc::new(SpeakerStatus::default()));
        let metrics = Metrics::new(rx, brx);
        metrics.status_writes().count(false);
        let text = metrics.render();
        for line in [
            "tortie_node_status_writes_total{result=\"failed\"} 1",
            "tortie_node_status_writes_total{result=\"ok\"} 0",
            "tortie_node_ready 1",
            "tortie_node_problems 1",
            "tortie_node_learned_routes 3",
            "tortie_node_datastore_synced 0",
            "tortie_bgp_loc_rib_prefixes 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in:\n{text}"
            );
        }
    }
}
