//! `tortiectl --datastore kubernetes:KUBECONFIG` against a real API server
//! (etcd + kube-apiserver v1.20.2 from `scripts/k8s.sh`, the CRDs of
//! `deploy/crds.yaml`):
//!
//! 1. Calico manifests (BGPConfiguration, BGPPeer, IPPool) go in with
//!    `tortiectl apply` and come back with `tortiectl get`.
//! 2. Calico's own Node annotations (as calico-node writes them) make the
//!    Kubernetes Node one of ours for `tortiectl get nodes`.
//! 3. A bad value is refused with the field named.

use std::path::Path;
use std::process::Command;

use tortie_testkit::k8s::ControlPlane;

fn tortiectl(kubeconfig: &Path, args: &[&str]) -> (bool, String) {
    let bin = tortie_tests::lab::bin_dir().join("tortiectl");
    if !bin.is_file() {
        panic!(
            "{} not found: `cargo build --workspace --bins` first (scripts/test.sh does)",
            bin.display()
        );
    }
    let out = Command::new(bin)
        .arg("--datastore")
        .arg(format!("kubernetes:{}", kubeconfig.display()))
        .args(args)
        .output()
        .expect("run tortiectl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn tortiectl_reads_and_writes_calico_resources_in_kubernetes() {
    let Some(plane) = ControlPlane::start("tortiectl on kubernetes") else {
        return;
    };
    let crds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/crds.yaml");
    plane.apply(&crds).unwrap_or_else(|e| panic!("{e}"));
    let kc = plane.kubeconfig();
    let dir = std::env::temp_dir().join(format!("tortie-ctl-kube-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    // 1. Calico's YAML, through tortiectl.
    let manifest = dir.join("calico.yaml");
    std::fs::write(
        &manifest,
        "\
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata:
  name: default
spec:
  asNumber: 64512
  nodeToNodeMeshEnabled: false
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: tor-a
spec:
  peerIP: 192.0.2.1
  asNumber: 65001
  nodeSelector: rack == 'a'
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: default-ipv4
spec:
  cidr: 10.244.0.0/16
  ipipMode: CrossSubnet
  natOutgoing: true
",
    )
    .unwrap();
    let (ok, out) = tortiectl(&kc, &["apply", "-f", &manifest.display().to_string()]);
    assert!(ok, "apply: {out}");
    let (ok, out) = tortiectl(&kc, &["get", "bgppeer", "tor-a", "-o", "json"]);
    assert!(ok, "get: {out}");
    assert!(out.contains("192.0.2.1") && out.contains("65001"), "{out}");
    let (ok, out) = tortiectl(&kc, &["get", "ippools"]);
    assert!(
        ok && out.contains("default-ipv4") && out.contains("10.244.0.0/16"),
        "{out}"
    );
    // The same objects, seen by kubectl.
    let seen = plane
        .kubectl(&[
            "get",
            "bgppeers.projectcalico.org",
            "tor-a",
            "-o",
            "jsonpath={.spec.peerIP}",
        ])
        .unwrap();
    assert_eq!(seen, "192.0.2.1");

    // 2. A Node calico-node annotated is one of ours.
    std::fs::write(
        dir.join("node.json"),
        r#"{"apiVersion":"v1","kind":"Node","metadata":{"name":"worker-1","labels":{"rack":"a"},"annotations":{"projectcalico.org/IPv4Address":"192.168.1.11/24","projectcalico.org/ASNumber":"64512"}}}"#,
    )
    .unwrap();
    plane
        .kubectl(&["create", "-f", &dir.join("node.json").display().to_string()])
        .unwrap();
    let (ok, out) = tortiectl(&kc, &["get", "nodes", "-o", "json"]);
    assert!(
        ok && out.contains("worker-1") && out.contains("192.168.1.11/24"),
        "{out}"
    );

    // 3. A bad value is named.
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: bad\nspec:\n  cidr: 10.300.0.0/16\n",
    )
    .unwrap();
    let (ok, out) = tortiectl(&kc, &["apply", "-f", &bad.display().to_string()]);
    assert!(!ok, "a bad pool is refused: {out}");
    assert!(out.contains("cidr"), "the field is named: {out}");
    let _ = std::fs::remove_dir_all(&dir);
}
