//! The node's own `Node` object: registered at start (created, or updated
//! with the address found now), and its tunnel addresses allocated when a
//! pool needs them.
//!
//! Registration merges: it sets `spec.bgp.ipv4Address` and
//! `spec.bgp.ipv6Address` to the addresses it has (clearing the other: an
//! IPv6-only node has no `ipv4Address`) (and the AS and
//! labels when the settings give them) and keeps what users set
//! (`routeReflectorClusterID`, other labels, tunnel addresses). Every write
//! is a compare-and-swap on the Node's revision, retried when another
//! writer got there first.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use tortie_config::resources::{
    AllowedUse, AsNumber, EncapMode, IPPool, Key, Kind, NodeAddress, NodeBgpSpec, NodeSpec, Object,
    Resource,
};
use tortie_datastore::{AnyStore, Datastore, StoreError, TypedStore};
use tortie_ipam::{Family, Ipam, IpamConfig, Request};

/// Compare-and-swap attempts before giving up.
const ATTEMPTS: usize = 20;

/// What the node registers.
#[derive(Clone, Debug, PartialEq)]
pub struct Registration {
    pub name: String,
    pub address: IpNet,
    /// A dual-stack node's IPv6 address (`address` is then IPv4).
    pub address_v6: Option<IpNet>,
    pub as_number: Option<u32>,
    pub labels: BTreeMap<String, String>,
    pub cluster_id: Option<std::net::Ipv4Addr>,
}

/// Why registration failed.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// Another node is registered with our address.
    #[error(
        "address {address} is already Node/{other}'s; this node is {me}: give each node its own \
         address (--ip), or delete Node/{other} if that machine is gone (tortiectl delete node {other})"
    )]
    AddressTaken {
        address: IpAddr,
        me: String,
        other: String,
    },
    #[error("datastore: {0}")]
    Store(#[from] StoreError),
    #[error("Node/{0}: still conflicting after {ATTEMPTS} attempts")]
    Contention(String),
}

/// Which tunnel address a pool asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tunnel {
    /// `ipv4VXLANTunnelAddr`, from an IPv4 pool.
    Vxlan,
    Ipip,
    /// `ipv6VXLANTunnelAddr`, from an IPv6 pool (`vxlan-v6.tortie`).
    VxlanV6,
}

// ===== registration =====

