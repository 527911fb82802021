//! The agent's picture of the cluster: the latest object of every kind it
//! watches, kept current from listings and watch events. Pure data; the
//! computations over it are in `peers` and `routes`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;
use tortie_config::resources::{
    BGPConfiguration, BGPFilter, BGPPeer, Block, IPPool, Kind, Node, Resource, WorkloadEndpoint,
    DEFAULT_AS_NUMBER,
};
use tortie_datastore::Only;

/// The kinds the agent watches.
pub const WATCHED: [Kind; 7] = [
    Kind::BGPConfiguration,
    Kind::BGPPeer,
    Kind::BGPFilter,
    Kind::IPPool,
    Kind::Node,
    Kind::Block,
    Kind::WorkloadEndpoint,
];

/// What of `kind` the agent of `node` follows (None: everything). Blocks
/// and workload endpoints only matter when they are, or were, the node's
/// ([`Cluster::concerns`]): the others are skipped by the datastore
/// unparsed, by the node's name in their text (a block's
/// `"affinity": "host:<node>"`, an endpoint's `"node": "<node>"`). A
/// false match (the name as another field's value) costs a parse, and
/// `concerns` still decides.
pub fn interest(kind: Kind, node: &str) -> Option<Only> {
    match kind {
        Kind::Block => Some(Only::containing(format!("\"host:{node}\""))),
        Kind::WorkloadEndpoint => Some(Only::containing(format!("\"{node}\""))),
        _ => None,
    }
}

/// Name of the cluster-wide BGPConfiguration (Calico's convention).
pub const DEFAULT_BGP_CONFIGURATION: &str = "default";

/// The objects of the watched kinds, by name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Cluster {
    pub bgp_configurations: BTreeMap<String, BGPConfiguration>,
    pub bgp_peers: BTreeMap<String, BGPPeer>,
    pub bgp_filters: BTreeMap<String, BGPFilter>,
    pub pools: BTreeMap<String, IPPool>,
    pub nodes: BTreeMap<String, Node>,
    pub blocks: BTreeMap<String, Block>,
    pub endpoints: BTreeMap<String, WorkloadEndpoint>,
    /// Kubernetes Services and Endpoints (not a datastore kind: followed
    /// only on the Kubernetes datastore, while service ranges are set).
    pub services: crate::services::ServiceView,
}

/// A node's BGP identity as the computations need it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeFacts {
    pub name: String,
    /// The IPv4 address with its subnet (`spec.bgp.ipv4Address`).
    pub v4: Option<IpNet>,
    /// The IPv6 address with its subnet.
    pub v6: Option<IpNet>,
    pub asn: u32,
    pub cluster_id: Option<Ipv4Addr>,
    pub labels: BTreeMap<String, String>,
    /// `spec.ipv4VXLANTunnelAddr`.
    pub vxlan_v4: Option<IpAddr>,
    /// `spec.ipv6VXLANTunnelAddr`.
    pub vxlan_v6: Option<IpAddr>,
    /// `spec.bgp.ipv4IPIPTunnelAddr`.
    pub ipip_v4: Option<IpAddr>,
}

// ===== impl Cluster =====

impl Cluster {
    /// Replaces every object of `kind` (a fresh listing).
    pub fn replace_kind(&mut self, kind: Kind, items: Vec<Resource>) {
        self.clear(kind);
        for r in items {
            self.upsert(r);
        }
    }

    /// Adds or replaces one object.
    pub fn upsert(&mut self, resource: Resource) {
        let name = resource.key().name;
        match resource {
            Resource::BGPConfiguration(o) => {
                self.bgp_configurations.insert(name, o);
            }
            Resource::BGPPeer(o) => {
                self.bgp_peers.insert(name, o);
            }
            Resource::BGPFilter(o) => {
                self.bgp_filters.insert(name, o);
            }
            Resource::IPPool(o) => {
                self.pools.insert(name, o);
            }
            Resource::Node(o) => {
                self.nodes.insert(name, o);
            }
            Resource::Block(o) => {
                self.blocks.insert(name, o);
            }
            Resource::WorkloadEndpoint(o) => {
                self.endpoints.insert(name, o);
            }
            Resource::BlockAffinity(_) | Resource::Handle(_) | Resource::CalicoNodeStatus(_) => {}
        }
    }

