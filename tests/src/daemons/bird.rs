//! BIRD 2 in a namespace: `bird -f -c CONF -s SOCK -P PID`, queried with
//! `birdc -s SOCK` (a unix socket, reachable from the host namespace).
//!
//! Config choices (see docs/testing.md for why):
//! - one `protocol bgp nI` per neighbour (index in [`DaemonConfig::neighbors`]),
//!   one channel each, matching the neighbour's address family;
//! - no `direct;`: sessions are multihop-style with recursive next hops
//!   resolved through a `direct` protocol, so BIRD never adds a link-local
//!   IPv6 next hop (FRR without zebra withdraws such routes);
//! - originated prefixes are `static` blackholes (`st4`, `st6`); export
//!   sends everything but the `direct` routes; no `kernel` protocol, so
//!   nothing reaches the namespace's kernel table.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::{
    bird_parse, daemon_dir, read_log, write_file, Afi, BgpDaemon, DaemonConfig, IpNet, Route,
    Session,
};
use crate::netns::{Netns, NsChild};
use crate::wait_until;

/// A running BIRD.
pub struct Bird {
    cfg: DaemonConfig,
    ns: Netns,
    conf: PathBuf,
    sock: PathBuf,
    log: PathBuf,
    child: Option<NsChild>,
    // Last: removed after the process is gone.
    dir: tempfile::TempDir,
}

// ===== impl Bird =====

impl Bird {
    /// Writes the config, starts BIRD in `ns` and waits for its control
    /// socket to answer.
    pub fn start(ns: &Netns, cfg: DaemonConfig) -> Result<Bird> {
        let dir = daemon_dir("bird")?;
        let mut b = Bird {
            conf: dir.path().join("bird.conf"),
            sock: dir.path().join("bird.ctl"),
            log: dir.path().join("bird.log"),
            cfg,
            ns: ns.clone(),
            child: None,
            dir,
        };
        b.launch(false)?;
        Ok(b)
    }

    fn launch(&mut self, recovery: bool) -> Result<()> {
        write_file(&self.conf, &config_text(&self.cfg))?;
        let pid = self.dir.path().join("bird.pid");
        let mut args = vec![
            "bird",
            "-f",
            "-c",
            path_str(&self.conf)?,
            "-s",
            path_str(&self.sock)?,
            "-P",
            path_str(&pid)?,
        ];
        if recovery {
            // Graceful-restart recovery: the OPEN says "restarted, forwarding
            // state kept", so helpers keep our routes until End-of-RIB.
            args.push("-R");
        }
        self.child = Some(self.ns.spawn(&args, &self.log)?);
        let res = wait_until(Duration::from_secs(10), "birdc to answer", || {
            if let Some(c) = self.child.as_mut() {
                if let Some(st) = c.exited() {
                    return Err(format!("bird exited with {st}"));
                }
            }
            self.birdc(&["show", "status"])
                .map_err(|e| format!("{e:#}"))
        });
        res.map(|_| ()).with_context(|| read_log(&self.log))
    }

    /// Runs `birdc -s SOCK <args>` and returns its output.
    pub fn birdc(&self, args: &[&str]) -> Result<String> {
        let out = Command::new("birdc")
            .arg("-s")
            .arg(&self.sock)
            .args(args)
            .output()
            .context("running birdc")?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() || text.contains("Unable to connect") {
            bail!(
                "birdc {args:?} failed ({}): {}{}",
                out.status,
                text.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(text)
    }

    /// The generated config file (for failure messages).
    pub fn config_text(&self) -> String {
        read_log(&self.conf)
    }

    /// Kills BIRD with SIGKILL (no NOTIFICATION: peers see a dead TCP
    /// session and may keep routes by graceful restart).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill9();
        }
    }

    /// Starts BIRD again with the same config and directory, with `-R`
    /// (graceful-restart recovery, as Calico runs it).
    pub fn restart(&mut self) -> Result<()> {
        self.kill9();
        let _ = std::fs::remove_file(&self.sock);
        self.launch(true)
    }

    /// Rewrites the config and asks BIRD to reload it.
    fn reconfigure(&self) -> Result<()> {
        write_file(&self.conf, &config_text(&self.cfg))?;
        let out = self.birdc(&["configure"])?;
        if !out.contains("Reconfigur") {
            bail!("birdc configure did not reconfigure: {out}");
        }
        Ok(())
    }

