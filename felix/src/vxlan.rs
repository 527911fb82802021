//! Pure: which VXLAN devices (`vxlan.tortie`, `vxlan-v6.tortie`) and which
//! per-peer neighbour and FDB entries the desired state needs. The kernel side is
//! [`tortie_ipip::vxlan::reconcile`]; the reconciler calls it at the start of
//! every full pass, before the routes that name the device.

use serde::Serialize;
use tortie_ipip::vxlan::{LocalVtep, Mac, RemoteVtep};
use tortie_ipip::EncapMode;

use crate::desired::DesiredState;

/// The VXLAN part of the desired state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VxlanWanted {
    /// This node's VTEP (the device).
    pub local: LocalVtep,
    /// Every other node with a VTEP of the device's family.
    pub peers: Vec<RemoteVtep>,
}

/// The VXLAN devices and peers `state` needs, one per family (IPv4:
/// `vxlan.tortie`, IPv6: `vxlan-v6.tortie`): a family gets its device when
/// a pool of that family uses VXLAN and this node has both an underlay
/// address and a VTEP address of that family. Peer MACs are derived from
/// peer names ([`Mac::for_node`]), as each node derives its own; one MAC
/// serves both devices (they are separate links).
pub fn wanted(state: &DesiredState) -> Vec<VxlanWanted> {
    [true, false]
        .into_iter()
        .filter_map(|v4| wanted_family(state, v4))
        .collect()
}

/// The device of one family (`v4`), if the state needs it.
fn wanted_family(state: &DesiredState, v4: bool) -> Option<VxlanWanted> {
    if !state
        .pools
        .iter()
        .any(|p| p.vxlan != EncapMode::Never && p.cidr.addr().is_ipv4() == v4)
    {
        return None;
    }
    let node = &state.local_node;
    let local = node.addresses.iter().find(|a| a.addr().is_ipv4() == v4)?;
    let vtep = node.vteps.iter().find(|v| v.is_ipv4() == v4)?;
    let peers = state
        .nodes
        .iter()
        .filter_map(|n| {
            Some(RemoteVtep {
                node: n.name.clone(),
                vtep: *n.vteps.iter().find(|v| v.is_ipv4() == v4)?,
                mac: Mac::for_node(&n.name),
                underlay: *n.addresses.iter().find(|a| a.is_ipv4() == v4)?,
            })
        })
        .collect();
    Some(VxlanWanted {
        local: LocalVtep {
            node: node.name.clone(),
            underlay: node.underlay.clone(),
            local: local.addr(),
            vtep: *vtep,
        },
        peers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::{LocalNode, PeerNode, Pool};

    fn state(vxlan: EncapMode) -> DesiredState {
        DesiredState {
            local_node: LocalNode {
                name: "node-a".into(),
                addresses: vec!["192.168.1.11/24".parse().unwrap()],
                underlay: "eth0".into(),
                vteps: vec!["10.244.3.0".parse().unwrap()],
            },
            nodes: vec![
                PeerNode {
                    name: "node-b".into(),
                    addresses: vec!["192.168.2.21".parse().unwrap()],
                    vteps: vec!["10.244.7.0".parse().unwrap()],
                },
                PeerNode {
                    name: "node-novtep".into(),
                    addresses: vec!["192.168.2.22".parse().unwrap()],
                    vteps: vec![],
                },
            ],
            pools: vec![Pool {
                cidr: "10.244.0.0/16".parse().unwrap(),
                ipip: EncapMode::Never,
                vxlan,
                nat_outgoing: false,
            }],
            ..DesiredState::default()
        }
    }

    #[test]
    fn vxlan_pool_and_local_vtep_make_a_device_with_peers() {
        let w = wanted(&state(EncapMode::CrossSubnet));
        assert_eq!(w.len(), 1, "no IPv6 pool: no IPv6 device");
        let w = &w[0];
        assert_eq!(w.local.local.to_string(), "192.168.1.11");
        assert_eq!(w.local.vtep.to_string(), "10.244.3.0");
        assert_eq!(w.peers.len(), 1, "a node without a VTEP has no entries");
        assert_eq!(w.peers[0].mac, Mac::for_node("node-b"));
        assert_eq!(w.peers[0].underlay.to_string(), "192.168.2.21");
    }

    #[test]
    fn no_device_without_vxlan_pool_or_local_vtep() {
        assert_eq!(wanted(&state(EncapMode::Never)), vec![]);
        let mut s = state(EncapMode::Always);
        s.local_node.vteps.clear();
        assert_eq!(wanted(&s), vec![]);
    }

    #[test]
    fn dual_stack_makes_one_device_per_family() {
        let mut s = state(EncapMode::CrossSubnet);
        s.pools.push(Pool {
            cidr: "fd00:10:244::/48".parse().unwrap(),
            ipip: EncapMode::Never,
            vxlan: EncapMode::CrossSubnet,
            nat_outgoing: false,
        });
        // Without an IPv6 underlay address or VTEP: only the IPv4 device.
        assert_eq!(wanted(&s).len(), 1);
        s.local_node
            .addresses
            .push("fd30:1::11/64".parse().unwrap());
        s.local_node.vteps.push("fd00:10:244::1".parse().unwrap());
        s.nodes[0].addresses.push("fd30:2::21".parse().unwrap());
        s.nodes[0].vteps.push("fd00:10:244::41".parse().unwrap());
        let w = wanted(&s);
        assert_eq!(w.len(), 2, "{w:?}");
        let v6 = &w[1];
        assert_eq!(v6.local.local.to_string(), "fd30:1::11");
        assert_eq!(v6.local.vtep.to_string(), "fd00:10:244::1");
        assert_eq!(v6.peers.len(), 1);
        assert_eq!(v6.peers[0].vtep.to_string(), "fd00:10:244::41");
        assert_eq!(v6.peers[0].underlay.to_string(), "fd30:2::21");
        assert_eq!(w[0].local.local.to_string(), "192.168.1.11");
    }
}
