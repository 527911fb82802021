//! GoBGP in a namespace: `gobgpd -f conf.toml -p --api-hosts 127.0.0.1:50051`
//! (the gRPC port is per namespace, so every instance can use the default),
//! queried with the `gobgp` CLI run in the same namespace.
//!
//! Originated routes are not in the TOML: they are added with `gobgp global
//! rib add` once the daemon answers.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::Value;

use super::{
    daemon_dir, read_log, write_file, Afi, BgpDaemon, DaemonConfig, IpNet, Route, Session,
};
use crate::netns::{Netns, NsChild};
use crate::wait_until;

/// A running gobgpd.
pub struct Gobgp {
    cfg: DaemonConfig,
    ns: Netns,
    conf: PathBuf,
    log: PathBuf,
    child: Option<NsChild>,
    _dir: tempfile::TempDir,
}

// ===== impl Gobgp =====

impl Gobgp {
    /// Writes the config, starts gobgpd in `ns`, waits for the CLI to answer
    /// and adds the originated routes.
    pub fn start(ns: &Netns, cfg: DaemonConfig) -> Result<Gobgp> {
        let dir = daemon_dir("gobgp")?;
        let mut g = Gobgp {
            conf: dir.path().join("gobgpd.toml"),
            log: dir.path().join("gobgpd.log"),
            cfg,
            ns: ns.clone(),
            child: None,
            _dir: dir,
        };
        g.launch()?;
        Ok(g)
    }

    fn launch(&mut self) -> Result<()> {
        write_file(&self.conf, &config_text(&self.cfg))?;
        let conf = self.conf.to_str().context("config path is not UTF-8")?;
        let args = ["gobgpd", "-f", conf, "-p", "--api-hosts", "127.0.0.1:50051"];
        self.child = Some(self.ns.spawn(&args, &self.log)?);
        wait_until(Duration::from_secs(10), "gobgp CLI to answer", || {
            if let Some(st) = self.child.as_mut().and_then(|c| c.exited()) {
                return Err(format!("gobgpd exited with {st}"));
            }
            self.gobgp(&["global"]).map_err(|e| format!("{e:#}"))
        })
        .with_context(|| read_log(&self.log))?;
        for p in self.cfg.routes.clone() {
            self.rib(p, "add")?;
        }
        Ok(())
    }

    /// Runs the `gobgp` CLI in the namespace; fails on a non-zero exit.
    pub fn gobgp(&self, args: &[&str]) -> Result<String> {
        let mut argv = vec!["gobgp"];
        argv.extend_from_slice(args);
        self.ns.run(&argv)
    }

    /// Kills gobgpd with SIGKILL.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill9();
        }
    }

    /// Starts gobgpd again with the same config (and re-adds its routes).
    pub fn restart(&mut self) -> Result<()> {
        self.kill9();
        self.launch()
    }

    fn rib(&self, prefix: IpNet, op: &str) -> Result<()> {
        let af = match prefix {
            IpNet::V4(_) => "ipv4",
            IpNet::V6(_) => "ipv6",
        };
        self.gobgp(&["global", "rib", op, &prefix.to_string(), "-a", af])
            .map(|_| ())
    }
}

impl BgpDaemon for Gobgp {
    fn kind_name(&self) -> &'static str {
        "gobgp"
    }

    fn sessions(&self) -> Result<Vec<Session>> {
        let text = self.gobgp(&["neighbor", "-j"])?;
        let v: Value = serde_json::from_str(&text)
            .with_context(|| format!("gobgp neighbor -j gave no JSON: {text}"))?;
        Ok(parse_sessions(&v))
    }

    fn routes(&self, afi: Afi) -> Result<Vec<Route>> {
        let af = match afi {
            Afi::V4 => "ipv4",
            Afi::V6 => "ipv6",
        };
        let text = self.gobgp(&["global", "rib", "-a", af, "-j"])?;
        // An empty table prints nothing (or "null").
        if text.trim().is_empty() || text.trim() == "null" {
            return Ok(Vec::new());
        }
        let v: Value = serde_json::from_str(&text)
            .with_context(|| format!("gobgp global rib -j gave no JSON: {text}"))?;
        Ok(parse_routes(&v))
    }

    fn announce(&mut self, prefix: IpNet) -> Result<()> {
        self.rib(prefix, "add")?;
        if !self.cfg.routes.contains(&prefix) {
            self.cfg.routes.push(prefix);
        }
        Ok(())
    }

    fn withdraw(&mut self, prefix: IpNet) -> Result<()> {
        self.rib(prefix, "del")?;
        self.cfg.routes.retain(|p| *p != prefix);
        Ok(())
    }

    fn log(&self) -> String {
        read_log(&self.log)
    }
}

