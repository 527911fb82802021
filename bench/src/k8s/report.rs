//! The Kubernetes benchmarks' results and their Markdown sections.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::time::Duration;

use super::audit::{Client, Counts, Tally};
use crate::node::report::quantile;
use crate::procstat::Sample;

/// One pod of `k8s-reach`, every time from the start of the API call that
/// wrote (or deleted) its Pod.
#[derive(Clone, Copy, Debug, Default)]
pub struct PodTimes {
    /// How long the create call took.
    pub create_call: Duration,
    /// -> node1's table has the pod's /32 (tortie-cni's ADD done).
    pub local: Duration,
    /// -> node1 has the /32 and node2 routes the address to node1.
    pub reachable: Duration,
    /// -> node2's route for the pod's block, when node2 had none before
    /// the pod (a new block); `None` when it had.
    pub remote: Option<Duration>,
    /// How long the delete call took.
    pub delete_call: Duration,
    /// -> node1's /32 gone.
    pub delete: Duration,
}

// ===== impl PodTimes =====

impl PodTimes {
    /// node1's /32 -> node2's route: zero when node2 had the block's
    /// route already, or got it first.
    pub fn remote_after_local(&self) -> Duration {
        self.remote
            .map_or(Duration::ZERO, |r| r.saturating_sub(self.local))
    }
}

/// `k8s-reach`.
#[derive(Clone, Debug)]
pub struct ReachResult {
    /// Pods with the address IPAM picked.
    pub pods: Vec<PodTimes>,
    /// Pods that each asked for an address in a block nobody had.
    pub new_block_pods: Vec<PodTimes>,
    /// The lab up: namespaces, control plane, containerds and kubelets
    /// registered (images imported).
    pub lab_up: Duration,
    /// `deploy/` applied until every agent ran and the mesh was up.
    pub deploy: Duration,
    /// A sample of the pods pinged from node2's namespace: answered, tried.
    pub pinged: (usize, usize),
}

/// One phase of `k8s-watch`.
#[derive(Clone, Debug)]
pub struct Phase {
    pub name: &'static str,
    pub length: Duration,
    /// Pods created or deleted in it.
    pub pods: usize,
    pub requests: Tally,
}

/// `k8s-watch`.
#[derive(Clone, Debug)]
pub struct WatchResult {
    /// Name and address of each node.
    pub nodes: Vec<(String, Ipv4Addr)>,
    pub pods: usize,
    /// Every pod made, and every pod deleted.
    pub make: Duration,
    pub unmake: Duration,
    /// From the last pod made until every node routed every block.
    pub converged: Duration,
    /// IPAM blocks the pods took.
    pub blocks: usize,
    /// Each agent (by node) after start-up, idle, create and delete.
    pub samples: Vec<Vec<Sample>>,
    /// Each agent after every tenth of the pods made (from 0: before the
    /// first), and deleted.
    pub create_steps: Vec<(usize, Vec<Sample>)>,
    pub delete_steps: Vec<(usize, Vec<Sample>)>,
    /// start-up, idle, create, delete.
    pub phases: Vec<Phase>,
}

// ===== impl Phase =====

impl Phase {
    pub fn new(name: &'static str, length: Duration, requests: Tally) -> Phase {
        Phase {
            name,
            length,
            pods: 0,
            requests,
        }
    }
}

