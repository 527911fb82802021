//! `CalicoNodeStatus`: what a node reports about itself (its BGP agent and
//! its BGP sessions), with Calico's kind and field names, so that a
//! Calico user's object applies as is and reads back the same way.
//!
//! The spec asks (which node, which classes of information, how often);
//! the `status` is written by that node's `tortie-node`. Unlike every other
//! kind, the document has a top-level `status` beside `spec`: it is kept
//! in [`CalicoNodeStatusSpec::status`] (so the kind fits [`Object`]) and
//! moved to and from the top level by [`Resource::from_value`] and
//! [`Resource::to_value`].
//!
//! [`Object`]: super::Object
//! [`Resource::from_value`]: super::Resource::from_value
//! [`Resource::to_value`]: super::Resource::to_value

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{time, Metadata};
use crate::error::ConfigError;
use crate::yaml;

/// The longest `spec.updatePeriodSeconds` (Calico's limit: one day).
pub const MAX_UPDATE_PERIOD_SECONDS: u32 = 86_400;
/// How often tortie-node rewrites a status without
/// `spec.updatePeriodSeconds` when nothing changed (besides at once on a
/// session change): its `lastUpdated` is then the node's heartbeat.
pub const DEFAULT_REFRESH_SECONDS: u32 = 30;
/// A status not rewritten for this many periods is stale (its node is
/// down, or cannot reach the datastore).
pub const STALE_PERIODS: u32 = 3;
/// At most this many routes per family in `status.routes` (`routesV4`,
/// `routesV6`): about 200 bytes each in the document, so both lists stay
/// well under the datastore's size limit of an object (1.5 MiB in etcd)
/// on clusters of thousands of nodes. What is left out is counted in
/// [`RoutesStatus::truncated_v4`] and `truncated_v6`.
pub const MAX_ROUTES_PER_FAMILY: usize = 1000;

/// `spec` of a `CalicoNodeStatus`, and the object's `status`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CalicoNodeStatusSpec {
    /// The node whose agent fills the status (required: checked by
    /// `check`, for an error that names the field).
    #[serde(default)]
    pub node: String,
    /// What to report: `Agent`, `BGP`, `Routes` (at least one, each once).
    #[serde(default)]
    pub classes: Vec<NodeStatusClass>,
    /// Seconds between refreshes of the status; `0` stops refreshing (the
    /// status stays as last written). Unset: tortie-node refreshes when a
    /// session changes state, and at its own default period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_period_seconds: Option<u32>,
    /// The document's top-level `status`: `None` until the node first
    /// writes it.
    #[serde(skip)]
    pub status: Option<NodeStatusReport>,
}

/// One class of `spec.classes`.
#[allow(clippy::upper_case_acronyms)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum NodeStatusClass {
    /// The BGP agent itself (`status.agent`).
    Agent,
    /// The BGP sessions (`status.bgp`).
    BGP,
    /// The routes the BGP agent knows (`status.routes`).
    Routes,
}

/// The `status` of a `CalicoNodeStatus`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeStatusReport {
    /// When the node last wrote the status: RFC 3339, UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated: Option<String>,
    /// The BGP agent (class `Agent`).
    #[serde(default, skip_serializing_if = "is_default")]
    pub agent: AgentStatus,
    /// The BGP sessions (class `BGP`).
    #[serde(default, skip_serializing_if = "is_default")]
    pub bgp: BgpStatus,
    /// The routes (class `Routes`).
    #[serde(default, skip_serializing_if = "is_default")]
    pub routes: RoutesStatus,
}

/// `status.agent`: Calico names the BGP daemon per family (BIRD runs one
/// per family); tortie-node's one speaker fills both.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentStatus {
    /// The daemon serving IPv4.
    #[serde(default, rename = "birdV4", skip_serializing_if = "is_default")]
    pub bird_v4: DaemonStatus,
    /// The daemon serving IPv6.
    #[serde(default, rename = "birdV6", skip_serializing_if = "is_default")]
    pub bird_v6: DaemonStatus,
}

/// One BGP daemon.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DaemonStatus {
    /// Whether it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<DaemonState>,
    /// Its name and version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Its BGP router id.
    #[serde(default, rename = "routerID", skip_serializing_if = "Option::is_none")]
    pub router_id: Option<String>,
    /// When it started (tortie-node: RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_boot_time: Option<String>,
    /// When its configuration last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reconfiguration_time: Option<String>,
}

/// `state` of a BGP daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DaemonState {
    /// Running.
    Ready,
    /// Not (yet) running.
    NotReady,
}

