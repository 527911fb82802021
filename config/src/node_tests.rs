//! Tests of `node.rs`: settings layers, defaults and validation.

use super::*;

fn settings(layer: NodeSettingsLayer) -> Result<NodeSettings, String> {
    NodeSettings::from_layer(layer, "host-a").map_err(|e| e.to_string())
}

#[test]
fn ip6_and_router_id() {
    let s = settings(NodeSettingsLayer {
        ip: Some("192.168.1.10/24".into()),
        ip6: Some("fd00:1::10/64".into()),
        router_id: Some("hash".into()),
        ..NodeSettingsLayer::default()
    })
    .unwrap();
    assert_eq!(
        s.address_v6,
        Some(Address6Setting::Explicit("fd00:1::10/64".parse().unwrap()))
    );
    assert_eq!(s.router_id, Some(hashed_router_id("host-a")));
    assert_ne!(hashed_router_id("node1"), hashed_router_id("node2"));
    let s = settings(NodeSettingsLayer {
        ip: Some("fd00:1::10/64".into()),
        router_id: Some("10.0.0.1".into()),
        ..NodeSettingsLayer::default()
    })
    .unwrap();
    assert_eq!(s.address_v6, None);
    let auto = settings(NodeSettingsLayer {
        ip6: Some("autodetect".into()),
        ..NodeSettingsLayer::default()
    })
    .unwrap();
    assert_eq!(auto.address_v6, Some(Address6Setting::Autodetect(None)));
    assert_eq!(s.router_id, Some("10.0.0.1".parse().unwrap()));
    for (ip, ip6, router_id, want) in [
        (None, Some("192.168.1.10/24"), None, "ip6 (--ip6, TORTIE_IP6): 192.168.1.10/24: an IPv6 address; the IPv4"),
        (Some("fd00:1::9/64"), Some("fd00:1::10/64"), None, "ip6 (--ip6, TORTIE_IP6): fd00:1::10/64: ip (--ip, TORTIE_IP) is already an IPv6 address"),
        (None, Some("fd00:1::10"), None, "ip6 (--ip6, TORTIE_IP6): fd00:1::10: an IPv6 address with its prefix length"),
        (None, None, Some("0.0.0.0"), "routerId (--router-id, TORTIE_ROUTER_ID): 0.0.0.0: an IPv4 address other than 0.0.0.0"),
        (None, None, Some("fd00::1"), "routerId (--router-id, TORTIE_ROUTER_ID): fd00::1: an IPv4"),
    ] {
        let e = settings(NodeSettingsLayer {
            ip: ip.map(Into::into),
            ip6: ip6.map(Into::into),
            router_id: router_id.map(Into::into),
            ..NodeSettingsLayer::default()
        })
        .unwrap_err();
        assert!(e.starts_with(want), "{e}");
    }
}

#[test]
fn defaults() {
    let s = settings(NodeSettingsLayer::default()).unwrap();
    assert_eq!(s.node_name, "host-a");
    assert_eq!(
        s.datastore,
        DatastoreSetting::File("/var/lib/tortie".into())
    );
    assert_eq!(
        s.address,
        AddressSetting::Autodetect(Autodetect::FirstFound)
    );
    assert_eq!(s.admin, "127.0.0.1:9099".parse().unwrap());
    assert_eq!(s.state_dir, PathBuf::from("/run/tortie"));
    assert_eq!(s.restart_time, 120);
    assert_eq!(s.log_format, LogFormatSetting::Text);
    assert_eq!(s.ip_forwarding, IpForwardingSetting::Enabled);
}

#[test]
fn ip_forwarding() {
    let f = |v: &str| {
        settings(NodeSettingsLayer {
            ip_forwarding: Some(v.into()),
            ..NodeSettingsLayer::default()
        })
        .map(|s| s.ip_forwarding)
    };
    assert_eq!(f("Enabled"), Ok(IpForwardingSetting::Enabled));
    assert_eq!(f("Disabled"), Ok(IpForwardingSetting::Disabled));
    let file = NodeSettingsLayer::from_yaml("ipForwarding: Disabled\n").unwrap();
    assert_eq!(file.ip_forwarding.as_deref(), Some("Disabled"));
    for bad in ["off", "disabled", "false", ""] {
        let e = f(bad).unwrap_err();
        assert!(
            e.starts_with(&format!(
                "ipForwarding (--ip-forwarding, TORTIE_IP_FORWARDING): {bad:?}: Enabled or Disabled"
            )),
            "{e}"
        );
    }
}

