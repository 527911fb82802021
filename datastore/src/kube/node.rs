//! `Node` is the Kubernetes Node itself: its BGP settings are annotations
//! with Calico's names (`projectcalico.org/IPv4Address`, ...), its labels
//! are the Node's labels (what `nodeSelector`s match), its addresses come
//! from the Node's status. The kubelet registers Nodes; a Node is one of
//! ours while it carries one of these annotations: `create` adds them (to
//! a Node that exists), `delete` removes them, and the Node stays.
//!
//! Labels written through the datastore are added or changed, never
//! removed (the Node's labels belong to Kubernetes and its users).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Node as KubeNode;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::{json, Map, Value};
use tortie_config::resources::{
    AsNumber, Key, Kind, Metadata, NodeAddress, NodeBgpSpec, NodeSpec, Object, Resource,
};

use super::{kube_error, KubeStore};
use crate::{Listing, Revision, StoreError, Versioned};

/// Calico's annotation names, and the field each holds.
const IPV4_ADDRESS: &str = "projectcalico.org/IPv4Address";
const IPV6_ADDRESS: &str = "projectcalico.org/IPv6Address";
const AS_NUMBER: &str = "projectcalico.org/ASNumber";
const IPIP_TUNNEL: &str = "projectcalico.org/IPv4IPIPTunnelAddr";
const RR_CLUSTER_ID: &str = "projectcalico.org/RouteReflectorClusterID";
const VXLAN_TUNNEL: &str = "projectcalico.org/IPv4VXLANTunnelAddr";
const VXLAN_MAC: &str = "projectcalico.org/VXLANTunnelMACAddr";
const VXLAN_TUNNEL_V6: &str = "projectcalico.org/IPv6VXLANTunnelAddr";
const VXLAN_MAC_V6: &str = "projectcalico.org/VXLANTunnelMACAddrV6";
/// Every annotation of ours: a Node with none is not one of ours.
const OURS: [&str; 9] = [
    IPV4_ADDRESS,
    IPV6_ADDRESS,
    AS_NUMBER,
    IPIP_TUNNEL,
    RR_CLUSTER_ID,
    VXLAN_TUNNEL,
    VXLAN_MAC,
    VXLAN_TUNNEL_V6,
    VXLAN_MAC_V6,
];

/// Our Node out of a Kubernetes Node; `None` when it carries none of our
/// annotations.
pub(super) fn from_kube(node: &KubeNode) -> Result<Option<Versioned>, StoreError> {
    let name = node.metadata.name.clone().unwrap_or_default();
    let empty = BTreeMap::new();
    let notes = node.metadata.annotations.as_ref().unwrap_or(&empty);
    if !OURS.iter().any(|k| notes.contains_key(*k)) {
        return Ok(None);
    }
    let corrupt = |key: &str, message: String| StoreError::Corrupt {
        file: format!("kubernetes:Node/{name}").into(),
        line: None,
        message: format!("annotation {key}: {message}"),
    };
    fn parse<T: std::str::FromStr>(
        notes: &BTreeMap<String, String>,
        key: &str,
        corrupt: &dyn Fn(&str, String) -> StoreError,
    ) -> Result<Option<T>, StoreError> {
        notes
            .get(key)
            .filter(|v| !v.is_empty())
            .map(|v| {
                v.parse()
                    .map_err(|_| corrupt(key, format!("{v:?} does not parse")))
            })
            .transpose()
    }
    let bgp = NodeBgpSpec {
        as_number: parse::<u32>(notes, AS_NUMBER, &corrupt)?.map(AsNumber),
        ipv4_address: parse(notes, IPV4_ADDRESS, &corrupt)?,
        ipv6_address: parse(notes, IPV6_ADDRESS, &corrupt)?,
        ipv4_ipip_tunnel_addr: parse(notes, IPIP_TUNNEL, &corrupt)?,
        route_reflector_cluster_id: parse(notes, RR_CLUSTER_ID, &corrupt)?,
    };
    let mut addresses: Vec<NodeAddress> = node
        .status
        .as_ref()
        .and_then(|s| s.addresses.as_ref())
        .map(|list| {
            list.iter()
                .map(|a| NodeAddress {
                    address: a.address.clone(),
                    kind: Some(a.type_.clone()),
                })
                .collect()
        })
        .unwrap_or_default();
    // As tortie-node registers them in the other datastores: each BGP
    // address (an IPv6-only node's too) is a `CalicoNodeIP`.
    for a in [bgp.ipv4_address, bgp.ipv6_address].into_iter().flatten() {
        addresses.push(NodeAddress {
            address: a.to_string(),
            kind: Some("CalicoNodeIP".into()),
        });
    }
    let spec = NodeSpec {
        bgp: (bgp != NodeBgpSpec::default()).then_some(bgp),
        ipv4_vxlan_tunnel_addr: parse(notes, VXLAN_TUNNEL, &corrupt)?,
        vxlan_tunnel_mac_addr: notes.get(VXLAN_MAC).cloned(),
        ipv6_vxlan_tunnel_addr: parse(notes, VXLAN_TUNNEL_V6, &corrupt)?,
        vxlan_tunnel_mac_addr_v6: notes.get(VXLAN_MAC_V6).cloned(),
        addresses,
    };
    let metadata = Metadata {
        name: name.clone(),
        labels: node.metadata.labels.clone().unwrap_or_default(),
        ..Metadata::default()
    };
    let revision = super::kinds::revision_of(&node.metadata, Kind::Node, &name)?;
    let mut object = Object { metadata, spec };
    object.validate().map_err(|e| StoreError::Corrupt {
        file: format!("kubernetes:Node/{name}").into(),
        line: None,
        message: e.to_string(),
    })?;
    Ok(Some(Versioned {
        resource: Resource::Node(object),
        revision,
    }))
}