    /// The protocol name of each neighbour address.
    fn proto_names(&self) -> Vec<(String, IpAddr)> {
        self.cfg
            .neighbors
            .iter()
            .enumerate()
            .map(|(i, n)| (format!("n{i}"), n.address))
            .collect()
    }
}

impl BgpDaemon for Bird {
    fn kind_name(&self) -> &'static str {
        "bird"
    }

    fn sessions(&self) -> Result<Vec<Session>> {
        let states = bird_parse::protocols(&self.birdc(&["show", "protocols"])?);
        Ok(self
            .proto_names()
            .into_iter()
            .map(|(name, peer)| {
                let (state, info) = states.get(&name).cloned().unwrap_or_default();
                Session {
                    peer,
                    established: info.starts_with("Established"),
                    state: format!("{state} {info}"),
                }
            })
            .collect())
    }

    fn routes(&self, afi: Afi) -> Result<Vec<Route>> {
        let table = match afi {
            Afi::V4 => "master4",
            Afi::V6 => "master6",
        };
        let restarting =
            bird_parse::restarting_protocols(&self.birdc(&["show", "protocols", "all"])?);
        let text = self.birdc(&["show", "route", "all", "table", table])?;
        let names = self.proto_names();
        Ok(bird_parse::routes(&text)
            .into_iter()
            .map(|(proto, mut r)| {
                r.stale = restarting.contains(&proto);
                if r.from.is_none() {
                    r.from = names.iter().find(|(n, _)| *n == proto).map(|(_, a)| *a);
                }
                r
            })
            .collect())
    }

    fn announce(&mut self, prefix: IpNet) -> Result<()> {
        if !self.cfg.routes.contains(&prefix) {
            self.cfg.routes.push(prefix);
        }
        self.reconfigure()
    }

    fn withdraw(&mut self, prefix: IpNet) -> Result<()> {
        self.cfg.routes.retain(|p| *p != prefix);
        self.reconfigure()
    }

    fn log(&self) -> String {
        read_log(&self.log)
    }
}

// ===== helpers =====

/// The whole `bird.conf` for `cfg`.
pub fn config_text(cfg: &DaemonConfig) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "log stderr all;");
    let _ = writeln!(s, "router id {};", cfg.router_id);
    let _ = writeln!(s, "protocol device {{ scan time 10; }}");
    // Link prefixes, so recursive next hops on the segment resolve.
    let _ = writeln!(s, "protocol direct {{ ipv4; ipv6; }}");
    if cfg.kernel {
        // Learned routes only: our own statics are blackholes.
        for chan in ["ipv4", "ipv6"] {
            let _ = writeln!(
                s,
                "protocol kernel {{ {chan} {{ import none; export where source = RTS_BGP; }}; }}"
            );
        }
    }
    for (name, afi) in [("st4", Afi::V4), ("st6", Afi::V6)] {
        let chan = if afi == Afi::V4 { "ipv4" } else { "ipv6" };
        let _ = writeln!(s, "protocol static {name} {{\n  {chan};");
        for p in cfg.routes.iter().filter(|p| super::afi_of(p) == afi) {
            let _ = writeln!(s, "  route {p} blackhole;");
        }
        let _ = writeln!(s, "}}");
    }
    // One `protocol bfd` for every neighbour with BFD (the first one's
    // timers: tests use one setting).
    if let Some((interval, mult)) = cfg.neighbors.iter().find_map(|n| n.bfd) {
        let ms = interval.as_millis();
        let timers = format!(
            "min rx interval {ms} ms; min tx interval {ms} ms; idle tx interval 1000 ms; multiplier {mult};"
        );
        let _ = writeln!(
            s,
            "protocol bfd {{\n  interface \"*\" {{ {timers} }};\n  multihop {{ {timers} }};\n}}"
        );
    }
    for (i, n) in cfg.neighbors.iter().enumerate() {
        let ibgp = n.asn == cfg.asn;
        let _ = writeln!(s, "protocol bgp n{i} {{");
        let _ = writeln!(s, "  local {} as {};", cfg.local_for(n.address), cfg.asn);
        let _ = writeln!(s, "  neighbor {} port {} as {};", n.address, n.port, n.asn);
        if n.bfd.is_some() {
            // BFD follows the session: single hop for a `direct` one (as
            // Calico renders BFDIfDirectlyConnected), multihop otherwise.
            let _ = writeln!(s, "  bfd on;\n  direct;");
        } else if let Some(hops) = n.ttl_security {
            // Calico's rendering of ttlSecurity: send with TTL 255, accept
            // 256 - hops and up (the hops come from `multihop`).
            let _ = writeln!(s, "  ttl security on;\n  multihop {hops};");
        } else if !ibgp {
            // eBGP defaults to `direct`, which adds a link-local next hop.
            let _ = writeln!(s, "  multihop;");
        }
        let _ = writeln!(s, "  connect delay time 1;\n  connect retry time 2;");
        let _ = writeln!(s, "  error wait time 1, 4;");
        if n.passive {
            let _ = writeln!(s, "  passive on;");
        }
        if let Some(pw) = &n.password {
            let _ = writeln!(s, "  password \"{pw}\";");
        }
        if let (Some(id), true) = (cfg.cluster_id, ibgp) {
            let _ = writeln!(s, "  rr cluster id {id};");
        }
        if n.rr_client && ibgp {
            let _ = writeln!(s, "  rr client;");
        }
        if cfg.graceful_restart {
            let _ = writeln!(s, "  graceful restart on;\n  graceful restart time 120;");
        }
        let chan = if n.address.is_ipv4() { "ipv4" } else { "ipv6" };
        let _ = writeln!(
            s,
            "  {chan} {{ import all; export where source != RTS_DEVICE; }};\n}}"
        );
    }
    s
}

