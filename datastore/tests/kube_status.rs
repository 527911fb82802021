//! The nodes' problems on a user object's status (a Tortie extension of
//! Calico's BGPConfiguration, BGPPeer and IPPool: `status.problems`, by
//! node), against a real API server (`tortie_testkit::k8s`) with the CRDs
//! of `deploy/crds.yaml`.

use serde_json::{json, Value};
use tortie_config::resources::{Key, Kind, Resource};
use tortie_datastore::{AnyStore, Datastore, KubeStore, ObjectProblem, StoreError};
use tortie_testkit::k8s::ControlPlane;

const PEER: &str = r#"{
  "apiVersion": "projectcalico.org/v3",
  "kind": "BGPPeer",
  "metadata": {"name": "status-tor"},
  "spec": {"peerIP": "10.0.0.9", "asNumber": 65009}
}"#;

fn problem(field: &str, message: &str) -> ObjectProblem {
    ObjectProblem {
        field: field.into(),
        message: message.into(),
    }
}

/// `kubectl get WHAT -o json`, parsed.
fn get_json(plane: &ControlPlane, what: &str) -> Value {
    let out = plane
        .kubectl(&["get", what, "-o", "json"])
        .unwrap_or_else(|e| panic!("{e}"));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{what}: {e}: {out}"))
}

/// A node's patch adds its own key and keeps the others'; `None` removes
/// it (the others stay); the spec's writes keep the status, and the store
/// reads the object as before; each node reads back what it wrote; a patch
/// of a missing object is NotFound; the file backend has no status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_node_writes_its_own_problems_on_the_status() {
    let Some(plane) = ControlPlane::start("kubernetes backend: object status") else {
        return;
    };
    let crds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/crds.yaml");
    plane.apply(&crds).unwrap_or_else(|e| panic!("{e}"));
    let s = KubeStore::connect(Some(&plane.kubeconfig())).await.unwrap();
    let (peer, _) = Resource::from_value(serde_json::from_str(PEER).unwrap()).unwrap();
    let key = Key::new(Kind::BGPPeer, "status-tor");
    let made = s.create(peer.clone()).await.unwrap();

    let n1 = vec![problem("spec.ttlSecurity", "1: not supported")];
    let n2 = vec![
        problem("spec.password", "cannot read the secret"),
        problem("", "the object as a whole"),
    ];
    let r1 = s.report_problems(&key, "n1", Some(&n1)).await.unwrap();
    assert!(r1 > made.revision, "the write is a new revision");
    s.report_problems(&key, "n2", Some(&n2)).await.unwrap();
    let stored = get_json(&plane, "bgppeer/status-tor");
    assert_eq!(
        stored["status"]["problems"],
        json!({"n1": n1, "n2": n2}),
        "both nodes' keys: {stored}"
    );
    assert_eq!(
        stored["spec"]["peerIP"],
        json!("10.0.0.9"),
        "spec untouched"
    );

    // Read through the store: the object as it was, the status apart.
    let got = s.get(&key).await.unwrap().unwrap();
    assert_eq!(got.resource, made.resource);
    // A spec write (the user's) keeps the nodes' problems.
    s.update(got.resource, got.revision).await.unwrap();
    let stored = get_json(&plane, "bgppeer/status-tor");
    assert_eq!(stored["status"]["problems"]["n1"], json!(n1), "{stored}");

    // What each node reported, as a starting node reads it.
    let mine = s.reported_problems("n2").await.unwrap();
    assert_eq!(
        mine.into_iter().collect::<Vec<_>>(),
        vec![(key.clone(), n2.clone())]
    );

    // null removes n1's key and keeps n2's; an empty list is the same.
    s.report_problems(&key, "n1", None).await.unwrap();
    let stored = get_json(&plane, "bgppeer/status-tor");
    assert_eq!(stored["status"]["problems"], json!({"n2": n2}), "{stored}");
    s.report_problems(&key, "n2", Some(&[])).await.unwrap();
    let stored = get_json(&plane, "bgppeer/status-tor");
    assert!(
        stored["status"]["problems"]
            .as_object()
            .is_none_or(|m| m.is_empty()),
        "{stored}"
    );
    assert!(s.reported_problems("n2").await.unwrap().is_empty());
    // Clearing what is not there is no error.
    s.report_problems(&key, "n3", None).await.unwrap();

    // IPPool and BGPConfiguration carry them too.
    for (kind, manifest) in [
        (
            Kind::IPPool,
            r#"{"apiVersion":"projectcalico.org/v3","kind":"IPPool","metadata":{"name":"status-pool"},"spec":{"cidr":"10.99.0.0/16"}}"#,
        ),
        (
            Kind::BGPConfiguration,
            r#"{"apiVersion":"projectcalico.org/v3","kind":"BGPConfiguration","metadata":{"name":"status-config"},"spec":{"listenPort":179}}"#,
        ),
    ] {
        let (r, _) = Resource::from_value(serde_json::from_str(manifest).unwrap()).unwrap();
        let k = r.key();
        s.create(r).await.unwrap();
        s.report_problems(&k, "n1", Some(&n1)).await.unwrap();
        let stored = get_json(&plane, &format!("{}/{}", kind.as_str(), k.name));
        assert_eq!(stored["status"]["problems"]["n1"], json!(n1), "{stored}");
    }

    // A missing object: NotFound, naming it.
    let gone = Key::new(Kind::BGPPeer, "status-nowhere");
    match s.report_problems(&gone, "n1", Some(&n1)).await {
        Err(StoreError::NotFound { key }) => assert_eq!(key, gone),
        other => panic!("not NotFound: {other:?}"),
    }
    // A kind without problems on its status: refused, naming it.
    let block = Key::new(Kind::Block, "10-244-0-0-26");
    let e = s.report_problems(&block, "n1", None).await.unwrap_err();
    assert!(e.to_string().contains("carries no problems"), "{e}");

    s.delete(&key, None).await.unwrap();

    // The file backend: nothing written, nothing read.
    let dir = tempfile::tempdir().unwrap();
    let file = AnyStore::File(tortie_datastore::FileStore::open(dir.path()).unwrap());
    assert_eq!(
        file.report_problems(&key, "n1", Some(&n1)).await.unwrap(),
        None
    );
    assert_eq!(file.reported_problems("n1").await.unwrap(), None);
}
