//! The node agent's benchmarks: tortie-node next to BIRD configured as
//! Calico configures it, on the same lab (`tortie_ctl::lab`: nodes in
//! network namespaces on one bridge, a pod per node made by tortie-cni,
//! the file datastore), one daemon per node:
//!
//! - bring-up: every daemon started -> every node's kernel has a route to
//!   every other node's block, then a ping matrix;
//! - convergence: a block claimed on one node -> its route in every other
//!   node's kernel, and the same for its release;
//! - heal: a learned route deleted by hand -> back;
//! - restart: `kill -9`, and SIGTERM, then a new start of one node's
//!   daemon while every other pod pings a pod on it at 100 packets/s;
//! - scale: N nodes with one route reflector (the first node): bring-up,
//!   memory and idle CPU per node, convergence.
//!
//! Kernel tables are watched with one `ip monitor route` per node
//! ([`monitor`]). For tortie-node a claim starts at the datastore write
//! (the IPAM call that claims the block, as tortie-cni makes it for a
//! requested address) and a release at the IPAM release; for BIRD, which
//! has no datastore, at the kernel event on the origin node (a blackhole
//! route it learns, as Calico's BIRD learns what felix programs). So
//! BIRD's numbers leave out confd and felix, and tortie's include the
//! datastore watch.

pub mod bird;
pub mod monitor;
pub mod report;
pub mod run;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::signal::Signal;
use tortie_config::resources::BlockSpec;
use tortie_ctl::lab::{Encap, Lab, LabSpec, POOL};
use tortie_datastore::{AnyStore, StoreConfig, TypedStore};
use tortie_ipam::{Family, Ipam, IpamConfig, Request};

use crate::procstat::Sample;
use monitor::Monitor;

/// The AS every node is in (tortie-node's default, Calico's too).
const ASN: u32 = 64512;
/// The lab pool's block size.
const BLOCK_LEN: u8 = 26;

/// The daemon under test on every node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Daemon {
    Tortie,
    Bird,
}

impl Daemon {
    /// `tortie` or `bird`.
    pub fn parse(s: &str) -> Result<Daemon> {
        match s {
            "tortie" => Ok(Daemon::Tortie),
            "bird" => Ok(Daemon::Bird),
            other => bail!("unknown daemon {other:?}: tortie or bird"),
        }
    }

    /// The name in the tables.
    pub fn label(self) -> &'static str {
        match self {
            Daemon::Tortie => "tortie-node",
            Daemon::Bird => "BIRD 2 (as Calico runs it)",
        }
    }
}

/// How the nodes peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topology {
    /// Node-to-node mesh.
    Mesh,
    /// The mesh off; the first node reflects for the others.
    Reflector,
}

impl Topology {
    pub fn label(self) -> &'static str {
        match self {
            Topology::Mesh => "full mesh",
            Topology::Reflector => "one route reflector",
        }
    }
}

/// A block claim and its release, timed until the last other node's kernel
/// had the change.
#[derive(Clone, Copy, Debug)]
pub struct Trial {
    /// From the clock's start (tortie-node: the IPAM call; BIRD: the
    /// origin's kernel event) until the last other node has the change.
    pub claim: Duration,
    pub release: Duration,
    /// From the origin node's own kernel event (its blackhole for the
    /// block added, or removed) until the last other node has the change:
    /// what the two daemons do alike.
    pub claim_spread: Duration,
    pub release_spread: Duration,
}

/// One lab with one daemon on every node, and a route monitor per node.
pub struct Bed {
    // Dropped first: the monitors, then the daemons, then the lab.
    monitors: Vec<Monitor>,
    d: Daemons,
    lab: Lab,
    ipam: Ipam<AnyStore>,
    rt: tokio::runtime::Runtime,
    /// Where the node logs are copied before the lab goes away.
    keep_logs: Option<PathBuf>,
}

/// The daemons of a bed and what starting one needs.
struct Daemons {
    kind: Daemon,
    topology: Topology,
    /// BIRD: the running processes, by node.
    birds: Vec<Option<Child>>,
    /// Every block in the store after the pods were made: (owner, prefix).
    blocks: Vec<(usize, String)>,
}

// ===== impl Bed =====

