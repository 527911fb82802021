//! The schemas of `deploy/crds.yaml` against a real API server
//! (`tortie_testkit::k8s`, v1.20.2): Calico manifests apply unchanged and
//! keep every field (also those we only warn about or refuse: the API
//! server must not prune them before the agents see them); bad values are
//! refused by the API server with the field named; and what our code
//! writes in every kind reads back equal, field for field.

use serde_json::{json, Value};
use tortie_config::resources::compat::{self, Support};
use tortie_config::resources::{
    AffinityState, AllocationAttribute, AsNumber, BlockAffinitySpec, BlockSpec, EncapMode,
    HandleSpec, Key, Kind, Object, Resource,
};
use tortie_datastore::{Datastore, KubeStore, Versioned};
use tortie_testkit::k8s::ControlPlane;

/// Calico manifests as Calico users write them.
const CALICO: &str = r#"
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata:
  name: default
spec:
  logSeverityScreen: Info
  nodeToNodeMeshEnabled: false
  asNumber: 64512
  serviceClusterIPs:
    - cidr: 10.96.0.0/12
  ignoredInterfaces:
    - eth9
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: rack1-tor
spec:
  peerIP: 192.20.30.40
  asNumber: "1.10"
  nodeSelector: rack == 'rack-1'
  keepOriginalNextHop: true
  password:
    secretKeyRef:
      name: bgp-secrets
      key: rr-password
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: peer-with-route-reflectors
spec:
  nodeSelector: "!has(route-reflector)"
  peerSelector: has(route-reflector)
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: ipv4-pool
spec:
  cidr: 10.244.0.0/16
  ipipMode: CrossSubnet
  vxlanMode: Never
  natOutgoing: true
  blockSize: 26
  nodeSelector: all()
---
apiVersion: projectcalico.org/v3
kind: BGPFilter
metadata:
  name: my-filter
spec:
  exportV4:
    - action: Accept
      matchOperator: In
      cidr: 77.0.0.0/16
      source: RemotePeers
    - action: Reject
      interface: '*.calico'
  importV4:
    - action: Accept
      matchOperator: In
      cidr: 55.0.0.0/16
      prefixLength:
        min: 30
    - action: Reject
      matchOperator: NotIn
      cidr: 44.0.0.0/16
  exportV6:
    - action: Reject
      source: RemotePeers
  importV6:
    - action: Accept
      matchOperator: Equal
      cidr: 5000::0/64
    - action: Reject
---
apiVersion: projectcalico.org/v3
kind: CalicoNodeStatus
metadata:
  name: debug-node-0
spec:
  classes:
    - Agent
    - BGP
    - Routes
  node: node-0
  updatePeriodSeconds: 10
status:
  lastUpdated: "2021-10-18T13:00:25Z"
  bgp:
    numberEstablishedV4: 1
    numberEstablishedV6: 0
    numberNotEstablishedV4: 0
    numberNotEstablishedV6: 0
"#;

/// A Calico field we refuse: the schema must let it through, for the agent
/// to refuse it by name.
const REFUSED: &str = r#"
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: local-as
spec:
  peerIP: 10.0.0.9
  asNumber: 65009
  localASNumber: 65010
"#;