/// The `k8s-reach` section (below the run header).
pub fn reach_section(r: &ReachResult) -> String {
    let mut s = format!(
        "Lab up (2 kubelet nodes, images imported) in {:.0} s; `deploy/` applied until the DaemonSet ran and the mesh was up in {:.0} s. \
         Then pods on node1, one after another (each: create, time it, wait until Ready); every time from the start of the API call that wrote (or deleted) the Pod.\n\n",
        r.lab_up.as_secs_f64(),
        r.deploy.as_secs_f64(),
    );
    s.push_str(
        "| pods | API call itself: create, delete p50 (ms) | create -> node1's /32 (CNI ADD done): p50 / p99 / max (ms) | create -> reachable from node2: p50 / p99 / max (ms) | node1's /32 -> node2's route: p50 / p99 / max (ms) | needed a new block route | of those, create -> node2's block route: p50 / max (ms) | delete -> node1's /32 gone: p50 / p99 / max (ms) |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (label, p) in [
        ("address picked by IPAM", &r.pods),
        ("address in a new block (`ipAddrs`)", &r.new_block_pods),
    ] {
        if p.is_empty() {
            continue;
        }
        let col = |f: fn(&PodTimes) -> Duration| p.iter().map(f).collect::<Vec<_>>();
        let remote: Vec<Duration> = p.iter().filter_map(|t| t.remote).collect();
        let _ = writeln!(
            s,
            "| {} x {label} | {}, {} | {} | {} | {} | {} of {} | {} | {} |",
            p.len(),
            ms(quantile(&col(|t| t.create_call), 0.5)),
            ms(quantile(&col(|t| t.delete_call), 0.5)),
            three(&col(|t| t.local)),
            three(&col(|t| t.reachable)),
            three(&col(PodTimes::remote_after_local)),
            remote.len(),
            p.len(),
            if remote.is_empty() {
                "-".to_string()
            } else {
                format!(
                    "{} / {}",
                    ms(quantile(&remote, 0.5)),
                    ms(quantile(&remote, 1.0))
                )
            },
            three(&col(|t| t.delete)),
        );
    }
    let _ = writeln!(
        s,
        "\nPinged from node2's namespace afterwards: {} of {} pods answered.",
        r.pinged.0, r.pinged.1
    );
    s
}

/// `p50 / p99 / max` in milliseconds.
fn three(v: &[Duration]) -> String {
    format!(
        "{} / {} / {}",
        ms(quantile(v, 0.5)),
        ms(quantile(v, 0.99)),
        ms(quantile(v, 1.0))
    )
}

/// The `k8s-watch` section (below the run header).
pub fn watch_section(r: &WatchResult) -> String {
    let n = r.nodes.len();
    let mut s = format!(
        "{n} tortie-node agents, {} pods round-robin over the nodes, one at a time: made in {:.0} s ({:.1} pods/s: kubectl creates the Pod, tortie-cni's ADD), \
         every node routed all {} blocks {:.1} s after the last; deleted in {:.0} s (tortie-cni's DEL, kubectl deletes the Pod).\n\n",
        r.pods,
        r.make.as_secs_f64(),
        r.pods as f64 / r.make.as_secs_f64().max(1e-9),
        r.blocks,
        r.converged.as_secs_f64(),
        r.unmake.as_secs_f64(),
    );
    s.push_str(&agent_table(r));
    s.push('\n');
    s.push_str(&steps_table(r));
    s.push('\n');
    s.push_str(&request_table(r));
    s
}

/// The agents' CPU per pod and memory by tenths of the pods: whether a
/// pod costs more when there are more.
fn steps_table(r: &WatchResult) -> String {
    let mut t = String::from(
        "| pods | made: CPU per pod, mean of the agents (ms) | RSS after, mean (MiB) | deleted: CPU per pod, mean of the agents (ms) | RSS after, mean (MiB) |\n\
         |---|---:|---:|---:|---:|\n",
    );
    let per_pod = |a: &(usize, Vec<Sample>), b: &(usize, Vec<Sample>)| {
        let cpu: f64 = b.1.iter().zip(&a.1).map(|(y, x)| y.cpu_secs_since(x)).sum();
        let pods = (b.0 - a.0).max(1) * b.1.len().max(1);
        format!("{:.2}", cpu * 1000.0 / pods as f64)
    };
    let rss = |v: &[Sample]| {
        let sum: u64 = v.iter().map(|x| x.rss_kib).sum();
        mib(sum / v.len().max(1) as u64)
    };
    let (c, d) = (&r.create_steps, &r.delete_steps);
    for i in 1..c.len().max(d.len()) {
        let half = |v: &[(usize, Vec<Sample>)]| match (v.get(i - 1), v.get(i)) {
            (Some(a), Some(b)) => (per_pod(a, b), rss(&b.1)),
            _ => ("-".into(), "-".into()),
        };
        let (from, to) = (c.get(i - 1).map_or(0, |x| x.0), c.get(i).map_or(0, |x| x.0));
        let ((mc, mr), (dc, dr)) = (half(c), half(d));
        let _ = writeln!(t, "| {}-{to} | {mc} | {mr} | {dc} | {dr} |", from + 1);
    }
    t
}

