//! Watch load: tortie-node agents on the Kubernetes datastore while pods
//! are created and deleted across the nodes.
//!
//! ```text
//!   subnet A 172.30.1.0/24
//!   node1 .11  node2 .12  node3 .13       router .1 (etcd, kube-apiserver + audit log)
//! ```
//!
//! The lab without kubelets (a kubelet runs at most 110 pods, and two
//! cores cannot run hundreds of containers): each pod is what the lab
//! makes of it ([`Lab::add_pod`]): its Pod object (kubectl), a network
//! namespace and a real CNI ADD by tortie-cni, and for a deletion a CNI
//! DEL and the Pod deleted. Pods go round-robin over the nodes, one at a
//! time.
//!
//! Phases, each ending with an audit read and a `/proc` sample of every
//! agent: start-up (agents started until the mesh is Established), idle
//! (10 s), create (every pod, then until every node routes every other
//! node's blocks), delete (every pod, then until no pod route is left,
//! plus 2 s).

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;
use tortie_ctl::lab::kube::cache;
use tortie_ctl::lab::{Encap, Lab, LabSpec};

use super::audit::{self, Client, Log, Tally, AGENT_USER};
use super::report::{Phase, WatchResult};
use super::{lab_name, lab_root, require, routes, run_cmd, Scratch};
use crate::procstat::Sample;

/// An environment variable naming a directory where the API server's
/// audit log is copied before the lab goes away (every request, as JSON
/// lines).
pub const KEEP_AUDIT: &str = "TORTIE_BENCH_KEEP_AUDIT";
/// The agents are sampled after every tenth of the pods made or deleted.
const STEPS: usize = 10;
/// How long the agents are left alone between start-up and the pods.
const IDLE: Duration = Duration::from_secs(10);

/// Runs the benchmark with `nodes` nodes and `pods` pods.
pub fn run(bin_dir: &Path, nodes: usize, pods: usize) -> Result<WatchResult> {
    require(false)?;
    let scratch = Scratch::new("k8s-watch")?;
    let policy = scratch.0.join("audit-policy.yaml");
    std::fs::write(&policy, audit::POLICY)?;
    let log = scratch.0.join("audit.log");
    let mut spec = LabSpec::new(&lab_name("kw"), nodes, &lab_root(), bin_dir);
    spec.kubernetes = true;
    spec.one_subnet = true;
    spec.encap = Encap::None;
    spec.no_agents = true;
    spec.pods_per_node = 0;
    spec.node_args = vec!["--log-level".into(), "warn".into()];
    spec.apiserver_args = vec![
        format!("--audit-policy-file={}", policy.display()),
        format!("--audit-log-path={}", log.display()),
        "--audit-log-format=json".into(),
        "--audit-log-mode=blocking".into(),
    ];
    eprintln!("k8s-watch: a lab of {nodes} nodes on the Kubernetes datastore ...");
    let mut lab = Lab::up(spec)?;
    let result = measure(&mut lab, &scratch.0, &log, pods);
    if let Some(keep) = std::env::var_os(KEEP_AUDIT) {
        let to = Path::new(&keep).join(format!("{}-audit.log", lab.spec.name));
        match std::fs::create_dir_all(&keep).and_then(|()| std::fs::copy(&log, &to)) {
            Ok(_) => eprintln!("k8s-watch: the audit log is kept in {}", to.display()),
            Err(e) => eprintln!("k8s-watch: cannot keep the audit log: {e}"),
        }
    }
    result.map_err(|e| {
        let diag: String = lab.diagnostics().chars().take(6000).collect();
        e.context(diag)
    })
}

