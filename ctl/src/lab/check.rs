//! What the lab says about itself: a node's status, pings between pods
//! (one, all pairs, a stream during a change), and diagnostics for a
//! failure.

use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::{get_in, interrupt, net, Lab, LabPod, ADMIN};

// ===== impl Lab: checks =====

impl Lab {
    /// The node's `/status` (JSON), read inside its namespace.
    pub fn node_status(&self, i: usize) -> Result<Value> {
        let body = get_in(&self.nodes[i].ns, ADMIN.parse()?, "/status")?;
        Ok(serde_json::from_str(&body)?)
    }

    /// Whether `from` answers one ping to `to` within `wait` (a kubelet
    /// node's pod pings through `kubectl exec`).
    pub fn ping(&self, from: &LabPod, to: impl Into<IpAddr>, wait: Duration) -> bool {
        let (w, to) = (wait.as_secs().max(1).to_string(), to.into().to_string());
        let ping = ["ping", "-c", "1", "-W", &w, &to];
        if self.spec.kubelets {
            let mut args = vec!["exec", from.name.as_str(), "--"];
            args.extend_from_slice(&ping);
            return self.kubectl(&args).is_ok();
        }
        net::exec_in(&from.ns, &ping).is_ok()
    }

    /// Polls until every pod reaches every other at each of its addresses
    /// (IPv4 and IPv6 in a dual-stack lab), or fails after `deadline`
    /// naming a pair that does not.
    pub fn wait_full_mesh(&self, deadline: Duration) -> Result<Duration> {
        let start = Instant::now();
        let mut pending: Vec<(usize, usize, IpAddr)> = (0..self.pods.len())
            .flat_map(|a| {
                (0..self.pods.len())
                    .filter(move |b| *b != a)
                    .flat_map(move |b| {
                        self.pods[b]
                            .addresses()
                            .into_iter()
                            .map(move |to| (a, b, to))
                    })
            })
            .collect();
        while !pending.is_empty() {
            interrupt::check()?;
            pending.retain(|(a, _, to)| !self.ping(&self.pods[*a], *to, Duration::from_secs(1)));
            if pending.is_empty() {
                break;
            }
            if start.elapsed() > deadline {
                let (a, b, to) = pending[0];
                bail!(
                    "after {deadline:?}, {} pod pairs still fail, e.g. {} ({}) -> {} ({to})\n{}",
                    pending.len(),
                    self.pods[a].name,
                    self.pods[a].primary(),
                    self.pods[b].name,
                    self.diagnostics()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(start.elapsed())
    }

    /// Pings pod `to` at 100 packets/s from every other pod, `count` each,
    /// while `during` runs; returns (sent, received) per pinging pod.
    pub fn ping_during(
        &mut self,
        to: usize,
        count: u32,
        during: impl FnOnce(&mut Lab) -> Result<()>,
    ) -> Result<Vec<(u32, u32)>> {
        let target = self.pods[to].primary().to_string();
        let count = count.to_string();
        let mut children = Vec::new();
        for p in self.pods.iter().filter(|p| p.name != self.pods[to].name) {
            children.push(
                Command::new("ip")
                    .args([
                        "netns", "exec", &p.ns, "ping", "-q", "-i", "0.01", "-W", "1",
                    ])
                    .args(["-c", &count, &target])
                    .stdout(Stdio::piped())
                    .spawn()?,
            );
        }
        std::thread::sleep(Duration::from_millis(300));
        during(self)?;
        let mut results = Vec::new();
        for c in children {
            let out = c.wait_with_output()?;
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let line = text
                .lines()
                .find(|l| l.contains("packets transmitted"))
                .with_context(|| format!("no ping summary: {text}"))?;
            let nums: Vec<u32> = line
                .split(|c: char| !c.is_ascii_digit())
                .filter_map(|n| n.parse().ok())
                .collect();
            results.push((nums[0], nums[1]));
        }
        Ok(results)
    }

    /// Each node's routes, problems and last log lines, for a failure
    /// message.
    pub fn diagnostics(&self) -> String {
        let mut out = String::new();
        for (i, n) in self.nodes.iter().enumerate() {
            out += &format!("== {} routes\n", n.name);
            out += &net::ip_in_output(&n.ns, &["route"]).unwrap_or_else(|e| format!("{e:#}\n"));
            if n.address6.is_some() {
                out += &net::ip_in_output(&n.ns, &["-6", "route"])
                    .unwrap_or_else(|e| format!("{e:#}\n"));
            }
            match self.node_status(i) {
                Ok(s) => {
                    out += &format!(
                        "== {} phase {} problems {}\n",
                        n.name, s["phase"], s["problems"]
                    )
                }
                Err(e) => out += &format!("== {} status: {e:#}\n", n.name),
            }
            let log = std::fs::read_to_string(&n.log).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            out += &format!("== {} log (last lines)\n", n.name);
            for l in &lines[lines.len().saturating_sub(15)..] {
                out += l;
                out.push('\n');
            }
        }
        out
    }
}
