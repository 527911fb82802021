//! `tortiectl lab`: a local cluster in network namespaces, each node a real
//! `tortie-node` process on a shared datastore (the file backend, or a
//! real etcd, or a real Kubernetes API server: `kube.rs`), pods made by
//! `tortie-cni` (`pods.rs`), checked by pings (`check.rs`).
//!
//! ```text
//!   subnet A 172.30.1.0/24 (bridge)            subnet B 172.30.2.0/24 (bridge)
//!   node1 .11   node2 .12   ... ─── router .1 | .1 ─── ... node3 .13
//!     │ pods (routed veths)                                 │ pods
//! ```
//!
//! The router knows only node addresses, so traffic between pods on the
//! two subnets must be encapsulated: IPIP CrossSubnet where the kernel has
//! the ipip module, VXLAN CrossSubnet where it has not. Nodes on one subnet
//! reach each other's pods without encapsulation.
//!
//! [`Stack`]: IPv4 (the default), dual stack (`--stack dual`: every node
//! also has `fd30:1::N/64` or `fd30:2::N/64`, every pod an address of the
//! IPv6 pool [`POOL6`] too, VXLAN CrossSubnet for it, pings over both), or
//! IPv6 only (`--stack ipv6`: no IPv4 on nodes or pods; router IDs by
//! `--router-id hash`; the file datastore only).
//!
//! A lab lives in a directory (`/run/tortie-lab/<name>` by default) that
//! holds `lab.json` (what was made), the datastore and the logs; `down`
//! removes what `lab.json` names. [`Lab`] also drives the multi-node tests
//! (start, stop, kill nodes; add and delete pods; ping), and tears itself
//! down on drop unless told to [`Lab::keep`].
//!
//! With kubelets (`LabSpec::kubelets`) each node is a real Kubernetes
//! node, a containerd and a kubelet (`kubelet.rs`, `cgroup.rs`), and
//! `deployed.rs` installs Tortie on them from `deploy/` and makes the pods
//! as real pods (`tortiectl lab demo --kubernetes --kubelets`).
//! `interrupt.rs` turns Ctrl-C during `lab up | demo` into a teardown.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// The signals `stop_node` sends (re-exported: callers need not match our
/// nix version).
pub use nix::sys::signal::Signal;

mod cgroup;
mod check;
pub mod deployed;
pub mod interrupt;
pub mod kube;
pub mod kubelet;
pub mod net;
mod pods;
pub mod report;

/// Where labs live by default.
pub const DEFAULT_ROOT: &str = "/run/tortie-lab";
/// The admin address of every lab node (inside its own namespace).
pub const ADMIN: &str = "127.0.0.1:9099";
/// The lab's pool.
pub const POOL: &str = "10.244.0.0/16";
/// The lab's IPv6 pool (dual stack and IPv6 only), in blocks of /122 (64
/// addresses, Calico's IPv6 default).
pub const POOL6: &str = "fd00:10:244::/48";
/// Where the lab's etcd listens (in the router's namespace).
pub const ETCD: &str = "http://172.30.1.1:2379";
/// The lab's key prefix in etcd.
pub const ETCD_PREFIX: &str = "/tortie-lab";

/// How pods on different subnets reach each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Encap {
    /// IPIP if the kernel has it, else VXLAN.
    Auto,
    /// IPIP CrossSubnet.
    Ipip,
    /// VXLAN CrossSubnet.
    Vxlan,
    /// No encapsulation: the router between the subnets must know the
    /// pod routes (a ToR that peers with the nodes).
    None,
}

/// The IP families of the lab's nodes and pods.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Stack {
    /// IPv4 only.
    #[default]
    Ipv4,
    /// IPv4 and IPv6: two pools, two addresses per node and pod.
    Dual,
    /// IPv6 only.
    Ipv6,
}

