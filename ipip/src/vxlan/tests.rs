//! Unit tests of the pure parts of [`super`]: MAC derivation, the device
//! decision, and the peer-entry plan.

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn peer(node: &str, vtep: &str, underlay: &str) -> RemoteVtep {
    RemoteVtep {
        node: node.into(),
        vtep: ip(vtep),
        mac: Mac::for_node(node),
        underlay: ip(underlay),
    }
}

#[test]
fn mac_is_deterministic_locally_administered_unicast() {
    let a = Mac::for_node("node-a");
    assert_eq!(a, Mac::for_node("node-a"));
    assert_ne!(a, Mac::for_node("node-b"));
    for name in [
        "node-a",
        "node-b",
        "",
        "x",
        "a-very-long-node-name.example.com",
    ] {
        let m = Mac::for_node(name);
        assert_eq!(m.0[0] & 0x01, 0, "{name}: multicast bit set in {m}");
        assert_eq!(m.0[0] & 0x02, 0x02, "{name}: not locally administered: {m}");
    }
    // FNV-1a-64("") = cbf29ce484222325 -> ca:f2:9c:e4:84:22.
    assert_eq!(Mac::for_node("").to_string(), "ca:f2:9c:e4:84:22");
}

#[test]
fn device_action_checks_identity_then_settings() {
    let mac = Mac::for_node("n");
    let good = DeviceInfo {
        index: 9,
        is_vxlan: true,
        vni: Some(VXLAN_VNI),
        port: Some(VXLAN_PORT),
        local: Some(ip("192.168.1.11")),
        learning: Some(false),
        link: Some(2),
        mtu: Some(1450),
        mac: Some(mac.0.to_vec()),
        up: true,
    };
    let act = |d: &DeviceInfo| device_action(d, ip("192.168.1.11"), 2, 1450, mac);
    assert_eq!(act(&good), DeviceAction::Ok);
    for bad in [
        DeviceInfo {
            is_vxlan: false,
            ..good.clone()
        },
        DeviceInfo {
            vni: Some(1),
            ..good.clone()
        },
        DeviceInfo {
            port: Some(8472),
            ..good.clone()
        },
        DeviceInfo {
            local: Some(ip("192.168.1.99")),
            ..good.clone()
        },
        DeviceInfo {
            learning: Some(true),
            ..good.clone()
        },
        DeviceInfo {
            link: Some(3),
            ..good.clone()
        },
    ] {
        assert_eq!(act(&bad), DeviceAction::Recreate, "{bad:?}");
    }
    for fix in [
        DeviceInfo {
            mtu: Some(1500),
            ..good.clone()
        },
        DeviceInfo {
            mac: Some(vec![2, 0, 0, 0, 0, 1]),
            ..good.clone()
        },
        DeviceInfo {
            up: false,
            ..good.clone()
        },
    ] {
        assert_eq!(act(&fix), DeviceAction::Fix, "{fix:?}");
    }
}

#[test]
fn plan_is_empty_when_right_and_removes_only_unwanted() {
    let local = ip("192.168.1.11");
    let b = peer("node-b", "10.244.7.0", "192.168.2.21");
    let c = peer("node-c", "10.244.9.0", "192.168.3.31");
    let arp = [
        ArpEntry {
            ip: b.vtep,
            mac: b.mac,
        },
        ArpEntry {
            ip: c.vtep,
            mac: c.mac,
        },
    ];
    let fdb = [
        FdbEntry {
            mac: b.mac,
            dst: b.underlay,
        },
        FdbEntry {
            mac: c.mac,
            dst: c.underlay,
        },
    ];
    let wanted = [b.clone(), c.clone()];
    assert_eq!(plan_peers(local, &wanted, &arp, &fdb), PeerPlan::default());

    // Node c left: its entries go, b's stay.
    let p = plan_peers(local, std::slice::from_ref(&b), &arp, &fdb);
    assert_eq!(p.del_arp, vec![arp[1]]);
    assert_eq!(p.del_fdb, vec![fdb[1]]);
    assert!(p.set_arp.is_empty() && p.set_fdb.is_empty());

    // Nothing installed: everything is set.
    let p = plan_peers(local, &wanted, &[], &[]);
    assert_eq!(p.set_arp.len(), 2);
    assert_eq!(p.set_fdb.len(), 2);
}