/// Creates or updates our Node. Refuses if another Node has our address.
pub async fn register(store: &AnyStore, me: &Registration) -> Result<(), RegisterError> {
    let mine: Vec<IpAddr> = me.addresses().iter().map(IpNet::addr).collect();
    for _ in 0..ATTEMPTS {
        let nodes = store.list_typed::<NodeSpec>().await?;
        let taken = nodes.iter().find_map(|(n, _)| {
            let bgp = n.spec.bgp.as_ref()?;
            let hit = [bgp.ipv4_address, bgp.ipv6_address]
                .into_iter()
                .flatten()
                .find(|a| mine.contains(&a.addr()))?;
            (n.metadata.name != me.name).then(|| (hit.addr(), n.metadata.name.clone()))
        });
        if let Some((address, other)) = taken {
            return Err(RegisterError::AddressTaken {
                address,
                me: me.name.clone(),
                other,
            });
        }
        let current = nodes.into_iter().find(|(n, _)| n.metadata.name == me.name);
        let result = match current {
            None => store
                .create(Resource::Node(merged(
                    Object::new(&me.name, NodeSpec::default()),
                    me,
                )))
                .await
                .map(|_| ()),
            Some((node, revision)) => {
                let new = merged(node.clone(), me);
                if new == node {
                    return Ok(());
                }
                store
                    .update(Resource::Node(new), revision)
                    .await
                    .map(|_| ())
            }
        };
        match result {
            Ok(()) => return Ok(()),
            Err(e) if e.is_conflict() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(RegisterError::Contention(me.name.clone()))
}

/// `node` with our registration applied.
fn merged(mut node: Object<NodeSpec>, me: &Registration) -> Object<NodeSpec> {
    let bgp = node.spec.bgp.get_or_insert_with(NodeBgpSpec::default);
    let addresses = me.addresses();
    bgp.ipv4_address = addresses.iter().copied().find(|a| a.addr().is_ipv4());
    bgp.ipv6_address = addresses.iter().copied().find(|a| a.addr().is_ipv6());
    if let Some(asn) = me.as_number {
        bgp.as_number = Some(AsNumber(asn));
    }
    if let Some(cid) = me.cluster_id {
        bgp.route_reflector_cluster_id = Some(cid);
    }
    for (k, v) in &me.labels {
        node.metadata.labels.insert(k.clone(), v.clone());
    }
    node.spec
        .addresses
        .retain(|a| a.kind.as_deref() != Some("CalicoNodeIP"));
    for a in addresses {
        node.spec.addresses.push(NodeAddress {
            address: a.to_string(),
            kind: Some("CalicoNodeIP".into()),
        });
    }
    node
}

// ===== impl Registration =====

impl Registration {
    /// The node's addresses: `address`, then the IPv6 one of a dual-stack
    /// node.
    pub fn addresses(&self) -> Vec<IpNet> {
        std::iter::once(self.address)
            .chain(self.address_v6)
            .collect()
    }
}

// ===== tunnel addresses =====

/// The tunnel devices the pools selecting this node need, and the pools to
/// take their addresses from.
pub fn tunnels_needed(
    pools: &[&IPPool],
    labels: &BTreeMap<String, String>,
) -> Vec<(Tunnel, Vec<String>)> {
    let usable: Vec<&&IPPool> = pools
        .iter()
        .filter(|p| {
            !p.spec.disabled
                && p.spec.allowed_uses.contains(&AllowedUse::Tunnel)
                && p.spec.node_selector.matches(labels)
        })
        .collect();
    let mut out = Vec::new();
    for (tunnel, v4, uses) in [
        (
            Tunnel::Vxlan,
            true,
            (|p: &IPPool| p.spec.vxlan_mode) as fn(&IPPool) -> EncapMode,
        ),
        (Tunnel::Ipip, true, |p: &IPPool| p.spec.ipip_mode),
        (Tunnel::VxlanV6, false, |p: &IPPool| p.spec.vxlan_mode),
    ] {
        let names: Vec<String> = usable
            .iter()
            .filter(|p| p.spec.cidr.addr().is_ipv4() == v4 && uses(p) != EncapMode::Never)
            .map(|p| p.metadata.name.clone())
            .collect();
        if !names.is_empty() {
            out.push((tunnel, names));
        }
    }
    out
}

/// Allocates our tunnel address for `tunnel` from `pools` (idempotent: the
/// handle `<kind>-tunnel-addr-<node>` keeps it) and records it in our Node.
pub async fn tunnel_address(
    store: &AnyStore,
    node: &str,
    tunnel: Tunnel,
    pools: Vec<String>,
) -> Result<IpAddr, String> {
    // Calico's handle names and attribute types.
    let (handle_id, kind, family) = match tunnel {
        Tunnel::Vxlan => (
            format!("vxlan-tunnel-addr-{node}"),
            "vxlanTunnelAddress",
            Family::V4,
        ),
        Tunnel::Ipip => (
            format!("ipip-tunnel-addr-{node}"),
            "ipipTunnelAddress",
            Family::V4,
        ),
        Tunnel::VxlanV6 => (
            format!("vxlan-v6-tunnel-addr-{node}"),
            "vxlanV6TunnelAddress",
            Family::V6,
        ),
    };
    let ipam = Ipam::new(store.clone(), IpamConfig::default());
    let req = Request {
        handle_id,
        node: node.to_string(),
        pools,
        families: vec![family],
        attributes: [
            ("node".to_string(), node.to_string()),
            ("type".to_string(), kind.to_string()),
        ]
        .into(),
    };
    let assigned = ipam.allocate(&req).await.map_err(|e| e.to_string())?;
    let address = assigned
        .first()
        .map(|a| a.address)
        .ok_or_else(|| "IPAM assigned no address".to_string())?;
    for _ in 0..ATTEMPTS {
        let Some(v) = store
            .get(&Key::new(Kind::Node, node))
            .await
            .map_err(|e| e.to_string())?
        else {
            return Err(format!("Node/{node} is gone"));
        };
        let Resource::Node(mut n) = v.resource else {
            return Err(format!("Node/{node}: stored object is of another kind"));
        };
        let slot = match tunnel {
            Tunnel::Vxlan => &mut n.spec.ipv4_vxlan_tunnel_addr,
            Tunnel::VxlanV6 => &mut n.spec.ipv6_vxlan_tunnel_addr,
            Tunnel::Ipip => {
                &mut n
                    .spec
                    .bgp
                    .get_or_insert_with(NodeBgpSpec::default)
                    .ipv4_ipip_tunnel_addr
            }
        };
        if *slot == Some(address) {
            return Ok(address);
        }
        *slot = Some(address);
        match store.update(Resource::Node(n), v.revision).await {
            Ok(_) => return Ok(address),
            Err(e) if e.is_conflict() => continue,
            Err(e) => return Err(e.to_string()),
        }
    }
    Err(format!(
        "Node/{node}: still conflicting after {ATTEMPTS} attempts"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tortie_config::resources::IPPoolSpec;
    use tortie_datastore::FileStore;

    fn store() -> (AnyStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        (AnyStore::File(FileStore::open(dir.path()).unwrap()), dir)
    }

    fn reg(name: &str, addr: &str) -> Registration {
        Registration {
            name: name.into(),
            address: addr.parse().unwrap(),
            address_v6: None,
            as_number: None,
            labels: BTreeMap::new(),
            cluster_id: None,
        }
    }

    #[tokio::test]
    async fn register_creates_merges_and_refuses_a_taken_address() {
        let (s, _dir) = store();
        let mut me = reg("n1", "192.168.1.11/24");
        me.labels.insert("rack".into(), "a".into());
        register(&s, &me).await.unwrap();
        // A user marks it a route reflector; a re-registration with a new
        // address keeps that.
        let (mut node, rev) = s.get_typed::<NodeSpec>("n1").await.unwrap().unwrap();
        node.spec.bgp.as_mut().unwrap().route_reflector_cluster_id =
            Some("1.1.1.1".parse().unwrap());
        node.metadata.labels.insert("rr".into(), "true".into());
        s.update_typed(node, rev).await.unwrap();
        let me = reg("n1", "192.168.1.21/24");
        register(&s, &me).await.unwrap();
        let (node, rev) = s.get_typed::<NodeSpec>("n1").await.unwrap().unwrap();
        let bgp = node.spec.bgp.as_ref().unwrap();
        assert_eq!(bgp.ipv4_address, Some("192.168.1.21/24".parse().unwrap()));
        assert_eq!(
            bgp.route_reflector_cluster_id,
            Some("1.1.1.1".parse().unwrap())
        );
        assert_eq!(node.metadata.labels.len(), 2);
        assert_eq!(node.spec.addresses.len(), 1);
        // Unchanged: no write.
        register(&s, &me).await.unwrap();
        assert_eq!(s.get_typed::<NodeSpec>("n1").await.unwrap().unwrap().1, rev);

        let e = register(&s, &reg("n2", "192.168.1.21/24"))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("address 192.168.1.21 is already Node/n1's; this node is n2"),
            "{e}"
        );
        assert!(s.get_typed::<NodeSpec>("n2").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn dual_stack_registers_both_addresses_and_a_v6_vtep() {
        let (s, dir) = store();
        let mut me = reg("n1", "192.168.1.11/24");
        me.address_v6 = Some("fd30:1::11/64".parse().unwrap());
        register(&s, &me).await.unwrap();
        let (node, _) = s.get_typed::<NodeSpec>("n1").await.unwrap().unwrap();
        let bgp = node.spec.bgp.as_ref().unwrap();
        assert_eq!(bgp.ipv4_address, Some("192.168.1.11/24".parse().unwrap()));
        assert_eq!(bgp.ipv6_address, Some("fd30:1::11/64".parse().unwrap()));
        assert_eq!(node.spec.addresses.len(), 2);
        // Another node with our IPv6 address is refused.
        let mut other = reg("n2", "192.168.1.12/24");
        other.address_v6 = Some("fd30:1::11/64".parse().unwrap());
        let e = register(&s, &other).await.unwrap_err().to_string();
        assert!(
            e.starts_with("address fd30:1::11 is already Node/n1's"),
            "{e}"
        );
        // IPv6 only: the IPv4 address goes.
        register(&s, &reg("n1", "fd30:1::11/64")).await.unwrap();
        let (node, _) = s.get_typed::<NodeSpec>("n1").await.unwrap().unwrap();
        let bgp = node.spec.bgp.as_ref().unwrap();
        assert_eq!(bgp.ipv4_address, None);
        assert_eq!(bgp.ipv6_address, Some("fd30:1::11/64".parse().unwrap()));
        // An IPv6 VXLAN pool asks for an IPv6 VTEP, an IPv4 one for IPv4.
        std::fs::write(
            dir.path().join("resources.yaml"),
            "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: v4\nspec:\n  cidr: 10.244.0.0/16\n  vxlanMode: CrossSubnet\n---\napiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: v6\nspec:\n  cidr: fd00:10:244::/48\n  blockSize: 122\n  vxlanMode: Always\n",
        )
        .unwrap();
        let pools = s.list_typed::<IPPoolSpec>().await.unwrap();
        let refs: Vec<&IPPool> = pools.iter().map(|(p, _)| p).collect();
        assert_eq!(
            tunnels_needed(&refs, &BTreeMap::new()),
            vec![
                (Tunnel::Vxlan, vec!["v4".to_string()]),
                (Tunnel::VxlanV6, vec!["v6".to_string()])
            ]
        );
        let a = tunnel_address(&s, "n1", Tunnel::VxlanV6, vec!["v6".into()])
            .await
            .unwrap();
        assert!(a.is_ipv6(), "{a}");
        let (node, _) = s.get_typed::<NodeSpec>("n1").await.unwrap().unwrap();
        assert_eq!(node.spec.ipv6_vxlan_tunnel_addr, Some(a));
        assert_eq!(node.spec.ipv4_vxlan_tunnel_addr, None);
    }

    #[tokio::test]
    async fn tunnel_address_comes_from_the_pool_and_lands_in_the_node() {
        let (s, dir) = store();
        let mut pool = IPPoolSpec::new("10.244.0.0/16".parse().unwrap());
        pool.vxlan_mode = EncapMode::CrossSubnet;
        std::fs::write(
            dir.path().join("resources.yaml"),
            "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: p\nspec:\n  cidr: 10.244.0.0/16\n  vxlanMode: CrossSubnet\n",
        )
        .unwrap();
        let pools = s.list_typed::<IPPoolSpec>().await.unwrap();
        let refs: Vec<&IPPool> = pools.iter().map(|(p, _)| p).collect();
        let needed = tunnels_needed(&refs, &BTreeMap::new());
        assert_eq!(needed, vec![(Tunnel::Vxlan, vec!["p".to_string()])]);
        register(&s, &reg("n1", "192.168.1.11/24")).await.unwrap();
        let a = tunnel_address(&s, "n1", Tunnel::Vxlan, vec!["p".into()])
            .await
            .unwrap();
        assert!(pool.cidr.contains(&a), "{a}");
        // Idempotent.
        let b = tunnel_address(&s, "n1", Tunnel::Vxlan, vec!["p".into()])
            .await
            .unwrap();
        assert_eq!(a, b);
        let (node, _) = s.get_typed::<NodeSpec>("n1").await.unwrap().unwrap();
        assert_eq!(node.spec.ipv4_vxlan_tunnel_addr, Some(a));
    }
}
