//! Calico's IPAM annotations on Kubernetes pods
//! (`cni.projectcalico.org/ipAddrs`, `ipv4pools`, `ipAddrsNoIpam`, ...)
//! and their Namespaces (`ipv4pools`, `ipv6pools`), honoured by the plugin
//! binary against a real API server (`tortie_testkit::k8s`: etcd +
//! kube-apiserver, the CRDs of deploy/crds.yaml) on network namespaces
//! the test creates.

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
    pod_in(plane, "default", name, annotations)
}

/// A pod in namespace `ns` with `annotations`.
fn pod_in(plane: &ControlPlane, ns: &str, name: &str, annotations: Value) {
    let manifest = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "annotations": annotations},
        "spec": {
            "nodeName": "kn1",
            "automountServiceAccountToken": false,
            "containers": [{"name": "c", "image": "localhost/none:1"}],
        },
    });
    let file = std::env::temp_dir().join(format!(
        "tortie-cni-pod-{}-{ns}-{name}.json",
        std::process::id()
    ));
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
    args_in("default", pod)
}

fn args_in(ns: &str, pod: &str) -> String {
    format!("IgnoreUnknown=1;K8S_POD_NAMESPACE={ns};K8S_POD_NAME={pod}")
}

/// Namespace `name` with `annotations`, and its default service account
/// (no controller manager here).
fn namespace(plane: &ControlPlane, name: &str, annotations: &[(&str, &str)]) {
    plane
        .kubectl(&["create", "namespace", name])
        .unwrap_or_else(|e| panic!("{e}"));
    for (k, v) in annotations {
        plane
            .kubectl(&["annotate", "namespace", name, &format!("{k}={v}")])
            .unwrap_or_else(|e| panic!("{e}"));
    }
    plane
        .kubectl(&["create", "serviceaccount", "default", "-n", name])
        .ok();
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

/// The pool annotations of a pod's Namespace, under the pod's own (per
/// family, as Calico): a Namespace's pool is picked for a pod without
/// one, a pod's ipv4pools overrides it, an ipAddrs outside it is refused
/// naming the Namespace, and a bad Namespace annotation in effect is
/// refused naming the Namespace and the annotation, with nothing
/// allocated (one the pod overrides is not read, as in Calico).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calico_pool_annotations_on_namespaces() {
    let Some(plane) = ControlPlane::start("cni: Calico pool annotations on Kubernetes namespaces")
    else {
        return;
    };
    let crds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/crds.yaml");
    plane.apply(&crds).unwrap_or_else(|e| panic!("{e}"));
    let config = StoreConfig::Kubernetes {
        kubeconfig: Some(plane.kubeconfig()),
    };
    let store = AnyStore::open(&config).await.expect("kubernetes store");
    // Without annotations "a" comes first (listed by name).
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
    namespace(&plane, "team", &[(IPV4_POOLS, r#"["b"]"#)]);
    namespace(&plane, "by-cidr", &[(IPV4_POOLS, r#"["10.85.0.0/24"]"#)]);
    namespace(&plane, "broken", &[(IPV4_POOLS, "b")]);
    namespace(&plane, "unknown", &[(IPV4_POOLS, r#"["nope"]"#)]);
    namespace(&plane, "plain", &[]);

    // Successes.
    pod_in(&plane, "team", "inherits", json!({}));
    pod_in(&plane, "team", "own", json!({ IPV4_POOLS: r#"["a"]"# }));
    pod_in(&plane, "team", "empty", json!({ IPV4_POOLS: "" }));
    pod_in(
        &plane,
        "team",
        "fixed",
        json!({ IP_ADDRS: r#"["10.85.0.40"]"# }),
    );
    pod_in(&plane, "by-cidr", "inherits", json!({}));
    pod_in(&plane, "broken", "own", json!({ IPV4_POOLS: r#"["a"]"# }));
    pod_in(&plane, "plain", "web", json!({}));
    let mut added = Vec::new();
    for (ns_name, name, want) in [
        ("team", "inherits", "10.85.0."),
        ("team", "own", "10.84.0."),
        ("team", "empty", "10.85.0."),
        ("team", "fixed", "10.85.0.40/32"),
        ("by-cidr", "inherits", "10.85.0."),
        ("broken", "own", "10.84.0."),
        ("plain", "web", "10.84.0."),
    ] {
        let ns = Netns::new();
        let path = ns.path().display().to_string();
        let id = cid();
        let a = args_in(ns_name, name);
        let out = tortie("ADD", &env(&id, &path, &a), &conf);
        let got = address(&out);
        assert!(
            got.starts_with(want),
            "pod {ns_name}/{name}: {got}, want {want}"
        );
        added.push((ns, path, id, a));
    }
    let before = held(&store).await;
    assert_eq!(before.1, added.len(), "{before:?}");

    // Failures, each naming the Namespace and its annotation.
    let ns = Netns::new();
    let path = ns.path().display().to_string();
    pod_in(
        &plane,
        "team",
        "outside",
        json!({ IP_ADDRS: r#"["10.84.0.9"]"# }),
    );
    pod_in(&plane, "broken", "inherits", json!({}));
    pod_in(&plane, "unknown", "inherits", json!({}));
    for (ns_name, name, want) in [
        (
            "team",
            "outside",
            r#"namespace team: annotation cni.projectcalico.org/ipv4pools=["b"]: the address 10.84.0.9 (annotation cni.projectcalico.org/ipAddrs) is in none of these pools (b (10.85.0.0/24))"#,
        ),
        (
            "broken",
            "inherits",
            "namespace broken: annotation cni.projectcalico.org/ipv4pools=b: not JSON",
        ),
        (
            "unknown",
            "inherits",
            r#"namespace unknown: annotation cni.projectcalico.org/ipv4pools=["nope"]: no IP pool is named "nope" (pools: a (10.84.0.0/24), b (10.85.0.0/24))"#,
        ),
    ] {
        let id = cid();
        let a = args_in(ns_name, name);
        let out = tortie("ADD", &env(&id, &path, &a), &conf);
        assert_eq!(out.status, 1, "pod {ns_name}/{name}: {}", out.stdout);
        assert_eq!(out.json["code"], 7, "pod {ns_name}/{name}: {}", out.stdout);
        let msg = out.json["msg"].as_str().unwrap_or_default();
        assert!(msg.starts_with(want), "pod {ns_name}/{name}: {msg:?}");
        assert!(
            !host_link_exists(&host_if(&id)),
            "pod {ns_name}/{name}: no veth"
        );
        assert_eq!(
            held(&store).await,
            before,
            "pod {ns_name}/{name}: nothing allocated"
        );
    }
    assert!(!ns.ip(&["link"]).contains("eth0"));

    for (_ns, path, id, a) in &added {
        let out = tortie("DEL", &env(id, path, a), &conf);
        assert_eq!(out.status, 0, "{}", out.stdout);
    }
    assert_eq!(held(&store).await, (vec![], 0));
}