/// `status.bgp`: session counts and one row per peer, by family of the
/// peer's address.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BgpStatus {
    /// IPv4 sessions in Established.
    #[serde(default, rename = "numberEstablishedV4")]
    pub established_v4: u32,
    /// IPv4 sessions in any other state.
    #[serde(default, rename = "numberNotEstablishedV4")]
    pub not_established_v4: u32,
    /// IPv6 sessions in Established.
    #[serde(default, rename = "numberEstablishedV6")]
    pub established_v6: u32,
    /// IPv6 sessions in any other state.
    #[serde(default, rename = "numberNotEstablishedV6")]
    pub not_established_v6: u32,
    /// The IPv4 peers.
    #[serde(default, rename = "peersV4", skip_serializing_if = "Vec::is_empty")]
    pub peers_v4: Vec<PeerStatus>,
    /// The IPv6 peers.
    #[serde(default, rename = "peersV6", skip_serializing_if = "Vec::is_empty")]
    pub peers_v6: Vec<PeerStatus>,
}

/// One BGP peer of the node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerStatus {
    /// The peer's address.
    #[serde(rename = "peerIP")]
    pub peer_ip: IpAddr,
    /// Why the node peers with it.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<PeerType>,
    /// The session's state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<SessionState>,
    /// When the state last changed (tortie-node: RFC 3339; Calico: BIRD's
    /// text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
}

/// Why a node peers with a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerType {
    /// The node-to-node mesh.
    NodeMesh,
    /// A `BGPPeer` that names this node (or selects it).
    NodePeer,
    /// A `BGPPeer` for every node.
    GlobalPeer,
}

/// A BGP session state (RFC 4271 §8.2.2, and Calico's `Close`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SessionState {
    /// Idle.
    Idle,
    /// Connect.
    Connect,
    /// Active.
    Active,
    /// OpenSent.
    OpenSent,
    /// OpenConfirm.
    OpenConfirm,
    /// Established.
    Established,
    /// Closing (BIRD's; tortie-node does not report it).
    Close,
}

/// `status.routes`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutesStatus {
    /// IPv4 routes.
    #[serde(default, rename = "routesV4", skip_serializing_if = "Vec::is_empty")]
    pub routes_v4: Vec<RouteStatus>,
    /// IPv6 routes.
    #[serde(default, rename = "routesV6", skip_serializing_if = "Vec::is_empty")]
    pub routes_v6: Vec<RouteStatus>,
    /// IPv4 routes left out of `routesV4`, which holds at most
    /// [`MAX_ROUTES_PER_FAMILY`] (Tortie's field; absent when none were:
    /// a reader sees that the list is whole).
    #[serde(default, rename = "truncatedV4", skip_serializing_if = "is_default")]
    pub truncated_v4: u32,
    /// The same for `routesV6`.
    #[serde(default, rename = "truncatedV6", skip_serializing_if = "is_default")]
    pub truncated_v6: u32,
}

/// One route of `status.routes`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteStatus {
    /// `FIB` (used for forwarding) or `RIB`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<RouteType>,
    /// The prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    /// The next hop; [`NO_GATEWAY`] for a route without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// The outgoing interface; [`BLACKHOLE`] for a blackhole route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Where it came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learned_from: Option<LearnedFrom>,
}

/// `gateway` of a route without one (a direct or blackhole route):
/// Calico's word.
pub const NO_GATEWAY: &str = "N/A";
/// `interface` of a blackhole route: Calico's word.
pub const BLACKHOLE: &str = "blackhole";

/// `FIB` or `RIB`.
#[allow(clippy::upper_case_acronyms)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RouteType {
    /// In the kernel's forwarding table.
    FIB,
    /// Only in the BGP agent's table.
    RIB,
}

/// Where a route of `status.routes` came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LearnedFrom {
    /// `Kernel`, `Static`, `Direct`, `NodeMesh` or `BGPPeer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_type: Option<RouteSourceType>,
    /// The peer that sent it (for `NodeMesh` and `BGPPeer`).
    #[serde(default, rename = "peerIP", skip_serializing_if = "Option::is_none")]
    pub peer_ip: Option<IpAddr>,
}

/// `learnedFrom.sourceType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RouteSourceType {
    /// A kernel route.
    Kernel,
    /// A static route.
    Static,
    /// A directly connected network.
    Direct,
    /// A node of the mesh.
    NodeMesh,
    /// A `BGPPeer`.
    BGPPeer,
}

// ===== impl CalicoNodeStatusSpec =====

impl CalicoNodeStatusSpec {
    /// The spec tortie-node gives the object it makes for itself: its
    /// sessions and its agent, refreshed on changes at its own period.
    pub fn for_node(node: impl Into<String>) -> CalicoNodeStatusSpec {
        CalicoNodeStatusSpec {
            node: node.into(),
            classes: vec![NodeStatusClass::Agent, NodeStatusClass::BGP],
            update_period_seconds: None,
            status: None,
        }
    }

