//! Calico's IPAM annotations on Kubernetes pods
//! (`cni.projectcalico.org/ipAddrs`, `ipv4pools`, `ipAddrsNoIpam`, ...),
//! honoured by the plugin binary against a real API server
//! (`tortie_testkit::k8s`: etcd + kube-apiserver, the CRDs of
//! deploy/crds.yaml) on namespaces the test creates.

#[path = "../../ipam/tests/common/mod.rs"]
mod common;
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::pool;
use serde_json::{json, Value};
use support::{host_link_exists, tortie, Netns, Output};
use tortie_cni::annotations::{IPV4_POOLS, IP_ADDRS, IP_ADDRS_NO_IPAM};
use tortie_config::resources::{BlockSpec, HandleSpec, IPPool, Resource};
use tortie_datastore::{AnyStore, Datastore, StoreConfig, TypedStore};
use tortie_testkit::k8s::ControlPlane;

static IDS: AtomicUsize = AtomicUsize::new(0);

/// A container id unique to this test run.
fn cid() -> String {
    format!(
        "k{}x{}",
        std::process::id(),
        IDS.fetch_add(1, Ordering::SeqCst)
    )
}

/// A pod in `default` with `annotations`, as the API server takes it
/// without a kubelet.
fn pod(plane: &ControlPlane, name: &str, annotations: Value) {
    let manifest = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "annotations": annotations},
        "spec": {
            "nodeName": "kn1",
            "automountServiceAccountToken": false,
            "containers": [{"name": "c", "image": "localhost/none:1"}],
        },
    });
    let file =
        std::env::temp_dir().join(format!("tortie-cni-pod-{}-{name}.json", std::process::id()));
    std::fs::write(&file, manifest.to_string()).unwrap();
    let made = plane.kubectl(&["create", "-f", &file.display().to_string()]);
    let _ = std::fs::remove_file(file);
    made.unwrap_or_else(|e| panic!("{e}"));
}

/// The plugin's `CNI_*` environment for pod `default/<pod>`.
fn env<'a>(cid: &'a str, netns: &'a str, args: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("CNI_CONTAINERID", cid),
        ("CNI_NETNS", netns),
        ("CNI_IFNAME", "eth0"),
        ("CNI_ARGS", args),
    ]
}

fn args(pod: &str) -> String {
    format!("IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={pod}")
}

/// The address ADD gave (`a.b.c.d/32`), after checking it succeeded.
fn address(out: &Output) -> String {
    assert_eq!(out.status, 0, "{}", out.stdout);
    out.json["ips"][0]["address"].as_str().unwrap().to_owned()
}

/// The handle ids holding addresses, and how many addresses the blocks
/// hold.
async fn held(store: &AnyStore) -> (Vec<String>, usize) {
    let handles = store.list_typed::<HandleSpec>().await.unwrap();
    let blocks = store.list_typed::<BlockSpec>().await.unwrap();
    let used = blocks
        .iter()
        .map(|(b, _)| b.spec.allocations.iter().flatten().count())
        .sum();
    let mut ids: Vec<String> = handles.into_iter().map(|(h, _)| h.spec.handle_id).collect();
    ids.sort();
    (ids, used)
}

