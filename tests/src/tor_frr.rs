//! An FRR top-of-rack router on a lab host, the FRR twin of
//! [`crate::tor::BirdTor`]: bgpd alone (no zebra, so nothing reaches the
//! host's kernel) in AS [`TOR_AS`], eBGP with every lab node, importing
//! all and exporting nothing (a deny-all route-map out), so that a test
//! reads what each node announced, with its attributes, from FRR's JSON
//! ([`FrrTor::expect`], [`FrrTor::json`]). Killed on drop.
//!
//! FRR 8.4 notes: eBGP needs `no bgp ebgp-requires-policy` (else it takes
//! and sends nothing); `show bgp summary json`'s `ribCount` counts tree
//! nodes, a neighbour's `pfxRcd` its prefixes; the update-group coalesce
//! timer can hold the first UPDATEs for seconds (`bgp coalesce-time 100`
//! here, and waits with deadlines).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::Child;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::Value;
use tortie_ctl::lab::Lab;

use crate::daemons::frr::{bgpd_argv, vtysh};
use crate::lab::spawn_in;
use crate::tor::TOR_AS;
use crate::wait_until;

/// FRR bgpd in a lab host's namespace; killed on drop.
pub struct FrrTor {
    /// Its files: `bgpd.conf`, `.log`, `.pid` and the vty socket.
    dir: PathBuf,
    child: Child,
}

impl FrrTor {
    /// Starts bgpd in `ns` (a lab host at `addr`) with a session to each
    /// of the lab's nodes (AS `node_as`); its files in the lab's directory
    /// `frr-tor/`. Waits (up to 10 s) until vtysh answers.
    pub fn start(lab: &Lab, ns: &str, addr: Ipv4Addr, node_as: u32) -> Result<FrrTor> {
        let dir = lab.spec.dir.join("frr-tor");
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("bgpd.conf"), config(lab, addr, node_as))?;
        let d = dir.to_str().context("lab directory is not UTF-8")?;
        let argv = bgpd_argv(d);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let child = spawn_in(ns, &argv, &dir.join("bgpd.log"))?;
        let tor = FrrTor { dir, child };
        wait_until(Duration::from_secs(10), "vtysh to answer", || {
            tor.json("show bgp summary json")
                .map_err(|e| format!("{e:#}\n{}", tor.log()))
        })?;
        Ok(tor)
    }

    /// `vtysh -c CMD` of a `show ... json` command, parsed.
    pub fn json(&self, cmd: &str) -> Result<Value> {
        let text = vtysh(&self.dir, &[cmd])?;
        serde_json::from_str(&text).with_context(|| format!("vtysh {cmd:?} gave no JSON: {text}"))
    }

    /// bgpd's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("bgpd.log")).unwrap_or_default()
    }

    /// Per node address: its session's state and the prefixes received on
    /// it (`pfxRcd`), from `show bgp ipv4 unicast summary json`.
    pub fn neighbors(&self) -> Result<Vec<(IpAddr, String, u64)>> {
        let v = self.json("show bgp ipv4 unicast summary json")?;
        let peers = v["peers"]
            .as_object()
            .with_context(|| format!("no peers in {v}"))?;
        peers
            .iter()
            .map(|(a, p)| {
                let state = p["state"].as_str().unwrap_or("?").to_string();
                Ok((a.parse()?, state, p["pfxRcd"].as_u64().unwrap_or(0)))
            })
            .collect()
    }

    /// Waits (up to 30 s) until the ToR has `prefix` from exactly the
    /// nodes `from` (none: from nobody), with every session Established;
    /// returns its paths (`show bgp ipv4 unicast PREFIX json`'s `paths`,
    /// empty when `from` is).
    pub fn expect(&self, prefix: &str, from: &[Ipv4Addr]) -> Result<Vec<Value>> {
        let want: BTreeSet<IpAddr> = from.iter().map(|a| IpAddr::from(*a)).collect();
        wait_until(
            Duration::from_secs(30),
            &format!("{prefix} at the FRR ToR from {want:?}"),
            || {
                let n = self.neighbors().map_err(|e| format!("{e:#}"))?;
                if n.is_empty() || n.iter().any(|(_, s, _)| s != "Established") {
                    return Err(format!("sessions {n:?}"));
                }
                let paths = self.paths(prefix).map_err(|e| format!("{e:#}"))?;
                let got: BTreeSet<IpAddr> = paths
                    .iter()
                    .filter_map(|p| p["peer"]["peerId"].as_str()?.parse().ok())
                    .collect();
                if got == want {
                    Ok(paths)
                } else {
                    Err(format!("from {got:?}; sessions {n:?}"))
                }
            },
        )
    }

    /// The paths of `prefix` in the ToR's table (none when it has none).
    pub fn paths(&self, prefix: &str) -> Result<Vec<Value>> {
        let v = self.json(&format!("show bgp ipv4 unicast {prefix} json"))?;
        Ok(v["paths"].as_array().cloned().unwrap_or_default())
    }
}

impl Drop for FrrTor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The ToR's `bgpd.conf`: AS [`TOR_AS`], a session with each node, every
/// route in, none out.
fn config(lab: &Lab, addr: Ipv4Addr, node_as: u32) -> String {
    let mut s = format!(
        "hostname frr-tor\nlog stdout informational\n!\nroute-map NOTHING deny 10\n!\n\
         router bgp {TOR_AS}\n bgp router-id {addr}\n no bgp default ipv4-unicast\n \
         no bgp ebgp-requires-policy\n bgp log-neighbor-changes\n bgp coalesce-time 100\n"
    );
    for n in &lab.nodes {
        let a = n.address;
        s += &format!(
            " neighbor {a} remote-as {node_as}\n neighbor {a} timers connect 2\n \
             neighbor {a} advertisement-interval 0\n"
        );
    }
    s += " address-family ipv4 unicast\n";
    for n in &lab.nodes {
        s += &format!(
            "  neighbor {0} activate\n  neighbor {0} route-map NOTHING out\n",
            n.address
        );
    }
    s += " exit-address-family\n";
    s
}