fn path_str(p: &std::path::Path) -> Result<&str> {
    p.to_str()
        .with_context(|| format!("path {} is not UTF-8", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemons::Neighbor;

    #[test]
    fn config_has_one_protocol_per_neighbour() {
        let cfg = DaemonConfig {
            router_id: "172.30.0.1".parse().unwrap(),
            asn: 64512,
            local_v4: "172.30.0.1".parse().unwrap(),
            local_v6: "fd00:30::1".parse().unwrap(),
            cluster_id: Some("1.1.1.1".parse().unwrap()),
            graceful_restart: true,
            kernel: false,
            neighbors: vec![
                Neighbor::new("172.30.0.2".parse::<IpAddr>().unwrap(), 64512)
                    .rr_client()
                    .password("pw"),
                Neighbor::new("fd00:30::3".parse::<IpAddr>().unwrap(), 65001),
                Neighbor::new("172.30.0.4".parse::<IpAddr>().unwrap(), 65001).ttl_security(2),
            ],
            routes: vec![
                crate::daemons::net("10.1.0.0/24"),
                crate::daemons::net("fd10::/64"),
            ],
        };
        let t = config_text(&cfg);
        assert!(t.contains("protocol bgp n0 {\n  local 172.30.0.1 as 64512;\n  neighbor 172.30.0.2 port 179 as 64512;"), "{t}");
        assert!(t.contains("rr client;") && t.contains("rr cluster id 1.1.1.1;"));
        assert!(t.contains("password \"pw\";") && t.contains("graceful restart on;"));
        assert!(t.contains(
            "local fd00:30::1 as 64512;\n  neighbor fd00:30::3 port 179 as 65001;\n  multihop;"
        ));
        assert!(
            t.contains("route 10.1.0.0/24 blackhole;") && t.contains("route fd10::/64 blackhole;")
        );
        assert!(t.contains("  ipv6 { import all;"));
        assert!(
            t.contains(
                "neighbor 172.30.0.4 port 179 as 65001;\n  ttl security on;\n  multihop 2;\n"
            ),
            "{t}"
        );
        assert!(!t.contains("protocol kernel"));
        assert!(!t.contains("bfd"), "{t}");
    }

    #[test]
    fn bfd_neighbours_get_bfd_on_and_a_protocol_bfd() {
        let mut cfg = DaemonConfig {
            router_id: "172.30.0.2".parse().unwrap(),
            asn: 65002,
            local_v4: "172.30.0.2".parse().unwrap(),
            local_v6: "fd00:30::2".parse().unwrap(),
            cluster_id: None,
            graceful_restart: false,
            kernel: false,
            neighbors: vec![
                Neighbor::new("172.30.0.1".parse::<IpAddr>().unwrap(), 64512)
                    .bfd(Duration::from_millis(100), 3),
            ],
            routes: Vec::new(),
        };
        let t = config_text(&cfg);
        assert!(
            t.contains("neighbor 172.30.0.1 port 179 as 64512;\n  bfd on;\n  direct;\n"),
            "{t}"
        );
        assert!(t.contains("protocol bfd {\n  interface \"*\" { min rx interval 100 ms; min tx interval 100 ms; idle tx interval 1000 ms; multiplier 3; };"), "{t}");
        cfg.neighbors[0].bfd = None;
        assert!(!config_text(&cfg).contains("bfd"));
    }
}