/// ipAddrs gives exactly its address, ipv4pools (a name or a CIDR) picks
/// the pool, a pod without annotations gets the default; every bad
/// annotation (and a pod the API server does not have) is a CNI error
/// naming the pod and the annotation, leaving no address and no veth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calico_ipam_annotations_on_pods() {
    let Some(plane) = ControlPlane::start("cni: Calico IPAM annotations on Kubernetes pods") else {
        return;
    };
    let crds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/crds.yaml");
    plane.apply(&crds).unwrap_or_else(|e| panic!("{e}"));
    // The namespace's default service account (no controller manager here).
    plane
        .kubectl(&["create", "serviceaccount", "default", "-n", "default"])
        .ok();
    let config = StoreConfig::Kubernetes {
        kubeconfig: Some(plane.kubeconfig()),
    };
    let store = AnyStore::open(&config).await.expect("kubernetes store");
    // Listed by name: without annotations "a" comes first.
    let pools: [IPPool; 2] = [pool("a", "10.84.0.0/24", 26), pool("b", "10.85.0.0/24", 26)];
    for p in pools {
        store.create(Resource::IPPool(p)).await.unwrap();
    }
    let conf = json!({
        "cniVersion": "1.0.0",
        "name": "knet",
        "type": "tortie",
        "nodeName": "kn1",
        "timeoutSeconds": 60,
        "datastore": serde_json::to_value(&config).unwrap(),
    });
    let host_if = |id: &str| felix::endpoint::host_ifname(&format!("knet.{id}.eth0"));

    // Successes: each pod in a namespace of its own.
    pod(&plane, "fixed", json!({ IP_ADDRS: r#"["10.84.0.77"]"# }));
    pod(&plane, "by-name", json!({ IPV4_POOLS: r#"["b"]"# }));
    pod(
        &plane,
        "by-cidr",
        json!({ IPV4_POOLS: r#"["10.85.0.0/24"]"# }),
    );
    pod(&plane, "plain", json!({"example.com/unrelated": "1"}));
    let mut added = Vec::new();
    for (name, want) in [
        ("fixed", "10.84.0.77/32"),
        ("by-name", "10.85.0."),
        ("by-cidr", "10.85.0."),
        ("plain", "10.84.0."),
    ] {
        let ns = Netns::new();
        let path = ns.path().display().to_string();
        let id = cid();
        let a = args(name);
        let out = tortie("ADD", &env(&id, &path, &a), &conf);
        let got = address(&out);
        assert!(got.starts_with(want), "pod {name}: {got}, want {want}");
        assert!(
            ns.ip(&["addr", "show", "eth0"]).contains(&got),
            "pod {name}"
        );
        // The endpoint is on the pod (Calico's podIP annotation with it).
        let ip = plane
            .kubectl(&[
                "get",
                "pod",
                name,
                "-o",
                "jsonpath={.metadata.annotations.cni\\.projectcalico\\.org/podIP}",
            ])
            .unwrap();
        assert_eq!(ip, got, "pod {name}");
        added.push((ns, path, id, a));
    }
    let before = held(&store).await;
    assert_eq!(before.1, 4, "{before:?}");

    // Failures: one namespace is enough (nothing is made in it).
    let ns = Netns::new();
    let path = ns.path().display().to_string();
    pod(
        &plane,
        "noipam",
        json!({ IP_ADDRS_NO_IPAM: r#"["10.84.0.5"]"# }),
    );
    pod(&plane, "notjson", json!({ IP_ADDRS: "10.84.0.5" }));
    pod(
        &plane,
        "notlist",
        json!({ IP_ADDRS: r#"{"ip": "10.84.0.5"}"# }),
    );
    pod(&plane, "notaddr", json!({ IP_ADDRS: r#"["10.84.0.500"]"# }));
    pod(
        &plane,
        "outside",
        json!({ IP_ADDRS: r#"["10.84.0.9"]"#, IPV4_POOLS: r#"["b"]"# }),
    );
    pod(&plane, "unknown", json!({ IPV4_POOLS: r#"["nope"]"# }));
    pod(&plane, "nopool", json!({ IP_ADDRS: r#"["10.99.0.1"]"# }));
    pod(&plane, "taken", json!({ IP_ADDRS: r#"["10.84.0.77"]"# }));
    for (name, code, needles) in [
        (
            "noipam",
            7,
            &["annotation cni.projectcalico.org/ipAddrsNoIpam=", "not supported"][..],
        ),
        ("notjson", 7, &["annotation cni.projectcalico.org/ipAddrs=10.84.0.5: not JSON"][..]),
        ("notlist", 7, &["ipAddrs={\"ip\": \"10.84.0.5\"}: not a list"][..]),
        ("notaddr", 7, &["\"10.84.0.500\" is not an IP address"][..]),
        (
            "outside",
            7,
            &[
                "annotation cni.projectcalico.org/ipv4pools=[\"b\"]",
                "the address 10.84.0.9",
                "is in none of these pools (b (10.85.0.0/24))",
            ][..],
        ),
        (
            "unknown",
            7,
            &["annotation cni.projectcalico.org/ipv4pools=[\"nope\"]: no IP pool is named \"nope\" (pools: a (10.84.0.0/24), b (10.85.0.0/24))"][..],
        ),
        (
            "nopool",
            7,
            &["annotation cni.projectcalico.org/ipAddrs: address 10.99.0.1 is in no IP pool"][..],
        ),
        (
            "taken",
            50,
            &["annotation cni.projectcalico.org/ipAddrs: address 10.84.0.77 is in use"][..],
        ),
        ("ghost", 3, &["pod default/ghost", "is not in the Kubernetes API"][..]),
    ] {
        let id = cid();
        let a = args(name);
        let out = tortie("ADD", &env(&id, &path, &a), &conf);
        assert_eq!(out.status, 1, "pod {name}: {}", out.stdout);
        assert_eq!(out.json["code"], code, "pod {name}: {}", out.stdout);
        let msg = out.json["msg"].as_str().unwrap_or_default();
        assert!(
            msg.starts_with(&format!("pod default/{name}")),
            "pod {name}: {msg}"
        );
        for n in needles {
            assert!(msg.contains(n), "pod {name}: {msg:?} lacks {n:?}");
        }
        assert!(!host_link_exists(&host_if(&id)), "pod {name}: no veth");
        assert_eq!(held(&store).await, before, "pod {name}: nothing allocated");
    }
    assert!(!ns.ip(&["link"]).contains("eth0"));

    // DEL frees everything.
    for (_ns, path, id, a) in &added {
        let out = tortie("DEL", &env(id, path, a), &conf);
        assert_eq!(out.status, 0, "{}", out.stdout);
        assert!(!host_link_exists(&host_if(id)));
    }
    assert_eq!(held(&store).await, (vec![], 0));
}
