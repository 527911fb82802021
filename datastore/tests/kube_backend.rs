//! What is particular to the Kubernetes backend, against a real API server
//! (`tortie_testkit::k8s`): Node is the Kubernetes Node (our settings as
//! Calico's annotations, its labels, its status addresses).

use std::time::Duration;

use tortie_config::resources::{AsNumber, Key, Kind, NodeBgpSpec, NodeSpec, Object, Resource};
use tortie_datastore::{Action, Datastore, KubeStore, StoreError, Watch, WatchEvent};
use tortie_testkit::k8s::ControlPlane;

async fn next(w: &mut Watch) -> WatchEvent {
    match tokio::time::timeout(Duration::from_secs(10), w.next()).await {
        Ok(Some(Ok(e))) => e,
        other => panic!("no watch event: {other:?}"),
    }
}

/// A Kubernetes Node as a kubelet would register it (labels, an address).
fn register(plane: &ControlPlane, name: &str) {
    let manifest = format!(
        r#"{{"apiVersion":"v1","kind":"Node","metadata":{{"name":"{name}","labels":{{"kubernetes.io/hostname":"{name}"}}}}}}"#
    );
    let file = std::env::temp_dir().join(format!("tortie-node-{}-{name}.json", std::process::id()));
    std::fs::write(&file, manifest).unwrap();
    plane
        .kubectl(&["create", "-f", &file.display().to_string()])
        .unwrap_or_else(|e| panic!("{e}"));
    let _ = std::fs::remove_file(file);
}

fn ours(name: &str, address: &str, asn: u32) -> Resource {
    let mut node = Object::new(
        name,
        NodeSpec {
            bgp: Some(NodeBgpSpec {
                ipv4_address: Some(address.parse().unwrap()),
                as_number: Some(AsNumber(asn)),
                ..NodeBgpSpec::default()
            }),
            ..NodeSpec::default()
        },
    );
    node.metadata.labels.insert("rack".into(), "a".into());
    Resource::Node(node)
}

fn spec(v: &tortie_datastore::Versioned) -> NodeSpec {
    match &v.resource {
        Resource::Node(n) => n.spec.clone(),
        other => panic!("not a node: {other:?}"),
    }
}

