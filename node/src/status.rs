//! What the node agent publishes for `/status`, `/metrics` and
//! `tortiectl node status`: a serde snapshot, rebuilt by the agent after
//! every change and read without blocking it.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use bgp_speaker::{SessionState, Status as SpeakerStatus};
use felix::desired::DesiredState;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::peers::PeerSource;

/// Where the agent is in its start-up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Listing the datastore (or waiting for it to answer).
    #[default]
    WaitingForDatastore,
    /// The BGP speaker is not running (it failed to start: see problems).
    StartingBgp,
    /// After a restart: waiting for the peers' End-of-RIB before the
    /// dataplane removes anything.
    WaitingForPeers,
    /// Routing.
    Running,
}

/// The snapshot.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    pub node: String,
    /// The underlay address with its subnet.
    pub address: Option<IpNet>,
    /// A dual-stack node's IPv6 address with its subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_v6: Option<IpNet>,
    /// The underlay interface.
    pub interface: String,
    pub phase: Phase,
    /// Started within the graceful restart time of a previous run.
    pub restarting: bool,
    pub as_number: Option<u32>,
    pub router_id: Option<Ipv4Addr>,
    /// Set when this node is a route reflector.
    pub cluster_id: Option<Ipv4Addr>,
    pub datastore: DatastoreView,
    pub peers: Vec<PeerView>,
    /// Prefixes this node announces.
    pub originated: Vec<IpNet>,
    /// Routes learned over BGP inside the pools (programmed by felix).
    pub learned: usize,
    pub dataplane: DataplaneView,
    /// Everything wrong that the agent works around, one line each, naming
    /// the resource and field.
    pub problems: Vec<String>,
    /// Those about a BGPConfiguration, BGPPeer or IPPool, by object, for
    /// the objects' statuses (`object_status`); not in `/status`, where
    /// `problems` has them.
    #[serde(skip)]
    pub by_object: crate::object_status::ByObject,
    /// Every best path the speaker learned from a peer, inside the pools
    /// or not, by prefix: for the `Routes` of `CalicoNodeStatus`
    /// (`status_report`). Not in `/status` (thousands on a big cluster);
    /// shared, not copied, on each publish.
    #[serde(skip)]
    pub best_paths: Arc<BTreeMap<IpNet, LearnedPath>>,
    /// The desired state felix has (`None` while its gate is closed): the
    /// routes this node programs, for the same; not in `/status`
    /// (`/routes` shows them).
    #[serde(skip)]
    pub desired: Option<Arc<DesiredState>>,
}

/// A best path learned from a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LearnedPath {
    /// Its BGP next hop.
    pub next_hop: IpAddr,
    /// The peer that sent it (with a route reflector, the reflector, not
    /// the next hop).
    pub peer: IpAddr,
}

/// The datastore as the agent sees it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DatastoreView {
    /// `file:DIR` or `etcd:URL,...`.
    pub location: String,
    /// Every watched kind listed at least once.
    pub synced: bool,
    /// Current errors, `Kind: error`.
    pub errors: Vec<String>,
}

/// One BGP peer: where it comes from and its session.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerView {
    pub address: IpAddr,
    /// `node-to-node mesh`, `global`, `node specific`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `mesh` or `BGPPeer/<name>`.
    pub source: String,
    /// The node at that address, if it is one.
    pub node: Option<String>,
    pub asn: u32,
    pub rr_client: bool,
    pub state: SessionState,
    /// Unix time of the last state change (0: never changed).
    pub since_unix: u64,
    pub uptime_secs: u64,
    pub prefixes_received: u64,
    /// Received and accepted (import checks and filters passed).
    pub prefixes_accepted: u64,
    pub prefixes_advertised: u64,
    /// The hold time agreed on an Established session.
    pub hold_time: Option<u16>,
    pub last_error: Option<String>,
    /// BFD, for a peer whose BGPPeer asks for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfd: Option<bgp_speaker::PeerBfd>,
}

/// felix's side.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataplaneView {
    /// Desired states handed to felix, and the newest one it applied.
    pub sent: u64,
    pub applied: u64,
    /// Routes felix wants (after the last pass).
    pub routes: usize,
    /// Writes that failed in the last pass.
    pub failures: Vec<String>,
    /// felix's warnings about the desired state.
    pub warnings: Vec<String>,
}

// ===== impl PeerView =====

impl PeerView {
    /// Joins where a peer comes from with the speaker's view of its session.
    pub fn join(sources: &[PeerSource], speaker: &SpeakerStatus) -> Vec<PeerView> {
        sources
            .iter()
            .map(|s| {
                let p = speaker.peers.iter().find(|p| p.address == s.address);
                PeerView {
                    address: s.address,
                    kind: serde_json::to_value(s.kind)
                        .ok()
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or_default(),
                    source: s.source.clone(),
                    node: s.node.clone(),
                    asn: p.map_or(0, |p| p.asn),
                    rr_client: s.rr_client,
                    state: p.map_or(SessionState::Idle, |p| p.state),
                    since_unix: p.map_or(0, |p| p.since_unix),
                    uptime_secs: p.map_or(0, |p| p.uptime_secs),
                    prefixes_received: p.map_or(0, |p| p.prefixes_received),
                    prefixes_accepted: p.map_or(0, |p| p.prefixes_accepted),
                    prefixes_advertised: p.map_or(0, |p| p.prefixes_advertised),
                    hold_time: p.and_then(|p| p.negotiated.as_ref()).map(|n| n.hold_time),
                    last_error: p.and_then(|p| p.last_error.clone()),
                    bfd: p.and_then(|p| p.bfd.clone()),
                }
            })
            .collect()
    }
}