/// What to build.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LabSpec {
    /// A short name: namespaces are `tl-<name>-...`.
    pub name: String,
    pub nodes: usize,
    pub pods_per_node: usize,
    pub encap: Encap,
    /// The lab's directory.
    pub dir: PathBuf,
    /// The tortie-node, tortie-cni and tortiectl binaries.
    pub node_bin: PathBuf,
    pub cni_bin: PathBuf,
    #[serde(default)]
    pub ctl_bin: PathBuf,
    /// Keep the datastore in a real etcd (run in the router's namespace,
    /// at 172.30.1.1:2379) instead of the file backend.
    #[serde(default)]
    pub etcd: bool,
    /// Keep the datastore in a real Kubernetes API server (on the lab's
    /// etcd, at 172.30.1.1:6443; `kube.rs`) instead of the file backend.
    #[serde(default)]
    pub kubernetes: bool,
    /// Real Kubernetes nodes (needs `kubernetes`): a containerd and a
    /// kubelet in each node's namespace, a controller manager and a
    /// scheduler beside the API server (`kubelet.rs`). The lab then starts
    /// no tortie-node and makes no pod: the caller applies `deploy/` and
    /// creates pods, as on a real cluster.
    #[serde(default)]
    pub kubelets: bool,
    /// Container images (docker-archive tarballs) every kubelet node
    /// imports (the pause image is always imported).
    #[serde(default)]
    pub images: Vec<PathBuf>,
    /// Extra `resources.yaml` documents (appended to the pool).
    #[serde(default)]
    pub resources: String,
    /// Extra tortie-node arguments, for every node.
    #[serde(default)]
    pub node_args: Vec<String>,
    /// Extra kube-apiserver arguments (with `kubernetes`), e.g. an audit
    /// policy and log for the benchmarks that count the agents' requests.
    #[serde(default)]
    pub apiserver_args: Vec<String>,
    /// Extra tortie-node arguments of one node (by 1-based number).
    #[serde(default)]
    pub per_node_args: std::collections::BTreeMap<usize, Vec<String>>,
    /// Every node on subnet A (no router between nodes; no encapsulation
    /// needed). The benchmarks use it to compare with BIRD as Calico runs
    /// it, which routes directly on one subnet.
    #[serde(default)]
    pub one_subnet: bool,
    /// IPv4, dual stack or IPv6 only.
    #[serde(default)]
    pub stack: Stack,
    /// Do not start tortie-node at `up` (pods are still made: tortie-cni
    /// needs no agent). The caller starts them ([`Lab::start_node`]) or
    /// runs another routing daemon in the nodes' namespaces.
    #[serde(default)]
    pub no_agents: bool,
}

/// One lab node.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LabNode {
    pub name: String,
    pub ns: String,
    /// Its IPv4 address (0.0.0.0 in an IPv6-only lab).
    pub address: Ipv4Addr,
    /// Its IPv6 address (dual stack, IPv6 only).
    #[serde(default)]
    pub address6: Option<Ipv6Addr>,
    /// `A` or `B`.
    pub subnet: char,
    pub pid: Option<u32>,
    pub log: PathBuf,
}

/// One pod.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LabPod {
    pub name: String,
    /// Its network namespace (`/run/netns/<ns>`); empty for a kubelet
    /// node's pod, whose namespace is containerd's, in the node's own
    /// mount namespace (`kubectl exec` reaches it).
    pub ns: String,
    pub node: String,
    /// Its IPv4 address (0.0.0.0 in an IPv6-only lab).
    pub address: Ipv4Addr,
    /// Its IPv6 address (dual stack, IPv6 only).
    #[serde(default)]
    pub address6: Option<Ipv6Addr>,
}

/// A built lab.
#[derive(Debug, Serialize, Deserialize)]
pub struct Lab {
    pub spec: LabSpec,
    /// Cross-subnet encapsulation in use: `ipip` or `vxlan`.
    pub encap: String,
    pub router: String,
    pub switches: Vec<String>,
    pub nodes: Vec<LabNode>,
    pub pods: Vec<LabPod>,
    /// Other hosts on subnet A (a route reflector, a router under test):
    /// namespace and address.
    #[serde(default)]
    pub hosts: Vec<(String, Ipv4Addr)>,
    /// Pods made so far (for unique names).
    #[serde(default)]
    pub pod_counter: usize,
    #[serde(skip)]
    keep: bool,
    /// The tortie-node processes this value started, to reap them.
    #[serde(skip)]
    children: Vec<std::process::Child>,
}

// ===== impl LabSpec =====