/// Objects the API server must refuse: (what, name, manifest, the field
/// its error must name; the API server names a list's items without
/// their index).
const BAD: &[(&str, &str, &str, &str)] = &[
    (
        "an ipipMode that is not one",
        "ippool/bad-ipip",
        "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: bad-ipip}\nspec: {cidr: 10.1.0.0/16, ipipMode: Sometimes}\n",
        "spec.ipipMode",
    ),
    (
        "an IPPool without cidr",
        "ippool/no-cidr",
        "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: no-cidr}\nspec: {natOutgoing: true}\n",
        "spec.cidr",
    ),
    (
        "a blockSize out of range",
        "ippool/bad-block-size",
        "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: bad-block-size}\nspec: {cidr: 10.2.0.0/16, blockSize: 200}\n",
        "spec.blockSize",
    ),
    (
        "a listenPort out of range",
        "bgpconfiguration/bad-port",
        "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: bad-port}\nspec: {listenPort: 70000}\n",
        "spec.listenPort",
    ),
    (
        "a sourceAddress that is not one",
        "bgppeer/bad-source",
        "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: bad-source}\nspec: {peerIP: 10.0.0.1, asNumber: 65001, sourceAddress: Elsewhere}\n",
        "spec.sourceAddress",
    ),
    (
        "a BGPFilter action that is not one",
        "bgpfilter/bad-action",
        "apiVersion: projectcalico.org/v3\nkind: BGPFilter\nmetadata: {name: bad-action}\nspec: {exportV4: [{action: Drop}]}\n",
        "spec.exportV4.action",
    ),
    (
        "a BGPFilter matchOperator that is not one",
        "bgpfilter/bad-operator",
        "apiVersion: projectcalico.org/v3\nkind: BGPFilter\nmetadata: {name: bad-operator}\nspec: {importV6: [{action: Accept, matchOperator: Within, cidr: 'fd00::/8'}]}\n",
        "spec.importV6.matchOperator",
    ),
    (
        "a BGPFilter rule without action",
        "bgpfilter/no-action",
        "apiVersion: projectcalico.org/v3\nkind: BGPFilter\nmetadata: {name: no-action}\nspec: {importV4: [{source: RemotePeers}]}\n",
        "spec.importV4.action",
    ),
    (
        "a BGPFilter prefix length over 32",
        "bgpfilter/long",
        "apiVersion: projectcalico.org/v3\nkind: BGPFilter\nmetadata: {name: long}\nspec: {importV4: [{action: Accept, matchOperator: In, cidr: 10.0.0.0/8, prefixLength: {max: 33}}]}\n",
        "spec.importV4.prefixLength.max",
    ),
    (
        "a failureDetectionMode that is not one",
        "bgppeer/bad-bfd-mode",
        "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: bad-bfd-mode}\nspec: {peerIP: 10.0.0.1, asNumber: 65001, failureDetectionMode: Sometimes}\n",
        "spec.failureDetectionMode",
    ),
    (
        "a BFD interval without its unit",
        "bgppeer/bad-bfd-interval",
        "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: bad-bfd-interval}\nspec: {peerIP: 10.0.0.1, asNumber: 65001, bfd: {enabled: true, minRx: '100'}}\n",
        "spec.bfd.minRx",
    ),
    (
        "a BFD multiplier of 0",
        "bgppeer/bad-bfd-mult",
        "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata: {name: bad-bfd-mult}\nspec: {peerIP: 10.0.0.1, asNumber: 65001, bfd: {enabled: true, multiplier: 0}}\n",
        "spec.bfd.multiplier",
    ),
    (
        "a community value that is not one",
        "bgpconfiguration/bad-community",
        "apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\nmetadata: {name: bad-community}\nspec: {communities: [{name: x, value: gold}]}\n",
        "spec.communities.value",
    ),
    (
        "an updatePeriodSeconds over a day",
        "caliconodestatus/bad-period",
        "apiVersion: projectcalico.org/v3\nkind: CalicoNodeStatus\nmetadata: {name: bad-period}\nspec: {node: n1, classes: [BGP], updatePeriodSeconds: 86401}\n",
        "spec.updatePeriodSeconds",
    ),
    (
        "a class that is not one",
        "caliconodestatus/bad-class",
        "apiVersion: projectcalico.org/v3\nkind: CalicoNodeStatus\nmetadata: {name: bad-class}\nspec: {node: n1, classes: [Bgp]}\n",
        "spec.classes",
    ),
    (
        "a CalicoNodeStatus without node",
        "caliconodestatus/no-node",
        "apiVersion: projectcalico.org/v3\nkind: CalicoNodeStatus\nmetadata: {name: no-node}\nspec: {classes: [BGP]}\n",
        "spec.node",
    ),
];

/// Writes `manifest` to a file and runs `kubectl apply -f` on it, with
/// kubectl's own checks or (`validate` false) only the API server's.
fn apply(
    plane: &ControlPlane,
    name: &str,
    manifest: &str,
    validate: bool,
) -> Result<String, String> {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join(format!("{name}.yaml"));
    std::fs::write(&file, manifest).expect("write the manifest");
    let file = file.display().to_string();
    let mut args = vec!["apply", "-f", &file];
    if !validate {
        args.push("--validate=false");
    }
    plane.kubectl(&args)
}

/// `kubectl get WHAT -o json`, parsed.
fn get_json(plane: &ControlPlane, what: &str) -> Value {
    let out = plane
        .kubectl(&["get", what, "-o", "json"])
        .unwrap_or_else(|e| panic!("{e}"));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{what}: {e}: {out}"))
}

/// A resource from a `tortie.io/v1` document, validated as loading does.
fn ours(document: Value) -> Resource {
    let (resource, warnings) = Resource::from_value(document).unwrap_or_else(|e| panic!("{e}"));
    assert!(warnings.is_empty(), "{warnings:?}");
    resource
}

