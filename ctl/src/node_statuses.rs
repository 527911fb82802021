//! `tortiectl node status` with a datastore: every node's BGP sessions as
//! each node's tortie-node wrote them into its `CalicoNodeStatus`, one
//! peer table per node, with how old each status is; a status older than
//! its refresh period allows is flagged stale (its node is down or cannot
//! reach the datastore, and the rows are what it last saw).
//!
//! A node may have several objects (its own, named after it, and ones
//! users made to debug it): the freshest that reports the BGP class is
//! shown. Nodes (`get nodes`) with no status at all are listed at the end.

use anyhow::{bail, Result};
use serde::Serialize;
use tortie_config::resources::time::{format_rfc3339, parse_rfc3339};
use tortie_config::resources::{CalicoNodeStatusSpec, Kind, NodeStatusClass, PeerStatus, PeerType};
use tortie_datastore::{AnyStore, Datastore, TypedStore};

use crate::table;

/// One node's sessions, as shown.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeView {
    /// The node.
    pub node: String,
    /// The `CalicoNodeStatus` it comes from.
    pub object: String,
    /// When the node wrote it (RFC 3339); `None`: not yet.
    pub last_updated: Option<String>,
    /// Seconds since then.
    pub age_seconds: Option<i64>,
    /// Older than its refresh period allows (or never written).
    pub stale: bool,
    /// How old it may be before it is stale; `None`: never refreshed
    /// (`updatePeriodSeconds: 0`).
    pub stale_after_seconds: Option<u64>,
    /// Its peers, IPv4 then IPv6.
    pub peers: Vec<PeerStatus>,
}

/// Everything `node status` shows from the datastore.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterView {
    /// One per node that reports, by node name.
    pub nodes: Vec<NodeView>,
    /// Nodes of the datastore without any status.
    pub silent: Vec<String>,
}

/// Reads the statuses (of `only` that node, when given) at `now` (Unix
/// seconds).
pub async fn fetch(store: &AnyStore, only: Option<&str>, now: i64) -> Result<ClusterView> {
    let objects = store.list_typed::<CalicoNodeStatusSpec>().await?;
    let mut nodes: Vec<String> = store
        .list(Kind::Node)
        .await?
        .items
        .iter()
        .map(|v| v.resource.key().name)
        .collect();
    let mut view = view(
        objects
            .into_iter()
            .map(|(o, _)| (o.metadata.name, o.spec))
            .collect(),
        now,
    );
    nodes.retain(|n| !view.nodes.iter().any(|v| &v.node == n));
    view.silent = nodes;
    if let Some(node) = only {
        view.nodes.retain(|v| v.node == node);
        if view.nodes.is_empty() {
            bail!(
                "no CalicoNodeStatus reports node {node:?}: its tortie-node has not written one \
                 (not running, or cannot reach the datastore), or there is no such node"
            );
        }
        view.silent.clear();
    }
    Ok(view)
}

/// The view of `objects` (name, spec with status) at `now`: per node,
/// the freshest object with the BGP class.
pub fn view(objects: Vec<(String, CalicoNodeStatusSpec)>, now: i64) -> ClusterView {
    let mut best: std::collections::BTreeMap<String, NodeView> = Default::default();
    for (name, spec) in objects {
        if !spec.wants(NodeStatusClass::BGP) {
            continue;
        }
        let updated = spec
            .status
            .as_ref()
            .and_then(|s| s.last_updated.as_deref())
            .and_then(parse_rfc3339);
        let age = updated.map(|t| (now - t).max(0));
        let stale_after = spec.stale_after_seconds();
        let stale = match (age, stale_after) {
            (None, _) => true,
            (Some(a), Some(limit)) => a.unsigned_abs() > limit,
            (Some(_), None) => false,
        };
        let peers = spec
            .status
            .as_ref()
            .map(|s| {
                let mut p = s.bgp.peers_v4.clone();
                p.extend(s.bgp.peers_v6.iter().cloned());
                p
            })
            .unwrap_or_default();
        let candidate = NodeView {
            node: spec.node.clone(),
            object: name,
            last_updated: updated.map(format_rfc3339),
            age_seconds: age,
            stale,
            stale_after_seconds: stale_after,
            peers,
        };
        let fresher = match best.get(&spec.node) {
            None => true,
            Some(b) => {
                candidate.age_seconds.unwrap_or(i64::MAX) < b.age_seconds.unwrap_or(i64::MAX)
            }
        };
        if fresher {
            best.insert(spec.node, candidate);
        }
    }
    ClusterView {
        nodes: best.into_values().collect(),
        silent: Vec::new(),
    }
}

