use tortie_config::resources::{
    BGPConfigurationSpec, IPPoolSpec, NodeBgpSpec, NodeSpec, Object, Resource,
};

use super::*;

fn entries(cidrs: &[&str]) -> Vec<CidrEntry> {
    cidrs
        .iter()
        .map(|c| CidrEntry {
            cidr: c.to_string(),
        })
        .collect()
}

/// A cluster with pool 10.244.0.0/16, nodes n1..n3, and the default
/// BGPConfiguration's service ranges as given.
fn cluster(cluster_ips: &[&str], external: &[&str], lb: &[&str]) -> Cluster {
    let mut c = Cluster::default();
    for (i, name) in ["n1", "n2", "n3"].iter().enumerate() {
        c.upsert(Resource::Node(Object::new(
            *name,
            NodeSpec {
                bgp: Some(NodeBgpSpec {
                    ipv4_address: Some(format!("192.168.1.{}/24", 11 + i).parse().unwrap()),
                    ..NodeBgpSpec::default()
                }),
                ..NodeSpec::default()
            },
        )));
    }
    c.upsert(Resource::IPPool(Object::new(
        "default",
        IPPoolSpec::new("10.244.0.0/16".parse().unwrap()),
    )));
    let spec = BGPConfigurationSpec {
        service_cluster_ips: entries(cluster_ips),
        service_external_ips: entries(external),
        service_load_balancer_ips: entries(lb),
        ..BGPConfigurationSpec::default()
    };
    c.upsert(Resource::BGPConfiguration(Object::new("default", spec)));
    c
}

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|a| a.parse().unwrap()).collect()
}

fn service(kind: &str, cluster_ip: &str, external: &[&str], local: bool) -> ServiceInfo {
    ServiceInfo {
        kind: kind.into(),
        cluster_ips: ips(&[cluster_ip]),
        external_ips: ips(external),
        requested_load_balancer_ip: None,
        load_balancer_ips: Vec::new(),
        external_local: local,
    }
}

fn ready_on(nodes: &[&str]) -> EndpointsInfo {
    EndpointsInfo {
        ready_nodes: nodes.iter().map(|n| n.to_string()).collect(),
    }
}

