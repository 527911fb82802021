//! FRR `bgpd` in a namespace, alone (no zebra) unless the config asks
//! for kernel routes: `bgpd -Z -S -P 0 -f CONF -i PID --vty_socket DIR`,
//! queried with `vtysh --vty_socket DIR -c '... json'`.
//!
//! Without zebra, `network` statements need `no bgp network import-check`
//! (nothing can tell bgpd the prefix exists), and FRR withdraws IPv6 routes
//! whose next hop has a link-local address ("no peer interface
//! information"), which BIRD and Tortie send to a peer on their subnet
//! (RFC 2545 §3). With [`DaemonConfig::kernel`] zebra runs beside bgpd
//! (`zebra -u frr -g frr ... -z DIR/zserv.api`, bgpd with `-z` instead of
//! `-Z`): it installs the best routes in the namespace's kernel and tells
//! bgpd the interfaces, so such routes are kept.
//!
//! [`bgpd_argv`], [`vtysh`] and [`frr_here`] also serve the FRR ToR of the
//! lab tests ([`crate::tor_frr`]).

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;
use tortie_testkit::frr::{start_zebra, zserv};

use super::{
    daemon_dir, read_log, write_file, Afi, BgpDaemon, DaemonConfig, IpNet, Route, Session,
};
use crate::netns::{Netns, NsChild};
use crate::wait_until;

/// Where Debian installs FRR's bgpd.
pub const BGPD: &str = "/usr/lib/frr/bgpd";
pub use tortie_testkit::frr::ZEBRA;

/// A running FRR bgpd (and zebra with [`DaemonConfig::kernel`]).
pub struct Frr {
    cfg: DaemonConfig,
    ns: Netns,
    conf: PathBuf,
    log: PathBuf,
    child: Option<NsChild>,
    zebra: Option<NsChild>,
    dir: tempfile::TempDir,
}

// ===== impl Frr =====

impl Frr {
    /// Writes the config, starts bgpd in `ns` and waits for vtysh to answer.
    pub fn start(ns: &Netns, cfg: DaemonConfig) -> Result<Frr> {
        let dir = daemon_dir("frr")?;
        let mut f = Frr {
            conf: dir.path().join("bgpd.conf"),
            log: dir.path().join("bgpd.log"),
            cfg,
            ns: ns.clone(),
            child: None,
            zebra: None,
            dir,
        };
        if f.cfg.kernel {
            f.start_zebra()?;
        }
        f.launch()?;
        Ok(f)
    }

    /// zebra in the daemon's directory, until its socket is there.
    fn start_zebra(&mut self) -> Result<()> {
        let zebra = start_zebra(self.ns.as_ref(), self.dir.path())
            .with_context(|| format!("zebra in {}", self.dir.path().display()))?;
        self.zebra = Some(zebra);
        Ok(())
    }

    fn launch(&mut self) -> Result<()> {
        write_file(&self.conf, &config_text(&self.cfg))?;
        let dir = self
            .dir
            .path()
            .to_str()
            .context("temp dir path is not UTF-8")?;
        let mut args = bgpd_argv(dir);
        if self.zebra.is_some() {
            if let Some(i) = args.iter().position(|a| a == "-Z") {
                let zserv = zserv(self.dir.path()).display().to_string();
                args.splice(i..=i, ["-z".to_string(), zserv]);
            }
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.child = Some(self.ns.spawn(&args, &self.log)?);
        wait_until(Duration::from_secs(10), "vtysh to answer", || {
            if let Some(st) = self.child.as_mut().and_then(|c| c.exited()) {
                return Err(format!("bgpd exited with {st}"));
            }
            self.vtysh(&["show bgp summary json"])
                .map_err(|e| format!("{e:#}"))
        })
        .map(|_| ())
        .with_context(|| read_log(&self.log))
    }

    /// Runs `vtysh --vty_socket DIR -c CMD ...` and returns its output.
    pub fn vtysh(&self, cmds: &[&str]) -> Result<String> {
        vtysh(self.dir.path(), cmds)
    }

    /// Runs a vtysh `show ... json` command and parses the JSON.
    pub fn json(&self, cmd: &str) -> Result<Value> {
        let text = self.vtysh(&[cmd])?;
        serde_json::from_str(&text).with_context(|| format!("vtysh {cmd:?} gave no JSON: {text}"))
    }

    /// Kills bgpd with SIGKILL.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill9();
        }
    }

    /// Starts bgpd again with the same config and directory.
    pub fn restart(&mut self) -> Result<()> {
        self.kill9();
        self.launch()
    }

    fn network(&self, prefix: IpNet, add: bool) -> Result<()> {
        let af = match prefix {
            IpNet::V4(_) => "address-family ipv4 unicast",
            IpNet::V6(_) => "address-family ipv6 unicast",
        };
        let router = format!("router bgp {}", self.cfg.asn);
        let net = format!("{}network {prefix}", if add { "" } else { "no " });
        self.vtysh(&["configure terminal", &router, af, &net])
            .map(|_| ())
    }
}

