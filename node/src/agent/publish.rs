//! The agent's published status: the [`NodeStatus`] snapshot behind
//! `/status` and `/metrics` (with the desired state for `/routes`), and
//! the datastore's errors and the dataplane's IP forwarding problems as
//! its problems.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use bgp_speaker::Status as SpeakerStatus;

use super::Agent;
use crate::object_status;
use crate::status::{DataplaneView, DatastoreView, NodeStatus, PeerView, Phase};

// ===== impl Agent =====

impl Agent {
    /// The datastore's current errors, one line per distinct error naming
    /// the kinds it hits (`datastore: BGPPeer, IPPool: resources.yaml:7:
    /// ...`), and whether it answers at all.
    fn datastore_errors(&self) -> Vec<String> {
        let mut by_error: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (k, e) in &self.trouble {
            by_error.entry(e.as_str()).or_default().push(k.to_string());
        }
        let mut out: Vec<String> = by_error
            .into_iter()
            .map(|(e, kinds)| format!("datastore: {}: {e}", kinds.join(", ")))
            .collect();
        for (kind, records) in &self.rejected {
            for r in records {
                out.push(format!(
                    "datastore: {kind}/{} left out (the others apply): {}",
                    r.name, r.error
                ));
            }
        }
        if let Some(e) = &self.unreachable {
            out.push(format!(
                "datastore: unreachable ({}): {e}; routes are kept as they are",
                self.cfg.location
            ));
        }
        out
    }

    /// Rebuilds and publishes the snapshot (and the desired state, for
    /// `/routes`, if it changed).
    pub(super) fn publish(&mut self) {
        if std::mem::take(&mut self.desired_stale) {
            self.desired_out.send_replace(self.base.clone());
        }
        let speaker = self
            .speaker
            .as_ref()
            .map(|s| s.status.borrow().clone())
            .unwrap_or_default();
        self.published_states = states(&speaker);
        let felix = self.cfg.felix.status();
        let phase = if !self.synced() {
            Phase::WaitingForDatastore
        } else if self.speaker.is_none() {
            Phase::StartingBgp
        } else if !self.gate_open() {
            Phase::WaitingForPeers
        } else {
            Phase::Running
        };
        let mut problems = self.problems.clone();
        problems.extend(self.other_problems.values().cloned());
        problems.extend(self.datastore_errors());
        problems.extend(forwarding_problems(&felix));
        let status = NodeStatus {
            node: self.cfg.name.clone(),
            address: Some(self.cfg.underlay.address),
            address_v6: self.cfg.underlay.address_v6,
            interface: self.cfg.underlay.interface.clone(),
            phase,
            restarting: self.cfg.local_bgp.restarting,
            as_number: self.plan.as_ref().map(|p| p.config.asn),
            router_id: self.plan.as_ref().map(|p| p.config.router_id),
            cluster_id: self.plan.as_ref().and_then(|p| p.config.cluster_id),
            datastore: DatastoreView {
                location: self.cfg.location.clone(),
                synced: self.synced(),
                errors: self.datastore_errors(),
            },
            peers: self
                .plan
                .as_ref()
                .map(|p| PeerView::join(&p.sources, &speaker))
                .unwrap_or_default(),
            originated: self.originated.keys().copied().collect(),
            learned: self.base.as_ref().map_or(0, |d| d.learned.len()),
            dataplane: DataplaneView {
                sent: self.sent,
                applied: felix.applied,
                routes: felix.last_pass.as_ref().map_or(0, |p| p.desired),
                failures: felix
                    .last_pass
                    .as_ref()
                    .map(|p| p.failures.clone())
                    .unwrap_or_default(),
                warnings: felix.warnings.clone(),
            },
            problems,
            by_object: object_status::by_object(&self.resource_problems, &self.rejected),
            best_paths: self.best_paths.clone(),
            desired: self.base.clone(),
        };
        self.status.send_if_modified(|old| {
            if **old == status {
                false
            } else {
                *old = Arc::new(status);
                true
            }
        });
    }
}

// ===== helpers =====

/// Felix's IP forwarding problems as the node's (`docs/dataplane.md`, "IP
/// forwarding"): there while its last full pass could not set the
/// sysctls, gone at the first that finds them right.
fn forwarding_problems(felix: &felix::pass::Status) -> impl Iterator<Item = String> + '_ {
    felix
        .forwarding
        .iter()
        .map(|p| format!("IP forwarding: {p}"))
}

/// Each peer's session state.
fn states(s: &SpeakerStatus) -> Vec<(IpAddr, bgp_speaker::SessionState)> {
    s.peers.iter().map(|p| (p.address, p.state)).collect()
}

/// Whether `s` has the peers and session states of `published`.
pub(super) fn same_states(
    published: &[(IpAddr, bgp_speaker::SessionState)],
    s: &SpeakerStatus,
) -> bool {
    published.len() == s.peers.len()
        && published
            .iter()
            .zip(&s.peers)
            .all(|(a, p)| a.0 == p.address && a.1 == p.state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarding_problems_are_the_nodes_until_felix_clears_them() {
        let mut felix = felix::pass::Status::default();
        assert_eq!(forwarding_problems(&felix).count(), 0);
        felix.forwarding = vec!["cannot set /proc/sys/net/ipv4/ip_forward = 1: \
            Read-only file system (os error 30): run tortie-node privileged"
            .into()];
        let got: Vec<String> = forwarding_problems(&felix).collect();
        assert_eq!(got.len(), 1);
        assert!(
            got[0].starts_with("IP forwarding: cannot set /proc/sys/net/ipv4/ip_forward = 1:"),
            "{got:?}"
        );
        assert!(got[0].contains("privileged"), "{got:?}");
        felix.forwarding.clear();
        assert_eq!(forwarding_problems(&felix).count(), 0);
    }
}