/// What node `name` announces.
fn announced(c: &Cluster, name: &str) -> Vec<String> {
    let (ranges, _) = ranges(c);
    advertised(&ranges, &c.services, &c.facts(name).unwrap())
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn ranges_from_every_node_single_addresses_not_as_ranges() {
    let c = cluster(
        &["10.96.0.0/16"],
        &["203.0.113.0/24", "198.51.100.7/32"],
        &["192.0.2.0/25", "192.0.2.200/32"],
    );
    let want = ["10.96.0.0/16", "192.0.2.0/25", "203.0.113.0/24"];
    for n in ["n1", "n2", "n3"] {
        assert_eq!(announced(&c, n), want, "{n}");
    }
    // A node that says it is out of load balancing announces nothing.
    let mut c = c;
    let mut n2 = c.nodes["n2"].clone();
    n2.metadata
        .labels
        .insert(EXCLUDE_LABEL.into(), "true".into());
    c.upsert(Resource::Node(n2));
    assert!(announced(&c, "n2").is_empty());
    assert_eq!(announced(&c, "n1"), want);
}

#[test]
fn bad_ranges_are_named_by_field_and_the_others_announced() {
    let mut c = cluster(
        &["10.96.0.0/16", "banana", "10.97.0.1/16"],
        &["10.244.128.0/24", "0.0.0.0/0", "203.0.113.0/24"],
        &[],
    );
    // Calico reads only `default`'s ranges.
    let spec = BGPConfigurationSpec {
        service_external_ips: entries(&["198.51.100.0/24"]),
        ..BGPConfigurationSpec::default()
    };
    c.upsert(Resource::BGPConfiguration(Object::new("node.n1", spec)));
    let (r, problems) = ranges(&c);
    assert_eq!(r.cluster, vec!["10.96.0.0/16".parse::<IpNet>().unwrap()]);
    assert_eq!(r.external, vec!["203.0.113.0/24".parse::<IpNet>().unwrap()]);
    let got: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(got.len(), 5, "{got:#?}");
    let has = |needle: &str| got.iter().any(|p| p.contains(needle));
    assert!(has(
        "BGPConfiguration/default: spec.serviceClusterIPs[1].cidr: \"banana\" is not a CIDR"
    ));
    assert!(has(
        "spec.serviceClusterIPs[2].cidr: \"10.97.0.1/16\" has host bits set: write 10.97.0.0/16"
    ));
    assert!(has(
        "spec.serviceExternalIPs[0].cidr: 10.244.128.0/24 overlaps IPPool/default (10.244.0.0/16)"
    ));
    assert!(has(
        "spec.serviceExternalIPs[1].cidr: 0.0.0.0/0 is a default route"
    ));
    assert!(has(
        "BGPConfiguration/node.n1: spec.serviceExternalIPs: 1 range(s) ignored"
    ));
    assert_eq!(announced(&c, "n1"), ["10.96.0.0/16", "203.0.113.0/24"]);
}

#[test]
fn local_services_only_from_nodes_with_a_ready_endpoint() {
    let mut c = cluster(&["10.96.0.0/16"], &["203.0.113.0/24"], &["192.0.2.0/24"]);
    let mut web = service(
        "LoadBalancer",
        "10.96.0.10",
        &["203.0.113.7", "8.8.8.8"],
        true,
    );
    web.load_balancer_ips = ips(&["192.0.2.9", "198.18.0.1"]);
    c.services.services.insert("shop/web".into(), web);
    c.services
        .endpoints
        .insert("shop/web".into(), ready_on(&["n2"]));
    // n2 runs the endpoint: the service's addresses inside the ranges, as
    // /32s (8.8.8.8 and 198.18.0.1 are in no range: never).
    assert_eq!(
        announced(&c, "n2"),
        [
            "10.96.0.0/16",
            "10.96.0.10/32",
            "192.0.2.0/24",
            "192.0.2.9/32",
            "203.0.113.0/24",
            "203.0.113.7/32"
        ]
    );
    // n1 and n3 do not: just the ranges.
    for n in ["n1", "n3"] {
        assert_eq!(
            announced(&c, n),
            ["10.96.0.0/16", "192.0.2.0/24", "203.0.113.0/24"],
            "{n}"
        );
    }
    // Not ready (or moved): withdrawn from n2, announced by n3.
    assert!(c.services.apply(
        ServiceEvent::Endpoints("shop/web".into(), Some(ready_on(&["n3"]))),
        "n2"
    ));
    assert!(!announced(&c, "n2").contains(&"203.0.113.7/32".to_string()));
    assert!(announced(&c, "n3").contains(&"203.0.113.7/32".to_string()));
    // Gone: from nobody. The change concerned n3 (it had it), not n1.
    let gone = ServiceEvent::Endpoints("shop/web".into(), None);
    assert!(!c.services.clone().apply(gone.clone(), "n1"));
    assert!(c.services.apply(gone, "n3"));
    assert!(!announced(&c, "n3").contains(&"203.0.113.7/32".to_string()));
    // A headless or ExternalName service is never announced.
    c.services
        .endpoints
        .insert("shop/web".into(), ready_on(&["n1"]));
    c.services
        .services
        .get_mut("shop/web")
        .unwrap()
        .cluster_ips
        .clear();
    assert_eq!(announced(&c, "n1").len(), 3);
    let name_only = service("ExternalName", "10.96.0.11", &["203.0.113.8"], true);
    c.services.services.insert("shop/alias".into(), name_only);
    c.services
        .endpoints
        .insert("shop/alias".into(), ready_on(&["n1"]));
    assert_eq!(announced(&c, "n1").len(), 3);
}

#[test]
fn cluster_services_only_for_single_address_ranges() {
    let mut c = cluster(
        &["10.96.0.0/16"],
        &["203.0.113.0/24", "198.51.100.7/32"],
        &["192.0.2.0/24", "192.0.2.200/32"],
    );
    // Policy Cluster, external IP in a /24: covered by the range, no /32,
    // whatever the endpoints.
    c.services.services.insert(
        "a/ranged".into(),
        service("NodePort", "10.96.0.20", &["203.0.113.20"], false),
    );
    c.services
        .endpoints
        .insert("a/ranged".into(), ready_on(&["n1"]));
    // Policy Cluster, external IP listed as a /32: from every node, with
    // its cluster IP, endpoints or not.
    c.services.services.insert(
        "a/pinned".into(),
        service("ClusterIP", "10.96.0.21", &["198.51.100.7"], false),
    );
    // Policy Cluster, a LoadBalancer whose requested address is a /32 entry.
    let mut lb = service("LoadBalancer", "10.96.0.22", &[], false);
    lb.requested_load_balancer_ip = Some("192.0.2.200".parse().unwrap());
    lb.load_balancer_ips = ips(&["192.0.2.200"]);
    c.services.services.insert("a/lb".into(), lb.clone());
    // The same as a NodePort: the load balancer rule is for LoadBalancers.
    lb.kind = "NodePort".into();
    c.services.services.insert("a/np".into(), lb);
    for n in ["n1", "n2", "n3"] {
        assert_eq!(
            announced(&c, n),
            [
                "10.96.0.0/16",
                "10.96.0.21/32",
                "10.96.0.22/32",
                "192.0.2.0/24",
                "192.0.2.200/32",
                "198.51.100.7/32",
                "203.0.113.0/24"
            ],
            "{n}"
        );
    }
}

#[test]
fn listing_and_service_changes_concern_every_node() {
    let mut view = ServiceView::default();
    let listed = ServiceEvent::Listed {
        services: [(
            "a/b".to_string(),
            service("ClusterIP", "10.96.0.1", &[], true),
        )]
        .into(),
        endpoints: [("a/b".to_string(), ready_on(&["n9"]))].into(),
    };
    assert!(view.apply(listed.clone(), "n1"));
    assert!(!view.apply(listed, "n1"), "the same listing again");
    assert!(view.apply(
        ServiceEvent::Service("a/c".into(), Some(ServiceInfo::default())),
        "n1"
    ));
    assert!(view.apply(ServiceEvent::Service("a/c".into(), None), "n1"));
    assert!(!view.apply(ServiceEvent::Service("a/c".into(), None), "n1"));
    assert!(!view.apply(ServiceEvent::Trouble("x".into()), "n1"));
    assert!(!view.apply(
        ServiceEvent::Endpoints("a/b".into(), Some(ready_on(&["n8"]))),
        "n1"
    ));
    assert!(view.apply(
        ServiceEvent::Endpoints("a/b".into(), Some(ready_on(&["n1"]))),
        "n1"
    ));
}

#[test]
fn originated_with_the_node_as_next_hop() {
    let mut c = cluster(&["10.96.0.0/16", "fd00:96::/108"], &[], &[]);
    c.services
        .services
        .insert("a/b".into(), service("ClusterIP", "10.96.0.1", &[], true));
    c.services.endpoints.insert("a/b".into(), ready_on(&["n1"]));
    let me = c.facts("n1").unwrap();
    let (out, problems) = crate::routes::originated(&c, &me, None);
    let host: IpNet = "10.96.0.1/32".parse().unwrap();
    let range: IpNet = "10.96.0.0/16".parse().unwrap();
    for p in [host, range] {
        assert_eq!(
            out[&p].attrs.next_hop,
            bgp_speaker::NextHop::V4("192.168.1.11".parse().unwrap()),
            "{p}"
        );
    }
    // No IPv6 address on the node: the v6 range is named, not announced.
    assert_eq!(out.len(), 2, "{out:?}");
    let got: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].contains("service prefix fd00:96::/108"), "{got:?}");
}
