//! The manifests of `deploy/` against a real API server (etcd +
//! kube-apiserver v1.20.2 from `scripts/k8s.sh`; no kubelet, no
//! controllers):
//!
//! 1. `crds.yaml` applied, every other file passes `kubectl apply
//!    --dry-run=server` (the server's admission and schemas; kubectl checks
//!    the field names against the server's OpenAPI).
//! 2. The ServiceAccounts and ConfigMaps the DaemonSet and the Deployment
//!    use are defined (service accounts in `rbac.yaml`, in their namespace),
//!    and every container runs the one image.
//! 3. `rbac.yaml` applied: each service account can do what its programs
//!    do, and not what they do not (`kubectl auth can-i`).
//! 4. The CNI install script of `tortie-node.yaml`, run outside a cluster
//!    with a token of tortie-node's service account, writes a conflist and
//!    a kubeconfig that `tortie-cni` works with: STATUS fails without a
//!    pool, and passes once `defaults.yaml` is applied. The dual-stack
//!    switches are there with their IPv4 values (`TORTIE_IP6: none`,
//!    `CNI_ASSIGN_IPV6: "false"`); `CNI_ASSIGN_IPV6=true` writes
//!    `assignIPv6: true`, and a value other than true or false is refused
//!    by name with nothing written.
//! 5. `tortie-rr` with the `rr.yaml` of `tortie-rr.yaml` (routerId filled in
//!    as its container does) and a token of tortie-rr's service account
//!    follows the Nodes and the BGPConfiguration without a datastore error.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use tortie_testkit::k8s::{self, ControlPlane};
use tortie_tests::wait_until;

const TEST: &str = "deploy manifests";
const IMAGE: &str = "localhost/tortie:0.1.0";
const NODE_SA: &str = "system:serviceaccount:kube-system:tortie-node";
const RR_SA: &str = "system:serviceaccount:kube-system:tortie-rr";

/// What tortie-node's service account (the agent, and the CNI plugin
/// with its token) must be able to do, and what not.
const NODE_CAN: &[&str] = &[
    "patch pods",
    "list pods",
    "watch pods",
    "get namespaces",
    "get nodes",
    "list nodes",
    "watch nodes",
    "patch nodes",
    "list services",
    "watch services",
    "list endpoints",
    "watch endpoints",
    "get bgpconfigurations.projectcalico.org",
    "list bgpconfigurations.projectcalico.org",
    "watch bgpconfigurations.projectcalico.org",
    "list bgppeers.projectcalico.org",
    "watch bgppeers.projectcalico.org",
    "list bgpfilters.projectcalico.org",
    "watch bgpfilters.projectcalico.org",
    "list ippools.projectcalico.org",
    "watch ippools.projectcalico.org",
    "get ipamblocks.tortie.io",
    "list ipamblocks.tortie.io",
    "watch ipamblocks.tortie.io",
    "create ipamblocks.tortie.io",
    "update ipamblocks.tortie.io",
    "delete ipamblocks.tortie.io",
    "get blockaffinities.tortie.io",
    "list blockaffinities.tortie.io",
    "create blockaffinities.tortie.io",
    "update blockaffinities.tortie.io",
    "delete blockaffinities.tortie.io",
    "get ipamhandles.tortie.io",
    "list ipamhandles.tortie.io",
    "create ipamhandles.tortie.io",
    "update ipamhandles.tortie.io",
    "delete ipamhandles.tortie.io",
    "get caliconodestatuses.projectcalico.org",
    "list caliconodestatuses.projectcalico.org",
    "watch caliconodestatuses.projectcalico.org",
    "create caliconodestatuses.projectcalico.org",
    "update caliconodestatuses.projectcalico.org",
    "update caliconodestatuses.projectcalico.org --subresource=status",
    "patch bgpconfigurations.projectcalico.org --subresource=status",
    "patch bgppeers.projectcalico.org --subresource=status",
    "patch ippools.projectcalico.org --subresource=status",
];
const NODE_CANNOT: &[&str] = &[
    "get pods",
    "update pods",
    "create pods",
    "delete pods",
    "list namespaces",
    "watch namespaces",
    "patch namespaces",
    "create namespaces",
    "create nodes",
    "update nodes",
    "delete nodes",
    "get secrets",
    "list secrets",
    "get services",
    "update services",
    "patch endpoints",
    "create endpoints",
    "create deployments.apps",
    "patch daemonsets.apps",
    "create clusterrolebindings.rbac.authorization.k8s.io",
    "create bgppeers.projectcalico.org",
    "get bgpfilters.projectcalico.org",
    "update bgpfilters.projectcalico.org",
    "update bgpconfigurations.projectcalico.org",
    "update ippools.projectcalico.org",
    "delete ippools.projectcalico.org",
    "patch ipamblocks.tortie.io",
    "watch blockaffinities.tortie.io",
    "watch ipamhandles.tortie.io",
    "delete caliconodestatuses.projectcalico.org",
    "patch caliconodestatuses.projectcalico.org",
    "patch caliconodestatuses.projectcalico.org --subresource=status",
    "patch bgppeers.projectcalico.org",
    "patch ippools.projectcalico.org",
    "patch bgpconfigurations.projectcalico.org",
    "update bgppeers.projectcalico.org --subresource=status",
    "get bgppeers.projectcalico.org --subresource=status",
];
const RR_CAN: &[&str] = &[
    "list nodes",
    "watch nodes",
    "get bgpconfigurations.projectcalico.org",
    "list bgpconfigurations.projectcalico.org",
    "watch bgpconfigurations.projectcalico.org",
];
const RR_CANNOT: &[&str] = &[
    "get nodes",
    "patch nodes",
    "list pods",
    "get namespaces",
    "get secrets",
    "list services",
    "list endpoints",
    "list bgppeers.projectcalico.org",
    "list ippools.projectcalico.org",
    "update bgpconfigurations.projectcalico.org",
    "list ipamblocks.tortie.io",
    "list caliconodestatuses.projectcalico.org",
];

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(file)
}