impl Bed {
    /// A lab of `nodes` nodes on one subnet with one pod each, no daemon
    /// running yet.
    pub fn new(daemon: Daemon, topology: Topology, nodes: usize, bin_dir: &Path) -> Result<Bed> {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "b{}x{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let root = std::env::temp_dir().join("tortie-bench-labs");
        let mut spec = LabSpec::new(&name, nodes, &root, bin_dir);
        spec.one_subnet = true;
        spec.encap = Encap::None;
        spec.no_agents = true;
        // Warnings only: a hundred agents log into one directory.
        spec.node_args = vec!["--log-level".into(), "warn".into()];
        if topology == Topology::Reflector {
            spec.resources = REFLECTOR_RESOURCES.into();
            spec.reflector(1, "10.0.0.1");
        }
        let lab = Lab::up(spec)?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let store = rt.block_on(AnyStore::open(&StoreConfig::File {
            dir: lab.spec.dir.join("store"),
        }))?;
        let ipam = Ipam::new(
            store,
            IpamConfig {
                empty_block_grace: Duration::ZERO,
                ..IpamConfig::default()
            },
        );
        let mut blocks = Vec::new();
        for (b, _) in rt.block_on(ipam.store().list_typed::<BlockSpec>())? {
            let owner = b
                .spec
                .affinity
                .as_deref()
                .and_then(|a| a.strip_prefix("host:"))
                .and_then(|n| lab.nodes.iter().position(|x| x.name == n))
                .with_context(|| format!("block {} has no lab node's affinity", b.spec.cidr))?;
            blocks.push((owner, b.spec.cidr.to_string()));
        }
        let monitors = lab
            .nodes
            .iter()
            .map(|n| Monitor::start(&n.ns))
            .collect::<Result<Vec<_>>>()?;
        Ok(Bed {
            monitors,
            d: Daemons {
                kind: daemon,
                topology,
                birds: (0..nodes).map(|_| None).collect(),
                blocks,
            },
            lab,
            ipam,
            rt,
            keep_logs: None,
        })
    }

    /// Profiling: tortie-node logs at `level` (`debug` shows each stage of
    /// a claim with its time) instead of warnings only, and the logs are
    /// copied to `keep` (as `<lab>-nodeN.log`) before the lab goes away.
    /// Call before [`Bed::bring_up`].
    pub fn trace_nodes(&mut self, level: &str, keep: &Path) {
        self.lab.spec.node_args = vec!["--log-level".into(), level.into()];
        self.keep_logs = Some(keep.to_path_buf());
    }

    /// Starts every node's daemon and waits until every node's kernel has a
    /// route to every other node's block: the time that took.
    pub fn bring_up(&mut self) -> Result<Duration> {
        let t0 = Instant::now();
        for i in 0..self.lab.nodes.len() {
            self.d.start(&mut self.lab, i, false)?;
        }
        let mut last = t0;
        for (j, m) in self.monitors.iter().enumerate() {
            for (owner, prefix) in self.d.blocks.iter().filter(|(o, _)| *o != j) {
                let at = m
                    .first_after(prefix, false, t0, Duration::from_secs(120))
                    .with_context(|| {
                        format!(
                            "{}: node{} never got node{}'s block {prefix}",
                            self.d.kind.label(),
                            j + 1,
                            owner + 1
                        )
                    })?;
                last = last.max(at);
            }
        }
        Ok(last - t0)
    }

    /// The process ids of the daemons, by node.
    fn pids(&self) -> Vec<Option<u32>> {
        match self.d.kind {
            Daemon::Tortie => self.lab.nodes.iter().map(|n| n.pid).collect(),
            Daemon::Bird => self
                .d
                .birds
                .iter()
                .map(|c| c.as_ref().map(Child::id))
                .collect(),
        }
    }

    /// Each daemon's memory now, by node.
    pub fn memory(&self) -> Result<Vec<Sample>> {
        self.pids()
            .into_iter()
            .map(|p| Sample::read(p.context("a daemon is not running")?))
            .collect()
    }

    /// CPU seconds all daemons have used so far, together.
    pub fn cpu_secs(&self) -> Result<f64> {
        self.pids()
            .into_iter()
            .flatten()
            .map(|p| Ok(Sample::read(p)?.cpu_secs()))
            .sum()
    }

    /// CPU seconds per second of all daemons together, over `window`.
    pub fn idle_cpu(&self, window: Duration) -> Result<f64> {
        let pids: Vec<u32> = self.pids().into_iter().flatten().collect();
        let before = pids
            .iter()
            .map(|p| Sample::read(*p))
            .collect::<Result<Vec<_>>>()?;
        std::thread::sleep(window);
        let mut cpu = 0.0;
        for (p, b) in pids.iter().zip(&before) {
            cpu += Sample::read(*p)?.cpu_secs_since(b);
        }
        Ok(cpu / window.as_secs_f64())
    }