    /// Whether `class` is asked for.
    pub fn wants(&self, class: NodeStatusClass) -> bool {
        self.classes.contains(&class)
    }

    /// Seconds between rewrites when nothing changes: the period, or
    /// [`DEFAULT_REFRESH_SECONDS`] when unset; `None` for 0 (never).
    pub fn refresh_seconds(&self) -> Option<u32> {
        match self.update_period_seconds {
            Some(0) => None,
            Some(p) => Some(p),
            None => Some(DEFAULT_REFRESH_SECONDS),
        }
    }

    /// How old `lastUpdated` may be before the status is stale:
    /// [`STALE_PERIODS`] refresh periods; `None` when never refreshed.
    pub fn stale_after_seconds(&self) -> Option<u64> {
        self.refresh_seconds()
            .map(|p| u64::from(p) * u64::from(STALE_PERIODS))
    }

    fn check(&mut self, _: &Metadata) -> Result<(), ConfigError> {
        if self.node.is_empty() {
            return Err(ConfigError::Schema {
                field: "spec.node".into(),
                message: "missing; name the node whose status this is".into(),
            });
        }
        super::check_name("spec.node", &self.node)?;
        if self.classes.is_empty() {
            return Err(ConfigError::Schema {
                field: "spec.classes".into(),
                message: "missing; list at least one of Agent, BGP, Routes".into(),
            });
        }
        for (i, class) in self.classes.iter().enumerate() {
            if self.classes[..i].contains(class) {
                return Err(ConfigError::invalid(
                    format!("spec.classes[{i}]"),
                    format!("{class:?}"),
                    "listed twice; name each class once",
                ));
            }
        }
        if let Some(p) = self.update_period_seconds {
            if p > MAX_UPDATE_PERIOD_SECONDS {
                return Err(ConfigError::invalid(
                    "spec.updatePeriodSeconds",
                    p,
                    format!("at most {MAX_UPDATE_PERIOD_SECONDS} (one day); 0 stops refreshing"),
                ));
            }
        }
        if let Some(t) = self.status.as_ref().and_then(|s| s.last_updated.as_ref()) {
            if time::parse_rfc3339(t).is_none() {
                return Err(ConfigError::invalid(
                    "status.lastUpdated",
                    format!("{t:?}"),
                    "an RFC 3339 time, e.g. 2024-05-01T12:00:00Z",
                ));
            }
        }
        Ok(())
    }
}

super::spec_kind!(CalicoNodeStatusSpec, CalicoNodeStatus);

// ===== impl NodeStatusReport =====

impl NodeStatusReport {
    /// `lastUpdated` as Unix seconds, when set and readable.
    pub fn last_updated_unix(&self) -> Option<i64> {
        self.last_updated.as_deref().and_then(time::parse_rfc3339)
    }
}

// ===== impl BgpStatus =====

impl BgpStatus {
    /// The counts and rows for `peers` (IPv4 and IPv6 apart, in the
    /// order given).
    pub fn of(peers: Vec<PeerStatus>) -> BgpStatus {
        let mut s = BgpStatus::default();
        for p in peers {
            let up = p.state == Some(SessionState::Established);
            let (rows, established, other) = if p.peer_ip.is_ipv4() {
                (
                    &mut s.peers_v4,
                    &mut s.established_v4,
                    &mut s.not_established_v4,
                )
            } else {
                (
                    &mut s.peers_v6,
                    &mut s.established_v6,
                    &mut s.not_established_v6,
                )
            };
            *if up { established } else { other } += 1;
            rows.push(p);
        }
        s
    }
}

// ===== helpers =====

/// Takes the top-level `status` out of a `CalicoNodeStatus` document
/// (before the rest is read as `{metadata, spec}`), read strictly: errors
/// name `status.<field>`. A `spec.status` is refused: status is not a
/// field of the spec.
pub(crate) fn take_status(value: &mut Value) -> Result<Option<NodeStatusReport>, ConfigError> {
    let Some(map) = value.as_object_mut() else {
        return Ok(None);
    };
    if map
        .get("spec")
        .and_then(Value::as_object)
        .is_some_and(|s| s.contains_key("status"))
    {
        return Err(ConfigError::Schema {
            field: "spec.status".into(),
            message: "unknown field; status is a top-level field of the document, beside spec"
                .into(),
        });
    }
    match map.remove("status") {
        None | Some(Value::Null) => Ok(None),
        Some(status) => {
            #[derive(Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Wrapped {
                status: NodeStatusReport,
            }
            let w: Wrapped = yaml::from_value(serde_json::json!({ "status": status }))?;
            Ok(Some(w.status))
        }
    }
}

fn is_default<T: Default + PartialEq>(t: &T) -> bool {
    *t == T::default()
}

#[cfg(test)]
#[path = "node_status_tests.rs"]
mod tests;