/// Nodes: only those carrying our annotations are ours; create annotates
/// an existing Node (and refuses one the kubelet has not registered),
/// update is a compare-and-swap on the Node's resourceVersion, delete
/// removes the annotations and leaves the Node; a watch reports what we
/// read changing, not the Node's other updates; annotations Calico wrote
/// read as they are, and a bad one is named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_are_the_kubernetes_nodes() {
    let Some(plane) = ControlPlane::start("kubernetes backend: nodes") else {
        return;
    };
    let s = KubeStore::connect(Some(&plane.kubeconfig())).await.unwrap();
    for n in ["n1", "n2", "n3"] {
        register(&plane, n);
    }
    let start = s.list(Kind::Node).await.unwrap();
    assert!(
        start.items.is_empty(),
        "no Node is ours yet: {:?}",
        start.items
    );
    let mut w = s.watch(Kind::Node, start.revision).await.unwrap();

    let made = s.create(ours("n1", "10.0.0.1/24", 64512)).await.unwrap();
    let got = s.get(&Key::new(Kind::Node, "n1")).await.unwrap().unwrap();
    assert_eq!(got, made);
    let bgp = spec(&got).bgp.unwrap();
    assert_eq!(bgp.ipv4_address.unwrap().to_string(), "10.0.0.1/24");
    let Resource::Node(n) = &got.resource else {
        unreachable!()
    };
    assert_eq!(n.metadata.labels.get("rack").map(String::as_str), Some("a"));
    assert_eq!(
        n.metadata
            .labels
            .get("kubernetes.io/hostname")
            .map(String::as_str),
        Some("n1"),
        "the Node's own labels are read"
    );
    let notes = plane
        .kubectl(&[
            "get",
            "node",
            "n1",
            "-o",
            "jsonpath={.metadata.annotations}",
        ])
        .unwrap();
    assert!(
        notes.contains("projectcalico.org/IPv4Address") && notes.contains("10.0.0.1/24"),
        "{notes}"
    );

    assert!(matches!(
        s.create(ours("n1", "10.0.0.1/24", 64512)).await,
        Err(StoreError::AlreadyExists { .. })
    ));
    match s.create(ours("ghost", "10.0.0.9/24", 64512)).await {
        Err(e @ StoreError::Kube { .. }) => assert!(e.to_string().contains("kubelet"), "{e}"),
        other => panic!("a Node the kubelet did not register: {other:?}"),
    }
    match s
        .update(ours("n1", "10.0.0.1/24", 65000), made.revision - 1)
        .await
    {
        Err(StoreError::Conflict { expected, .. }) => assert_eq!(expected, made.revision - 1),
        other => panic!("stale update: {other:?}"),
    }
    let updated = s
        .update(ours("n1", "10.0.0.1/24", 65000), made.revision)
        .await
        .unwrap();
    assert_eq!(spec(&updated).bgp.unwrap().as_number, Some(AsNumber(65000)));

    // Not ours to see: another annotation. Ours: a label.
    plane
        .kubectl(&["annotate", "node", "n1", "example.com/unrelated=1"])
        .unwrap();
    plane.kubectl(&["label", "node", "n1", "zone=z1"]).unwrap();
    let gone = s.delete(&Key::new(Kind::Node, "n1"), None).await.unwrap();
    assert_eq!(s.get(&Key::new(Kind::Node, "n1")).await.unwrap(), None);
    assert!(
        plane.kubectl(&["get", "node", "n1"]).is_ok(),
        "the Node stays"
    );

    let want = [
        (Action::Created, Some(64512)),
        (Action::Updated, Some(65000)),
        (Action::Updated, Some(65000)),
        (Action::Deleted, None),
    ];
    for (action, asn) in want {
        let e = next(&mut w).await;
        assert_eq!(e.key.name, "n1");
        let got_asn = e.resource.as_ref().and_then(|r| match r {
            Resource::Node(n) => n.spec.bgp.as_ref()?.as_number.map(|a| a.0),
            _ => None,
        });
        assert_eq!((e.action, got_asn), (action, asn), "{e:?}");
    }
    let e = tokio::time::timeout(Duration::from_millis(500), w.next()).await;
    assert!(e.is_err(), "nothing more: {e:?}");
    assert!(gone > updated.revision);

    // What Calico writes reads as it is; a bad value is named and left out.
    plane
        .kubectl(&[
            "annotate",
            "node",
            "n2",
            "projectcalico.org/IPv4Address=10.0.0.2/24",
            "projectcalico.org/ASNumber=65001",
        ])
        .unwrap();
    plane
        .kubectl(&[
            "annotate",
            "node",
            "n3",
            "projectcalico.org/ASNumber=not-a-number",
        ])
        .unwrap();
    let listing = s.list(Kind::Node).await.unwrap();
    let names: Vec<_> = listing
        .items
        .iter()
        .map(|v| v.resource.key().name)
        .collect();
    assert_eq!(names, ["n2"]);
    assert_eq!(
        spec(&listing.items[0]).bgp.unwrap().as_number,
        Some(AsNumber(65001))
    );
    assert_eq!(listing.rejected.len(), 1);
    assert_eq!(listing.rejected[0].name, "n3");
    assert!(
        listing.rejected[0]
            .error
            .contains("projectcalico.org/ASNumber"),
        "{:?}",
        listing.rejected
    );
}

