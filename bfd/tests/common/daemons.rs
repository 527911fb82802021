//! The peers of the interop tests: BIRD 2's `protocol bfd` and FRR's
//! `bfdd`, each alone in namespace b, configured for three sessions
//! towards side a at 100 ms x 3: IPv4 single hop, IPv6 single hop, IPv4
//! multihop.
//!
//! - BIRD: `bird -f -c CONF -s SOCK -P PID`, sessions started by
//!   `neighbor` lines, read with `birdc -s SOCK show bfd sessions`.
//! - FRR: `bfdd -u frr -g frr` (as root without `-u frr` it refuses: root
//!   is not in group frrvty) with its own vty socket directory owned by
//!   frr; no zebra needed for sessions without an interface; read with
//!   `vtysh --vty_socket DIR -c 'show bfd peers json'`.

use std::path::PathBuf;
use std::process::Command;

use tortie_testkit::netns::{Netns, NsChild};

use super::{daemon_dir, read, s, A4, A6, B4, B6, IF_B};

/// Where Debian puts bfdd.
pub const BFDD: &str = "/usr/lib/frr/bfdd";

/// Which daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// BIRD 2.
    Bird,
    /// FRR bfdd.
    Frr,
}

/// A running peer daemon, killed on drop.
pub struct Daemon {
    kind: Kind,
    // Before `dir`: the process goes first.
    child: Option<NsChild>,
    log: PathBuf,
    dir: tempfile::TempDir,
}

/// One session as the daemon shows it.
#[derive(Clone, Debug)]
pub struct PeerSession {
    /// The remote (our) address.
    pub peer: String,
    /// Its state, lower case ("up", "down", "init", ...).
    pub state: String,
}

// ===== impl Kind =====

impl Kind {
    /// Name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Bird => "bird",
            Kind::Frr => "frr",
        }
    }

    /// Why it cannot run here, if it cannot.
    pub fn missing(self) -> Option<String> {
        match self {
            Kind::Bird if !super::have("bird") || !super::have("birdc") => {
                Some("BIRD 2 not installed (apt-get install bird2)".into())
            }
            Kind::Frr if !super::have(BFDD) || !super::have("vtysh") => Some(format!(
                "{BFDD} or vtysh not installed (apt-get install frr)"
            )),
            _ => None,
        }
    }
}

// ===== impl Daemon =====

impl Daemon {
    /// Writes the three-session config and starts the daemon in `ns`.
    pub fn start(kind: Kind, ns: &Netns) -> Daemon {
        let conf = match kind {
            Kind::Bird => bird_conf(),
            Kind::Frr => frr_conf(),
        };
        Daemon::start_with(kind, ns, &conf)
    }

    /// Starts the daemon in `ns` with this config text.
    pub fn start_with(kind: Kind, ns: &Netns, text: &str) -> Daemon {
        let dir = daemon_dir(kind.name());
        let log = dir.path().join("daemon.log");
        let conf = dir.path().join("daemon.conf");
        let d = s(dir.path());
        let child = match kind {
            Kind::Bird => {
                std::fs::write(&conf, text).unwrap();
                let sock = format!("{d}/bird.ctl");
                let pid = format!("{d}/bird.pid");
                let argv = ["bird", "-f", "-c", &s(&conf), "-s", &sock, "-P", &pid];
                ns.spawn(&argv, &log).unwrap()
            }
            Kind::Frr => {
                std::fs::write(&conf, text).unwrap();
                let st = Command::new("chown")
                    .args(["-R", "frr:frr", &d])
                    .status()
                    .unwrap();
                assert!(st.success(), "chown frr {d}");
                let pid = format!("{d}/bfdd.pid");
                let ctl = format!("{d}/bfdd.sock");
                let argv = [
                    BFDD,
                    "-f",
                    &s(&conf),
                    "-i",
                    &pid,
                    "--vty_socket",
                    &d,
                    "-P",
                    "0",
                    "-u",
                    "frr",
                    "-g",
                    "frr",
                    "--bfdctl",
                    &ctl,
                ];
                ns.spawn(&argv, &log).unwrap()
            }
        };
        Daemon {
            kind,
            child: Some(child),
            log,
            dir,
        }
    }

