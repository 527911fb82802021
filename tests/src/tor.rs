//! A BIRD top-of-rack router on a lab host: eBGP (AS 65000) with every lab
//! node (iBGP AS 64512 nodes: `neighbor <node> as 64512`), importing all
//! and exporting nothing but the static routes it is given
//! ([`BirdTor::start_with`]), so that a test reads what each node
//! announces: [`BirdTor::expect`] waits until a prefix comes from exactly
//! the given nodes. Killed on drop.
//!
//! A test that needs another ToR (its own sessions, kernel export, IPv6)
//! gives its config to [`BirdTor::start_conf`]; [`bird_here`] says whether
//! BIRD is installed, and [`rack_args`] labels a node of an AS-per-node
//! rack. A ToR takes a new config ([`BirdTor::reconfigure`]), restarts
//! gracefully ([`BirdTor::graceful_restart`]) and shows its log
//! ([`BirdTor::log_since`]).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use tortie_ctl::lab::{net, Encap, Lab};

use crate::lab::spawn_in;
use crate::wait_until;

/// The ToR's AS.
pub const TOR_AS: u32 = 65000;

/// The BGPConfiguration of the ToR tests of communities: a standard and
/// a large community by name, and the lab pool's routes tagged with both
/// and with `64512:7` by value.
pub const COMMUNITIES: &str = "apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata:
  name: default
spec:
  communities:
    - {name: pods, value: '65000:100'}
    - {name: rack, value: '65000:1:2'}
  prefixAdvertisements:
    - cidr: 10.244.0.0/16
      communities: [pods, rack, '64512:7']
";

/// The lab of the ToR tests of communities: two nodes on one subnet, no
/// encapsulation, [`COMMUNITIES`] applied, and a host `tor` on their
/// subnet (its namespace and address) for the ToR to run in.
pub fn communities_lab(prefix: &str) -> Result<(Lab, String, Ipv4Addr)> {
    let mut spec = crate::lab::spec(prefix, 2)?;
    spec.encap = Encap::None;
    spec.one_subnet = true;
    spec.resources = COMMUNITIES.into();
    let mut lab = Lab::up(spec)?;
    let (ns, addr) = lab.add_host("tor")?;
    Ok((lab, ns, addr))
}

/// BIRD in a lab host's namespace; killed on drop.
pub struct BirdTor {
    ns: String,
    /// Its files: `bird.conf`, `.ctl`, `.log`, `.pid`.
    dir: PathBuf,
    sock: PathBuf,
    child: Child,
}

impl BirdTor {
    /// Starts BIRD in `ns` (a lab host at `addr`), with a session `n<i>`
    /// to each of the lab's nodes (AS `node_as`); its files in the lab's
    /// directory `tor/`.
    pub fn start(lab: &Lab, ns: &str, addr: Ipv4Addr, node_as: u32) -> Result<BirdTor> {
        BirdTor::start_with(lab, ns, addr, node_as, &[])
    }

    /// [`BirdTor::start`], announcing `statics` (blackhole routes) to
    /// every node.
    pub fn start_with(
        lab: &Lab,
        ns: &str,
        addr: Ipv4Addr,
        node_as: u32,
        statics: &[&str],
    ) -> Result<BirdTor> {
        let dir = lab.spec.dir.join("tor");
        std::fs::create_dir_all(&dir)?;
        let mut conf = format!(
            "router id {addr};\nprotocol device {{}}\nprotocol direct {{ ipv4; }}\n\
             template bgp tonode {{ local as {TOR_AS}; ipv4 {{ import all; \
             export where source = RTS_STATIC; }}; }}\n"
        );
        if !statics.is_empty() {
            conf += "protocol static { ipv4;";
            for r in statics {
                conf += &format!(" route {r} blackhole;");
            }
            conf += " }\n";
        }
        for (i, n) in lab.nodes.iter().enumerate() {
            conf += &format!(
                "protocol bgp n{i} from tonode {{ neighbor {} as {node_as}; }}\n",
                n.address
            );
        }
        BirdTor::start_conf(lab, ns, "tor", &conf)
    }