/// A pod as the API server takes it without a kubelet: bound to `node`,
/// no service account token.
fn pod(plane: &ControlPlane, name: &str, node: &str) {
    let manifest = format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}","namespace":"default"}},"spec":{{"nodeName":"{node}","automountServiceAccountToken":false,"containers":[{{"name":"c","image":"localhost/none:1"}}]}}}}"#
    );
    let file = std::env::temp_dir().join(format!("tortie-pod-{}-{name}.json", std::process::id()));
    std::fs::write(&file, manifest).unwrap();
    plane
        .kubectl(&["create", "-f", &file.display().to_string()])
        .unwrap_or_else(|e| panic!("{e}"));
    let _ = std::fs::remove_file(file);
}

fn endpoint(pod: &str, node: &str, ip: &str) -> Resource {
    use tortie_config::resources::{Metadata, WorkloadEndpointSpec};
    Resource::WorkloadEndpoint(Object {
        metadata: Metadata {
            name: format!("{node}.{pod}-cid.eth0"),
            namespace: Some("default".into()),
            ..Metadata::default()
        },
        spec: WorkloadEndpointSpec {
            node: node.into(),
            orchestrator: "k8s".into(),
            pod: Some(pod.into()),
            container_id: format!("{pod}-cid"),
            endpoint: "eth0".into(),
            interface_name: "tort0123456789a".into(),
            ip_networks: vec![ip.parse().unwrap()],
            mac: Some("0a:58:0a:f4:01:05".into()),
        },
    })
}

