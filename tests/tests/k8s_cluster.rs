//! Tortie installed on a real Kubernetes cluster from `deploy/`, as a user
//! installs it: the lab with kubelet nodes (`LabSpec::kubelets`): etcd,
//! kube-apiserver, controller manager and scheduler (v1.20.2, built by
//! `scripts/k8s.sh`) in the router's namespace; two nodes, each a network
//! namespace with its own containerd and kubelet; the image of
//! `scripts/image.sh` (the workspace's binaries) imported on each.
//!
//! ```text
//!   subnet A 172.30.1.0/24 (bridge)
//!   node1 .11 (containerd, kubelet)   node2 .12 (containerd, kubelet)   router .1 (apiserver ...)
//! ```
//!
//! 1. `kubectl apply -f deploy/` (CRDs first): the DaemonSet runs
//!    tortie-node on both nodes, its init container installs tortie-cni;
//!    the nodes become Ready; tortie-rr runs on both (labelled) nodes.
//! 2. Two pods, one per node, get addresses from tortie-cni through the
//!    kubelet and ping each other; each Pod carries its endpoint.
//! 3. Service IP advertisement to a BIRD ToR (a host on the subnet, AS
//!    65000, a BGPPeer of every node): the BGPConfiguration's cluster and
//!    external ranges from both nodes; Service `web` (NodePort,
//!    `externalTrafficPolicy: Local`, external IP 203.0.113.10) selects
//!    pod `pa`: the endpoints controller places its endpoint on node1, and
//!    the ToR gets the external IP's and the cluster IP's /32 from node1
//!    only; the pod unlabelled, both are withdrawn.
//! 4. A rolling update of the DaemonSet (every tortie-node pod replaced,
//!    one at a time) loses no ping between the pods.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tortie_ctl::lab::kubelet::{build_images, sleeping_pod};
use tortie_ctl::lab::Lab;
use tortie_tests::lab::{bin_dir, spec};
use tortie_tests::tor::{BirdTor, TOR_AS};

/// A directory removed on drop (also when the test fails).
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs a command; its stdout, or an error with its output.
fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `kubectl apply` of a JSON or YAML text, written into the lab's directory.
fn apply(lab: &Lab, name: &str, text: &str) -> Result<()> {
    let file = lab.spec.dir.join(name);
    std::fs::write(&file, text)?;
    lab.kubectl(&["apply", "-f", &file.display().to_string()])?;
    Ok(())
}

/// Step 3: service addresses at a BIRD ToR, following pod `pa` (address
/// `pa_ip`, on node1).
fn services(lab: &mut Lab, pa_ip: &str) -> Result<()> {
    let (ns, tor_addr) = lab.add_host("tor")?;
    let tor = BirdTor::start(lab, &ns, tor_addr, 64512)?;
    apply(
        lab,
        "tor-peer.yaml",
        &format!(
            "apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: tor\nspec:\n  peerIP: {tor_addr}\n  asNumber: {TOR_AS}\n"
        ),
    )?;
    lab.kubectl(&[
        "patch",
        "bgpconfiguration",
        "default",
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"serviceClusterIPs":[{"cidr":"10.96.0.0/16"}],"serviceExternalIPs":[{"cidr":"203.0.113.0/24"}]}}"#,
    ])?;
    for range in ["10.96.0.0/16", "203.0.113.0/24"] {
        tor.expect(range, &[0, 1])?;
    }
    lab.kubectl(&["label", "pod", "pa", "app=web"])?;
    let created = Instant::now();
    apply(
        lab,
        "web.json",
        &serde_json::json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "type": "NodePort",
                "externalTrafficPolicy": "Local",
                "selector": {"app": "web"},
                "ports": [{"port": 80}],
                "externalIPs": ["203.0.113.10"],
            },
        })
        .to_string(),
    )?;
    let cluster_ip = lab.kubectl(&["get", "service", "web", "-o", "jsonpath={.spec.clusterIP}"])?;
    // The endpoints controller placed pa's address on node1.
    let endpoints = lab.kubectl(&[
        "get",
        "endpoints",
        "web",
        "-o",
        "jsonpath={.subsets[*].addresses[*].ip} {.subsets[*].addresses[*].nodeName}",
    ])?;
    tor.expect("203.0.113.10/32", &[0])?;
    tor.expect(&format!("{cluster_ip}/32"), &[0])?;
    eprintln!(
        "k8s_cluster: Service web's /32s at the ToR from node1 only, {:.1} s after kubectl apply \
         of the Service (endpoint {endpoints:?}, pod {pa_ip})",
        created.elapsed().as_secs_f64()
    );
    lab.kubectl(&["label", "pod", "pa", "app-"])?;
    tor.expect("203.0.113.10/32", &[])?;
    tor.expect(&format!("{cluster_ip}/32"), &[])?;
    tor.expect("203.0.113.0/24", &[0, 1])?;
    Ok(())
}