    /// Whether a change of `kind`/`name` to `new` (None: deleted) can
    /// change what `node` announces or programs: blocks and workload
    /// endpoints only matter when they are, or were, that node's (another
    /// node's block reaches us over BGP); every other kind may matter.
    pub fn concerns(&self, node: &str, kind: Kind, name: &str, new: Option<&Resource>) -> bool {
        let affinity = format!("host:{node}");
        match kind {
            Kind::Block => {
                let ours = |b: &Block| b.spec.affinity.as_deref() == Some(affinity.as_str());
                self.blocks.get(name).is_some_and(ours)
                    || matches!(new, Some(Resource::Block(b)) if ours(b))
            }
            Kind::WorkloadEndpoint => {
                let ours = |w: &WorkloadEndpoint| w.spec.node == node;
                self.endpoints.get(name).is_some_and(ours)
                    || matches!(new, Some(Resource::WorkloadEndpoint(w)) if ours(w))
            }
            _ => true,
        }
    }

    /// Removes one object.
    pub fn remove(&mut self, kind: Kind, name: &str) {
        match kind {
            Kind::BGPConfiguration => drop(self.bgp_configurations.remove(name)),
            Kind::BGPPeer => drop(self.bgp_peers.remove(name)),
            Kind::BGPFilter => drop(self.bgp_filters.remove(name)),
            Kind::IPPool => drop(self.pools.remove(name)),
            Kind::Node => drop(self.nodes.remove(name)),
            Kind::Block => drop(self.blocks.remove(name)),
            Kind::WorkloadEndpoint => drop(self.endpoints.remove(name)),
            Kind::BlockAffinity | Kind::Handle | Kind::CalicoNodeStatus => {}
        }
    }

    fn clear(&mut self, kind: Kind) {
        match kind {
            Kind::BGPConfiguration => self.bgp_configurations.clear(),
            Kind::BGPPeer => self.bgp_peers.clear(),
            Kind::BGPFilter => self.bgp_filters.clear(),
            Kind::IPPool => self.pools.clear(),
            Kind::Node => self.nodes.clear(),
            Kind::Block => self.blocks.clear(),
            Kind::WorkloadEndpoint => self.endpoints.clear(),
            Kind::BlockAffinity | Kind::Handle | Kind::CalicoNodeStatus => {}
        }
    }

    /// The cluster-wide AS (BGPConfiguration `default`, else 64512).
    pub fn default_as(&self) -> u32 {
        self.bgp_configurations
            .get(DEFAULT_BGP_CONFIGURATION)
            .map_or(DEFAULT_AS_NUMBER, |c| c.spec.as_number.0)
    }

    /// Whether the node-to-node mesh is on (default true).
    pub fn mesh_enabled(&self) -> bool {
        self.bgp_configurations
            .get(DEFAULT_BGP_CONFIGURATION)
            .is_none_or(|c| c.spec.node_to_node_mesh_enabled)
    }

    /// The BGP port: the node's own BGPConfiguration (`node.<name>`) if it
    /// has one, else `default`'s, else 179.
    pub fn listen_port(&self, node: &str) -> u16 {
        self.bgp_configurations
            .get(&format!("node.{node}"))
            .or_else(|| self.bgp_configurations.get(DEFAULT_BGP_CONFIGURATION))
            .map_or(179, |c| c.spec.listen_port)
    }

    /// The BGPConfiguration that sets `node`'s prefix advertisements:
    /// `node.<name>` when it has any, else `default` (Calico's confd reads
    /// the node's key first).
    pub fn prefix_communities(
        &self,
        node: &str,
    ) -> Vec<tortie_config::resources::PrefixCommunities> {
        let own = self
            .bgp_configurations
            .get(&format!("node.{node}"))
            .filter(|c| !c.spec.prefix_advertisements.is_empty());
        own.or_else(|| self.bgp_configurations.get(DEFAULT_BGP_CONFIGURATION))
            .map(|c| c.spec.prefix_communities())
            .unwrap_or_default()
    }