    /// Its sessions, or why they cannot be read (not started yet).
    pub fn sessions(&self) -> Result<Vec<PeerSession>, String> {
        match self.kind {
            Kind::Bird => {
                let out = self.run("birdc", &["-s", "bird.ctl", "show", "bfd", "sessions"])?;
                Ok(parse_bird(&out))
            }
            Kind::Frr => {
                let d = s(self.dir.path());
                let out = self.run("vtysh", &["--vty_socket", &d, "-c", "show bfd peers json"])?;
                parse_frr(&out)
            }
        }
    }

    /// `n` sessions, every one in `state`.
    pub fn all_in(&self, n: usize, state: &str) -> Result<(), String> {
        let v = self.sessions()?;
        if v.len() == n && v.iter().all(|p| p.state == state) {
            Ok(())
        } else {
            Err(format!("{v:?}"))
        }
    }

    /// Its directory (config, sockets, log).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Its process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.pid())
    }

    /// SIGKILL: no AdminDown is sent.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill9();
        }
    }

    /// Its log, for failure messages.
    pub fn log(&self) -> String {
        read(&self.log)
    }

    fn run(&self, prog: &str, args: &[&str]) -> Result<String, String> {
        let out = Command::new(prog)
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .map_err(|e| format!("{prog}: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() || text.contains("Unable to connect") {
            return Err(format!(
                "{prog} {args:?}: {} {text}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(text)
    }
}

// ===== helpers =====

fn bird_conf() -> String {
    format!(
        r#"router id {B4};
protocol device {{ scan time 1; }}
protocol bfd {{
  interface "{IF_B}" {{ min rx interval 100 ms; min tx interval 100 ms; multiplier 3; }};
  multihop {{ min rx interval 100 ms; min tx interval 100 ms; multiplier 3; }};
  neighbor {A4} dev "{IF_B}" local {B4};
  neighbor {A6} dev "{IF_B}" local {B6};
  neighbor {A4} local {B4} multihop yes;
}}
"#
    )
}

fn frr_conf() -> String {
    let peer = |head: String| {
        format!(
            " {head}\n  receive-interval 100\n  transmit-interval 100\n  detect-multiplier 3\n !\n"
        )
    };
    format!(
        "log stdout informational\nbfd\n{}{}{}!\n",
        peer(format!("peer {A4} local-address {B4}")),
        peer(format!("peer {A6} local-address {B6}")),
        peer(format!("peer {A4} multihop local-address {B4}")),
    )
}

/// `birdc show bfd sessions`: one line per session, "ADDR [IFACE] STATE
/// SINCE INTERVAL TIMEOUT".
fn parse_bird(out: &str) -> Vec<PeerSession> {
    out.lines()
        .filter_map(|l| {
            let t: Vec<&str> = l.split_whitespace().collect();
            t.first()?.parse::<std::net::IpAddr>().ok()?;
            let state = t
                .iter()
                .find(|w| matches!(**w, "Up" | "Down" | "Init" | "AdminDown"))?;
            Some(PeerSession {
                peer: t[0].to_string(),
                state: state.to_lowercase(),
            })
        })
        .collect()
}

/// `show bfd peers json`: a list of {peer, status, ...}.
fn parse_frr(out: &str) -> Result<Vec<PeerSession>, String> {
    // Without serde_json: the fields we need are flat strings.
    let mut v = vec![];
    for obj in out.split('{').skip(1) {
        let field = |name: &str| {
            let key = format!("\"{name}\":\"");
            let i = obj.find(&key)? + key.len();
            Some(obj[i..].split('"').next()?.to_string())
        };
        match (field("peer"), field("status")) {
            (Some(peer), Some(state)) => v.push(PeerSession { peer, state }),
            _ => return Err(format!("unexpected vtysh output: {out}")),
        }
    }
    Ok(v)
}
