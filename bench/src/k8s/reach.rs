//! Pod start to reachable from another node, on real kubelets.
//!
//! ```text
//!   subnet A 172.30.1.0/24 (bridge)
//!   node1 .11 (containerd, kubelet)   node2 .12 (containerd, kubelet)   router .1 (apiserver ...)
//! ```
//!
//! `deploy/` is applied as `docs/kubernetes.md` says (no node labelled for
//! tortie-rr: the two nodes mesh, the reflectors stay Pending), then pods
//! of a busybox image (the lab's `sleeping_pod`) are created on node1 one
//! after another: create, measure, wait until Ready, next. The Pod is
//! written and deleted with one API call each (`api`: curl, tens of
//! milliseconds; kubectl takes hundreds here), and every time starts when
//! that call starts (so it includes the call, shown beside). For each pod:
//!
//! - local: node1's table has the pod's /32 (`dev tort...`, written by
//!   tortie-cni at the end of its ADD);
//! - remote: node2's table routes the pod's address to node1
//!   (`via 172.30.1.11`). For a pod whose block is new, that is the block's
//!   route arriving over BGP; otherwise node2 had it already.
//!
//! Reachable is the later of the two. The first `--pods` pods take the
//! address IPAM picks; node1's first block is claimed when its agent
//! starts (its tunnel address), so they rarely need a new one. Then one
//! pod per five asks (Calico's `cni.projectcalico.org/ipAddrs`) for an
//! address in a block nobody has (10.244.200.1, 10.244.201.1, ...): node1
//! claims that block during the CNI ADD and node2 learns it over BGP, the
//! path a pod takes whenever its node's blocks are full. Then every pod is
//! deleted, one by one, each timed until node1's /32 is gone (the kubelet
//! stops the sandbox, tortie-cni's DEL removes the veth).
//!
//! Added routes are stamped by an `ip monitor route` per node (the node
//! benchmarks' [`Monitor`]); the pod's address is found, and removals are
//! timed, by [`routes::wait_for`] (the kernel announces no removal of a
//! route whose device went away).

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tortie_ctl::lab::kube::{cache, APISERVER};
use tortie_ctl::lab::kubelet::{build_images, sleeping_pod};
use tortie_ctl::lab::{Lab, LabSpec};

use super::report::{PodTimes, ReachResult};
use super::routes::{self, lookup};
use super::{lab_name, lab_root, repo, require, run_cmd, Scratch};
use crate::node::monitor::Monitor;

/// The lab's pod pool (`deploy/defaults.yaml`).
const POOL: (Ipv4Addr, u8) = (Ipv4Addr::new(10, 244, 0, 0), 16);
/// The pods' collection in the API.
const PODS: &str = "/api/v1/namespaces/default/pods";

/// Builds the images and the lab, applies `deploy/`, runs `pods` pods.
pub fn run(bin_dir: &Path, pods: usize) -> Result<ReachResult> {
    require(true)?;
    let scratch = Scratch::new("k8s-reach")?;
    eprintln!("k8s-reach: building the images ...");
    let images = build_images(&repo(), bin_dir, &scratch.0)?;
    let mut spec = LabSpec::new(&lab_name("kr"), 2, &lab_root(), bin_dir);
    spec.kubernetes = true;
    spec.kubelets = true;
    spec.one_subnet = true;
    spec.images = images;
    eprintln!("k8s-reach: a lab of two kubelet nodes ...");
    let t0 = Instant::now();
    let lab = Lab::up(spec)?;
    let lab_up = t0.elapsed();
    let result = measure(&lab, pods, lab_up);
    result.map_err(|e| {
        let diag: String = lab.kube_diagnosis().chars().take(6000).collect();
        e.context(diag)
    })
}