/// Endpoints live on their pods: create annotates the pod (Calico's podIP
/// annotations too), get finds it by the endpoint's name, update is a
/// compare-and-swap on the pod, delete leaves the pod; a watch sees the
/// endpoints' changes, not the pods' others, a filtered watch only its
/// node's, and a deleted pod takes its endpoint with it. An endpoint with
/// no pod, or for a pod that is not there, is refused by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_live_on_their_pods() {
    use tortie_datastore::Only;
    let Some(plane) = ControlPlane::start("kubernetes backend: endpoints") else {
        return;
    };
    let s = KubeStore::connect(Some(&plane.kubeconfig())).await.unwrap();
    // The namespace's default service account (no controller manager here).
    plane
        .kubectl(&["create", "serviceaccount", "default", "-n", "default"])
        .ok();
    pod(&plane, "p1", "n1");
    pod(&plane, "p2", "n2");
    let start = s.list(Kind::WorkloadEndpoint).await.unwrap();
    assert!(start.items.is_empty());
    let mut all = s
        .watch(Kind::WorkloadEndpoint, start.revision)
        .await
        .unwrap();
    let mut n1 = s
        .watch_only(
            Kind::WorkloadEndpoint,
            start.revision,
            Only::containing("\"n1\""),
        )
        .await
        .unwrap();

    let made = s
        .create(endpoint("p1", "n1", "10.244.1.5/32"))
        .await
        .unwrap();
    let key = made.resource.key();
    assert_eq!(key.name, "default/n1.p1-cid.eth0");
    assert_eq!(s.get(&key).await.unwrap(), Some(made.clone()));
    let ip = plane
        .kubectl(&[
            "get",
            "pod",
            "p1",
            "-o",
            "jsonpath={.metadata.annotations.cni\\.projectcalico\\.org/podIP}",
        ])
        .unwrap();
    assert_eq!(ip, "10.244.1.5/32");
    assert!(matches!(
        s.create(endpoint("p1", "n1", "10.244.1.5/32")).await,
        Err(StoreError::AlreadyExists { .. })
    ));
    s.create(endpoint("p2", "n2", "10.244.2.7/32"))
        .await
        .unwrap();

    // The pod's own changes are not the endpoint's.
    plane
        .kubectl(&["annotate", "pod", "p1", "example.com/unrelated=1"])
        .unwrap();
    match s
        .update(endpoint("p1", "n1", "10.244.1.6/32"), made.revision)
        .await
    {
        Err(StoreError::Conflict { .. }) => {}
        other => panic!("the pod changed since: {other:?}"),
    }
    let now = s.get(&key).await.unwrap().unwrap();
    let updated = s
        .update(endpoint("p1", "n1", "10.244.1.6/32"), now.revision)
        .await
        .unwrap();
    assert!(updated.revision > now.revision);

    let gone = s.delete(&key, None).await.unwrap();
    assert!(gone > updated.revision);
    assert_eq!(s.get(&key).await.unwrap(), None);
    assert!(
        plane.kubectl(&["get", "pod", "p1"]).is_ok(),
        "the pod stays"
    );
    // A deleted pod takes its endpoint with it.
    plane
        .kubectl(&["delete", "pod", "p2", "--grace-period=0", "--force"])
        .unwrap();

    for (want_action, want_name) in [
        (Action::Created, "default/n1.p1-cid.eth0"),
        (Action::Created, "default/n2.p2-cid.eth0"),
        (Action::Updated, "default/n1.p1-cid.eth0"),
        (Action::Deleted, "default/n1.p1-cid.eth0"),
        (Action::Deleted, "default/n2.p2-cid.eth0"),
    ] {
        let e = next(&mut all).await;
        assert_eq!(
            (e.action, e.key.name.as_str()),
            (want_action, want_name),
            "{e:?}"
        );
    }
    for (want_action, want_name) in [
        (Action::Created, "default/n1.p1-cid.eth0"),
        (Action::Updated, "default/n1.p1-cid.eth0"),
        (Action::Deleted, "default/n1.p1-cid.eth0"),
    ] {
        let e = next(&mut n1).await;
        assert_eq!(
            (e.action, e.key.name.as_str()),
            (want_action, want_name),
            "{e:?}"
        );
    }
    for w in [&mut all, &mut n1] {
        let e = tokio::time::timeout(Duration::from_millis(500), w.next()).await;
        assert!(e.is_err(), "nothing more: {e:?}");
    }

    // Refused, by name: no pod in the endpoint, no such pod.
    let Resource::WorkloadEndpoint(mut podless) = endpoint("x", "n1", "10.244.1.9/32") else {
        unreachable!()
    };
    podless.spec.pod = None;
    let e = s
        .create(Resource::WorkloadEndpoint(podless))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("K8S_POD_NAME"), "{e}");
    let e = s
        .create(endpoint("ghost", "n1", "10.244.1.9/32"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no pod default/ghost"), "{e}");
}

/// The store's reachability is its watches' own health (no request of its
/// own): lost when the API server stops (the stream breaks and cannot be
/// opened again), back when it answers again; the watch then resumes
/// after what it delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reachability_is_the_watches_health() {
    let Some(mut plane) = ControlPlane::start("kubernetes backend: reachability") else {
        return;
    };
    let s = KubeStore::connect(Some(&plane.kubeconfig())).await.unwrap();
    register(&plane, "r1");
    let start = s.list(Kind::Node).await.unwrap();
    let mut w = s.watch(Kind::Node, start.revision).await.unwrap();
    let mut health = s.reachability();
    assert_eq!(*health.borrow_and_update(), None, "reachable at first");

    tokio::task::block_in_place(|| plane.stop_apiserver());
    let lost = tokio::time::timeout(Duration::from_secs(30), health.wait_for(|h| h.is_some()))
        .await
        .expect("the watch notices the API server is gone")
        .unwrap()
        .clone()
        .unwrap();
    assert!(lost.contains("watch"), "names the failed call: {lost}");

    tokio::task::block_in_place(|| plane.start_apiserver());
    tokio::time::timeout(Duration::from_secs(30), health.wait_for(|h| h.is_none()))
        .await
        .expect("reachable again once the watch reopens")
        .unwrap();
    s.create(ours("r1", "10.0.0.9/24", 64512)).await.unwrap();
    let e = next(&mut w).await;
    assert_eq!((e.action, e.key.name.as_str()), (Action::Created, "r1"));
}