/// The human view: per node a line saying how fresh its status is, then
/// its IPv4 and IPv6 peer tables (peer, type, state, since).
pub fn render(view: &ClusterView, now: i64) -> String {
    let mut out = String::new();
    for (i, n) in view.nodes.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out += &headline(n);
        for (family, v4) in [("IPv4", true), ("IPv6", false)] {
            let rows: Vec<Vec<String>> = n
                .peers
                .iter()
                .filter(|p| p.peer_ip.is_ipv4() == v4)
                .map(|p| peer_row(p, now))
                .collect();
            if rows.is_empty() {
                if !v4 {
                    continue; // most clusters have no IPv6 peers: say nothing
                }
                out += &format!("No {family} peers.\n");
                continue;
            }
            out += &format!("{family} BGP status\n");
            out += &table::render(&["PEER ADDRESS", "PEER TYPE", "STATE", "SINCE"], &rows);
        }
    }
    if view.nodes.is_empty() {
        out += "No node has written a CalicoNodeStatus (is tortie-node running?).\n";
    }
    if !view.silent.is_empty() {
        out += &format!(
            "\nNodes without a status (tortie-node not running there, or not reaching the datastore): {}\n",
            view.silent.join(", ")
        );
    }
    out
}

/// `Node n1 (CalicoNodeStatus/n1): updated 4 s ago (2026-...Z).`, or why
/// it is stale.
fn headline(n: &NodeView) -> String {
    let object = format!("CalicoNodeStatus/{}", n.object);
    match (&n.last_updated, n.age_seconds) {
        (Some(at), Some(age)) if n.stale => format!(
            "Node {} ({object}): STALE: last updated {} ago ({at}), {}: its tortie-node is down \
             or cannot reach the datastore; the sessions below are as they were then.\n",
            n.node,
            duration(age),
            match n.stale_after_seconds {
                Some(limit) => format!("stale after {}", duration(limit as i64)),
                None => "never refreshed".into(),
            }
        ),
        (Some(at), Some(age)) => format!(
            "Node {} ({object}): updated {} ago ({at}){}.\n",
            n.node,
            duration(age),
            if n.stale_after_seconds.is_none() {
                ", not refreshed (updatePeriodSeconds: 0)"
            } else {
                ""
            }
        ),
        _ => format!(
            "Node {} ({object}): STALE: never written (its tortie-node has not reported yet).\n",
            n.node
        ),
    }
}

fn peer_row(p: &PeerStatus, now: i64) -> Vec<String> {
    let kind = match p.kind {
        Some(PeerType::NodeMesh) => "node-to-node mesh",
        Some(PeerType::GlobalPeer) => "global",
        Some(PeerType::NodePeer) => "node specific",
        None => "",
    };
    let state = p
        .state
        .map(|s| format!("{s:?}"))
        .unwrap_or_else(|| "-".into());
    let since = match p.since.as_deref() {
        None => "-".into(),
        // Within a day: the time; older: the date (as BIRD shows it).
        Some(text) => match parse_rfc3339(text) {
            Some(t) if (now - t).abs() < 86_400 => format_rfc3339(t)[11..19].to_string(),
            Some(t) => format_rfc3339(t)[..10].to_string(),
            None => text.to_string(),
        },
    };
    vec![p.peer_ip.to_string(), kind.into(), state, since]
}