// ===== helpers =====

/// The whole `gobgpd.toml` for `cfg`.
pub fn config_text(cfg: &DaemonConfig) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "[global.config]\n  as = {}\n  router-id = \"{}\"\n  port = 179\n  local-address-list = [\"{}\", \"{}\"]",
        cfg.asn, cfg.router_id, cfg.local_v4, cfg.local_v6
    );
    let _ = writeln!(
        s,
        "[global.apply-policy.config]\n  default-import-policy = \"accept-route\"\n  default-export-policy = \"accept-route\""
    );
    for n in &cfg.neighbors {
        let _ = writeln!(s, "\n[[neighbors]]\n  [neighbors.config]");
        let _ = writeln!(
            s,
            "    neighbor-address = \"{}\"\n    peer-as = {}",
            n.address, n.asn
        );
        if let Some(pw) = &n.password {
            let _ = writeln!(s, "    auth-password = \"{pw}\"");
        }
        let _ = writeln!(
            s,
            "  [neighbors.timers.config]\n    connect-retry = 2\n    idle-hold-time-after-reset = 1"
        );
        let _ = writeln!(
            s,
            "  [neighbors.transport.config]\n    local-address = \"{}\"\n    remote-port = {}\n    passive-mode = {}",
            cfg.local_for(n.address),
            n.port,
            n.passive
        );
        if n.rr_client && n.asn == cfg.asn {
            let cluster = cfg.cluster_id.unwrap_or(cfg.router_id);
            let _ = writeln!(
                s,
                "  [neighbors.route-reflector.config]\n    route-reflector-client = true\n    route-reflector-cluster-id = \"{cluster}\""
            );
        }
        if cfg.graceful_restart {
            let _ = writeln!(
                s,
                "  [neighbors.graceful-restart.config]\n    enabled = true\n    restart-time = 120"
            );
        }
        let family = if n.address.is_ipv4() {
            "ipv4-unicast"
        } else {
            "ipv6-unicast"
        };
        let _ = writeln!(
            s,
            "  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"{family}\""
        );
        if cfg.graceful_restart {
            let _ = writeln!(
                s,
                "    [neighbors.afi-safis.mp-graceful-restart.config]\n      enabled = true"
            );
        }
    }
    s
}

/// Parses `gobgp neighbor -j`.
fn parse_sessions(v: &Value) -> Vec<Session> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| {
            let peer: IpAddr = n["state"]["neighbor_address"]
                .as_str()
                .or(n["conf"]["neighbor_address"].as_str())?
                .parse()
                .ok()?;
            // apipb.PeerState.SessionState; 0 = unknown.
            let code = n["state"]["session_state"].as_u64().unwrap_or(0);
            let state = [
                "Unknown",
                "Idle",
                "Connect",
                "Active",
                "OpenSent",
                "OpenConfirm",
                "Established",
            ]
            .get(code as usize)
            .unwrap_or(&"?")
            .to_string();
            Some(Session {
                peer,
                established: code == 6,
                state,
            })
        })
        .collect()
}