fn agent_table(r: &WatchResult) -> String {
    let mut t = String::from(
        "| agent | its pods | CPU: start-up (s) | idle (ms/s) | create (s) | delete (s) | per pod in the cluster, created + deleted (ms) | RSS: start / all pods / after delete (MiB) | peak RSS (MiB) | API requests: start-up / idle / create / delete |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let s = &r.samples;
    let idle = r.phases.get(1).map_or(Duration::ZERO, |p| p.length);
    for (i, (name, _)) in r.nodes.iter().enumerate() {
        let (Some(a), Some(b), Some(c), Some(d)) = (
            s.first().and_then(|v| v.get(i)),
            s.get(1).and_then(|v| v.get(i)),
            s.get(2).and_then(|v| v.get(i)),
            s.get(3).and_then(|v| v.get(i)),
        ) else {
            continue;
        };
        let create = c.cpu_secs_since(b);
        let delete = d.cpu_secs_since(c);
        let requests: Vec<String> = r
            .phases
            .iter()
            .map(|p| p.requests.total(&Client::Agent(name.clone())).to_string())
            .collect();
        let its = r.pods / r.nodes.len() + usize::from(i < r.pods % r.nodes.len());
        let _ = writeln!(
            t,
            "| {name} | {its} | {:.2} | {:.1} | {:.2} | {:.2} | {:.2} | {} / {} / {} | {} | {} |",
            a.cpu_secs(),
            b.cpu_secs_since(a) * 1000.0 / idle.as_secs_f64().max(1e-9),
            create,
            delete,
            (create + delete) * 1000.0 / (r.pods.max(1) as f64),
            mib(a.rss_kib),
            mib(c.rss_kib),
            mib(d.rss_kib),
            mib(d.hwm_kib),
            requests.join(" / "),
        );
    }
    t
}

fn request_table(r: &WatchResult) -> String {
    let n = r.nodes.len();
    let mut t = format!(
        "| phase (length) | requests of all {n} agents | per agent per minute | what the agents asked for (verb resource: count, all agents) | tortie-cni | kubectl |\n\
         |---|---:|---:|---|---:|---:|\n"
    );
    for p in &r.phases {
        let agents = p.requests.merged(|c| matches!(c, Client::Agent(_)));
        let cni = p.requests.merged(|c| matches!(c, Client::Cni(_)));
        let kubectl = p.requests.merged(|c| *c == Client::Kubectl);
        let per_pod = |c: &Counts| {
            let total: u64 = c.values().sum();
            if p.pods > 0 {
                format!("{total} ({:.1} per pod)", total as f64 / p.pods as f64)
            } else {
                total.to_string()
            }
        };
        let total = agents.values().sum::<u64>();
        // Start-up is a burst, not a rate.
        let rate = if p.name == "start-up" {
            "-".to_string()
        } else {
            let per_minute = total as f64 * 60.0 / p.length.as_secs_f64().max(1e-9);
            format!("{:.1}", per_minute / n.max(1) as f64)
        };
        let _ = writeln!(
            t,
            "| {} ({:.0} s) | {total} | {rate} | {} | {} | {} |",
            p.name,
            p.length.as_secs_f64(),
            describe(&agents),
            per_pod(&cni),
            per_pod(&kubectl),
        );
    }
    t
}

/// `list pods: 3, watch pods: 3` (or `-`).
pub fn describe(c: &Counts) -> String {
    if c.is_empty() {
        return "-".into();
    }
    c.iter()
        .map(|((verb, res), n)| format!("{verb} {res}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn reach_table_counts_new_blocks() {
        let fresh = PodTimes {
            create_call: d(40),
            local: d(900),
            reachable: d(950),
            remote: Some(d(950)),
            delete_call: d(30),
            delete: d(400),
        };
        let known = PodTimes {
            remote: None,
            reachable: d(800),
            local: d(800),
            ..fresh
        };
        let early = PodTimes {
            remote: Some(d(700)),
            ..fresh
        };
        assert_eq!(fresh.remote_after_local(), d(50));
        assert_eq!(early.remote_after_local(), d(0));
        let s = reach_section(&ReachResult {
            pods: vec![fresh, known],
            new_block_pods: vec![early],
            lab_up: Duration::from_secs(40),
            deploy: Duration::from_secs(30),
            pinged: (2, 2),
        });
        assert!(
            s.contains("| 2 x address picked by IPAM | 40.0, 30.0 | 800.0 / 900.0 / 900.0 | 800.0 / 950.0 / 950.0 | 0.0 / 50.0 / 50.0 | 1 of 2 | 950.0 / 950.0 | 400.0 / 400.0 / 400.0 |"),
            "{s}"
        );
        assert!(
            s.contains("| 1 x address in a new block (`ipAddrs`) | 40.0, 30.0 | 900.0 / 900.0 / 900.0 | 950.0 / 950.0 / 950.0 | 0.0 / 0.0 / 0.0 | 1 of 1 | 700.0 / 700.0 |"),
            "{s}"
        );
        assert!(s.contains("2 of 2 pods answered"), "{s}");
    }

    #[test]
    fn watch_tables_split_requests_by_client() {
        let mut t = Tally::default();
        let key = |v: &str, r: &str| (v.to_string(), r.to_string());
        t.0.entry(Client::Agent("node1".into()))
            .or_default()
            .insert(key("watch", "pods"), 1);
        t.0.entry(Client::Agent("node2".into()))
            .or_default()
            .insert(key("watch", "pods"), 1);
        t.0.entry(Client::Cni("node1".into()))
            .or_default()
            .insert(key("create", "ipamblocks.tortie.io"), 10);
        let mut create = Phase::new("create", Duration::from_secs(20), t);
        create.pods = 4;
        let sample = |cpu: u64, rss: u64| Sample {
            rss_kib: rss,
            anon_kib: rss / 2,
            hwm_kib: rss * 2,
            cpu_ticks: cpu,
        };
        let r = WatchResult {
            nodes: vec![
                ("node1".into(), Ipv4Addr::new(172, 30, 1, 11)),
                ("node2".into(), Ipv4Addr::new(172, 30, 1, 12)),
            ],
            pods: 4,
            make: Duration::from_secs(20),
            unmake: Duration::from_secs(10),
            converged: Duration::from_millis(300),
            blocks: 2,
            samples: vec![
                vec![sample(10, 10240); 2],
                vec![sample(11, 10240); 2],
                vec![sample(51, 20480); 2],
                vec![sample(61, 20480); 2],
            ],
            create_steps: vec![
                (0, vec![sample(11, 10240); 2]),
                (2, vec![sample(21, 15360); 2]),
                (4, vec![sample(51, 20480); 2]),
            ],
            delete_steps: vec![
                (0, vec![sample(51, 20480); 2]),
                (2, vec![sample(56, 20480); 2]),
                (4, vec![sample(61, 20480); 2]),
            ],
            phases: vec![
                Phase::new("start-up", Duration::from_secs(3), Tally::default()),
                Phase::new("idle", Duration::from_secs(10), Tally::default()),
                create,
            ],
        };
        let s = watch_section(&r);
        assert!(
            s.contains(
                "| create (20 s) | 2 | 3.0 | watch pods: 2 | 10 (2.5 per pod) | 0 (0.0 per pod) |"
            ),
            "{s}"
        );
        assert!(s.contains("| node1 | 2 |"), "{s}");
        assert!(s.contains("| 10.0 / 20.0 / 20.0 | 40.0 |"), "{s}");
        // 0.1 s of CPU per agent for 2 pods, then 0.3 s; deleting 0.05 s.
        assert!(s.contains("| 1-2 | 50.00 | 15.0 | 25.00 | 20.0 |"), "{s}");
        assert!(s.contains("| 3-4 | 150.00 | 20.0 | 25.00 | 20.0 |"), "{s}");
    }
}
