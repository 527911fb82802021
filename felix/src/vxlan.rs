//! Pure: which VXLAN device (`vxlan.tortie`) and which per-peer neighbour and
//! FDB entries the desired state needs. The kernel side is
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

/// The VXLAN device and peers `state` needs: `None` when no pool uses VXLAN
/// or this node has no VTEP address of the family of one of its underlay
/// addresses (IPv4 is preferred: one device, one family). Peer MACs are
/// derived from peer names ([`Mac::for_node`]), as each node derives its own.
pub fn wanted(state: &DesiredState) -> Option<VxlanWanted> {
    if state.pools.iter().all(|p| p.vxlan == EncapMode::Never) {
        return None;
    }
    let node = &state.local_node;
    let (local, vtep) = [true, false].into_iter().find_map(|v4| {
        let local = node.addresses.iter().find(|a| a.addr().is_ipv4() == v4)?;
        let vtep = node.vteps.iter().find(|v| v.is_ipv4() == v4)?;
        Some((local.addr(), *vtep))
    })?;
    let v4 = local.is_ipv4();
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
            local,
            vtep,
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
        let w = wanted(&state(EncapMode::CrossSubnet)).unwrap();
        assert_eq!(w.local.local.to_string(), "192.168.1.11");
        assert_eq!(w.local.vtep.to_string(), "10.244.3.0");
        assert_eq!(w.peers.len(), 1, "a node without a VTEP has no entries");
        assert_eq!(w.peers[0].mac, Mac::for_node("node-b"));
        assert_eq!(w.peers[0].underlay.to_string(), "192.168.2.21");
    }

    #[test]
    fn no_device_without_vxlan_pool_or_local_vtep() {
        assert_eq!(wanted(&state(EncapMode::Never)), None);
        let mut s = state(EncapMode::Always);
        s.local_node.vteps.clear();
        assert_eq!(wanted(&s), None);
    }
}