impl LabSpec {
    /// A lab `name` with `nodes` nodes in `root/name`, binaries next to
    /// `bin_dir`.
    pub fn new(name: &str, nodes: usize, root: &Path, bin_dir: &Path) -> LabSpec {
        LabSpec {
            name: name.to_string(),
            nodes,
            pods_per_node: 1,
            encap: Encap::Auto,
            dir: root.join(name),
            node_bin: bin_dir.join("tortie-node"),
            cni_bin: bin_dir.join("tortie-cni"),
            ctl_bin: bin_dir.join("tortiectl"),
            etcd: false,
            kubernetes: false,
            kubelets: false,
            images: Vec::new(),
            resources: String::new(),
            node_args: Vec::new(),
            apiserver_args: Vec::new(),
            per_node_args: std::collections::BTreeMap::new(),
            one_subnet: false,
            stack: Stack::Ipv4,
            no_agents: false,
        }
    }

    /// What `Lab::up` refuses: a bad size or name, kubelets without
    /// Kubernetes, missing binaries, a lab of this name that exists.
    pub fn validate(&self) -> Result<()> {
        if self.nodes < 2 || self.nodes > 200 {
            bail!("--nodes {}: a lab has 2 to 200 nodes", self.nodes);
        }
        if self.name.is_empty()
            || self.name.len() > 16
            || !self.name.chars().all(|c| c.is_ascii_alphanumeric())
        {
            bail!("lab name {:?}: 1 to 16 letters or digits", self.name);
        }
        if self.kubelets && !self.kubernetes {
            bail!("kubelet nodes need the Kubernetes datastore (--kubernetes)");
        }
        if self.stack == Stack::Ipv6 && (self.etcd || self.kubernetes) {
            bail!("--stack ipv6 runs on the file datastore: the lab's etcd listens on the router's IPv4 address, which IPv6-only nodes cannot reach");
        }
        for bin in [&self.node_bin, &self.cni_bin] {
            if !bin.exists() {
                bail!("{} does not exist: build it (cargo build --release -p tortie-node -p tortie-cni)", bin.display());
            }
        }
        if self.dir.join("lab.json").exists() {
            bail!(
                "a lab named {:?} exists ({}): `tortiectl lab down --name {}` first",
                self.name,
                self.dir.display(),
                self.name
            );
        }
        Ok(())
    }

    /// Makes node `n` (1-based) a route reflector with `cluster_id`: the
    /// label `route-reflector=true` (what a BGPPeer's peerSelector picks)
    /// and `--route-reflector-cluster-id`.
    pub fn reflector(&mut self, n: usize, cluster_id: &str) {
        self.per_node_args.entry(n).or_default().extend(
            [
                "--labels",
                "route-reflector=true",
                "--route-reflector-cluster-id",
                cluster_id,
            ]
            .map(String::from),
        );
    }
}

// ===== impl Lab =====

impl Lab {
    /// Builds the lab: namespaces, links, datastore, nodes, pods. On
    /// failure everything made is removed again.
    pub fn up(spec: LabSpec) -> Result<Lab> {
        spec.validate()?;
        std::fs::create_dir_all(spec.dir.join("store"))
            .with_context(|| format!("creating {}", spec.dir.display()))?;
        let p = format!("tl-{}", spec.name);
        let mut lab = Lab {
            encap: String::new(),
            router: format!("{p}-r"),
            switches: vec![format!("{p}-swa"), format!("{p}-swb")],
            nodes: Vec::new(),
            pods: Vec::new(),
            hosts: Vec::new(),
            pod_counter: 0,
            spec,
            keep: false,
            children: Vec::new(),
        };
        match lab.build() {
            Ok(()) => Ok(lab),
            Err(e) => {
                lab.down();
                Err(e)
            }
        }
    }