impl BgpDaemon for Frr {
    fn kind_name(&self) -> &'static str {
        "frr"
    }

    fn sessions(&self) -> Result<Vec<Session>> {
        let v = self.json("show bgp neighbors json")?;
        let map = v
            .as_object()
            .context("show bgp neighbors json: not an object")?;
        Ok(map
            .iter()
            .filter_map(|(addr, n)| {
                let peer: IpAddr = addr.parse().ok()?;
                let state = n["bgpState"].as_str().unwrap_or("?").to_string();
                Some(Session {
                    peer,
                    established: state == "Established",
                    state,
                })
            })
            .collect())
    }

    fn routes(&self, afi: Afi) -> Result<Vec<Route>> {
        let cmd = match afi {
            Afi::V4 => "show bgp ipv4 unicast json detail",
            Afi::V6 => "show bgp ipv6 unicast json detail",
        };
        Ok(parse_routes(&self.json(cmd)?))
    }

    fn announce(&mut self, prefix: IpNet) -> Result<()> {
        self.network(prefix, true)?;
        if !self.cfg.routes.contains(&prefix) {
            self.cfg.routes.push(prefix);
        }
        Ok(())
    }

    fn withdraw(&mut self, prefix: IpNet) -> Result<()> {
        self.network(prefix, false)?;
        self.cfg.routes.retain(|p| *p != prefix);
        Ok(())
    }

    fn log(&self) -> String {
        read_log(&self.log)
    }
}

// ===== helpers =====

/// `bgpd -Z -S -P 0 -f DIR/bgpd.conf -i DIR/bgpd.pid --vty_socket DIR`:
/// bgpd without zebra, as root (`-S`: no switch to user frr), no vty port.
pub fn bgpd_argv(dir: &str) -> Vec<String> {
    let conf = format!("{dir}/bgpd.conf");
    let pid = format!("{dir}/bgpd.pid");
    [
        BGPD,
        "-Z",
        "-S",
        "-P",
        "0",
        "-f",
        &conf,
        "-i",
        &pid,
        "--vty_socket",
        dir,
    ]
    .map(String::from)
    .to_vec()
}