fn measure(lab: &mut Lab, scratch: &Path, log: &Path, pods: usize) -> Result<WatchResult> {
    let nodes: Vec<(String, Ipv4Addr)> = lab
        .nodes
        .iter()
        .map(|n| (n.name.clone(), n.address))
        .collect();
    let mut audit = Log::new(log, nodes.clone());
    // Everything before the agents: the lab's own set-up.
    audit.take()?;
    let t0 = Instant::now();
    let mut start_up = start_agents(lab, scratch, &mut audit)?;
    super::wait_established(lab, Duration::from_secs(120))?;
    let pids: Vec<u32> = lab
        .nodes
        .iter()
        .map(|n| n.pid.context("an agent is not running"))
        .collect::<Result<_>>()?;
    let sample = || -> Result<Vec<Sample>> { pids.iter().map(|p| Sample::read(*p)).collect() };
    let mut phases = Vec::new();
    let mut samples = vec![sample()?];
    start_up.add(audit.take()?);
    phases.push(Phase::new("start-up", t0.elapsed(), start_up));

    eprintln!("k8s-watch: idle {} s ...", IDLE.as_secs());
    let t = Instant::now();
    std::thread::sleep(IDLE);
    samples.push(sample()?);
    phases.push(Phase::new("idle", t.elapsed(), audit.take()?));

    eprintln!("k8s-watch: creating {pods} pods ...");
    let step = (pods / STEPS).max(1);
    let mut create_steps = vec![(0, samples[1].clone())];
    let t = Instant::now();
    for k in 0..pods {
        crate::stop::check()?;
        lab.add_pod(k % nodes.len())
            .with_context(|| format!("pod {} of {pods}", k + 1))?;
        if (k + 1) % step == 0 || k + 1 == pods {
            create_steps.push((k + 1, sample()?));
            eprintln!(
                "k8s-watch: {} pods in {:.0} s",
                k + 1,
                t.elapsed().as_secs_f64()
            );
        }
    }
    let made = t.elapsed();
    let blocks = wait_routed(lab, Duration::from_secs(120))?;
    let converged = t.elapsed() - made;
    samples.push(sample()?);
    let mut create = Phase::new("create", t.elapsed(), audit.take()?);
    create.pods = pods;
    phases.push(create);

    eprintln!("k8s-watch: deleting {pods} pods ...");
    let t = Instant::now();
    let names: Vec<String> = lab.pods.iter().map(|p| p.name.clone()).collect();
    let mut delete_steps = vec![(0, samples[2].clone())];
    for (k, name) in names.iter().enumerate() {
        crate::stop::check()?;
        lab.delete_pod(name)?;
        if (k + 1) % step == 0 || k + 1 == pods {
            delete_steps.push((k + 1, sample()?));
            eprintln!(
                "k8s-watch: {} deleted in {:.0} s",
                k + 1,
                t.elapsed().as_secs_f64()
            );
        }
    }
    let unmade = t.elapsed();
    for n in &lab.nodes {
        routes::wait_for(&n.ns, Duration::from_secs(60), |t| {
            (!t.iter().any(|r| r.len == 32 && r.gateway.is_none())).then_some(())
        })
        .with_context(|| format!("{}: pod routes left after every deletion", n.name))?;
    }
    // The agents hear of the last deletions by their watches: a moment.
    std::thread::sleep(Duration::from_secs(2));
    samples.push(sample()?);
    let mut delete = Phase::new("delete", t.elapsed(), audit.take()?);
    delete.pods = pods;
    phases.push(delete);

    Ok(WatchResult {
        nodes,
        pods,
        make: made,
        unmake: unmade,
        converged,
        blocks,
        samples,
        create_steps,
        delete_steps,
        phases,
    })
}