/// The annotations that say `spec` (a value for each of ours: `null`
/// removes it).
fn annotations_of(spec: Option<&NodeSpec>) -> Map<String, Value> {
    let mut out: Map<String, Value> = OURS.iter().map(|k| (k.to_string(), Value::Null)).collect();
    let Some(spec) = spec else { return out };
    let mut set = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            out.insert(k.to_string(), v.into());
        }
    };
    if let Some(bgp) = &spec.bgp {
        set(AS_NUMBER, bgp.as_number.map(|a| a.0.to_string()));
        set(IPV4_ADDRESS, bgp.ipv4_address.map(|a| a.to_string()));
        set(IPV6_ADDRESS, bgp.ipv6_address.map(|a| a.to_string()));
        set(
            IPIP_TUNNEL,
            bgp.ipv4_ipip_tunnel_addr.map(|a| a.to_string()),
        );
        set(
            RR_CLUSTER_ID,
            bgp.route_reflector_cluster_id.map(|a| a.to_string()),
        );
    }
    set(
        VXLAN_TUNNEL,
        spec.ipv4_vxlan_tunnel_addr.map(|a| a.to_string()),
    );
    set(VXLAN_MAC, spec.vxlan_tunnel_mac_addr.clone());
    set(
        VXLAN_TUNNEL_V6,
        spec.ipv6_vxlan_tunnel_addr.map(|a| a.to_string()),
    );
    set(VXLAN_MAC_V6, spec.vxlan_tunnel_mac_addr_v6.clone());
    // A Node of ours with nothing to say still carries one annotation.
    if out.values().all(Value::is_null) {
        out.insert(AS_NUMBER.into(), "".into());
    }
    out
}

// ===== impl KubeStore: nodes =====

impl KubeStore {
    fn nodes(&self) -> Api<KubeNode> {
        Api::all(self.client.clone())
    }

    pub(super) async fn get_node(&self, name: &str) -> Result<Option<Versioned>, StoreError> {
        let node = self
            .nodes()
            .get_opt(name)
            .await
            .map_err(|e| kube_error(format!("get Node/{name}"), e))?;
        match node {
            Some(n) => from_kube(&n),
            None => Ok(None),
        }
    }

    pub(super) async fn list_nodes(&self) -> Result<Listing, StoreError> {
        let list = self
            .nodes()
            .list(&ListParams::default())
            .await
            .map_err(|e| kube_error("list Node".into(), e))?;
        super::listing("list Node", list, from_kube, |n| {
            n.metadata.name.clone().unwrap_or_default()
        })
    }