/// Runs `vtysh --vty_socket DIR -c CMD ...` against the daemon whose vty
/// socket is in `dir`; its output, or an error with it when vtysh failed
/// or did not know a command.
pub fn vtysh(dir: &Path, cmds: &[&str]) -> Result<String> {
    let mut c = Command::new("vtysh");
    c.arg("--vty_socket").arg(dir);
    for cmd in cmds {
        c.arg("-c").arg(cmd);
    }
    let out = c.output().context("running vtysh")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() || text.contains("% Unknown command") {
        bail!(
            "vtysh {cmds:?} failed ({}): {}{}",
            out.status,
            text.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(text)
}

/// Whether FRR's bgpd and vtysh are here; says why not (`SKIP test:
/// ...`, a failure under CI=true).
pub fn frr_here(test: &str) -> bool {
    let vtysh = Command::new("vtysh")
        .arg("--help")
        .output()
        .is_ok_and(|o| o.status.success());
    let ok = Path::new(BGPD).exists() && vtysh;
    if !ok {
        tortie_testkit::missing(test, &format!("no {BGPD} or vtysh (apt-get install frr)"));
    }
    ok
}

/// The whole `bgpd.conf` for `cfg`.
pub fn config_text(cfg: &DaemonConfig) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "hostname frr-{}\nlog stdout informational\n!",
        cfg.router_id
    );
    let _ = writeln!(s, "router bgp {}", cfg.asn);
    let _ = writeln!(s, " bgp router-id {}", cfg.router_id);
    // Each neighbour is activated for its own family only.
    let _ = writeln!(s, " no bgp default ipv4-unicast");
    let _ = writeln!(s, " no bgp ebgp-requires-policy");
    let _ = writeln!(s, " no bgp network import-check");
    let _ = writeln!(s, " bgp log-neighbor-changes");
    // The update-group coalesce timer otherwise delays the first sync.
    let _ = writeln!(s, " bgp coalesce-time 100");
    if cfg.graceful_restart {
        let _ = writeln!(
            s,
            " bgp graceful-restart\n bgp graceful-restart restart-time 120"
        );
    }
    if let Some(id) = cfg.cluster_id {
        let _ = writeln!(s, " bgp cluster-id {id}");
    }
    for n in &cfg.neighbors {
        let a = n.address;
        let _ = writeln!(s, " neighbor {a} remote-as {}", n.asn);
        let _ = writeln!(s, " neighbor {a} update-source {}", cfg.local_for(a));
        let _ = writeln!(s, " neighbor {a} timers connect 2");
        let _ = writeln!(s, " neighbor {a} advertisement-interval 0");
        if n.port != 179 {
            let _ = writeln!(s, " neighbor {a} port {}", n.port);
        }
        if n.passive {
            let _ = writeln!(s, " neighbor {a} passive");
        }
        if let Some(pw) = &n.password {
            let _ = writeln!(s, " neighbor {a} password {pw}");
        }
        if let Some(hops) = n.ttl_security {
            // FRR's GTSM: sends with TTL (hop limit) 255 and sets
            // IP_MINTTL / IPV6_MINHOPCOUNT to 256 - hops on the session's
            // socket.
            let _ = writeln!(s, " neighbor {a} ttl-security hops {hops}");
        }
    }
    for (afi, name) in [(Afi::V4, "ipv4"), (Afi::V6, "ipv6")] {
        let _ = writeln!(s, " address-family {name} unicast");
        for p in cfg.routes.iter().filter(|p| super::afi_of(p) == afi) {
            let _ = writeln!(s, "  network {p}");
        }
        for n in cfg
            .neighbors
            .iter()
            .filter(|n| n.address.is_ipv4() == (afi == Afi::V4))
        {
            let _ = writeln!(s, "  neighbor {} activate", n.address);
            if n.rr_client && n.asn == cfg.asn {
                let _ = writeln!(s, "  neighbor {} route-reflector-client", n.address);
            }
        }
        let _ = writeln!(s, " exit-address-family");
    }
    s
}