/// Starts every node's agent as [`AGENT_USER`]: for as long as the agents
/// read their kubeconfig, the lab's holds that user's certificate, then
/// the administrator's again (tortie-cni and kubectl read the same file).
/// Returns the requests read from the audit log meanwhile.
fn start_agents(lab: &mut Lab, scratch: &Path, audit: &mut Log) -> Result<Tally> {
    let path = lab.kubeconfig();
    let admin = std::fs::read_to_string(&path)?;
    let agent = agent_kubeconfig(&admin, scratch)?;
    std::fs::write(&path, agent)?;
    let mut seen = Tally::default();
    let started = (|| -> Result<()> {
        for i in 0..lab.nodes.len() {
            lab.start_node(i)?;
        }
        // An agent has read the file once a request of its user came from
        // its node's address.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            seen.add(audit.take()?);
            let missing = lab
                .nodes
                .iter()
                .find(|n| seen.total(&Client::Agent(n.name.clone())) == 0);
            let Some(n) = missing else { return Ok(()) };
            if Instant::now() > deadline {
                bail!("{}'s agent made no request within 60 s", n.name);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })();
    std::fs::write(&path, admin)?;
    started.map(|()| seen)
}

/// A kubeconfig like the administrator's `admin` but with a client
/// certificate for [`AGENT_USER`] (in `system:masters`, as the
/// administrator), signed by the test CA into `scratch`.
fn agent_kubeconfig(admin: &str, scratch: &Path) -> Result<String> {
    let pki = cache().join("pki");
    let (key, csr, crt, ext) = (
        scratch.join("agent.key"),
        scratch.join("agent.csr"),
        scratch.join("agent.crt"),
        scratch.join("agent.ext"),
    );
    let subject = format!("/O=system:masters/CN={AGENT_USER}");
    run_cmd(
        Command::new("openssl")
            .args(["req", "-newkey", "rsa:2048", "-nodes", "-subj", &subject])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&csr),
    )?;
    std::fs::write(
        &ext,
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n",
    )?;
    run_cmd(
        Command::new("openssl")
            .args(["x509", "-req", "-days", "2", "-CAcreateserial"])
            .arg("-in")
            .arg(&csr)
            .arg("-CA")
            .arg(pki.join("ca.crt"))
            .arg("-CAkey")
            .arg(pki.join("ca.key"))
            .arg("-CAserial")
            .arg(scratch.join("ca.srl"))
            .arg("-out")
            .arg(&crt)
            .arg("-extfile")
            .arg(&ext),
    )?;
    let (admin_crt, admin_key) = (pki.join("admin.crt"), pki.join("admin.key"));
    let (admin_crt, admin_key) = (
        admin_crt.display().to_string(),
        admin_key.display().to_string(),
    );
    if !admin.contains(&admin_crt) || !admin.contains(&admin_key) {
        bail!("the lab's kubeconfig does not name {admin_crt} and {admin_key}: {admin}");
    }
    Ok(admin
        .replace(&admin_crt, &crt.display().to_string())
        .replace(&admin_key, &key.display().to_string()))
}

/// Waits until every node's table routes every other node's blocks (the
/// IPAMBlocks in the API) via that node; how many blocks there are.
fn wait_routed(lab: &Lab, within: Duration) -> Result<usize> {
    let list: Value =
        serde_json::from_str(&lab.kubectl(&["get", "ipamblocks.tortie.io", "-o", "json"])?)?;
    let mut blocks = Vec::new();
    for b in list["items"]
        .as_array()
        .context("no items in the IPAMBlock list")?
    {
        let cidr = b["spec"]["cidr"].as_str().context("a block without cidr")?;
        let owner = b["spec"]["affinity"]
            .as_str()
            .and_then(|a| a.strip_prefix("host:"))
            .and_then(|n| lab.nodes.iter().position(|x| x.name == n))
            .with_context(|| format!("block {cidr} has no lab node's affinity"))?;
        blocks.push((owner, cidr.to_string()));
    }
    let deadline = Instant::now() + within;
    for (j, node) in lab.nodes.iter().enumerate() {
        let want: Vec<(String, Ipv4Addr)> = blocks
            .iter()
            .filter(|(o, _)| *o != j)
            .map(|(o, p)| (p.clone(), lab.nodes[*o].address))
            .collect();
        let left = deadline.saturating_duration_since(Instant::now());
        routes::wait_for(&node.ns, left, move |t| {
            want.iter()
                .all(|(p, via)| {
                    t.iter()
                        .any(|r| r.prefix() == *p && r.gateway == Some(*via))
                })
                .then_some(())
        })
        .with_context(|| format!("{} does not route every other node's block", node.name))?;
    }
    Ok(blocks.len())
}