#[test]
fn file_then_flags() {
    let file = NodeSettingsLayer::from_yaml(
        "nodeName: node-1\nip: 192.168.1.10/24\nasNumber: \"1.10\"\nlabels:\n  rack: r1\n\
         datastore: etcd:http://10.0.0.1:2379,http://10.0.0.2:2379\n",
    )
    .unwrap();
    let flags = NodeSettingsLayer {
        ip: Some("10.1.0.5/16".into()),
        ..NodeSettingsLayer::default()
    };
    let s = settings(flags.over(file)).unwrap();
    assert_eq!(s.node_name, "node-1");
    assert_eq!(
        s.address,
        AddressSetting::Explicit("10.1.0.5/16".parse().unwrap())
    );
    assert_eq!(s.as_number, Some(65546));
    assert_eq!(s.labels["rack"], "r1");
    assert_eq!(
        s.datastore,
        DatastoreSetting::Etcd {
            endpoints: vec!["http://10.0.0.1:2379".into(), "http://10.0.0.2:2379".into()],
            prefix: "/tortie/v1".into()
        }
    );
}

#[test]
fn autodetection_methods() {
    let m = |t: &str| parse_autodetect(t, IpFamily::Ipv4).map_err(|e| e.to_string());
    assert_eq!(m("first-found").unwrap(), Autodetect::FirstFound);
    assert_eq!(
        m("interface=eth.*, ens3").unwrap(),
        Autodetect::Interface(vec!["eth.*".into(), "ens3".into()])
    );
    assert_eq!(
        m("skip-interface=docker.*").unwrap(),
        Autodetect::SkipInterface(vec!["docker.*".into()])
    );
    assert_eq!(
        m("cidr=10.0.0.0/8,192.168.0.0/16").unwrap(),
        Autodetect::Cidr(vec![
            "10.0.0.0/8".parse().unwrap(),
            "192.168.0.0/16".parse().unwrap()
        ])
    );
    assert_eq!(
        m("can-reach=8.8.8.8").unwrap(),
        Autodetect::CanReach("8.8.8.8".parse().unwrap())
    );
    assert!(m("interface=(")
        .unwrap_err()
        .contains("not a regular expression"));
    assert!(m("cidr=10.0.0.0").unwrap_err().contains("not a CIDR"));
    assert!(m("can-reach=example.com")
        .unwrap_err()
        .contains("no host names"));
    let e = m("first").unwrap_err();
    assert!(e.starts_with("ipAutodetectionMethod (--ip-autodetection-method, TORTIE_IP_AUTODETECTION_METHOD): first:"), "{e}");
}