    /// `trials` block claims and releases, each on another node (in the
    /// reflector topology never on the reflector itself).
    pub fn convergence(&mut self, trials: usize) -> Result<Vec<Trial>> {
        let n = self.lab.nodes.len();
        let mut out = Vec::new();
        for k in 0..trials {
            crate::stop::check()?;
            let origin = match self.d.topology {
                Topology::Mesh => k % n,
                Topology::Reflector => 1 + k % (n - 1),
            };
            let third = u8::try_from(200 + k / 4).context("at most 224 trials")?;
            let fourth = u8::try_from((k % 4) * 64).unwrap_or(0);
            let prefix = format!("10.244.{third}.{fourth}/26");
            let address = Ipv4Addr::new(10, 244, third, fourth + 1);
            let handle = format!("bench.trial{k}.eth0");
            let (from, t0) = self.claim(origin, &prefix, address, &handle)?;
            let last = self.everywhere(origin, &prefix, false, from)?;
            let at_origin = self.origin_event(origin, &prefix, false, from)?;
            let (rfrom, rt0) = self.release(origin, &prefix, &handle)?;
            let rlast = self.everywhere(origin, &prefix, true, rfrom)?;
            let rat_origin = self.origin_event(origin, &prefix, true, rfrom)?;
            out.push(Trial {
                claim: last.saturating_duration_since(t0),
                release: rlast.saturating_duration_since(rt0),
                claim_spread: last.saturating_duration_since(at_origin),
                release_spread: rlast.saturating_duration_since(rat_origin),
            });
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(out)
    }

    /// Claims `prefix` on node `origin`; returns when to look for events
    /// from and when the clock starts (see [`Bed::kernel_change`]).
    fn claim(
        &mut self,
        origin: usize,
        prefix: &str,
        address: Ipv4Addr,
        handle: &str,
    ) -> Result<(Instant, Instant)> {
        match self.d.kind {
            Daemon::Tortie => {
                let req = Request {
                    handle_id: handle.into(),
                    node: self.lab.nodes[origin].name.clone(),
                    pools: vec![],
                    families: vec![Family::V4],
                    attributes: Default::default(),
                };
                let t0 = Instant::now();
                let got = self
                    .rt
                    .block_on(self.ipam.allocate_address(&req, address.into()))?;
                if got.block.to_string() != prefix {
                    bail!("claimed {} for {address}, expected {prefix}", got.block);
                }
                Ok((t0, t0))
            }
            Daemon::Bird => self.kernel_change(origin, "add", prefix),
        }
    }

    /// Releases what `claim` claimed; returns when to look for events from
    /// and when the clock starts.
    fn release(&mut self, origin: usize, prefix: &str, handle: &str) -> Result<(Instant, Instant)> {
        match self.d.kind {
            Daemon::Tortie => {
                let node = self.lab.nodes[origin].name.clone();
                let t0 = Instant::now();
                self.rt.block_on(self.ipam.release(handle))?;
                let freed = self
                    .rt
                    .block_on(self.ipam.release_empty_blocks(Some(&node)))?;
                if !freed.iter().any(|b| b.to_string() == prefix) {
                    bail!("releasing {prefix} on {node} freed {freed:?}");
                }
                Ok((t0, t0))
            }
            Daemon::Bird => self.kernel_change(origin, "del", prefix),
        }
    }

    /// `ip route add|del blackhole PREFIX` on node `origin`: the time just
    /// before the change (other nodes' events are looked for from then on)
    /// and the time its monitor saw it (the clock starts there). Each
    /// monitor's reader thread stamps a line when it gets to run, so on a
    /// busy machine another node's line can be stamped before the origin's:
    /// that counts as zero, in BIRD's favour.
    fn kernel_change(&self, origin: usize, verb: &str, prefix: &str) -> Result<(Instant, Instant)> {
        let before = Instant::now();
        let ns = &self.lab.nodes[origin].ns;
        let ok = Command::new("ip")
            .args(["-n", ns, "route", verb, "blackhole", prefix])
            .status()?
            .success();
        if !ok {
            bail!("ip -n {ns} route {verb} blackhole {prefix} failed");
        }
        let t0 = self.monitors[origin]
            .first_after(prefix, verb == "del", before, Duration::from_secs(5))
            .with_context(|| format!("{ns}: the monitor did not see {verb} {prefix}"))?;
        Ok((before, t0))
    }

    /// When the last node but `origin` saw `prefix` added (or `deleted`),
    /// looking at events from `from` on.
    fn everywhere(
        &self,
        origin: usize,
        prefix: &str,
        deleted: bool,
        from: Instant,
    ) -> Result<Instant> {
        let mut last = from;
        for (j, m) in self
            .monitors
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != origin)
        {
            let at = m
                .first_after(prefix, deleted, from, Duration::from_secs(30))
                .with_context(|| {
                    format!(
                        "{}: node{} did not see {prefix} {} within 30 s",
                        self.d.kind.label(),
                        j + 1,
                        if deleted { "withdrawn" } else { "announced" }
                    )
                })?;
            last = last.max(at);
        }
        Ok(last)
    }