#[test]
fn plan_fixes_changed_mac_and_moved_node() {
    let local = ip("192.168.1.11");
    let b = peer("node-b", "10.244.7.0", "192.168.2.21");
    let stale_arp = [ArpEntry {
        ip: b.vtep,
        mac: Mac([2, 0, 0, 0, 0, 9]),
    }];
    let moved_fdb = [
        FdbEntry {
            mac: b.mac,
            dst: ip("192.168.2.99"),
        },
        FdbEntry {
            mac: b.mac,
            dst: ip("192.168.2.98"),
        },
    ];
    let p = plan_peers(local, std::slice::from_ref(&b), &stale_arp, &moved_fdb);
    assert_eq!(
        p.set_arp,
        vec![ArpEntry {
            ip: b.vtep,
            mac: b.mac
        }]
    );
    assert!(p.del_arp.is_empty(), "replace, not delete: {p:?}");
    assert_eq!(
        p.set_fdb,
        vec![FdbEntry {
            mac: b.mac,
            dst: b.underlay
        }]
    );
    assert_eq!(p.del_fdb, moved_fdb.to_vec());
    // The right destination plus an extra one: only the extra goes.
    let fdb = [
        FdbEntry {
            mac: b.mac,
            dst: b.underlay,
        },
        FdbEntry {
            mac: b.mac,
            dst: ip("192.168.2.98"),
        },
    ];
    let arp = [ArpEntry {
        ip: b.vtep,
        mac: b.mac,
    }];
    let p = plan_peers(local, &[b], &arp, &fdb);
    assert_eq!((p.set_fdb.len(), p.del_fdb.clone()), (0, vec![fdb[1]]));
}

#[test]
fn plan_skips_other_family_and_duplicates_naming_them() {
    let local = ip("192.168.1.11");
    let v6 = peer("node-6", "10.244.8.0", "fd00:2::21");
    let b = peer("node-b", "10.244.7.0", "192.168.2.21");
    let dup = RemoteVtep {
        node: "node-dup".into(),
        ..b.clone()
    };
    let p = plan_peers(local, &[v6, b, dup], &[], &[]);
    assert_eq!(p.set_arp.len(), 1);
    assert_eq!(p.skipped.len(), 2, "{:?}", p.skipped);
    assert!(p.skipped[0].contains("node-6") && p.skipped[0].contains("fd00:2::21"));
    assert!(p.skipped[1].contains("node-dup"));
}

#[test]
fn each_family_has_its_device_and_vni() {
    assert_eq!(device_name(true), "vxlan.tortie");
    assert_eq!(device_name(false), "vxlan-v6.tortie");
    // IFNAMSIZ is 16 with the NUL.
    assert!(device_name(false).len() <= 15);
    assert_eq!((vni(true), vni(false)), (4096, 6096));
    // An IPv6 device is right only with the IPv6 VNI.
    let mac = Mac::for_node("n");
    let v6 = DeviceInfo {
        index: 9,
        is_vxlan: true,
        vni: Some(VXLAN_VNI_V6),
        port: Some(VXLAN_PORT),
        local: Some(ip("fd30:1::11")),
        learning: Some(false),
        link: Some(2),
        mtu: Some(1430),
        mac: Some(mac.0.to_vec()),
        up: true,
    };
    let act = |d: &DeviceInfo| device_action(d, ip("fd30:1::11"), 2, 1430, mac);
    assert_eq!(act(&v6), DeviceAction::Ok);
    let v4_vni = DeviceInfo {
        vni: Some(VXLAN_VNI),
        ..v6
    };
    assert_eq!(act(&v4_vni), DeviceAction::Recreate);
}