/// Parses `gobgp global rib -a AF -j`: prefix -> paths with typed attrs.
/// Paths without `neighbor-ip` are our own and left out.
pub(crate) fn parse_routes(v: &Value) -> Vec<Route> {
    let mut out = Vec::new();
    for (prefix, paths) in v.as_object().into_iter().flatten() {
        let Ok(prefix) = prefix.parse::<IpNet>() else {
            continue;
        };
        for p in paths.as_array().into_iter().flatten() {
            let Some(from) = p["neighbor-ip"].as_str().and_then(|a| a.parse().ok()) else {
                continue;
            };
            let mut r = Route {
                prefix,
                next_hop: None,
                as_path: Vec::new(),
                local_pref: None,
                originator_id: None,
                cluster_list: Vec::new(),
                stale: p["stale"].as_bool() == Some(true),
                best: p["best"].as_bool() == Some(true),
                from: Some(from),
            };
            for a in p["attrs"].as_array().into_iter().flatten() {
                match a["type"].as_u64() {
                    Some(2) => {
                        r.as_path = a["as_paths"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .flat_map(|seg| seg["asns"].as_array().cloned().unwrap_or_default())
                            .filter_map(|x| x.as_u64().and_then(|x| u32::try_from(x).ok()))
                            .collect();
                    }
                    Some(3) | Some(14) => {
                        r.next_hop = a["nexthop"].as_str().and_then(|x| x.parse().ok());
                    }
                    Some(5) => {
                        r.local_pref = a["value"].as_u64().and_then(|x| u32::try_from(x).ok())
                    }
                    Some(9) => r.originator_id = a["value"].as_str().and_then(|x| x.parse().ok()),
                    Some(10) => {
                        r.cluster_list = a["value"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|x| x.as_str()?.parse().ok())
                            .collect();
                    }
                    _ => {}
                }
            }
            out.push(r);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemons::net;

    #[test]
    fn parses_rib_json() {
        let v: Value = serde_json::from_str(
            r#"{"10.1.0.0/24":[{"nlri":{"prefix":"10.1.0.0/24"},"best":true,"stale":true,
              "attrs":[{"type":1,"value":0},{"type":2,"as_paths":[{"segment_type":2,"num":2,"asns":[65001,65002]}]},
                       {"type":3,"nexthop":"172.30.0.1"},{"type":5,"value":100},
                       {"type":9,"value":"172.30.0.4"},{"type":10,"value":["1.1.1.1"]}],
              "neighbor-ip":"172.30.0.1"}],
            "10.3.0.0/24":[{"nlri":{"prefix":"10.3.0.0/24"},"best":true,"attrs":[{"type":3,"nexthop":"0.0.0.0"}]}],
            "fd10:1::/64":[{"best":false,"attrs":[{"type":14,"nexthop":"fd00:30::1","afi":2,"safi":1}],
              "neighbor-ip":"fd00:30::1"}]}"#,
        )
        .unwrap();
        let mut r = parse_routes(&v);
        r.sort_by_key(|r| r.prefix.to_string());
        assert_eq!(r.len(), 2, "{r:?}");
        assert_eq!(r[0].prefix, net("10.1.0.0/24"));
        assert_eq!(r[0].as_path, vec![65001, 65002]);
        assert!(r[0].stale && r[0].best);
        assert_eq!(r[0].originator_id, Some("172.30.0.4".parse().unwrap()));
        assert_eq!(
            r[0].cluster_list,
            vec!["1.1.1.1".parse::<std::net::Ipv4Addr>().unwrap()]
        );
        assert_eq!(r[1].next_hop, Some("fd00:30::1".parse().unwrap()));
        assert!(!r[1].best);
    }

    #[test]
    fn parses_neighbor_states() {
        let v: Value = serde_json::from_str(
            r#"[{"conf":{"neighbor_address":"172.30.0.1"},"state":{"neighbor_address":"172.30.0.1","session_state":6}},
                {"conf":{"neighbor_address":"fd00:30::1"},"state":{"session_state":3}}]"#,
        )
        .unwrap();
        let s = parse_sessions(&v);
        assert!(s[0].established && s[0].state == "Established");
        assert_eq!(
            (s[1].peer.to_string().as_str(), s[1].state.as_str()),
            ("fd00:30::1", "Active")
        );
    }
}