    /// Starts BIRD in `ns` on `conf`, its files (`bird.conf`, `.ctl`,
    /// `.log`, `.pid`) in the lab's directory `name/`; waits (up to 10 s)
    /// until `birdc` answers.
    pub fn start_conf(lab: &Lab, ns: &str, name: &str, conf: &str) -> Result<BirdTor> {
        let dir = lab.spec.dir.join(name);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("bird.conf"), conf)?;
        let child = launch(ns, &dir, false)?;
        let tor = BirdTor {
            ns: ns.into(),
            sock: dir.join("bird.ctl"),
            dir,
            child,
        };
        tor.wait_ready()?;
        Ok(tor)
    }

    /// `birdc ARGS...`, e.g. `birdc(&["configure"])`.
    pub fn birdc(&self, args: &[&str]) -> Result<String> {
        let sock = self.sock.display().to_string();
        let mut argv = vec!["-s", sock.as_str()];
        argv.extend_from_slice(args);
        net::run("birdc", &argv)
    }

    /// `birdc show WHAT...`, e.g. `show(&["route", "all"])`.
    pub fn show(&self, what: &[&str]) -> Result<String> {
        let mut args = vec!["show"];
        args.extend_from_slice(what);
        self.birdc(&args)
    }

    /// `show route all`.
    pub fn table(&self) -> Result<String> {
        self.show(&["route", "all"])
    }

    /// Writes `conf` as its `bird.conf` and has BIRD take it (`birdc
    /// configure`, which must say `Reconfigured`).
    pub fn reconfigure(&self, conf: &str) -> Result<()> {
        std::fs::write(self.dir.join("bird.conf"), conf)?;
        let out = self.birdc(&["configure"])?;
        if !out.contains("Reconfigured") {
            bail!("birdc configure: {out}");
        }
        Ok(())
    }

    /// `birdc graceful restart` (BIRD stops, its sessions closed without a
    /// NOTIFICATION); waits (up to 10 s) for it to exit, runs `away`, and
    /// starts it again with `-R` (graceful restart recovery).
    pub fn graceful_restart(&mut self, away: impl FnOnce() -> Result<()>) -> Result<()> {
        self.birdc(&["graceful", "restart"])?;
        let t0 = Instant::now();
        while self.child.try_wait()?.is_none() {
            if t0.elapsed() > Duration::from_secs(10) {
                bail!("BIRD did not stop within 10 s of `graceful restart`");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        away()?;
        self.child = launch(&self.ns, &self.dir, true)?;
        self.wait_ready()
    }

    /// How long `bird.log` is now.
    pub fn log_len(&self) -> usize {
        self.log_since(0).len()
    }

    /// `bird.log` from byte `from` on.
    pub fn log_since(&self, from: usize) -> String {
        let log = std::fs::read_to_string(self.dir.join("bird.log")).unwrap_or_default();
        log.get(from..).unwrap_or_default().to_string()
    }

    /// Waits (up to 10 s) until `birdc` answers.
    fn wait_ready(&self) -> Result<()> {
        wait_until(Duration::from_secs(10), "birdc to answer", || {
            self.show(&["status"]).map_err(|e| e.to_string())
        })
        .map(|_| ())
    }

    /// The state and since-when of its session `proto` (`n0`, `n1`, ...)
    /// as `birdc show protocols` gives them, e.g. `up 04:31:07.250
    /// Established`: the time changes when the session restarts.
    pub fn session(&self, proto: &str) -> Result<String> {
        let out = self.show(&["protocols", proto])?;
        let line = out
            .lines()
            .find(|l| l.split_whitespace().next() == Some(proto))
            .ok_or_else(|| anyhow::anyhow!("no protocol {proto} in:\n{out}"))?;
        // name, proto, table, then state, since, info.
        Ok(line
            .split_whitespace()
            .skip(3)
            .collect::<Vec<_>>()
            .join(" "))
    }

    /// Waits (up to `deadline`) until [`BirdTor::session`] of `proto`
    /// says `state` (`Established`, `Active`, ...); that line.
    pub fn wait_session(&self, proto: &str, state: &str, deadline: Duration) -> Result<String> {
        wait_until(deadline, &format!("BIRD's {proto} {state}"), || {
            let s = self.session(proto).map_err(|e| format!("{e:#}"))?;
            if s.split_whitespace().any(|w| w == state) {
                Ok(s)
            } else {
                Err(s)
            }
        })
    }

    /// Waits (up to 30 s) until the ToR has `prefix` from exactly the
    /// nodes `from` (by index; none: from nobody); how long that took.
    pub fn expect(&self, prefix: &str, from: &[usize]) -> Result<Duration> {
        let want: BTreeSet<String> = from.iter().map(|i| format!("n{i}")).collect();
        let start = Instant::now();
        wait_until(
            Duration::from_secs(30),
            &format!("{prefix} at the ToR from {want:?}"),
            || {
                let table = self.table().map_err(|e| e.to_string())?;
                let got = paths(&table).remove(prefix).unwrap_or_default();
                if got == want {
                    Ok(())
                } else {
                    Err(format!("from {got:?}:\n{table}"))
                }
            },
        )?;
        Ok(start.elapsed())
    }
}

impl Drop for BirdTor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `bird` in `ns` on `dir`'s `bird.conf` (control socket, pid
/// file and log beside it); with `-R` (graceful restart recovery) if
/// `recover`.
fn launch(ns: &str, dir: &Path, recover: bool) -> Result<Child> {
    let conf = dir.join("bird.conf").display().to_string();
    let sock = dir.join("bird.ctl").display().to_string();
    let pid = dir.join("bird.pid").display().to_string();
    let mut argv = vec!["bird", "-f", "-c", &conf, "-s", &sock, "-P", &pid];
    if recover {
        argv.push("-R");
    }
    spawn_in(ns, &argv, &dir.join("bird.log"))
}

/// Whether BIRD is here; says why not (`SKIP test: ...`, a failure under
/// CI=true).
pub fn bird_here(test: &str) -> bool {
    let ok = Command::new("bird")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        tortie_testkit::missing(test, "no bird (apt-get install bird2)");
    }
    ok
}