/// Parses `show bgp <afi> unicast json detail` (FRR 8.4): `routes` maps a
/// prefix to an array whose first element describes the prefix and whose
/// other elements are paths. Locally originated paths are left out.
pub(crate) fn parse_routes(v: &Value) -> Vec<Route> {
    let mut out = Vec::new();
    let Some(routes) = v["routes"].as_object() else {
        return out;
    };
    for (prefix, entries) in routes {
        let Ok(prefix) = prefix.parse::<IpNet>() else {
            continue;
        };
        for p in entries.as_array().into_iter().flatten() {
            if p.get("aspath").is_none() || p["local"].as_bool() == Some(true) {
                continue;
            }
            let from = p["peer"]["peerId"].as_str().and_then(|a| a.parse().ok());
            let as_path = p["aspath"]["segments"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|seg| seg["list"].as_array().cloned().unwrap_or_default())
                .filter_map(|a| a.as_u64().and_then(|a| u32::try_from(a).ok()))
                .collect();
            let cluster_list = match &p["clusterList"] {
                Value::Object(o) => o.get("list").and_then(|l| l.as_array()).cloned(),
                Value::Array(a) => Some(a.clone()),
                _ => None,
            }
            .unwrap_or_default()
            .iter()
            .filter_map(|c| match c {
                Value::String(s) => s.parse().ok(),
                Value::Object(o) => o.values().find_map(|x| x.as_str()?.parse().ok()),
                _ => None,
            })
            .collect();
            out.push(Route {
                prefix,
                next_hop: p["nexthops"][0]["ip"].as_str().and_then(|a| a.parse().ok()),
                as_path,
                local_pref: p["locPrf"].as_u64().and_then(|x| u32::try_from(x).ok()),
                originator_id: p["originatorId"].as_str().and_then(|a| a.parse().ok()),
                cluster_list,
                stale: p["stale"].as_bool() == Some(true),
                best: p["bestpath"]["overall"].as_bool() == Some(true),
                from,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemons::{net, Neighbor};

    #[test]
    fn parses_detail_json_and_skips_local_paths() {
        let v: Value = serde_json::from_str(
            r#"{"routes": {
            "10.1.0.0/24": [{"prefix":"10.1.0.0/24","version":2},
              {"aspath":{"string":"65001","segments":[{"type":"as-sequence","list":[65001]}],"length":1},
               "origin":"IGP","locPrf":100,"valid":true,"stale":true,
               "originatorId":"172.30.0.2","clusterList":{"list":["9.9.9.9"]},
               "bestpath":{"overall":true},
               "nexthops":[{"ip":"172.30.0.2","afi":"ipv4"}],
               "peer":{"peerId":"172.30.0.3","routerId":"172.30.0.3","type":"internal"}}],
            "10.2.0.0/24": [{"prefix":"10.2.0.0/24"},
              {"aspath":{"segments":[]},"local":true,"nexthops":[{"ip":"0.0.0.0"}],
               "peer":{"peerId":"0.0.0.0"}}]
            }}"#,
        )
        .unwrap();
        let r = parse_routes(&v);
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(r[0].prefix, net("10.1.0.0/24"));
        assert_eq!(r[0].as_path, vec![65001]);
        assert!(r[0].stale && r[0].best);
        assert_eq!(r[0].originator_id, Some("172.30.0.2".parse().unwrap()));
        assert_eq!(
            r[0].cluster_list,
            vec!["9.9.9.9".parse::<std::net::Ipv4Addr>().unwrap()]
        );
        assert_eq!(r[0].from, Some("172.30.0.3".parse().unwrap()));
        assert_eq!(r[0].local_pref, Some(100));
    }

    #[test]
    fn config_activates_each_neighbour_in_its_family() {
        let mut cfg = DaemonConfig {
            router_id: "172.30.0.2".parse().unwrap(),
            asn: 64512,
            local_v4: "172.30.0.2".parse().unwrap(),
            local_v6: "fd00:30::2".parse().unwrap(),
            cluster_id: None,
            graceful_restart: false,
            neighbors: vec![],
            routes: vec![net("10.2.0.0/24"), net("fd10:2::/64")],
            kernel: false,
        };
        cfg.neighbors
            .push(Neighbor::new("172.30.0.1".parse::<IpAddr>().unwrap(), 64512).password("pw"));
        cfg.neighbors.push(Neighbor::new(
            "fd00:30::1".parse::<IpAddr>().unwrap(),
            64512,
        ));
        let t = config_text(&cfg);
        let v4 = t.find(" address-family ipv4 unicast").unwrap();
        let v6 = t.find(" address-family ipv6 unicast").unwrap();
        let act4 = t.find("neighbor 172.30.0.1 activate").unwrap();
        let act6 = t.find("neighbor fd00:30::1 activate").unwrap();
        assert!(v4 < act4 && act4 < v6 && v6 < act6, "{t}");
        assert!(t.contains("neighbor 172.30.0.1 password pw"));
        assert!(t.contains("  network fd10:2::/64"));
        assert!(!t.contains("ttl-security"), "{t}");
    }

    #[test]
    fn config_renders_ttl_security_per_neighbour() {
        let cfg = DaemonConfig {
            router_id: "172.30.0.2".parse().unwrap(),
            asn: 65002,
            local_v4: "172.30.0.2".parse().unwrap(),
            local_v6: "fd00:30::2".parse().unwrap(),
            cluster_id: None,
            graceful_restart: false,
            neighbors: vec![],
            routes: vec![],
            kernel: false,
        };
        let peer = |a: &str| a.parse::<IpAddr>().unwrap();
        let t = config_text(
            &cfg.neighbor(Neighbor::new(peer("172.30.0.1"), 64512).ttl_security(1))
                .neighbor(Neighbor::new(peer("fd00:30::1"), 64512).ttl_security(2))
                .neighbor(Neighbor::new(peer("172.30.0.9"), 64512)),
        );
        assert!(
            t.contains(" neighbor 172.30.0.1 ttl-security hops 1\n"),
            "{t}"
        );
        assert!(
            t.contains(" neighbor fd00:30::1 ttl-security hops 2\n"),
            "{t}"
        );
        assert!(!t.contains("172.30.0.9 ttl-security"), "{t}");
    }
}