    /// When node `origin`'s own kernel got (or lost) its blackhole for
    /// `prefix`, from `from` on.
    fn origin_event(
        &self,
        origin: usize,
        prefix: &str,
        deleted: bool,
        from: Instant,
    ) -> Result<Instant> {
        self.monitors[origin]
            .first_after(prefix, deleted, from, Duration::from_secs(5))
            .with_context(|| {
                format!(
                    "{}: node{}'s own blackhole for {prefix} was not {}",
                    self.d.kind.label(),
                    origin + 1,
                    if deleted { "removed" } else { "added" }
                )
            })
    }

    /// `trials` times: a learned route deleted by hand on one node, until
    /// the daemon puts it back.
    pub fn heal(&mut self, trials: usize) -> Result<Vec<Duration>> {
        let n = self.lab.nodes.len();
        let mut out = Vec::new();
        for k in 0..trials {
            crate::stop::check()?;
            let owner = k % n;
            let victim = (k + 1) % n;
            let prefix = self
                .d
                .blocks
                .iter()
                .find(|(o, _)| *o == owner)
                .map(|(_, p)| p.clone())
                .context("a node without a block")?;
            let t0 = self.kernel_change_learned(victim, &prefix)?;
            let back = self.monitors[victim]
                .first_after(&prefix, false, t0, Duration::from_secs(10))
                .with_context(|| {
                    format!(
                        "{}: node{}'s route to {prefix} not back within 10 s",
                        self.d.kind.label(),
                        victim + 1
                    )
                })?;
            out.push(back - t0);
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(out)
    }

    /// Deletes the learned route to `prefix` on node `i`; when it went.
    fn kernel_change_learned(&self, i: usize, prefix: &str) -> Result<Instant> {
        let before = Instant::now();
        let ns = &self.lab.nodes[i].ns;
        let ok = Command::new("ip")
            .args(["-n", ns, "route", "del", prefix])
            .status()?
            .success();
        if !ok {
            bail!("ip -n {ns} route del {prefix} failed");
        }
        self.monitors[i]
            .first_after(prefix, true, before, Duration::from_secs(5))
            .with_context(|| format!("{ns}: the monitor did not see {prefix} deleted"))
    }

    /// Pings the last node's pod from every other pod at 100 packets/s for
    /// 10 s while that node's daemon is stopped with `signal` and started
    /// again at once; returns (lost, sent) over all pingers, once the
    /// routes are complete again.
    pub fn restart(&mut self, signal: Signal) -> Result<(u32, u32)> {
        let target = self.lab.nodes.len() - 1;
        let d = &mut self.d;
        let results = self.lab.ping_during(target, 1000, |lab| {
            std::thread::sleep(Duration::from_millis(500));
            d.stop(lab, target, signal)?;
            d.start(lab, target, true)
        })?;
        let sent: u32 = results.iter().map(|r| r.0).sum();
        let received: u32 = results.iter().map(|r| r.1).sum();
        self.wait_complete(Duration::from_secs(60))?;
        Ok((sent - received, sent))
    }

    /// Waits until every node's kernel has a route to every other node's
    /// block (read from the table, not the monitor).
    pub fn wait_complete(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut missing = None;
            for (j, node) in self.lab.nodes.iter().enumerate() {
                let out = Command::new("ip")
                    .args(["-n", &node.ns, "route", "show"])
                    .output()?;
                let table = String::from_utf8_lossy(&out.stdout);
                let have: std::collections::HashSet<&str> = table
                    .lines()
                    .filter_map(|l| l.split_whitespace().next())
                    .collect();
                if let Some((o, p)) = self
                    .d
                    .blocks
                    .iter()
                    .find(|(o, p)| *o != j && !have.contains(p.as_str()))
                {
                    missing = Some(format!("node{} lacks node{}'s {p}", j + 1, o + 1));
                    break;
                }
            }
            let Some(what) = missing else { return Ok(()) };
            if Instant::now() > deadline {
                bail!("{}: after {timeout:?} {what}", self.d.kind.label());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A ping from every pod to `k` others (all others where `k` is at
    /// least the pod count): (pairs answered, pairs tried, time taken).
    pub fn ping_matrix(&self, k: usize) -> (usize, usize, Duration) {
        let pods = &self.lab.pods;
        let t0 = Instant::now();
        let (ok, tried) = std::thread::scope(|s| {
            let handles: Vec<_> = (0..pods.len())
                .map(|a| {
                    s.spawn(move || {
                        let mut ok = 0;
                        let mut tried = 0;
                        for step in 1..=k.min(pods.len() - 1) {
                            let b = (a + step) % pods.len();
                            tried += 1;
                            ok += usize::from(self.lab.ping(
                                &pods[a],
                                pods[b].address,
                                Duration::from_secs(1),
                            ));
                        }
                        (ok, tried)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or((0, 0)))
                .fold((0, 0), |acc, x| (acc.0 + x.0, acc.1 + x.1))
        });
        (ok, tried, t0.elapsed())
    }

    /// The lab's diagnostics and the daemons' logs, for a failure.
    pub fn diagnostics(&self) -> String {
        let mut out = self.lab.diagnostics();
        if self.d.kind == Daemon::Bird {
            for i in 0..self.lab.nodes.len().min(3) {
                let log = self.lab.spec.dir.join(format!("bird{}.log", i + 1));
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(5).collect();
                out.push_str(&format!("bird{} log: {tail:?}\n", i + 1));
            }
        }
        out
    }
}

// ===== impl Daemons =====

impl Daemons {
    /// Starts node `i`'s daemon (`restart`: BIRD gets `-R`, as Calico
    /// restarts it). BIRD's configuration is written from the blocks and
    /// the topology, as confd would write it.
    fn start(&mut self, lab: &mut Lab, i: usize, restart: bool) -> Result<()> {
        if self.kind == Daemon::Tortie {
            return lab.start_node(i);
        }
        let node = &lab.nodes[i];
        let dir = &lab.spec.dir;
        let conf = dir.join(format!("bird{}.conf", i + 1));
        let own: Vec<String> = self
            .blocks
            .iter()
            .filter(|(o, _)| *o == i)
            .map(|(_, p)| p.clone())
            .collect();
        let all: Vec<Ipv4Addr> = lab.nodes.iter().map(|n| n.address).collect();
        let peering = match (self.topology, i) {
            (Topology::Mesh, _) => {
                bird::Peering::Mesh(all.iter().copied().filter(|a| *a != node.address).collect())
            }
            (Topology::Reflector, 0) => bird::Peering::Reflector {
                clients: all[1..].to_vec(),
            },
            (Topology::Reflector, _) => bird::Peering::Client { reflector: all[0] },
        };
        std::fs::write(
            &conf,
            bird::config(node.address, ASN, POOL, BLOCK_LEN, &own, &peering),
        )?;
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(dir.join(format!("bird{}.log", i + 1)))?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &node.ns, "bird", "-f", "-c"])
            .arg(&conf)
            .arg("-s")
            .arg(dir.join(format!("bird{}.ctl", i + 1)));
        if restart {
            cmd.arg("-R");
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting bird (apt install bird2)")?;
        self.birds[i] = Some(child);
        Ok(())
    }

    /// Stops node `i`'s daemon with `signal` and waits for it to exit.
    fn stop(&mut self, lab: &mut Lab, i: usize, signal: Signal) -> Result<()> {
        if self.kind == Daemon::Tortie {
            return lab.stop_node(i, signal);
        }
        let Some(mut child) = self.birds[i].take() else {
            return Ok(());
        };
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id())?);
        let _ = nix::sys::signal::kill(pid, signal);
        child.wait()?;
        Ok(())
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        let Some(keep) = &self.keep_logs else { return };
        let _ = std::fs::create_dir_all(keep);
        // Only agents' logs: a lab of BIRDs has none at these paths.
        for n in self.lab.nodes.iter().filter(|n| n.log.exists()) {
            let to = keep.join(format!("{}-{}.log", self.lab.spec.name, n.name));
            if let Err(e) = std::fs::copy(&n.log, &to) {
                eprintln!("bench: cannot keep {}: {e}", n.log.display());
            }
        }
    }
}

impl Drop for Daemons {
    /// The BIRDs are our children: killed and reaped here (the lab's
    /// teardown kills what runs in its namespaces, but cannot reap them).
    fn drop(&mut self) {
        for c in self.birds.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Mesh off, every node peers with the nodes labelled as reflectors.
const REFLECTOR_RESOURCES: &str = "apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata:
  name: default
spec:
  nodeToNodeMeshEnabled: false
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: to-reflectors
spec:
  nodeSelector: all()
  peerSelector: route-reflector == 'true'
";

/// The default place for the binaries: the workspace's release build.
pub fn default_bin_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release")
}