#[test]
fn bad_settings_name_the_setting() {
    let bad = |layer: NodeSettingsLayer, want: &str| {
        let e = settings(layer).unwrap_err();
        assert!(e.contains(want), "{e:?} should contain {want:?}");
    };
    bad(
        NodeSettingsLayer {
            ip: Some("192.168.1.10".into()),
            ..Default::default()
        },
        "ip (--ip, TORTIE_IP): 192.168.1.10: give the prefix length too",
    );
    bad(
        NodeSettingsLayer {
            ip: Some("127.0.0.1/8".into()),
            ..Default::default()
        },
        "not a usable node address",
    );
    bad(
        NodeSettingsLayer {
            node_name: Some("Node_1".into()),
            ..Default::default()
        },
        "nodeName (--node-name, TORTIE_NODE_NAME): \"Node_1\": a DNS name",
    );
    bad(
        NodeSettingsLayer {
            datastore: Some("sql:x".into()),
            ..Default::default()
        },
        "datastore (--datastore, TORTIE_DATASTORE): sql:x: file:DIR",
    );
    bad(
        NodeSettingsLayer {
            datastore: Some("etcd:10.0.0.1:2379".into()),
            ..Default::default()
        },
        "needs its scheme",
    );
    bad(
        NodeSettingsLayer {
            admin: Some("localhost".into()),
            ..Default::default()
        },
        "admin (--admin, TORTIE_ADMIN): localhost",
    );
    bad(
        NodeSettingsLayer {
            log_format: Some("xml".into()),
            ..Default::default()
        },
        "logFormat (--log-format, TORTIE_LOG_FORMAT): \"xml\": text or json",
    );
    bad(
        NodeSettingsLayer {
            restart_time: Some(5000),
            ..Default::default()
        },
        "restartTime (--restart-time, TORTIE_RESTART_TIME): 5000",
    );
    bad(
        NodeSettingsLayer {
            as_number: Some(AsNumber(0)),
            ..Default::default()
        },
        "AS 0 is reserved",
    );
    let mut labels = BTreeMap::new();
    labels.insert("bad key".to_string(), "v".to_string());
    bad(
        NodeSettingsLayer {
            labels: Some(labels),
            ..Default::default()
        },
        "a label key",
    );
    let e = NodeSettingsLayer::from_yaml("nodeNmae: x\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("nodeNmae"), "{e}");
}

#[test]
fn labels_flag() {
    let l = parse_labels("rack=r1, zone = a").unwrap();
    assert_eq!(l.len(), 2);
    assert_eq!(l["zone"], "a");
    assert!(parse_labels("rack").unwrap_err().contains("key=value"));
}

#[test]
fn datastore_settings() {
    let k = |t: &str| parse_datastore(t, "/tortie/v1");
    assert_eq!(k("kubernetes").unwrap(), DatastoreSetting::Kubernetes(None));
    assert_eq!(
        k("kubernetes:/etc/kubeconfig").unwrap(),
        DatastoreSetting::Kubernetes(Some(PathBuf::from("/etc/kubeconfig")))
    );
    assert_eq!(
        k("file:/var/lib/tortie").unwrap(),
        DatastoreSetting::File(PathBuf::from("/var/lib/tortie"))
    );
    for bad in ["kubernetes:", "k8s", "file:", "etcd:10.0.0.1:2379"] {
        let e = k(bad).unwrap_err().to_string();
        assert!(e.contains("datastore"), "{bad}: {e}");
    }
}

#[test]
fn ip6_autodetection() {
    let layer = |ip: Option<&str>, ip6: &str, method6: Option<&str>| NodeSettingsLayer {
        ip: ip.map(Into::into),
        ip6: Some(ip6.into()),
        ip6_autodetection_method: method6.map(Into::into),
        ..NodeSettingsLayer::default()
    };
    // IPv6 only: ip none, ip6 autodetect (first-found unless told).
    let s = settings(layer(Some("none"), "autodetect", None)).unwrap();
    assert_eq!(
        (s.address, s.address_v6),
        (AddressSetting::Autodetect6(Autodetect::FirstFound), None)
    );
    let s = settings(layer(Some(" none "), "autodetect", Some("cidr=fd30::/16"))).unwrap();
    assert_eq!(
        s.address,
        AddressSetting::Autodetect6(Autodetect::Cidr(vec!["fd30::/16".parse().unwrap()]))
    );
    let s = settings(layer(Some("none"), "fd30:1::11/64", None)).unwrap();
    assert_eq!(
        (s.address, s.address_v6),
        (
            AddressSetting::Explicit("fd30:1::11/64".parse().unwrap()),
            None
        )
    );
    // Dual stack: the method, or None (the IPv4 address's interface).
    let s = settings(layer(None, "autodetect", Some("can-reach=2001:db8::1"))).unwrap();
    assert_eq!(
        s.address_v6,
        Some(Address6Setting::Autodetect(Some(Autodetect::CanReach(
            "2001:db8::1".parse().unwrap()
        ))))
    );
    // The file key.
    let file = NodeSettingsLayer::from_yaml(
        "ip: none\nip6: autodetect\nip6AutodetectionMethod: interface=eth1\n",
    )
    .unwrap();
    assert_eq!(
        settings(file).unwrap().address,
        AddressSetting::Autodetect6(Autodetect::Interface(vec!["eth1".into()]))
    );
    const IP6M: &str =
        "ip6AutodetectionMethod (--ip6-autodetection-method, TORTIE_IP6_AUTODETECTION_METHOD)";
    for (ip, ip6, method6, want) in [
        (Some("none"), "none", None, "ip (--ip, TORTIE_IP): none: none is an IPv6-only node: set ip6 (--ip6, TORTIE_IP6)".to_string()),
        (Some("none"), "10.0.0.1/8", None, "ip6 (--ip6, TORTIE_IP6): 10.0.0.1/8: an IPv6 address".into()),
        (Some("fd00:1::9/64"), "autodetect", None, "ip6 (--ip6, TORTIE_IP6): autodetect: ip (--ip, TORTIE_IP) is already an IPv6 address".into()),
        (None, "autodetect", Some("first"), format!("{IP6M}: first: first-found, interface=")),
        (None, "autodetect", Some("cidr=10.0.0.0/8"), format!("{IP6M}: cidr=10.0.0.0/8: 10.0.0.0/8 is an IPv4 address: ip6AutodetectionMethod finds the IPv6 address; put it in ipAutodetectionMethod (--ip-autodetection-method")),
        (None, "autodetect", Some("can-reach=8.8.8.8"), format!("{IP6M}: can-reach=8.8.8.8: 8.8.8.8 is an IPv4 address")),
        (None, "autodetect", Some("cidr=fd00::"), format!("{IP6M}: cidr=fd00::: \"fd00::\" is not a CIDR (fd00::/8)")),
        (None, "autodetect", Some("interface=("), format!("{IP6M}: interface=(: \"(\" is not a regular expression")),
    ] {
        let e = settings(layer(ip, ip6, method6)).unwrap_err();
        assert!(e.starts_with(&want), "{e}\nwanted {want}");
    }
    // ipAutodetectionMethod is IPv4's: IPv6 values name the IPv6 setting.
    for bad in ["cidr=10.0.0.0/8,fd00::/8", "can-reach=2001:db8::1"] {
        let e = parse_autodetect(bad, IpFamily::Ipv4)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("ipAutodetectionMethod (--ip-autodetection-method, TORTIE_IP_AUTODETECTION_METHOD)")
                && e.contains("is an IPv6 address: ipAutodetectionMethod finds the IPv4 address; put it in ip6AutodetectionMethod (--ip6-autodetection-method, TORTIE_IP6_AUTODETECTION_METHOD)"),
            "{e}"
        );
    }
}
