//! The peers of the interop tests: BIRD 2's `protocol bfd` and FRR's
//! `bfdd`, each alone in namespace b, configured at 100 ms x 3 for the
//! sessions side a runs (their mirror image: our local address is the
//! daemon's peer).
//!
//! - BIRD: `bird -f -c CONF -s SOCK -P PID`, sessions started by
//!   `neighbor` lines (single hop bound to the interface), read with
//!   `birdc -s SOCK show bfd sessions`.
//! - FRR: `bfdd -u frr -g frr` (as root without `-u frr` it refuses: root
//!   is not in group frrvty) with its own vty socket directory owned by
//!   frr, read with `vtysh --vty_socket DIR -c 'show bfd peers json'`.
//!   An IPv6 link-local peer needs its interface (`peer fe80::a interface
//!   bfb`), which bfdd learns from zebra only ("specified interface bfb
//!   (VRF default) doesn't exist" without it): then zebra runs too
//!   (`-u frr -g frr`, the same directory, `-z` its socket); sessions
//!   without an interface need no zebra.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;

use bfd::SessionConfig;
use tortie_testkit::frr::{start_zebra, zserv};
use tortie_testkit::netns::{Netns, NsChild};

use super::{daemon_dir, read, s, B4, IF_B};

/// Where Debian puts bfdd.
pub const BFDD: &str = "/usr/lib/frr/bfdd";
pub use tortie_testkit::frr::ZEBRA;

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
    // Before `dir`: the processes go first.
    child: Option<NsChild>,
    /// FRR's zebra, when a session needs it.
    zebra: Option<NsChild>,
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
            Kind::Frr if !super::have(BFDD) || !super::have(ZEBRA) || !super::have("vtysh") => {
                Some(format!(
                    "{BFDD}, {ZEBRA} or vtysh not installed (apt-get install frr)"
                ))
            }
            _ => None,
        }
    }
}

// ===== impl Daemon =====

impl Daemon {
    /// Starts the daemon in `ns` with the mirror image of `ours` (side
    /// a's sessions, every one with its local address).
    pub fn start(kind: Kind, ns: &Netns, ours: &[SessionConfig]) -> Daemon {
        let conf = match kind {
            Kind::Bird => bird_conf(ours),
            Kind::Frr => frr_conf(ours),
        };
        let zebra = kind == Kind::Frr && ours.iter().any(|c| is_link_local(c.peer));
        Daemon::launch(kind, ns, &conf, zebra)
    }

    /// Starts the daemon in `ns` with this config text (FRR: without
    /// zebra).
    pub fn start_with(kind: Kind, ns: &Netns, text: &str) -> Daemon {
        Daemon::launch(kind, ns, text, false)
    }

    fn launch(kind: Kind, ns: &Netns, text: &str, with_zebra: bool) -> Daemon {
        let dir = daemon_dir(kind.name());
        let log = dir.path().join("daemon.log");
        let conf = dir.path().join("daemon.conf");
        let d = s(dir.path());
        let mut zebra = None;
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
                let zserv = s(&zserv(dir.path()));
                if with_zebra {
                    zebra = Some(start_zebra(ns, dir.path()).unwrap_or_else(|e| panic!("{e}")));
                }
                let pid = format!("{d}/bfdd.pid");
                let ctl = format!("{d}/bfdd.sock");
                let conf = s(&conf);
                let mut argv = vec![
                    BFDD,
                    "-f",
                    &conf,
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
                if with_zebra {
                    argv.extend(["-z", &zserv]);
                }
                ns.spawn(&argv, &log).unwrap()
            }
        };
        Daemon {
            kind,
            child: Some(child),
            zebra,
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

/// An IPv6 link-local (fe80::/10) address.
fn is_link_local(a: IpAddr) -> bool {
    matches!(a, IpAddr::V6(v6) if v6.is_unicast_link_local())
}

/// Our local address: the daemon's peer.
fn local_of(c: &SessionConfig) -> IpAddr {
    c.local
        .expect("the scenario's sessions name their local address")
}

fn bird_conf(ours: &[SessionConfig]) -> String {
    let timers = "min rx interval 100 ms; min tx interval 100 ms; multiplier 3;";
    let mut s = format!(
        "router id {B4};\nprotocol device {{ scan time 1; }}\nprotocol bfd {{\n  \
         interface \"{IF_B}\" {{ {timers} }};\n  multihop {{ {timers} }};\n"
    );
    for c in ours {
        let (peer, local) = (local_of(c), c.peer);
        let _ = if c.multihop {
            writeln!(s, "  neighbor {peer} local {local} multihop yes;")
        } else {
            writeln!(s, "  neighbor {peer} dev \"{IF_B}\" local {local};")
        };
    }
    s.push_str("}\n");
    s
}

fn frr_conf(ours: &[SessionConfig]) -> String {
    let mut s = String::from("log stdout informational\nbfd\n");
    for c in ours {
        let (peer, local) = (local_of(c), c.peer);
        let how = match (c.multihop, is_link_local(peer)) {
            (true, _) => " multihop".to_string(),
            (false, true) => format!(" interface {IF_B}"),
            (false, false) => String::new(),
        };
        let _ = write!(
            s,
            " peer {peer}{how} local-address {local}\n  receive-interval 100\n  \
             transmit-interval 100\n  detect-multiplier 3\n !\n"
        );
    }
    s.push_str("!\n");
    s
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