/// A lab node's arguments in an AS-per-node rack design: its AS and the
/// label `rack=RACK` that a BGPPeer's `nodeSelector` picks
/// ([`rack_peer`]).
pub fn rack_args(asn: u32, rack: &str) -> Vec<String> {
    vec![
        "--as-number".into(),
        asn.to_string(),
        "--labels".into(),
        format!("rack={rack}"),
    ]
}

/// The spec of a BGPPeer for rack `rack`'s nodes (those [`rack_args`]
/// labelled) to the router at `ip` in AS `asn`.
pub fn rack_peer(rack: &str, ip: &str, asn: u32) -> String {
    format!("nodeSelector: rack == '{rack}'\npeerIP: {ip}\nasNumber: {asn}\n")
}

/// Each prefix of a BIRD table and the sessions (`n0`, `n1`, ...) it was
/// received on.
pub fn paths(table: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut prefix = String::new();
    for line in table.lines() {
        let Some(at) = line.find("unicast [") else {
            continue;
        };
        if !line.starts_with(char::is_whitespace) {
            prefix = line.split_whitespace().next().unwrap_or("").to_string();
        }
        let proto = line[at + "unicast [".len()..]
            .split_whitespace()
            .next()
            .unwrap_or("");
        out.entry(prefix.clone())
            .or_default()
            .insert(proto.to_string());
    }
    out
}