/// Creates `resource` through the store and reads it back: equal, and the
/// object the API server keeps has exactly the spec we serialize (nothing
/// pruned, nothing defaulted).
async fn round_trip(s: &KubeStore, plane: &ControlPlane, resource: Resource) -> Versioned {
    let mut want = resource.clone();
    want.validate().unwrap();
    let key = resource.key();
    let made = s
        .create(resource)
        .await
        .unwrap_or_else(|e| panic!("create {key}: {e}"));
    assert_eq!(made.resource, want);
    let got = s.get(&key).await.unwrap().expect("created");
    assert_eq!(got, made, "{key} read back");
    let resource = match key.kind {
        Kind::Block => "ipamblock",
        Kind::BlockAffinity => "blockaffinity",
        Kind::Handle => "ipamhandle",
        kind => kind.as_str(),
    };
    let stored = get_json(plane, &format!("{resource}/{}", key.name));
    assert_eq!(stored["spec"], want.to_value()["spec"], "{key} as stored");
    assert_eq!(
        stored.get("status"),
        want.to_value().get("status"),
        "{key}'s status as stored"
    );
    made
}

/// Calico manifests apply unchanged and nothing is pruned; bad values are
/// refused by the API server, the field named; our objects of every kind
/// served as a custom resource read back equal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemas_check_values_and_keep_every_field() {
    let Some(plane) = ControlPlane::start("kubernetes CRD schemas") else {
        return;
    };
    let crds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/crds.yaml");
    plane.apply(&crds).unwrap_or_else(|e| panic!("{e}"));
    let s = KubeStore::connect(Some(&plane.kubeconfig())).await.unwrap();

    // Calico manifests, with kubectl's own checks as users run it.
    apply(&plane, "calico", CALICO, true).unwrap_or_else(|e| panic!("{e}"));
    let config = get_json(&plane, "bgpconfiguration/default");
    assert_eq!(config["spec"]["asNumber"], json!(64512));
    assert_eq!(config["spec"]["nodeToNodeMeshEnabled"], json!(false));
    assert_eq!(config["spec"]["logSeverityScreen"], json!("Info"));
    assert_eq!(
        config["spec"]["serviceClusterIPs"],
        json!([{"cidr": "10.96.0.0/12"}])
    );
    // A field we only warn about: still there for the agent to warn.
    assert!(compat::TABLE
        .iter()
        .any(|e| e.kind == Some(Kind::BGPConfiguration)
            && e.field == "spec.ignoredInterfaces"
            && e.support == Support::Warned));
    assert_eq!(
        config["spec"]["ignoredInterfaces"],
        json!(["eth9"]),
        "not pruned: {config}"
    );
    let peer = get_json(&plane, "bgppeer/rack1-tor");
    assert_eq!(
        peer["spec"],
        json!({
            "peerIP": "192.20.30.40",
            "asNumber": "1.10",
            "nodeSelector": "rack == 'rack-1'",
            "keepOriginalNextHop": true,
            "password": {"secretKeyRef": {"name": "bgp-secrets", "key": "rr-password"}},
        })
    );
    let pool = get_json(&plane, "ippool/ipv4-pool");
    assert_eq!(
        pool["spec"],
        json!({
            "cidr": "10.244.0.0/16",
            "ipipMode": "CrossSubnet",
            "vxlanMode": "Never",
            "natOutgoing": true,
            "blockSize": 26,
            "nodeSelector": "all()",
        })
    );

    // A status in a user's manifest is not written: the status is a
    // subresource, written by the node alone.
    let calico_status = get_json(&plane, "caliconodestatus/debug-node-0");
    assert_eq!(calico_status["spec"]["updatePeriodSeconds"], json!(10));
    assert_eq!(
        calico_status["spec"]["classes"],
        json!(["Agent", "BGP", "Routes"])
    );
    assert!(
        calico_status.get("status").is_none(),
        "status written by apply: {calico_status}"
    );

    // The agent reads them.
    let get = |kind, name: &'static str| {
        let s = &s;
        async move {
            s.get(&Key::new(kind, name))
                .await
                .unwrap_or_else(|e| panic!("{kind}/{name}: {e}"))
                .unwrap_or_else(|| panic!("{kind}/{name} missing"))
                .resource
        }
    };
    let Resource::BGPConfiguration(c) = get(Kind::BGPConfiguration, "default").await else {
        unreachable!()
    };
    assert_eq!(
        (c.spec.as_number, c.spec.node_to_node_mesh_enabled),
        (AsNumber(64512), false)
    );
    let Resource::BGPPeer(p) = get(Kind::BGPPeer, "rack1-tor").await else {
        unreachable!()
    };
    assert_eq!(p.spec.as_number, Some(AsNumber(65546)), "asdot 1.10");
    assert!(p.spec.keep_original_next_hop);
    let key_ref = p.spec.password.and_then(|p| p.secret_key_ref).unwrap();
    assert_eq!(
        (key_ref.name.as_str(), key_ref.key.as_str()),
        ("bgp-secrets", "rr-password")
    );
    let Resource::BGPPeer(p) = get(Kind::BGPPeer, "peer-with-route-reflectors").await else {
        unreachable!()
    };
    assert_eq!(
        p.spec.peer_selector.map(|s| s.to_string()).as_deref(),
        Some("has(route-reflector)")
    );
    let Resource::CalicoNodeStatus(n) = get(Kind::CalicoNodeStatus, "debug-node-0").await else {
        unreachable!()
    };
    assert_eq!(
        (
            n.spec.node.as_str(),
            n.spec.update_period_seconds,
            n.spec.status
        ),
        ("node-0", Some(10), None)
    );
    let Resource::IPPool(p) = get(Kind::IPPool, "ipv4-pool").await else {
        unreachable!()
    };
    assert_eq!(
        (
            p.spec.ipip_mode,
            p.spec.vxlan_mode,
            p.spec.nat_outgoing,
            p.spec.block_size
        ),
        (EncapMode::CrossSubnet, EncapMode::Never, true, Some(26))
    );

    // Calico's BGPFilter sample, every rule kept and read.
    let filter = get_json(&plane, "bgpfilter/my-filter");
    assert_eq!(
        filter["spec"]["importV4"][0],
        json!({"action": "Accept", "matchOperator": "In", "cidr": "55.0.0.0/16", "prefixLength": {"min": 30}}),
        "not pruned: {filter}"
    );
    assert_eq!(
        filter["spec"]["exportV4"][1]["interface"],
        json!("*.calico")
    );
    let Resource::BGPFilter(f) = get(Kind::BGPFilter, "my-filter").await else {
        unreachable!()
    };
    assert_eq!(
        (
            f.spec.export_v4.len(),
            f.spec.import_v4.len(),
            f.spec.export_v6.len(),
            f.spec.import_v6.len()
        ),
        (2, 2, 1, 2)
    );

    // A field we refuse reaches the agent, which names it.
    apply(&plane, "refused", REFUSED, true).unwrap_or_else(|e| panic!("{e}"));
    let refused = get_json(&plane, "bgppeer/local-as");
    assert_eq!(
        refused["spec"]["localASNumber"],
        json!(65010),
        "not pruned: {refused}"
    );
    match s.get(&Key::new(Kind::BGPPeer, "local-as")).await {
        Err(e) => assert!(e.to_string().contains("spec.localASNumber"), "{e}"),
        Ok(v) => panic!("spec.localASNumber not refused: {v:?}"),
    }
    plane.kubectl(&["delete", "bgppeer", "local-as"]).unwrap();

    // Refused by the API server (kubectl's own checks off), field named.
    let mut failures = Vec::new();
    for &(what, object, manifest, field) in BAD {
        let name = object.split_once('/').unwrap().1;
        match apply(&plane, name, manifest, false) {
            Ok(out) => failures.push(format!("{what}: accepted: {out}")),
            Err(e) if !(e.contains(" is invalid: ") && e.contains(field)) => {
                failures.push(format!("{what}: refused without naming {field}: {e}"))
            }
            Err(_) => {}
        }
        if plane.kubectl(&["get", object]).is_ok() {
            failures.push(format!("{what}: {object} exists"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // What our code writes, in every kind, reads back equal.
    round_trip(
        &s,
        &plane,
        ours(json!({
            "apiVersion": "tortie.io/v1",
            "kind": "BGPConfiguration",
            "metadata": {"name": "node.n1", "labels": {"rack": "a"}},
            "spec": {
                "asNumber": 4_200_000_000u32,
                "nodeToNodeMeshEnabled": false,
                "listenPort": 1790,
                "logSeverityScreen": "Debug",
                "serviceClusterIPs": [{"cidr": "10.96.0.0/12"}],
                "serviceExternalIPs": [{"cidr": "192.0.2.0/24"}],
                "serviceLoadBalancerIPs": [{"cidr": "fd00:10::/112"}],
                "communities": [{"name": "gold", "value": "65000:100"}],
                "prefixAdvertisements": [
                    {"cidr": "10.244.0.0/16", "communities": ["gold", "65000:1:2"]},
                ],
                "nodeMeshMaxRestartTime": "200s",
            },
        })),
    )
    .await;
    round_trip(
        &s,
        &plane,
        ours(json!({
            "apiVersion": "tortie.io/v1",
            "kind": "BGPPeer",
            "metadata": {"name": "tor", "annotations": {"example.com/note": "rack a"}},
            "spec": {
                "nodeSelector": "rack == 'a'",
                "peerIP": "[fd00::1]:1790",
                "asNumber": "1.10",
                "keepOriginalNextHop": true,
                "advertisePoolAggregates": true,
                "sourceAddress": "None",
                "password": {"file": "/etc/tortie/bgp-password"},
                "keepaliveTime": "1m30s",
                "filters": ["edge", "no-default"],
                "maxRestartTime": "300s",
                "numAllowedLocalASNumbers": 2,
                "failureDetectionMode": "BFDIfDirectlyConnected",
                "bfd": {"minRx": "100ms", "minTx": "0.1s", "multiplier": 5},
            },
        })),
    )
    .await;
    round_trip(
        &s,
        &plane,
        ours(json!({
            "apiVersion": "tortie.io/v1",
            "kind": "BGPFilter",
            "metadata": {"name": "edge"},
            "spec": {
                "exportV4": [
                    {"cidr": "10.244.1.0/26", "matchOperator": "Equal", "action": "Reject"},
                    {"cidr": "10.0.0.0/8", "matchOperator": "NotIn", "prefixLength": {"min": 16, "max": 24}, "source": "RemotePeers", "action": "Accept"},
                ],
                "importV6": [{"interface": "eth*", "action": "Reject"}],
            },
        })),
    )
    .await;
    round_trip(
        &s,
        &plane,
        ours(json!({
            "apiVersion": "tortie.io/v1",
            "kind": "BGPPeer",
            "metadata": {"name": "to-reflectors"},
            "spec": {
                "node": "n1",
                "peerSelector": "has(route-reflector)",
                "password": {"secretKeyRef": {"name": "bgp", "key": "mesh"}},
                "keepaliveTime": 20,
                "bfd": {"enabled": true},
            },
        })),
    )
    .await;
    round_trip(
        &s,
        &plane,
        ours(json!({
            "apiVersion": "tortie.io/v1",
            "kind": "IPPool",
            "metadata": {"name": "pool-v4"},
            "spec": {
                "cidr": "10.250.0.0/16",
                "blockSize": 28,
                "vxlanMode": "CrossSubnet",
                "natOutgoing": true,
                "disabled": true,
                "disableBGPExport": true,
                "nodeSelector": "zone in {'z1', 'z2'}",
                "allowedUses": ["Workload"],
            },
        })),
    )
    .await;
    round_trip(
        &s,
        &plane,
        ours(json!({
            "apiVersion": "tortie.io/v1",
            "kind": "IPPool",
            "metadata": {"name": "pool-v6"},
            "spec": {"cidr": "fd00:244::/64"},
        })),
    )
    .await;

    // IPAM: a block with one address allocated (slot 0: index 0 of the
    // attributes; the rest null) and an unclaimed one, an affinity, a
    // handle.
    let cidr = "10.244.7.0/26".parse().unwrap();
    let mut block = BlockSpec::new(cidr, Some("host:n1".into()));
    let slot = block.unallocated.remove(0);
    block.allocations[slot as usize] = Some(0);
    block.attributes.push(AllocationAttribute {
        handle_id: Some("k8s-pod-network.c1.eth0".into()),
        secondary: [
            ("namespace".to_string(), "default".to_string()),
            ("pod".to_string(), "web-1".to_string()),
            ("node".to_string(), "n1".to_string()),
        ]
        .into_iter()
        .collect(),
    });
    block.attributes.push(AllocationAttribute {
        handle_id: None,
        secondary: Default::default(),
    });
    let made = round_trip(
        &s,
        &plane,
        Resource::Block(Object::new(BlockSpec::name_for(&cidr), block)),
    )
    .await;
    let Resource::Block(b) = &made.resource else {
        unreachable!()
    };
    assert_eq!(
        (b.spec.allocations[0], b.spec.allocations[1]),
        (Some(0), None)
    );
    let free = "fd00:244::/122".parse().unwrap();
    let mut block = BlockSpec::new(free, None);
    block.deleted = true;
    round_trip(
        &s,
        &plane,
        Resource::Block(Object::new(BlockSpec::name_for(&free), block)),
    )
    .await;
    round_trip(
        &s,
        &plane,
        Resource::BlockAffinity(Object::new(
            "n1-10-244-7-0-26",
            BlockAffinitySpec {
                node: "n1".into(),
                cidr,
                state: AffinityState::Confirmed,
                deleted: false,
            },
        )),
    )
    .await;
    round_trip(
        &s,
        &plane,
        Resource::BlockAffinity(Object::new(
            "n2-10-244-8-0-26",
            BlockAffinitySpec {
                node: "n2".into(),
                cidr: "10.244.8.0/26".parse().unwrap(),
                state: AffinityState::PendingDeletion,
                deleted: true,
            },
        )),
    )
    .await;
    round_trip(
        &s,
        &plane,
        Resource::Handle(Object::new(
            "k8s-pod-network.c1.eth0",
            HandleSpec {
                handle_id: "k8s-pod-network.c1.eth0".into(),
                block: [
                    ("10.244.7.0/26".to_string(), 1),
                    ("fd00:244::/122".to_string(), 2),
                ]
                .into_iter()
                .collect(),
                deleted: false,
            },
        )),
    )
    .await;

    // A node's status as tortie-node writes it: object, then status.
    let made = round_trip(
        &s,
        &plane,
        ours(json!({
            "apiVersion": "tortie.io/v1",
            "kind": "CalicoNodeStatus",
            "metadata": {"name": "n1"},
            "spec": {"node": "n1", "classes": ["Agent", "BGP"]},
            "status": {
                "lastUpdated": "2026-01-02T03:04:05Z",
                "agent": {
                    "birdV4": {
                        "state": "Ready",
                        "version": "tortie-node 0.1.0",
                        "routerID": "10.0.0.1",
                        "lastBootTime": "2026-01-02T03:00:00Z",
                    },
                    "birdV6": {"state": "Ready", "version": "tortie-node 0.1.0"},
                },
                "bgp": {
                    "numberEstablishedV4": 1,
                    "numberNotEstablishedV4": 1,
                    "numberEstablishedV6": 0,
                    "numberNotEstablishedV6": 1,
                    "peersV4": [
                        {"peerIP": "10.0.0.2", "type": "NodeMesh", "state": "Established",
                         "since": "2026-01-02T03:01:00Z"},
                        {"peerIP": "10.0.0.9", "type": "GlobalPeer", "state": "Active"},
                    ],
                    "peersV6": [{"peerIP": "fd00::2", "type": "NodePeer", "state": "Idle"}],
                },
                "routes": {
                    "routesV4": [{
                        "type": "FIB", "destination": "10.244.1.0/26", "gateway": "10.0.0.2",
                        "interface": "eth0",
                        "learnedFrom": {"sourceType": "NodeMesh", "peerIP": "10.0.0.2"},
                    }],
                },
            },
        })),
    )
    .await;
    let table = plane
        .kubectl(&["get", "caliconodestatus", "n1"])
        .unwrap_or_else(|e| panic!("{e}"));
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "NAME",
            "NODE",
            "ESTABLISHED",
            "NOT",
            "ESTABLISHED",
            "PERIOD",
            "UPDATED"
        ],
        "{table}"
    );
    assert!(
        table.lines().nth(1).unwrap_or("").starts_with("n1 "),
        "{table}"
    );
    // The user's spec and the node's status are written apart: a spec
    // change keeps the status.
    let Resource::CalicoNodeStatus(n1) = made.resource else {
        unreachable!()
    };
    let status = n1.spec.status;
    plane
        .kubectl(&[
            "patch",
            "caliconodestatus",
            "n1",
            "--type=merge",
            "-p",
            r#"{"spec":{"updatePeriodSeconds":5}}"#,
        ])
        .unwrap_or_else(|e| panic!("{e}"));
    let Resource::CalicoNodeStatus(back) = s
        .get(&Key::new(Kind::CalicoNodeStatus, "n1"))
        .await
        .unwrap()
        .expect("n1")
        .resource
    else {
        unreachable!()
    };
    assert_eq!(back.spec.update_period_seconds, Some(5));
    assert_eq!(back.spec.status, status, "a spec change keeps the status");
    drop(plane);
}