    /// The BGP facts of node `name`, if it exists and runs BGP.
    pub fn facts(&self, name: &str) -> Option<NodeFacts> {
        let node = self.nodes.get(name)?;
        let bgp = node.spec.bgp.as_ref()?;
        Some(NodeFacts {
            name: name.to_string(),
            v4: bgp.ipv4_address,
            v6: bgp.ipv6_address,
            asn: bgp.as_number.map_or_else(|| self.default_as(), |a| a.0),
            cluster_id: bgp.route_reflector_cluster_id,
            labels: node.metadata.labels.clone(),
            vxlan_v4: node.spec.ipv4_vxlan_tunnel_addr,
            vxlan_v6: node.spec.ipv6_vxlan_tunnel_addr,
            ipip_v4: bgp.ipv4_ipip_tunnel_addr,
        })
    }

    /// Every node that runs BGP, by name.
    pub fn all_facts(&self) -> Vec<NodeFacts> {
        self.nodes.keys().filter_map(|n| self.facts(n)).collect()
    }

    /// The blocks whose affinity is `host:<node>`.
    pub fn blocks_of<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a Block> + 'a {
        let affinity = format!("host:{node}");
        self.blocks
            .values()
            .filter(move |b| b.spec.affinity.as_deref() == Some(affinity.as_str()))
    }

    /// The pool containing `prefix` (the most specific one).
    pub fn pool_of(&self, prefix: &IpNet) -> Option<&IPPool> {
        self.pools
            .values()
            .filter(|p| p.spec.cidr.contains(prefix))
            .max_by_key(|p| p.spec.cidr.prefix_len())
    }

    /// The workload endpoints on `node`.
    pub fn endpoints_of<'a>(
        &'a self,
        node: &'a str,
    ) -> impl Iterator<Item = (&'a String, &'a WorkloadEndpoint)> + 'a {
        self.endpoints
            .iter()
            .filter(move |(_, w)| w.spec.node == node)
    }

    /// The host-side interface names of the endpoints on `node`.
    pub fn interfaces_of(&self, node: &str) -> BTreeSet<String> {
        self.endpoints_of(node)
            .map(|(_, w)| w.spec.interface_name.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tortie_config::resources::{
        BGPConfigurationSpec, BlockSpec, IPPoolSpec, NodeBgpSpec, NodeSpec, Object,
    };

    #[test]
    fn facts_defaults_and_kind_replacement() {
        let mut c = Cluster::default();
        let node = Object::new(
            "n1",
            NodeSpec {
                bgp: Some(NodeBgpSpec {
                    ipv4_address: Some("192.168.1.11/24".parse().unwrap()),
                    ..NodeBgpSpec::default()
                }),
                ..NodeSpec::default()
            },
        );
        c.upsert(Resource::Node(node));
        c.upsert(Resource::Node(Object::new("no-bgp", NodeSpec::default())));
        assert_eq!(c.facts("n1").unwrap().asn, 64512);
        assert!(c.facts("no-bgp").is_none());
        assert!(c.mesh_enabled());
        assert_eq!(c.listen_port("n1"), 179);

        let mut spec = BGPConfigurationSpec::default();
        spec.as_number.0 = 65001;
        spec.node_to_node_mesh_enabled = false;
        c.upsert(Resource::BGPConfiguration(Object::new(
            "default",
            spec.clone(),
        )));
        spec.listen_port = 1179;
        c.upsert(Resource::BGPConfiguration(Object::new("node.n1", spec)));
        assert_eq!(c.facts("n1").unwrap().asn, 65001);
        assert!(!c.mesh_enabled());
        assert_eq!(c.listen_port("n1"), 1179);
        assert_eq!(c.listen_port("n2"), 179);

        c.upsert(Resource::IPPool(Object::new(
            "wide",
            IPPoolSpec::new("10.0.0.0/8".parse().unwrap()),
        )));
        c.upsert(Resource::IPPool(Object::new(
            "narrow",
            IPPoolSpec::new("10.244.0.0/16".parse().unwrap()),
        )));
        let p = c.pool_of(&"10.244.1.0/26".parse().unwrap()).unwrap();
        assert_eq!(p.metadata.name, "narrow");
        assert!(c.pool_of(&"192.168.0.0/26".parse().unwrap()).is_none());

        let block = BlockSpec::new("10.244.1.0/26".parse().unwrap(), Some("host:n1".into()));
        c.upsert(Resource::Block(Object::new("b", block)));
        assert_eq!(c.blocks_of("n1").count(), 1);
        assert_eq!(c.blocks_of("n2").count(), 0);

        // Only our blocks (now, or before the change) concern us.
        let theirs = Resource::Block(Object::new(
            "t",
            BlockSpec::new("10.244.2.0/26".parse().unwrap(), Some("host:n2".into())),
        ));
        assert!(!c.concerns("n1", Kind::Block, "t", Some(&theirs)));
        assert!(c.concerns("n2", Kind::Block, "t", Some(&theirs)));
        let given_away = Resource::Block(Object::new(
            "b",
            BlockSpec::new("10.244.1.0/26".parse().unwrap(), Some("host:n2".into())),
        ));
        assert!(c.concerns("n1", Kind::Block, "b", Some(&given_away)));
        assert!(c.concerns("n1", Kind::Block, "b", None));
        assert!(!c.concerns("n3", Kind::Block, "b", None));
        assert!(c.concerns("n3", Kind::Node, "n1", None));

        // The datastore's filter lets through at least what concerns us:
        // every change `concerns` keeps, in the text the stores hold.
        let text = |r: &Resource| serde_json::to_string(&r.to_value()).unwrap();
        let mut blocks = interest(Kind::Block, "n1").unwrap();
        let ours = Resource::Block(Object::new(
            "b",
            BlockSpec::new("10.244.1.0/26".parse().unwrap(), Some("host:n1".into())),
        ));
        let n10 = Resource::Block(Object::new(
            "x",
            BlockSpec::new("10.244.3.0/26".parse().unwrap(), Some("host:n10".into())),
        ));
        assert!(!blocks.admits("t", Some(&text(&theirs))));
        assert!(
            !blocks.admits("x", Some(&text(&n10))),
            "n10's block is not n1's"
        );
        assert!(blocks.admits("b", Some(&text(&ours))));
        assert!(
            blocks.admits("b", Some(&text(&given_away))),
            "the hand-over"
        );
        assert!(!blocks.admits("b", None), "then not ours any more");
        assert!(blocks.admits("b", Some(&text(&ours))));
        assert!(blocks.admits("b", None), "the deletion of ours");
        assert!(!blocks.admits("t", None));
        let wep = |name: &str, node: &str| {
            let mut o = Object::new(
                name,
                tortie_config::resources::WorkloadEndpointSpec {
                    node: node.into(),
                    orchestrator: "cni".into(),
                    pod: None,
                    container_id: name.into(),
                    endpoint: "eth0".into(),
                    interface_name: "tort1".into(),
                    ip_networks: vec!["10.244.1.5/32".parse().unwrap()],
                    mac: None,
                },
            );
            o.metadata.namespace = Some("default".into());
            Resource::WorkloadEndpoint(o)
        };
        let mut weps = interest(Kind::WorkloadEndpoint, "n1").unwrap();
        assert!(weps.admits("default/a", Some(&text(&wep("a", "n1")))));
        assert!(!weps.admits("default/c", Some(&text(&wep("c", "n12")))));
        assert!(interest(Kind::Node, "n1").is_none());

        c.replace_kind(Kind::Node, Vec::new());
        assert!(c.nodes.is_empty());
        assert_eq!(c.blocks.len(), 1);
        c.remove(Kind::Block, "b");
        assert!(c.blocks.is_empty());
    }
}
