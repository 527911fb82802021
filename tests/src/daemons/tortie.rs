//! The `tortie-rr` binary in a namespace:
//! `tortie-rr --config FILE --state-dir DIR`, with a YAML config in the
//! issue-3 format, read back through its admin HTTP `/status` (JSON of
//! `bgp_speaker::status::Status`) over a socket opened inside the namespace.
//!
//! The binary is `$TORTIE_RR_BIN`, or `tortie-rr` in the cargo target dir
//! next to the test executable (`cargo build -p tortie-rr` first; the test
//! script does).

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::{daemon_dir, read_log, tail, write_file, IpNet};
use crate::netns::{Netns, NsChild};
use crate::{http, wait_until};

/// The environment variable naming the tortie-rr binary.
pub const BIN_ENV: &str = "TORTIE_RR_BIN";

/// tortie-rr's configuration file: camelCase YAML (docs/tortie-rr.md).
#[derive(Clone, Debug, PartialEq)]
pub struct TortieConfig {
    /// `routerId`.
    pub router_id: Ipv4Addr,
    /// `asNumber`.
    pub asn: u32,
    /// `clusterId`: set, tortie-rr reflects between its clients.
    pub cluster_id: Option<Ipv4Addr>,
    /// `listen`: where BGP sessions are accepted (`"[::]:179"`: dual stack).
    pub listen: String,
    /// `admin`: the HTTP admin endpoint (`/status`), inside the namespace.
    pub admin: SocketAddr,
    /// `peers`.
    pub peers: Vec<TortiePeer>,
    /// `dynamicPeers`.
    pub dynamic_peers: Vec<TortieDynamic>,
    /// `filters:` entries, each YAML as written after `- ` (e.g.
    /// `{name: in, importV4: [...]}`).
    pub filters: Vec<String>,
}

/// One entry of `peers`.
#[derive(Clone, Debug, PartialEq)]
pub struct TortiePeer {
    /// `address`.
    pub address: IpAddr,
    /// `asNumber`.
    pub asn: u32,
    /// `client`: a route reflector client.
    pub client: bool,
    /// `password`: TCP MD5 key.
    pub password: Option<String>,
    /// `holdTime` (seconds).
    pub hold_time: u16,
    /// `passive`.
    pub passive: bool,
    /// `port`: the peer's port.
    pub port: u16,
    /// `ttlSecurity`: GTSM for a peer this many hops away.
    pub ttl_security: Option<u8>,
    /// `bfd`, as a YAML flow mapping (`{enabled: true, minRx: 100ms}`).
    pub bfd: Option<String>,
    /// `filters`: names of the file's filters.
    pub filters: Vec<String>,
}

/// One entry of `dynamicPeers`: a range.
#[derive(Clone, Debug, PartialEq)]
pub struct TortieDynamic {
    /// `prefix`.
    pub prefix: IpNet,
    /// `asNumber`.
    pub asn: u32,
    /// `client`: set, written as given.
    pub client: Option<bool>,
    /// `filters`: names of the file's filters.
    pub filters: Vec<String>,
}

/// A running tortie-rr (restartable with the same state dir).
pub struct TortieRr {
    cfg: TortieConfig,
    ns: Netns,
    bin: PathBuf,
    conf: PathBuf,
    state: PathBuf,
    log: PathBuf,
    child: Option<NsChild>,
    _dir: tempfile::TempDir,
}

// ===== impl TortieConfig =====

impl TortieConfig {
    /// A config for a host: router id = its address, admin on 127.0.0.1:9179
    /// inside the namespace, BGP on `[::]:179`, no peers.
    pub fn new(router_id: Ipv4Addr, asn: u32) -> TortieConfig {
        TortieConfig {
            router_id,
            asn,
            cluster_id: None,
            listen: "[::]:179".to_string(),
            admin: SocketAddr::from(([127, 0, 0, 1], 9179)),
            peers: Vec::new(),
            dynamic_peers: Vec::new(),
            filters: Vec::new(),
        }
    }

    /// Adds a peer with defaults (active, hold 90 s, port 179).
    pub fn peer(
        mut self,
        address: impl Into<IpAddr>,
        asn: u32,
        f: impl Fn(&mut TortiePeer),
    ) -> Self {
        let mut p = TortiePeer {
            address: address.into(),
            asn,
            client: false,
            password: None,
            hold_time: 90,
            passive: false,
            port: 179,
            ttl_security: None,
            bfd: None,
            filters: Vec::new(),
        };
        f(&mut p);
        self.peers.push(p);
        self
    }