    /// Writes `spec` (`None`: removes ours) and adds `labels` on Node
    /// `name`, if it is still at `revision`.
    async fn patch_node(
        &self,
        key: &Key,
        spec: Option<&NodeSpec>,
        labels: &BTreeMap<String, String>,
        revision: Revision,
    ) -> Result<KubeNode, StoreError> {
        let mut meta = json!({
            "resourceVersion": revision.to_string(),
            "annotations": annotations_of(spec),
        });
        if !labels.is_empty() {
            meta["labels"] = json!(labels);
        }
        let patch = json!({ "metadata": meta });
        match self
            .nodes()
            .patch(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(n) => Ok(n),
            Err(kube::Error::Api(s)) if s.code == 404 => {
                Err(StoreError::NotFound { key: key.clone() })
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Err(StoreError::Conflict {
                key: key.clone(),
                expected: revision,
                current: self.node_revision(&key.name).await?,
            }),
            Err(e) => Err(kube_error(format!("update {key}"), e)),
        }
    }

    /// The Kubernetes Node's revision (whether or not it is one of ours).
    async fn node_revision(&self, name: &str) -> Result<Option<Revision>, StoreError> {
        let node = self
            .nodes()
            .get_opt(name)
            .await
            .map_err(|e| kube_error(format!("get Node/{name}"), e))?;
        node.map(|n| super::kinds::revision_of(&n.metadata, Kind::Node, name))
            .transpose()
    }

    pub(super) async fn create_node(
        &self,
        node: Object<NodeSpec>,
    ) -> Result<Versioned, StoreError> {
        let key = Key::new(Kind::Node, &node.metadata.name);
        let kube_node = self
            .nodes()
            .get_opt(&key.name)
            .await
            .map_err(|e| kube_error(format!("get {key}"), e))?;
        let Some(kube_node) = kube_node else {
            return Err(StoreError::Kube {
                op: format!("create {key}"),
                message: "no Kubernetes Node of that name: the kubelet registers Nodes, \
                          tortie-node only annotates its own"
                    .into(),
            });
        };
        let revision = super::kinds::revision_of(&kube_node.metadata, Kind::Node, &key.name)?;
        if from_kube(&kube_node)?.is_some() {
            return Err(StoreError::AlreadyExists { key, revision });
        }
        let made = self
            .patch_node(&key, Some(&node.spec), &node.metadata.labels, revision)
            .await?;
        self.written(&key, &made)
    }

    pub(super) async fn update_node(
        &self,
        node: Object<NodeSpec>,
        revision: Revision,
    ) -> Result<Versioned, StoreError> {
        let key = Key::new(Kind::Node, &node.metadata.name);
        if self.get_node(&key.name).await?.is_none() {
            return Err(StoreError::NotFound { key });
        }
        let made = self
            .patch_node(&key, Some(&node.spec), &node.metadata.labels, revision)
            .await?;
        self.written(&key, &made)
    }

    pub(super) async fn delete_node(
        &self,
        key: &Key,
        revision: Option<Revision>,
    ) -> Result<Revision, StoreError> {
        let current = self
            .get_node(&key.name)
            .await?
            .ok_or_else(|| StoreError::NotFound { key: key.clone() })?;
        let made = self
            .patch_node(
                key,
                None,
                &BTreeMap::new(),
                revision.unwrap_or(current.revision),
            )
            .await?;
        super::kinds::revision_of(&made.metadata, Kind::Node, &key.name)
    }

    /// What a write left, read back as ours.
    fn written(&self, key: &Key, made: &KubeNode) -> Result<Versioned, StoreError> {
        from_kube(made)?.ok_or_else(|| StoreError::Kube {
            op: format!("write {key}"),
            message: "the Node lost its annotations".into(),
        })
    }
}

/// Node events to changes: a Node that gains our annotations is created,
/// one that loses them (or goes) deleted, and an event that changes
/// nothing we read (the kubelet's status updates) is skipped.
pub(super) struct Nodes {
    /// Ours, by name, with what was last delivered (`None`: not known,
    /// only that it is ours).
    present: std::collections::HashMap<String, Option<Resource>>,
}

impl KubeStore {
    /// A watch of our Nodes after `from` (0: those there are now, then
    /// what follows).
    pub(super) async fn watch_nodes(&self, from: Revision) -> Result<crate::Watch, StoreError> {
        let listing = self.list_nodes().await?;
        let (first, after, present) = if from == 0 {
            let present = listing
                .items
                .iter()
                .map(|v| (v.resource.key().name, Some(v.resource.clone())))
                .collect();
            (
                super::watch::as_creations(listing.items),
                listing.revision,
                present,
            )
        } else {
            let present = listing
                .items
                .iter()
                .map(|v| (v.resource.key().name, None))
                .collect();
            (Vec::new(), from, present)
        };
        let health = self.health.clone();
        super::watch::start(
            self.nodes(),
            Kind::Node,
            after,
            first,
            Nodes { present },
            health,
        )
        .await
    }
}

impl super::watch::Translate<KubeNode> for Nodes {
    fn translate(&mut self, action: crate::Action, node: KubeNode) -> super::watch::Seen {
        use super::watch::Seen;
        use crate::{Action, WatchEvent};
        let name = node.metadata.name.clone().unwrap_or_default();
        let revision = match super::kinds::revision_of(&node.metadata, Kind::Node, &name) {
            Ok(r) => r,
            Err(e) => return Seen::Fail(e),
        };
        let ours = match action {
            Action::Deleted => None,
            _ => match from_kube(&node) {
                Ok(v) => v,
                Err(e) => return Seen::Fail(e),
            },
        };
        let key = Key::new(Kind::Node, name.clone());
        match ours {
            Some(v) => match self.present.get(&name) {
                Some(Some(last)) if *last == v.resource => Seen::Skip(revision),
                before => {
                    let action = if before.is_some() {
                        Action::Updated
                    } else {
                        Action::Created
                    };
                    self.present.insert(name, Some(v.resource.clone()));
                    Seen::Changes(vec![WatchEvent {
                        revision,
                        action,
                        key,
                        resource: Some(v.resource),
                    }])
                }
            },
            None if self.present.remove(&name).is_some() => Seen::Changes(vec![WatchEvent {
                revision,
                action: Action::Deleted,
                key,
                resource: None,
            }]),
            None => Seen::Skip(revision),
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{NodeAddress as KubeAddress, NodeStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    /// A Kubernetes Node with these annotations and an InternalIP.
    fn kube_node(notes: &[(&str, &str)]) -> KubeNode {
        KubeNode {
            metadata: ObjectMeta {
                name: Some("n1".into()),
                resource_version: Some("7".into()),
                annotations: Some(
                    notes
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..ObjectMeta::default()
            },
            status: Some(NodeStatus {
                addresses: Some(vec![KubeAddress {
                    address: "192.168.1.11".into(),
                    type_: "InternalIP".into(),
                }]),
                ..NodeStatus::default()
            }),
            ..KubeNode::default()
        }
    }

    fn addresses(node: &KubeNode) -> Vec<(String, String)> {
        let v = from_kube(node).unwrap().expect("one of ours");
        let Resource::Node(n) = v.resource else {
            panic!("not a Node: {:?}", v.resource)
        };
        n.spec
            .addresses
            .into_iter()
            .map(|a| (a.address, a.kind.unwrap_or_default()))
            .collect()
    }

    #[test]
    fn every_bgp_address_is_a_calico_node_ip() {
        let dual = kube_node(&[
            (IPV4_ADDRESS, "192.168.1.11/24"),
            (IPV6_ADDRESS, "fd30:1::11/64"),
        ]);
        assert_eq!(
            addresses(&dual),
            [
                ("192.168.1.11".into(), "InternalIP".into()),
                ("192.168.1.11/24".into(), "CalicoNodeIP".into()),
                ("fd30:1::11/64".into(), "CalicoNodeIP".into()),
            ]
        );
        let v6 = kube_node(&[(IPV6_ADDRESS, "fd30:1::11/64")]);
        assert_eq!(
            addresses(&v6)[1..],
            [("fd30:1::11/64".into(), "CalicoNodeIP".into())]
        );
    }

    #[test]
    fn a_node_without_our_annotations_is_not_ours_and_a_bad_one_is_named() {
        assert!(from_kube(&kube_node(&[])).unwrap().is_none());
        let e = from_kube(&kube_node(&[(IPV6_ADDRESS, "fd30:1::zz/64")])).unwrap_err();
        assert!(
            e.to_string()
                .contains("annotation projectcalico.org/IPv6Address"),
            "{e}"
        );
    }
}