    /// Reads a lab made by `up` (for `status`, `down`).
    pub fn load(dir: &Path) -> Result<Lab> {
        let path = dir.join("lab.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("no lab at {} (reading {})", dir.display(), path.display()))?;
        let mut lab: Lab = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a lab file", path.display()))?;
        lab.keep = true;
        Ok(lab)
    }

    /// Keeps the lab running when this value is dropped.
    pub fn keep(&mut self) {
        self.keep = true;
    }

    fn save(&self) -> Result<()> {
        let path = self.spec.dir.join("lab.json");
        std::fs::write(&path, serde_json::to_string_pretty(self)?)
            .with_context(|| format!("writing {}", path.display()))
    }

    fn build(&mut self) -> Result<()> {
        self.save()?;
        net::add_netns(&self.router)?;
        for sw in &self.switches {
            net::add_netns(sw)?;
            net::ip_in(sw, &["link", "add", "br0", "type", "bridge"])?;
            net::ip_in(sw, &["link", "set", "br0", "up"])?;
        }
        self.attach(&self.router.clone(), 0, "etha", "172.30.1.1/24")?;
        self.attach(&self.router.clone(), 1, "ethb", "172.30.2.1/24")?;
        net::exec_in(&self.router, &["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
        if self.spec.stack != Stack::Ipv4 {
            // The router's IPv6 side: it forwards between the subnets and
            // knows only their prefixes, as for IPv4.
            net::exec_in(
                &self.router,
                &["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"],
            )?;
            for (dev, addr) in [("etha", "fd30:1::1/64"), ("ethb", "fd30:2::1/64")] {
                net::ip_in(&self.router, &["addr", "add", addr, "dev", dev, "nodad"])?;
            }
        }
        self.encap = match self.spec.encap {
            Encap::Ipip => "ipip".into(),
            Encap::Vxlan => "vxlan".into(),
            Encap::None => "none".into(),
            Encap::Auto if kernel_has_ipip(&self.router) => "ipip".into(),
            Encap::Auto => "vxlan".into(),
        };
        let mode = match self.encap.as_str() {
            "ipip" => "  ipipMode: CrossSubnet\n",
            "vxlan" => "  vxlanMode: CrossSubnet\n",
            _ => "",
        };
        let extra = if self.spec.resources.is_empty() {
            String::new()
        } else {
            format!("---\n{}", self.spec.resources)
        };
        // IPIP carries IPv4 only: the IPv6 pool uses VXLAN across subnets.
        let mode6 = if self.encap == "none" {
            ""
        } else {
            "  vxlanMode: CrossSubnet\n"
        };
        let pool4 = format!(
            "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: lab-pool\nspec:\n  cidr: {POOL}\n  blockSize: 26\n{mode}"
        );
        let pool6 = format!(
            "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: lab-pool-v6\nspec:\n  cidr: {POOL6}\n  blockSize: 122\n{mode6}"
        );
        let resources = if self.spec.kubelets {
            // deploy/ brings the pool (defaults.yaml).
            self.spec.resources.clone()
        } else {
            match self.spec.stack {
                Stack::Ipv4 => format!("{pool4}{extra}"),
                Stack::Dual => format!("{pool4}---\n{pool6}{extra}"),
                Stack::Ipv6 => format!("{pool6}{extra}"),
            }
        };
        std::fs::write(self.spec.dir.join("store/resources.yaml"), &resources)?;
        if self.spec.etcd || self.spec.kubernetes {
            self.start_etcd()?;
            if self.spec.kubernetes {
                self.start_kubernetes()?;
            }
            if self.spec.kubelets {
                self.start_controllers()?;
            }
            // etcd has no resources.yaml: write them through tortiectl.
            let file = self.spec.dir.join("resources.yaml");
            std::fs::write(&file, &resources)?;
            let file = file.display().to_string();
            let mut tries = 0;
            while !resources.is_empty() {
                interrupt::check()?;
                let Err(e) = self.tortiectl(&["apply", "-f", &file]) else {
                    break;
                };
                tries += 1;
                if tries == 20 {
                    return Err(e.context("writing the lab's resources to the datastore"));
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        }
        self.save()?;
        for i in 1..=self.spec.nodes {
            interrupt::check()?;
            self.add_node_ns(i)?;
        }
        self.save()?;
        if self.spec.kubelets {
            let images = self.spec.images.clone();
            for i in 0..self.nodes.len() {
                interrupt::check()?;
                self.start_kubelet(i, &images)?;
            }
            return self.wait_kubelets(Duration::from_secs(120));
        }
        if !self.spec.no_agents {
            for i in 0..self.nodes.len() {
                interrupt::check()?;
                self.start_node(i)?;
            }
        }
        for i in 0..self.nodes.len() {
            for _ in 0..self.spec.pods_per_node {
                interrupt::check()?;
                self.add_pod(i)?;
            }
        }
        Ok(())
    }

    /// `ip link add IF netns NS type veth peer ...` into switch `sw`, with
    /// address `addr` (none when empty).
    fn attach(&self, ns: &str, sw: usize, ifname: &str, addr: &str) -> Result<()> {
        let sw_ns = &self.switches[sw];
        // The switch end is named after the host's namespace suffix.
        let port = format!("{}-{ifname}", ns.rsplit('-').next().unwrap_or("h"));
        net::ip(&[
            "link", "add", ifname, "netns", ns, "type", "veth", "peer", "name", &port, "netns",
            sw_ns,
        ])?;
        net::ip_in(sw_ns, &["link", "set", &port, "master", "br0", "up"])?;
        if !addr.is_empty() {
            net::ip_in(ns, &["addr", "add", addr, "dev", ifname])?;
        }
        net::ip_in(ns, &["link", "set", ifname, "up"])
    }

    /// Makes node `i` (1-based): namespace, link, default route. Nodes
    /// beyond two thirds sit on subnet B (unless `one_subnet`).
    fn add_node_ns(&mut self, i: usize) -> Result<()> {
        let on_b = !self.spec.one_subnet && i > self.spec.nodes - self.spec.nodes / 3;
        self.make_node(i, on_b)
    }

    /// Makes node `i` on subnet B (`on_b`) or A.
    fn make_node(&mut self, i: usize, on_b: bool) -> Result<()> {
        let (subnet, net_id) = if on_b { ('B', 2) } else { ('A', 1) };
        let host = u8::try_from(10 + i).context("node number")?;
        let stack = self.spec.stack;
        let address = if stack == Stack::Ipv6 {
            Ipv4Addr::UNSPECIFIED
        } else {
            Ipv4Addr::new(172, 30, net_id, host)
        };
        // fd30:<subnet>::<node number> reads like 172.30.<subnet>.<node number>.
        let address6 = (stack != Stack::Ipv4)
            .then(|| format!("fd30:{net_id}::{host}").parse::<Ipv6Addr>())
            .transpose()
            .context("node IPv6 address")?;
        let ns = format!("tl-{}-n{i}", self.spec.name);
        self.nodes.push(LabNode {
            name: format!("node{i}"),
            ns: ns.clone(),
            address,
            address6,
            subnet,
            pid: None,
            log: self.spec.dir.join(format!("node{i}.log")),
        });
        self.save()?;
        net::add_netns(&ns)?;
        let v4 = if stack == Stack::Ipv6 {
            String::new()
        } else {
            format!("{address}/24")
        };
        self.attach(&ns, usize::from(on_b), "eth0", &v4)?;
        if stack != Stack::Ipv6 {
            let gw = format!("172.30.{net_id}.1");
            net::ip_in(&ns, &["route", "add", "default", "via", &gw])?;
        }
        net::exec_in(&ns, &["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
        if let Some(a6) = address6 {
            // No duplicate address detection: usable at once.
            let a6 = format!("{a6}/64");
            net::ip_in(&ns, &["addr", "add", &a6, "dev", "eth0", "nodad"])?;
            let gw = format!("fd30:{net_id}::1");
            net::ip_in(&ns, &["-6", "route", "add", "default", "via", &gw])?;
            net::exec_in(&ns, &["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"])?;
        }
        Ok(())
    }

    /// Starts tortie-node on node `i` (0-based index into `nodes`).
    pub fn start_node(&mut self, i: usize) -> Result<()> {
        if self.spec.kubernetes {
            self.register_kube_node(i)?;
        }
        let node = &self.nodes[i];
        let log = File::options()
            .create(true)
            .append(true)
            .open(&node.log)
            .with_context(|| format!("opening {}", node.log.display()))?;
        let store = self.datastore();
        let state = self.spec.dir.join(format!("{}.state", node.name));
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &node.ns])
            .arg(&self.spec.node_bin)
            .args([
                "--node-name",
                &node.name,
                "--datastore",
                &store,
                "--admin",
                ADMIN,
                "--etcd-prefix",
                ETCD_PREFIX,
            ])
            .args(node_address_args(node))
            .arg("--state-dir")
            .arg(&state)
            .args(&self.spec.node_args)
            .args(self.spec.per_node_args.get(&(i + 1)).into_iter().flatten())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // Its own process group: a Ctrl-C of tortiectl does not reach it.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", self.spec.node_bin.display()))?;
        self.nodes[i].pid = Some(child.id());
        self.children.push(child);
        self.save()
    }

    /// Sends `signal` to node `i`'s tortie-node and waits (up to 15 s) for
    /// it to exit.
    pub fn stop_node(&mut self, i: usize, signal: nix::sys::signal::Signal) -> Result<()> {
        let Some(pid) = self.nodes[i].pid.take() else {
            return Ok(());
        };
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(i32::try_from(pid)?), signal);
        let deadline = Instant::now() + Duration::from_secs(15);
        let gone = || !Path::new(&format!("/proc/{pid}")).exists();
        loop {
            // Reap it if it is our child (else it is gone once /proc says so).
            if let Some(pos) = self.children.iter().position(|c| c.id() == pid) {
                if let Ok(Some(_)) = self.children[pos].try_wait() {
                    // Exited and reaped by try_wait; wait() returns at once.
                    let _ = self.children.remove(pos).wait();
                    break;
                }
            } else if gone() {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not exit within 15 s of {signal}",
                    self.nodes[i].name
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.save()
    }

    /// Adds a node (joins subnet A), starts it; returns its index.
    pub fn add_node(&mut self) -> Result<usize> {
        let i = self.nodes.len() + 1;
        self.make_node(i, false)?;
        let idx = self.nodes.len() - 1;
        self.start_node(idx)?;
        Ok(idx)
    }

    /// Another host on subnet A, `.2` upwards, with a default route via
    /// the router: its namespace and address. Processes started in it are
    /// killed by `down`.
    pub fn add_host(&mut self, name: &str) -> Result<(String, Ipv4Addr)> {
        let address = Ipv4Addr::new(172, 30, 1, u8::try_from(2 + self.hosts.len())?);
        let ns = format!("tl-{}-{name}", self.spec.name);
        self.hosts.push((ns.clone(), address));
        self.save()?;
        net::add_netns(&ns)?;
        self.attach(&ns, 0, "eth0", &format!("{address}/24"))?;
        net::ip_in(&ns, &["route", "add", "default", "via", "172.30.1.1"])?;
        Ok((ns, address))
    }

    /// The nodes' `--datastore`.
    pub fn datastore(&self) -> String {
        if self.spec.kubernetes {
            format!("kubernetes:{}", self.kubeconfig().display())
        } else if self.spec.etcd {
            format!("etcd:{ETCD}")
        } else {
            format!("file:{}", self.spec.dir.join("store").display())
        }
    }

    /// Runs `tortiectl --datastore ... ARGS` where the datastore is
    /// reachable (the router's namespace for etcd and Kubernetes); returns
    /// its output.
    pub fn tortiectl(&self, args: &[&str]) -> Result<String> {
        let store = self.datastore();
        let ctl = self.spec.ctl_bin.display().to_string();
        let mut argv = vec![
            ctl.as_str(),
            "--datastore",
            &store,
            "--etcd-prefix",
            ETCD_PREFIX,
        ];
        argv.extend_from_slice(args);
        if self.spec.etcd || self.spec.kubernetes {
            net::exec_in(&self.router, &argv)
        } else {
            net::run(argv[0], &argv[1..])
        }
    }

    /// Stops the lab's etcd (SIGKILL): the datastore goes away.
    pub fn stop_etcd(&mut self) -> Result<()> {
        // The etcd child is the one started with the lab's data directory.
        let etcd = self.spec.dir.join("etcd").display().to_string();
        if !self.kill_child(&etcd) {
            bail!("no etcd of this lab is running");
        }
        Ok(())
    }

    /// Kills (SIGKILL) and reaps the children whose command line holds
    /// `marker`; whether there was one.
    fn kill_child(&mut self, marker: &str) -> bool {
        let before = self.children.len();
        self.children.retain_mut(|c| {
            let cmdline =
                std::fs::read_to_string(format!("/proc/{}/cmdline", c.id())).unwrap_or_default();
            if cmdline.contains(marker) {
                let _ = c.kill();
                let _ = c.wait();
                false
            } else {
                true
            }
        });
        self.children.len() < before
    }

    /// Starts etcd in the router's namespace and waits until it answers.
    pub fn start_etcd(&mut self) -> Result<()> {
        let dir = self.spec.dir.join("etcd");
        let log = File::create(self.spec.dir.join("etcd.log"))?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.router, "etcd", "--name", "lab"])
            .arg("--data-dir")
            .arg(&dir)
            .args([
                "--listen-client-urls",
                ETCD,
                "--advertise-client-urls",
                ETCD,
            ])
            .args(["--listen-peer-urls", "http://127.0.0.1:2380"])
            .args(["--initial-advertise-peer-urls", "http://127.0.0.1:2380"])
            .args(["--initial-cluster", "lab=http://127.0.0.1:2380"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd
            .spawn()
            .context("starting etcd (Debian package etcd-server)")?;
        self.children.push(child);
        let addr: SocketAddr = "172.30.1.1:2379".parse()?;
        let start = Instant::now();
        while net::connect_in(&self.router, addr, Duration::from_millis(500)).is_err() {
            interrupt::check()?;
            if start.elapsed() > Duration::from_secs(20) {
                bail!(
                    "etcd did not listen on {ETCD} within 20 s; see {}",
                    self.spec.dir.join("etcd.log").display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// Removes everything the lab made: processes, namespaces, directory.
    pub fn down(&mut self) {
        if self.spec.kubelets {
            self.stop_kubelets();
        }
        for n in &self.nodes {
            net::del_netns(&n.ns);
        }
        for p in self.pods.iter().filter(|p| !p.ns.is_empty()) {
            net::del_netns(&p.ns);
        }
        for (h, _) in &self.hosts {
            net::del_netns(h);
        }
        net::del_netns(&self.router);
        for sw in &self.switches {
            net::del_netns(sw);
        }
        for mut c in self.children.drain(..) {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.spec.dir);
        self.nodes.clear();
        self.pods.clear();
        self.keep = true;
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if !self.keep {
            self.down();
        }
    }
}

/// `--ip` (and `--ip6`, or for an IPv6-only node `--router-id hash`) of a
/// lab node.
fn node_address_args(node: &LabNode) -> Vec<String> {
    let v6 = node.address6.map(|a| format!("{a}/64"));
    match (node.address.is_unspecified(), v6) {
        (true, Some(v6)) => vec!["--ip".into(), v6, "--router-id".into(), "hash".into()],
        (_, v6) => {
            let mut args = vec!["--ip".into(), format!("{}/24", node.address)];
            if let Some(v6) = v6 {
                args.extend(["--ip6".into(), v6]);
            }
            args
        }
    }
}

// ===== impl LabNode, LabPod =====

impl LabNode {
    /// Its addresses: IPv4 (unless IPv6 only), then IPv6 (if any).
    pub fn addresses(&self) -> Vec<IpAddr> {
        addresses(self.address, self.address6)
    }
}

impl LabPod {
    /// Its addresses: IPv4 (unless IPv6 only), then IPv6 (if any).
    pub fn addresses(&self) -> Vec<IpAddr> {
        addresses(self.address, self.address6)
    }

    /// The address pings go to by default: IPv4, or IPv6 in an IPv6-only
    /// lab.
    pub fn primary(&self) -> IpAddr {
        self.addresses()
            .first()
            .copied()
            .unwrap_or(IpAddr::V4(self.address))
    }
}

/// The first IPv4 and the first IPv6 address of `ips` (a pod's, as CNI
/// or Kubernetes lists them).
fn first_of_each(ips: &[IpAddr]) -> (Option<Ipv4Addr>, Option<Ipv6Addr>) {
    let v4 = ips.iter().find_map(|a| match a {
        IpAddr::V4(a) => Some(*a),
        IpAddr::V6(_) => None,
    });
    let v6 = ips.iter().find_map(|a| match a {
        IpAddr::V6(a) => Some(*a),
        IpAddr::V4(_) => None,
    });
    (v4, v6)
}

fn addresses(v4: Ipv4Addr, v6: Option<Ipv6Addr>) -> Vec<IpAddr> {
    (!v4.is_unspecified())
        .then_some(IpAddr::V4(v4))
        .into_iter()
        .chain(v6.map(IpAddr::V6))
        .collect()
}

/// `GET path` from `addr` inside namespace `ns`: the body of a 200, else
/// an error with the status and body.
pub fn get_in(ns: &str, addr: SocketAddr, path: &str) -> Result<String> {
    let stream = net::connect_in(ns, addr, Duration::from_secs(10))?;
    crate::http::get_on(stream, addr, path)
}

/// Whether the kernel can make an IPIP device (a probe in namespace `ns`,
/// which it leaves as it found it).
pub fn kernel_has_ipip(ns: &str) -> bool {
    let ok = net::ip_in(
        ns,
        &[
            "link",
            "add",
            "tlprobe",
            "type",
            "ipip",
            "local",
            "192.0.2.1",
            "remote",
            "192.0.2.2",
        ],
    )
    .is_ok();
    if ok {
        let _ = net::ip_in(ns, &["link", "del", "tlprobe"]);
    }
    ok
}