    /// The YAML text.
    pub fn to_yaml(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "routerId: \"{}\"\nasNumber: {}",
            self.router_id, self.asn
        );
        if let Some(c) = self.cluster_id {
            let _ = writeln!(s, "clusterId: \"{c}\"");
        }
        let _ = writeln!(s, "listen: \"{}\"\nadmin: \"{}\"", self.listen, self.admin);
        let _ = writeln!(
            s,
            "peers:{}",
            if self.peers.is_empty() { " []" } else { "" }
        );
        for p in &self.peers {
            let _ = writeln!(s, "  - address: \"{}\"\n    asNumber: {}", p.address, p.asn);
            let _ = writeln!(s, "    client: {}", p.client);
            if let Some(pw) = &p.password {
                let _ = writeln!(s, "    password: \"{pw}\"");
            }
            let _ = writeln!(
                s,
                "    holdTime: {}\n    passive: {}\n    port: {}",
                p.hold_time, p.passive, p.port
            );
            if let Some(hops) = p.ttl_security {
                let _ = writeln!(s, "    ttlSecurity: {hops}");
            }
            if let Some(bfd) = &p.bfd {
                let _ = writeln!(s, "    bfd: {bfd}");
            }
            if !p.filters.is_empty() {
                let _ = writeln!(s, "    filters: [{}]", p.filters.join(", "));
            }
        }
        if !self.filters.is_empty() {
            let _ = writeln!(s, "filters:");
            for f in &self.filters {
                let _ = writeln!(s, "  - {f}");
            }
        }
        let _ = writeln!(
            s,
            "dynamicPeers:{}",
            if self.dynamic_peers.is_empty() {
                " []"
            } else {
                ""
            }
        );
        for d in &self.dynamic_peers {
            let _ = writeln!(s, "  - prefix: \"{}\"\n    asNumber: {}", d.prefix, d.asn);
            if let Some(client) = d.client {
                let _ = writeln!(s, "    client: {client}");
            }
            if !d.filters.is_empty() {
                let _ = writeln!(s, "    filters: [{}]", d.filters.join(", "));
            }
        }
        s
    }
}

// ===== impl TortieRr =====

impl TortieRr {
    /// Finds the binary: `$TORTIE_RR_BIN`, else `tortie-rr` beside the test
    /// executable's `deps/` dir. The error says how to build it.
    pub fn binary() -> Result<PathBuf> {
        if let Ok(p) = std::env::var(BIN_ENV) {
            let p = PathBuf::from(p);
            if !p.is_file() {
                bail!("{BIN_ENV}={} is not a file", p.display());
            }
            return Ok(p);
        }
        let exe = std::env::current_exe().context("locating the test executable")?;
        // target/debug/deps/<test> -> target/debug/tortie-rr
        let candidate = exe
            .parent()
            .and_then(|deps| deps.parent())
            .map(|dir| dir.join("tortie-rr"))
            .context("test executable has no target dir")?;
        if !candidate.is_file() {
            bail!(
                "{} not found: run `cargo build -p tortie-rr` first or set {BIN_ENV}",
                candidate.display()
            );
        }
        Ok(candidate)
    }

    /// Writes the config, starts tortie-rr in `ns` and waits until its
    /// admin endpoint answers.
    pub fn start(ns: &Netns, cfg: TortieConfig) -> Result<TortieRr> {
        let dir = daemon_dir("rr")?;
        let state = dir.path().join("state");
        std::fs::create_dir_all(&state).context("creating the state dir")?;
        let mut t = TortieRr {
            bin: Self::binary()?,
            conf: dir.path().join("rr.yaml"),
            log: dir.path().join("tortie-rr.log"),
            state,
            cfg,
            ns: ns.clone(),
            child: None,
            _dir: dir,
        };
        t.launch()?;
        Ok(t)
    }

    fn launch(&mut self) -> Result<()> {
        write_file(&self.conf, &self.cfg.to_yaml())?;
        let bin = self.bin.to_str().context("binary path is not UTF-8")?;
        let conf = self.conf.to_str().context("config path is not UTF-8")?;
        let state = self.state.to_str().context("state path is not UTF-8")?;
        let args = [bin, "--config", conf, "--state-dir", state];
        self.child = Some(self.ns.spawn(&args, &self.log)?);
        wait_until(Duration::from_secs(10), "tortie-rr admin /status", || {
            if let Some(st) = self.child.as_mut().and_then(|c| c.exited()) {
                return Err(format!("tortie-rr exited with {st}"));
            }
            self.status().map_err(|e| format!("{e:#}"))
        })
        .map(|_| ())
        .map_err(|e| {
            e.context(format!(
                "config:\n{}\n{}",
                self.cfg.to_yaml(),
                tail(&self.log(), 30)
            ))
        })
    }