fn bin(name: &str) -> PathBuf {
    let path = tortie_tests::lab::bin_dir().join(name);
    if !path.is_file() {
        panic!(
            "{} not found: `cargo build --workspace --bins` first (scripts/test.sh does)",
            path.display()
        );
    }
    path
}

/// kubectl as the administrator, its output whether it succeeds or not
/// (`auth can-i` answers `no` with exit status 1).
fn kubectl(plane: &ControlPlane, args: &[&str]) -> Output {
    let ours = k8s::cache().join("bin/kubectl");
    let program = if ours.exists() {
        ours
    } else {
        PathBuf::from("kubectl")
    };
    Command::new(program)
        .arg("--kubeconfig")
        .arg(plane.kubeconfig())
        .args(args)
        .output()
        .expect("run kubectl")
}

/// The objects kubectl printed as JSON: one object, a `List`, or several.
fn objects(json: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for v in serde_json::Deserializer::from_str(json).into_iter::<Value>() {
        let v = v.unwrap_or_else(|e| panic!("kubectl's JSON: {e}: {json}"));
        match v["items"].as_array() {
            Some(items) if v["kind"] == "List" => out.extend(items.iter().cloned()),
            _ => out.push(v),
        }
    }
    out
}

/// `file` through `kubectl apply --dry-run=server`: the objects as the
/// server would store them.
fn dry_run(plane: &ControlPlane, file: &str) -> Vec<Value> {
    let path = deploy(file).display().to_string();
    let out = plane
        .kubectl(&["apply", "--dry-run=server", "-f", &path, "-o", "json"])
        .unwrap_or_else(|e| panic!("{file} is refused: {e}"));
    let objects = objects(&out);
    assert!(!objects.is_empty(), "{file}: no object");
    objects
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

/// Whether `who` may do `check` ("VERB RESOURCE") in every namespace.
fn can(plane: &ControlPlane, who: &str, check: &str) -> bool {
    let mut args = vec!["auth", "can-i", "--all-namespaces", "--as", who];
    args.extend(check.split(' '));
    let out = kubectl(plane, &args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // A misspelt resource would be a "no" that proves nothing.
    assert!(
        !stderr.contains("doesn't have a resource type"),
        "kubectl auth can-i {check}: {stderr}"
    );
    match String::from_utf8_lossy(&out.stdout).trim() {
        "yes" => true,
        "no" => false,
        other => panic!("kubectl auth can-i {check}: {other:?} {stderr}"),
    }
}

/// A token of kube-system's service account `sa` (TokenRequest, as the
/// kubelet gets a pod's; `kubectl create token` needs kubectl 1.24).
fn token(plane: &ControlPlane, dir: &Path, sa: &str) -> String {
    let request = dir.join("token-request.json");
    std::fs::write(
        &request,
        r#"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenRequest","spec":{"expirationSeconds":3600}}"#,
    )
    .unwrap();
    let uri = format!("/api/v1/namespaces/kube-system/serviceaccounts/{sa}/token");
    let out = plane
        .kubectl(&[
            "create",
            "--raw",
            &uri,
            "-f",
            &request.display().to_string(),
        ])
        .unwrap_or_else(|e| panic!("a token for {sa}: {e}"));
    let v: Value = serde_json::from_str(&out).expect("a TokenRequest");
    v["status"]["token"].as_str().expect("a token").to_string()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `GET path` on 127.0.0.1:`port`: the body of a 200 answer as JSON.
fn get_json(port: u16, path: &str) -> Result<Value, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok();
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").map_err(|e| e.to_string())?;
    let mut text = String::new();
    s.read_to_string(&mut text).map_err(|e| e.to_string())?;
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no HTTP answer")?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return Err(format!("{path}: {head}"));
    }
    serde_json::from_str(body).map_err(|e| format!("{path}: {e}: {body}"))
}

/// Kills the process on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn deploy_manifests_apply_and_grant_least_privilege() {
    let Some(plane) = ControlPlane::start(TEST) else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    plane
        .apply(&deploy("crds.yaml"))
        .unwrap_or_else(|e| panic!("crds.yaml: {e}"));
    // The API server makes kube-system itself (its system namespaces
    // controller), right after it starts; make it if it is not there yet.
    if plane.kubectl(&["get", "namespace", "kube-system"]).is_err() {
        if let Err(e) = plane.kubectl(&["create", "namespace", "kube-system"]) {
            assert!(e.contains("AlreadyExists"), "{e}");
        }
    }

    // 1. Every file passes the server's checks.
    let rbac = dry_run(&plane, "rbac.yaml");
    let node = dry_run(&plane, "tortie-node.yaml");
    let rr = dry_run(&plane, "tortie-rr.yaml");
    let defaults = dry_run(&plane, "defaults.yaml");
    find(&defaults, "BGPConfiguration", "default");
    find(&defaults, "IPPool", "default-ipv4");

    // 2. What the workloads refer to is there.
    let daemonset = find(&node, "DaemonSet", "tortie-node");
    let deployment = find(&rr, "Deployment", "tortie-rr");
    for (workload, file) in [(daemonset, &node), (deployment, &rr)] {
        let name = &workload["metadata"]["name"];
        let namespace = &workload["metadata"]["namespace"];
        assert_eq!(namespace, "kube-system", "{name}");
        let pod = &workload["spec"]["template"]["spec"];
        let sa = pod["serviceAccountName"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no serviceAccountName"));
        let account = find(&rbac, "ServiceAccount", sa);
        assert_eq!(&account["metadata"]["namespace"], namespace, "{sa}");
        for volume in pod["volumes"].as_array().expect("volumes") {
            if let Some(cm) = volume["configMap"]["name"].as_str() {
                let map = find(file, "ConfigMap", cm);
                assert_eq!(&map["metadata"]["namespace"], namespace, "{cm}");
            }
        }
        let containers = pod["containers"].as_array().expect("containers");
        let init = pod["initContainers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for c in containers.iter().chain(init.iter()) {
            assert_eq!(c["image"], IMAGE, "{name}: {}", c["name"]);
            assert_eq!(
                c["imagePullPolicy"], "IfNotPresent",
                "{name}: {}",
                c["name"]
            );
        }
    }
    // The dual-stack switches (docs/kubernetes.md, "Dual stack"), as an
    // IPv4 cluster wants them.
    let env_of = |container: &str, var: &str| -> Value {
        let pod = &daemonset["spec"]["template"]["spec"];
        let all: Vec<&Value> = pod["containers"]
            .as_array()
            .into_iter()
            .chain(pod["initContainers"].as_array())
            .flatten()
            .collect();
        let c = all
            .iter()
            .find(|c| c["name"] == container)
            .unwrap_or_else(|| panic!("no container {container}"));
        c["env"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["name"] == var)
            .map(|e| e["value"].clone())
            .unwrap_or_else(|| panic!("{container}: no env {var}"))
    };
    assert_eq!(env_of("tortie-node", "TORTIE_IP6"), "none");
    assert_eq!(env_of("install-cni", "CNI_ASSIGN_IPV6"), "false");
    // Each binding's service account is one of rbac.yaml's.
    for binding in rbac.iter().filter(|o| o["kind"] == "ClusterRoleBinding") {
        for subject in binding["subjects"].as_array().expect("subjects") {
            let sa = subject["name"].as_str().expect("a subject's name");
            let account = find(&rbac, "ServiceAccount", sa);
            assert_eq!(account["metadata"]["namespace"], subject["namespace"]);
        }
    }

    // 3. Least privilege.
    plane
        .kubectl(&["apply", "-f", &deploy("rbac.yaml").display().to_string()])
        .unwrap_or_else(|e| panic!("rbac.yaml: {e}"));
    let mut wrong = Vec::new();
    for (who, checks, want) in [
        (NODE_SA, NODE_CAN, true),
        (NODE_SA, NODE_CANNOT, false),
        (RR_SA, RR_CAN, true),
        (RR_SA, RR_CANNOT, false),
    ] {
        for check in checks {
            if can(&plane, who, check) != want {
                let should = if want { "should" } else { "should not" };
                wrong.push(format!("{who} {should} be able to {check}"));
            }
        }
    }
    assert!(wrong.is_empty(), "rbac.yaml:\n{}", wrong.join("\n"));

    // 4. The CNI plugin's install, and the plugin with what it installed.
    let script = find(&node, "ConfigMap", "tortie-cni-install")["data"]["install-cni.sh"]
        .as_str()
        .expect("install-cni.sh")
        .to_string();
    let (cni_bin, cni_net, sa_dir) = (
        dir.path().join("opt-cni-bin"),
        dir.path().join("etc-cni-net.d"),
        dir.path().join("serviceaccount"),
    );
    std::fs::create_dir_all(&sa_dir).unwrap();
    std::fs::write(
        sa_dir.join("token"),
        token(&plane, dir.path(), "tortie-node"),
    )
    .unwrap();
    std::fs::copy(k8s::cache().join("pki/ca.crt"), sa_dir.join("ca.crt")).unwrap();
    std::fs::write(dir.path().join("install-cni.sh"), &script).unwrap();
    let port = plane
        .server()
        .rsplit(':')
        .next()
        .expect("a port")
        .to_string();
    let install = |net_dir: &Path, assign_ipv6: Option<&str>| -> Output {
        let mut cmd = Command::new("sh");
        cmd.arg(dir.path().join("install-cni.sh"))
            .arg("install")
            .env("CNI_BIN_DIR", &cni_bin)
            .env("CNI_NET_DIR", net_dir)
            .env("SA_DIR", &sa_dir)
            .env("TORTIE_CNI", bin("tortie-cni"))
            .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
            .env("KUBERNETES_SERVICE_PORT", &port)
            .env("NODE_NAME", "node-a");
        if let Some(v) = assign_ipv6 {
            cmd.env("CNI_ASSIGN_IPV6", v);
        }
        cmd.output().expect("run install-cni.sh")
    };
    let out = install(&cni_net, None);
    assert!(
        out.status.success(),
        "install-cni.sh: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let read_conflist = |net_dir: &Path| -> Value {
        serde_json::from_str(
            &std::fs::read_to_string(net_dir.join("10-tortie.conflist")).expect("the conflist"),
        )
        .expect("the conflist is JSON")
    };
    let dual_net = dir.path().join("etc-cni-net.d-dual");
    let out = install(&dual_net, Some("true"));
    assert!(
        out.status.success(),
        "install-cni.sh with CNI_ASSIGN_IPV6=true: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(read_conflist(&dual_net)["plugins"][0]["assignIPv6"], true);
    let bad_net = dir.path().join("etc-cni-net.d-bad");
    let out = install(&bad_net, Some("yes"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("CNI_ASSIGN_IPV6=yes: true or false"),
        "CNI_ASSIGN_IPV6=yes: {err}"
    );
    assert!(!bad_net.exists(), "nothing written for a bad value");
    let kubeconfig = cni_net.join("tortie-kubeconfig");
    let conflist = read_conflist(&cni_net);
    let plugins = conflist["plugins"].as_array().expect("plugins");
    assert_eq!(plugins.len(), 2, "{conflist}");
    assert_eq!(plugins[0]["type"], "tortie");
    assert_eq!(plugins[0]["nodeName"], "node-a");
    assert_eq!(plugins[0]["assignIPv6"], false);
    assert_eq!(
        plugins[0]["datastore"],
        serde_json::json!({"type": "kubernetes", "kubeconfig": kubeconfig.display().to_string()})
    );
    assert_eq!(plugins[1]["type"], "portmap");
    // The runtime hands a plugin its part of the list, with the list's
    // name and version (STATUS is CNI 1.1.0).
    let mut conf = plugins[0].clone();
    conf["name"] = conflist["name"].clone();
    conf["cniVersion"] = "1.1.0".into();
    let status = || {
        let mut child = Command::new(cni_bin.join("tortie"))
            .env("CNI_COMMAND", "STATUS")
            .env("CNI_PATH", &cni_bin)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run the installed plugin");
        let stdin = child.stdin.as_mut().expect("stdin");
        stdin.write_all(conf.to_string().as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let (ok, text) = status();
    assert!(
        !ok && text.contains("no enabled IP pool"),
        "STATUS without a pool: {text}"
    );
    plane
        .kubectl(&[
            "apply",
            "-f",
            &deploy("defaults.yaml").display().to_string(),
        ])
        .unwrap_or_else(|e| panic!("defaults.yaml: {e}"));
    let (ok, text) = status();
    assert!(
        ok,
        "STATUS with defaults.yaml's pool, as tortie-node: {text}"
    );

    // 5. tortie-rr as its service account, with the Deployment's rr.yaml.
    let rr_yaml = find(&rr, "ConfigMap", "tortie-rr")["data"]["rr.yaml"]
        .as_str()
        .expect("rr.yaml")
        .to_string();
    let command = deployment["spec"]["template"]["spec"]["containers"][0]["command"].to_string();
    assert!(
        command.contains("s/__NODE_IP__/$NODE_IP/g") && rr_yaml.contains("routerId: __NODE_IP__"),
        "the container fills in routerId: {command}"
    );
    let rendered = rr_yaml.replace("__NODE_IP__", "192.0.2.10");
    std::fs::write(dir.path().join("rr.yaml"), &rendered).unwrap();
    let out = Command::new(bin("tortie-rr"))
        .args(["--check", "--config"])
        .arg(dir.path().join("rr.yaml"))
        .output()
        .expect("run tortie-rr --check");
    assert!(
        out.status.success(),
        "rr.yaml: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Here, on free loopback ports, and a client on loopback (refused: no
    // packet leaves the machine).
    let (bgp, admin) = (free_port(), free_port());
    let local = rendered
        .replace("\"0.0.0.0:1179\"", &format!("\"127.0.0.1:{bgp}\""))
        .replace("\"127.0.0.1:9180\"", &format!("\"127.0.0.1:{admin}\""));
    assert!(local.contains(&format!(":{bgp}\"")) && local.contains(&format!(":{admin}\"")));
    std::fs::write(dir.path().join("rr-local.yaml"), &local).unwrap();
    std::fs::write(
        dir.path().join("node.json"),
        r#"{"apiVersion":"v1","kind":"Node","metadata":{"name":"node-a","annotations":{"projectcalico.org/IPv4Address":"127.0.0.2/8"}}}"#,
    )
    .unwrap();
    plane
        .kubectl(&[
            "create",
            "-f",
            &dir.path().join("node.json").display().to_string(),
        ])
        .unwrap_or_else(|e| panic!("a Node: {e}"));
    let rr_kubeconfig = dir.path().join("rr.kubeconfig");
    std::fs::write(
        &rr_kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: k\n  cluster:\n    server: {}\n    certificate-authority: {}\nusers:\n- name: rr\n  user:\n    token: {}\ncontexts:\n- name: rr\n  context:\n    cluster: k\n    user: rr\ncurrent-context: rr\n",
            plane.server(),
            k8s::cache().join("pki/ca.crt").display(),
            token(&plane, dir.path(), "tortie-rr"),
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.path().join("tortie-rr.log")).unwrap();
    let _rr = Killed(
        Command::new(bin("tortie-rr"))
            .arg("--config")
            .arg(dir.path().join("rr-local.yaml"))
            .arg("--state-dir")
            .arg(dir.path().join("rr-state"))
            .env("KUBECONFIG", &rr_kubeconfig)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start tortie-rr"),
    );
    let rr_log = || std::fs::read_to_string(dir.path().join("tortie-rr.log")).unwrap_or_default();
    let clients = |status: &Value| -> Result<Value, String> {
        let c = status["datastoreClients"].clone();
        match c["errors"].as_array() {
            Some(e) if !e.is_empty() => Err(format!("datastore errors: {e:?}")),
            _ if c["clients"] != 1 => Err(format!("clients: {c}")),
            _ => Ok(c),
        }
    };
    wait_until(
        Duration::from_secs(30),
        "tortie-rr's client from the Nodes",
        || clients(&get_json(admin, "/status")?),
    )
    .unwrap_or_else(|e| panic!("{e}\ntortie-rr's log:\n{}", rr_log()));
    // The probe (a get of BGPConfiguration default) runs every 2 s.
    std::thread::sleep(Duration::from_secs(5));
    let status = get_json(admin, "/status").expect("tortie-rr's /status");
    clients(&status).unwrap_or_else(|e| panic!("{e}\ntortie-rr's log:\n{}", rr_log()));
}