#[test]
fn tortie_runs_from_deploy_on_kubelet_nodes() -> Result<()> {
    let cache = tortie_testkit::k8s::cache();
    if !cache.join("bin/kubelet").exists() || !cache.join("images/pause.tar").exists() {
        tortie_testkit::missing(
            "k8s_cluster",
            &format!("no Kubernetes in {} (scripts/k8s.sh all)", cache.display()),
        );
        return Ok(());
    }
    for tool in [
        "containerd",
        "ctr",
        "runc",
        "busybox",
        "nsenter",
        "unshare",
        "bird",
    ] {
        if run(Command::new("sh").args(["-c", &format!("command -v {tool}")])).is_err() {
            tortie_testkit::missing(
                "k8s_cluster",
                &format!(
                    "no {tool} (apt-get install containerd runc busybox-static util-linux bird2)"
                ),
            );
            return Ok(());
        }
    }
    let mut spec = spec("kc", 2)?;
    let scratch = Scratch(std::env::temp_dir().join(format!("tortie-kc-{}", spec.name)));
    std::fs::create_dir_all(&scratch.0)?;
    spec.kubernetes = true;
    spec.kubelets = true;
    spec.one_subnet = true;
    spec.images = build_images(&repo(), &bin_dir(), &scratch.0)?;
    let start = std::time::Instant::now();
    let mut lab = Lab::up(spec)?;
    eprintln!(
        "k8s_cluster: control plane and two kubelet nodes registered in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    let result = exercise(&mut lab);
    if let Err(e) = &result {
        eprintln!("k8s_cluster failed: {e:#}\n{}", lab.kube_diagnosis());
        if std::env::var_os("TORTIE_KEEP_LAB").is_some() {
            eprintln!("TORTIE_KEEP_LAB: lab {} kept", lab.spec.dir.display());
            lab.keep();
        }
    }
    result
}

fn exercise(lab: &mut Lab) -> Result<()> {
    let deploy = repo().join("deploy");
    let s = |p: &Path| p.display().to_string();
    // 1.
    let took = lab.install_deploy(&deploy, &["node1", "node2"])?;
    eprintln!(
        "k8s_cluster: tortie-node running and both nodes Ready {:.1} s after kubectl apply",
        took.as_secs_f64()
    );
    lab.rollout_done("deploy/tortie-rr")?;
    // 2.
    for (name, node) in [("pa", "node1"), ("pb", "node2")] {
        let file = lab.spec.dir.join(format!("{name}.json"));
        std::fs::write(&file, sleeping_pod(name, node))?;
        lab.kubectl(&["apply", "-f", &s(&file)])?;
    }
    lab.kubectl(&[
        "wait",
        "--for=condition=Ready",
        "pod/pa",
        "pod/pb",
        "--timeout=120s",
    ])?;
    let ip = |name: &str| lab.kubectl(&["get", "pod", name, "-o", "jsonpath={.status.podIP}"]);
    let (a, b) = (ip("pa")?, ip("pb")?);
    for addr in [&a, &b] {
        let parsed: std::net::Ipv4Addr =
            addr.parse().with_context(|| format!("pod IP {addr:?}"))?;
        assert!(
            "10.244.0.0/16".parse::<ipnet::Ipv4Net>()?.contains(&parsed),
            "pod address {addr} is not from deploy/defaults.yaml's pool"
        );
    }
    assert_ne!(a, b);
    let annotated = lab.kubectl(&[
        "get",
        "pod",
        "pa",
        "-o",
        "jsonpath={.metadata.annotations.cni\\.projectcalico\\.org/podIP}",
    ])?;
    assert_eq!(annotated, format!("{a}/32"));
    for (from, to) in [("pa", &b), ("pb", &a)] {
        lab.kubectl_until(
            &["exec", from, "--", "ping", "-c", "2", "-W", "2", to],
            Duration::from_secs(60),
        )
        .with_context(|| format!("{from} pinging {to}"))?;
    }
    // 3.
    services(lab, &a)?;
    // 4.
    let agents = |lab: &Lab| {
        lab.kubectl(&[
            "-n",
            "kube-system",
            "get",
            "pods",
            "-l",
            "app.kubernetes.io/component=node",
            "-o",
            "jsonpath={.items[*].metadata.uid}",
        ])
    };
    let before = agents(lab)?;
    lab.kubectl(&[
        "exec",
        "pa",
        "--",
        "sh",
        "-c",
        &format!("ping -i 0.2 {b} > /tmp/ping.log 2>&1 &"),
    ])?;
    lab.kubectl(&["-n", "kube-system", "rollout", "restart", "ds/tortie-node"])?;
    lab.rollout_done("ds/tortie-node")?;
    std::thread::sleep(Duration::from_secs(2));
    let summary = lab.kubectl(&[
        "exec",
        "pa",
        "--",
        "sh",
        "-c",
        "kill -INT $(pidof ping); sleep 1; tail -n 3 /tmp/ping.log",
    ])?;
    let after = agents(lab)?;
    for uid in before.split_whitespace() {
        assert!(
            !after.contains(uid),
            "tortie-node pod {uid} was not replaced: {after}"
        );
    }
    let counts: Vec<u64> = summary
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .with_context(|| format!("no ping summary: {summary}"))?
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .take(2)
        .collect();
    let (sent, received) = (counts[0], counts[1]);
    assert!(sent > 50, "the ping ran too briefly: {summary}");
    assert_eq!(
        sent, received,
        "pings lost during the DaemonSet's rolling update: {summary}"
    );
    eprintln!("k8s_cluster: rolling update of tortie-node: {received}/{sent} pings answered");
    Ok(())
}