    /// GET /status from the admin endpoint, parsed.
    pub fn status(&self) -> Result<Value> {
        let stream = self
            .ns
            .connect(self.cfg.admin, Duration::from_secs(2))
            .with_context(|| format!("connecting to admin {}", self.cfg.admin))?;
        let resp = http::get(stream, &self.cfg.admin.to_string(), "/status")?;
        if resp.status != 200 {
            bail!("GET /status: HTTP {}: {}", resp.status, resp.body);
        }
        serde_json::from_str(&resp.body)
            .with_context(|| format!("/status is not JSON: {}", resp.body))
    }

    /// The status entry of one peer (`peers[]` with this `address`).
    pub fn peer_status(&self, peer: IpAddr) -> Result<Value> {
        let s = self.status()?;
        let peers = s["peers"]
            .as_array()
            .context("/status has no peers array")?;
        peers
            .iter()
            .find(|p| p["address"].as_str().and_then(|a| a.parse::<IpAddr>().ok()) == Some(peer))
            .cloned()
            .with_context(|| format!("/status lists no peer {peer}: {s}"))
    }

    /// Waits until tortie-rr reports the session with `peer` Established.
    pub fn wait_established(&self, peer: IpAddr, deadline: Duration) -> Result<()> {
        wait_until(
            deadline,
            &format!("tortie-rr session with {peer} Established"),
            || {
                let p = self.peer_status(peer).map_err(|e| format!("{e:#}"))?;
                match p["state"].as_str() {
                    Some("Established") => Ok(()),
                    other => Err(format!("state {other:?}, last_error {}", p["lastError"])),
                }
            },
        )
        .map_err(|e| e.context(tail(&self.log(), 20)))
    }

    /// A counter of one peer (`prefixesReceived`, `prefixesAdvertised`...).
    pub fn peer_counter(&self, peer: IpAddr, field: &str) -> Result<u64> {
        let p = self.peer_status(peer)?;
        p[field]
            .as_u64()
            .with_context(|| format!("/status peer {peer}: no number {field:?} in {p}"))
    }

    /// SIGKILL: no NOTIFICATION, no cleanup (for graceful restart tests).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill9();
        }
    }

    /// Writes `cfg` over the running one's file and sends SIGHUP: the
    /// running process reloads it (`docs/tortie-rr.md`, "Reload").
    pub fn reload(&mut self, cfg: TortieConfig) -> Result<()> {
        self.cfg = cfg;
        write_file(&self.conf, &self.cfg.to_yaml())?;
        let pid = self
            .child
            .as_ref()
            .map(|c| c.pid())
            .context("tortie-rr is not running")?;
        let ok = std::process::Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .context("running kill -HUP")?
            .success();
        if !ok {
            bail!("kill -HUP {pid} failed");
        }
        Ok(())
    }

    /// Starts tortie-rr again with the same config and state dir.
    pub fn restart(&mut self) -> Result<()> {
        self.kill9();
        self.launch()
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        read_log(&self.log)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_uses_issue_3_field_names() {
        let mut c = TortieConfig::new("172.30.0.1".parse().unwrap(), 64512).peer(
            "172.30.0.2".parse::<IpAddr>().unwrap(),
            64512,
            |p| {
                p.client = true;
                p.password = Some("pw".into());
                p.ttl_security = Some(1);
                p.bfd = Some("{enabled: true, minRx: 100ms}".into());
            },
        );
        c.cluster_id = Some("1.1.1.1".parse().unwrap());
        c.dynamic_peers.push(TortieDynamic {
            prefix: "172.30.0.0/24".parse().unwrap(),
            asn: 64512,
            client: None,
            filters: Vec::new(),
        });
        let y = c.to_yaml();
        for want in [
            "routerId: \"172.30.0.1\"",
            "asNumber: 64512",
            "clusterId: \"1.1.1.1\"",
            "listen: \"[::]:179\"",
            "admin: \"127.0.0.1:9179\"",
            "  - address: \"172.30.0.2\"\n    asNumber: 64512\n    client: true\n    password: \"pw\"\n    holdTime: 90\n    passive: false\n    port: 179\n    ttlSecurity: 1\n    bfd: {enabled: true, minRx: 100ms}",
            "dynamicPeers:\n  - prefix: \"172.30.0.0/24\"\n    asNumber: 64512",
        ] {
            assert!(y.contains(want), "missing {want:?} in:\n{y}");
        }
    }

    #[test]
    fn binary_env_must_name_a_file() {
        // Only this test touches the variable in this process's lib tests.
        std::env::set_var(BIN_ENV, "/nonexistent/tortie-rr");
        let e = TortieRr::binary().unwrap_err().to_string();
        std::env::remove_var(BIN_ENV);
        assert!(
            e.contains("TORTIE_RR_BIN=/nonexistent/tortie-rr is not a file"),
            "{e}"
        );
    }
}