/// `42 s`, `3 min 5 s`, `2 h 10 min`, `3 d 4 h`.
fn duration(secs: i64) -> String {
    match secs {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min {} s", s / 60, s % 60),
        s if s < 86_400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        s => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use tortie_config::resources::{BgpStatus, NodeStatusReport, SessionState};

    use super::*;

    const NOW: i64 = 1_796_240_451; // 2026-12-02T19:40:51Z

    fn spec(
        node: &str,
        age: Option<i64>,
        period: Option<u32>,
        peers: &[(&str, SessionState)],
    ) -> CalicoNodeStatusSpec {
        let mut spec = CalicoNodeStatusSpec::for_node(node);
        spec.update_period_seconds = period;
        spec.status = age.map(|a| NodeStatusReport {
            last_updated: Some(format_rfc3339(NOW - a)),
            bgp: BgpStatus::of(
                peers
                    .iter()
                    .map(|(ip, state)| PeerStatus {
                        peer_ip: ip.parse().unwrap(),
                        kind: Some(PeerType::NodeMesh),
                        state: Some(*state),
                        since: Some(format_rfc3339(NOW - 3600)),
                    })
                    .collect(),
            ),
            ..NodeStatusReport::default()
        });
        spec
    }

    #[test]
    fn one_table_per_node_and_stale_ones_flagged() {
        use SessionState::*;
        let objects = vec![
            (
                "n1".into(),
                spec(
                    "n1",
                    Some(4),
                    None,
                    &[("10.0.0.2", Established), ("10.0.0.3", Active)],
                ),
            ),
            (
                "n2".into(),
                spec("n2", Some(95), None, &[("10.0.0.1", Established)]),
            ),
            // A user's debug object of n2, fresher: it is the one shown.
            (
                "debug-n2".into(),
                spec(
                    "n2",
                    Some(1),
                    Some(1),
                    &[("10.0.0.1", Established), ("fd00::1", Idle)],
                ),
            ),
            (
                "n3".into(),
                spec("n3", Some(10), Some(2), &[("10.0.0.1", Idle)]),
            ),
            ("n4".into(), spec("n4", None, None, &[])),
            ("quiet".into(), spec("n5", Some(99_999), Some(0), &[])),
        ];
        let mut v = view(objects, NOW);
        v.silent = vec!["n6".into()];
        let names: Vec<(&str, &str, bool)> = v
            .nodes
            .iter()
            .map(|n| (n.node.as_str(), n.object.as_str(), n.stale))
            .collect();
        assert_eq!(
            names,
            [
                ("n1", "n1", false),
                ("n2", "debug-n2", false),
                ("n3", "n3", true),
                ("n4", "n4", true),
                ("n5", "quiet", false)
            ]
        );
        let text = render(&v, NOW);
        assert!(
            text.contains("Node n1 (CalicoNodeStatus/n1): updated 4 s ago (2026-12-02T19:40:47Z).\nIPv4 BGP status\n"),
            "{text}"
        );
        assert!(
            text.contains("| 10.0.0.2     | node-to-node mesh | Established | 18:40:51 |"),
            "{text}"
        );
        assert!(
            text.contains("| 10.0.0.3     | node-to-node mesh | Active      | 18:40:51 |"),
            "{text}"
        );
        assert!(text.contains("IPv6 BGP status"), "{text}");
        assert!(
            text.contains("| fd00::1      | node-to-node mesh | Idle  | 18:40:51 |"),
            "{text}"
        );
        assert!(
            text.contains("Node n3 (CalicoNodeStatus/n3): STALE: last updated 10 s ago (2026-12-02T19:40:41Z), stale after 6 s"),
            "{text}"
        );
        assert!(
            text.contains("Node n4 (CalicoNodeStatus/n4): STALE: never written"),
            "{text}"
        );
        assert!(
            text.contains("Node n5 (CalicoNodeStatus/quiet): updated 1 d 3 h ago (2026-12-01T15:54:12Z), not refreshed (updatePeriodSeconds: 0).\nNo IPv4 peers."),
            "{text}"
        );
        assert!(text.ends_with("reaching the datastore): n6\n"), "{text}");
    }

    #[test]
    fn objects_without_the_bgp_class_are_not_shown() {
        let mut s = spec("n1", Some(1), None, &[]);
        s.classes = vec![NodeStatusClass::Agent];
        assert_eq!(view(vec![("n1".into(), s)], NOW).nodes, []);
        assert!(render(&ClusterView::default(), NOW).starts_with("No node has written"));
    }

    #[test]
    fn durations() {
        assert_eq!(duration(0), "0 s");
        assert_eq!(duration(185), "3 min 5 s");
        assert_eq!(duration(7_800), "2 h 10 min");
        assert_eq!(duration(273_600), "3 d 4 h");
    }
}