fn measure(lab: &Lab, pods: usize, lab_up: Duration) -> Result<ReachResult> {
    eprintln!("k8s-reach: applying deploy/ ...");
    let t0 = Instant::now();
    lab.install_deploy(&repo().join("deploy"), &[])?;
    super::wait_established(lab, Duration::from_secs(120))?;
    let deploy = t0.elapsed();
    let new_blocks = (pods / 5).max(1);
    let monitors = [
        Monitor::start(&lab.nodes[0].ns)?,
        Monitor::start(&lab.nodes[1].ns)?,
    ];
    let mut made = Vec::new();
    for k in 0..pods + new_blocks {
        crate::stop::check()?;
        // The last ones each ask for an address in a block nobody has.
        let (name, wanted) = match k.checked_sub(pods) {
            None => (format!("reach{k}"), None),
            Some(b) => (
                format!("newblock{b}"),
                Some(Ipv4Addr::new(10, 244, u8::try_from(200 + b)?, 1)),
            ),
        };
        let (t, ip) =
            one_pod(lab, &monitors, &name, wanted).with_context(|| format!("pod {name}"))?;
        if k % 10 == 9 {
            // A long run would keep every event.
            monitors.iter().for_each(Monitor::clear);
        }
        eprintln!(
            "k8s-reach: {name} {ip}: /32 on node1 after {:.0} ms, reachable from node2 after {:.0} ms{}",
            t.local.as_secs_f64() * 1e3,
            t.reachable.as_secs_f64() * 1e3,
            if t.remote.is_some() { " (new block)" } else { "" }
        );
        made.push((name, ip, t));
    }
    // Reachable means answering: node2 pings a few of them.
    let n2 = &lab.nodes[1];
    let sample: Vec<Ipv4Addr> = made
        .iter()
        .step_by((made.len() / 6).max(1))
        .map(|(_, ip, _)| *ip)
        .collect();
    let answered = sample
        .iter()
        .filter(|ip| {
            Command::new("ip")
                .args(["netns", "exec", &n2.ns, "ping", "-c", "1", "-W", "2"])
                .arg(ip.to_string())
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .count();
    eprintln!("k8s-reach: deleting the pods ...");
    let ns1 = lab.nodes[0].ns.clone();
    for (name, ip, t) in &mut made {
        crate::stop::check()?;
        let want = *ip;
        let gone = routes::spawn_wait_for(&ns1, Duration::from_secs(120), move |t| {
            (!t.iter().any(|r| r.len == 32 && r.dst == want)).then_some(())
        });
        // The poller is in the namespace and has dumped once (the route
        // is there) before the call.
        std::thread::sleep(Duration::from_millis(20));
        let start = Instant::now();
        api(lab, "DELETE", &format!("{PODS}/{name}"), None)?;
        t.delete_call = start.elapsed();
        let (gone, ()) = gone
            .join()
            .with_context(|| format!("node1's /32 for {name} ({ip}) after the delete"))?;
        t.delete = gone.saturating_duration_since(start);
    }
    lab.kubectl_until(
        &["wait", "--for=delete", "pod", "--all", "--timeout=10s"],
        Duration::from_secs(120),
    )?;
    let (auto, requested): (Vec<_>, Vec<_>) =
        made.into_iter().partition(|(n, ..)| n.starts_with("reach"));
    Ok(ReachResult {
        pods: auto.into_iter().map(|(.., t)| t).collect(),
        new_block_pods: requested.into_iter().map(|(.., t)| t).collect(),
        lab_up,
        deploy,
        pinged: (answered, sample.len()),
    })
}

/// Creates pod `name` on node1 (asking for address `wanted`, with Calico's
/// `ipAddrs` annotation, if given) and times it (see the module comment);
/// its times (without the deletion) and address.
fn one_pod(
    lab: &Lab,
    monitors: &[Monitor; 2],
    name: &str,
    wanted: Option<Ipv4Addr>,
) -> Result<(PodTimes, Ipv4Addr)> {
    let (n1, n2) = (&lab.nodes[0], &lab.nodes[1]);
    let (node1, ns1, ns2) = (n1.address, n1.ns.clone(), n2.ns.clone());
    let pool = routes::Route {
        dst: POOL.0,
        len: POOL.1,
        gateway: None,
    };
    let known: HashSet<Ipv4Addr> = routes::table(&ns1)?
        .iter()
        .filter(|r| r.len == 32 && pool.contains(r.dst))
        .map(|r| r.dst)
        .collect();
    let blocks_before: HashSet<String> = routes::table(&ns2)?
        .iter()
        .filter(|r| r.gateway == Some(node1) && r.len < 32 && pool.contains(r.dst))
        .map(|r| r.prefix())
        .collect();
    let mut pod: serde_json::Value = serde_json::from_str(&sleeping_pod(name, &n1.name))?;
    if let Some(a) = wanted {
        pod["metadata"]["annotations"] =
            serde_json::json!({"cni.projectcalico.org/ipAddrs": format!("[\"{a}\"]")});
    }
    let file = lab.spec.dir.join(format!("{name}.json"));
    std::fs::write(&file, pod.to_string())?;
    let start = Instant::now();
    api(lab, "POST", PODS, Some(&file))?;
    let create_call = start.elapsed();
    let (seen, ip) = routes::wait_for(&ns1, Duration::from_secs(180), move |t| {
        t.iter()
            .find(|r| r.len == 32 && pool.contains(r.dst) && !known.contains(&r.dst))
            .map(|r| r.dst)
    })
    .context("waiting for a new /32 in node1's table")?;
    if wanted.is_some_and(|w| w != ip) {
        bail!("{name} asked for {wanted:?} and got {ip}");
    }
    let local = monitors[0]
        .first_after(&format!("{ip}/32"), false, start, Duration::from_secs(1))
        .unwrap_or(seen);
    let (seen, block) = routes::wait_for(&ns2, Duration::from_secs(60), move |t| {
        lookup(t, ip)
            .filter(|r| r.gateway == Some(node1))
            .map(|r| r.prefix())
    })
    .with_context(|| format!("waiting for node2 to route {ip} via {node1}"))?;
    // Without a new block node2 had the route before the pod existed.
    let remote = (!blocks_before.contains(&block)).then(|| {
        monitors[1]
            .first_after(&block, false, start, Duration::from_secs(1))
            .unwrap_or(seen)
    });
    let reachable = remote.map_or(local, |r| r.max(local));
    lab.kubectl(&[
        "wait",
        "--for=condition=Ready",
        &format!("pod/{name}"),
        "--timeout=180s",
    ])
    .with_context(|| format!("waiting for {name} to be Ready"))?;
    Ok((
        PodTimes {
            create_call,
            local: local - start,
            reachable: reachable - start,
            remote: remote.map(|r| r - start),
            delete_call: Duration::ZERO,
            delete: Duration::ZERO,
        },
        ip,
    ))
}

/// One request to the API server as the lab's administrator (`curl` in
/// the router's namespace, `body` a JSON file): a few milliseconds, where
/// kubectl takes hundreds on this machine (its own start-up), which would
/// blur when the Pod was written or deleted. Its response body.
fn api(lab: &Lab, method: &str, path: &str, body: Option<&Path>) -> Result<String> {
    let pki = cache().join("pki");
    let mut cmd = Command::new("ip");
    cmd.args([
        "netns",
        "exec",
        &lab.router,
        "curl",
        "-sS",
        "--fail-with-body",
    ])
    .args(["-X", method, "-H", "Content-Type: application/json"])
    .arg("--cacert")
    .arg(pki.join("ca.crt"))
    .arg("--cert")
    .arg(pki.join("admin.crt"))
    .arg("--key")
    .arg(pki.join("admin.key"));
    if let Some(b) = body {
        cmd.arg("--data-binary").arg(format!("@{}", b.display()));
    }
    cmd.arg(format!("{APISERVER}{path}"));
    run_cmd(&mut cmd).with_context(|| format!("{method} {path}"))
}
