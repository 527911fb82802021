//! A Pod's annotations through the Kubernetes backend (what tortie-cni
//! reads Calico's IPAM annotations with), against a real API server
//! (`tortie_testkit::k8s`), as an administrator and as the CNI plugin's
//! role in deploy/rbac.yaml.

use std::collections::BTreeMap;

use serde_json::json;
use tortie_datastore::{AnyStore, FileStore, KubeStore};
use tortie_testkit::k8s::ControlPlane;

/// Who the CNI plugin acts as (deploy/rbac.yaml binds ClusterRole
/// tortie-cni to this service account).
const CNI_USER: &str = "system:serviceaccount:kube-system:tortie-node";

/// A pod in `namespace` with `annotations`, as the API server takes it
/// without a kubelet.
fn pod(plane: &ControlPlane, namespace: &str, name: &str, annotations: serde_json::Value) {
    let manifest = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
        "spec": {
            "automountServiceAccountToken": false,
            "containers": [{"name": "c", "image": "localhost/none:1"}],
        },
    });
    let file = std::env::temp_dir().join(format!(
        "tortie-pod-notes-{}-{namespace}-{name}.json",
        std::process::id()
    ));
    std::fs::write(&file, manifest.to_string()).unwrap();
    let made = plane.kubectl(&["create", "-f", &file.display().to_string()]);
    let _ = std::fs::remove_file(file);
    made.unwrap_or_else(|e| panic!("{e}"));
}

/// The administrator's kubeconfig, acting as `user` (impersonation).
fn kubeconfig_as(plane: &ControlPlane, user: &str) -> tempfile::NamedTempFile {
    let admin = std::fs::read_to_string(plane.kubeconfig()).unwrap();
    assert!(admin.contains("  user:\n"), "{admin}");
    let text = admin.replacen("  user:\n", &format!("  user:\n    as: {user}\n"), 1);
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), text).unwrap();
    file
}

/// The annotations of the pod named, exactly that one (not a pod whose
/// name it starts, not one of another namespace); empty for a pod with
/// none; `None` for no such pod. The CNI plugin's role, which may list
/// pods but not get them, reads them too. The other backends have no
/// pods.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_annotations_as_the_cni_plugin_reads_them() {
    let Some(plane) = ControlPlane::start("kubernetes backend: pod annotations") else {
        return;
    };
    let rbac = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/rbac.yaml");
    plane
        .kubectl(&["apply", "-f", &rbac.display().to_string()])
        .unwrap_or_else(|e| panic!("{e}"));
    for ns in ["default", "other"] {
        if ns != "default" {
            plane.kubectl(&["create", "namespace", ns]).unwrap();
        }
        // The namespace's default service account (no controller manager).
        plane
            .kubectl(&["create", "serviceaccount", "default", "-n", ns])
            .ok();
    }
    let notes = json!({
        "cni.projectcalico.org/ipAddrs": "[\"10.244.1.5\"]",
        "cni.projectcalico.org/ipv4pools": "[\"default-ipv4-ippool\"]",
    });
    pod(&plane, "default", "web", notes.clone());
    pod(
        &plane,
        "default",
        "web-2",
        json!({"example.com/other": "2"}),
    );
    pod(&plane, "default", "bare", json!({}));
    pod(&plane, "other", "db", json!({"example.com/other": "3"}));
    let want: BTreeMap<String, String> = serde_json::from_value(notes).unwrap();

    let admin = KubeStore::connect(Some(&plane.kubeconfig())).await.unwrap();
    let as_cni = kubeconfig_as(&plane, CNI_USER);
    let cni = KubeStore::connect(Some(as_cni.path())).await.unwrap();
    // The role may list pods, not get them: the read must be a list.
    let can = |verb: &str| {
        plane
            .kubectl(&[
                "auth", "can-i", verb, "pods", "-n", "default", "--as", CNI_USER,
            ])
            .unwrap_or_else(|e| e)
    };
    assert_eq!(can("list").trim(), "yes");
    assert_ne!(can("get").trim(), "yes");

    for store in [&admin, &cni] {
        let got = store.pod_annotations("default", "web").await.unwrap();
        assert_eq!(got.as_ref(), Some(&want));
        let bare = store.pod_annotations("default", "bare").await.unwrap();
        assert_eq!(bare, Some(BTreeMap::new()));
        assert_eq!(store.pod_annotations("default", "we").await.unwrap(), None);
        assert_eq!(store.pod_annotations("default", "db").await.unwrap(), None);
        assert_eq!(store.pod_annotations("other", "web").await.unwrap(), None);
        let db = store.pod_annotations("other", "db").await.unwrap().unwrap();
        assert_eq!(db.get("example.com/other").map(String::as_str), Some("3"));
        let any = AnyStore::Kube(store.clone());
        assert_eq!(
            any.pod_annotations("default", "web").await.unwrap(),
            Some(want.clone())
        );
    }

    // Someone the API server does not let list pods gets an error that
    // names the pod, not a "no such pod".
    let nobody = kubeconfig_as(&plane, "system:serviceaccount:default:nobody");
    let nobody = KubeStore::connect(Some(nobody.path())).await.unwrap();
    let e = nobody
        .pod_annotations("default", "web")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("read pod default/web"), "{e}");
    assert!(e.contains("forbidden"), "{e}");

    // The file backend holds no pods.
    let dir = tempfile::tempdir().unwrap();
    let file = AnyStore::File(FileStore::open(dir.path()).unwrap());
    assert_eq!(file.pod_annotations("default", "web").await.unwrap(), None);
}
