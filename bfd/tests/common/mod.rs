//! What the real-network BFD tests share: two network namespaces joined
//! by a veth pair, a Tortie BFD service running inside a namespace, and
//! waiting with a deadline.
//!
//! ```text
//!   ns "bfdt-<pid>-<n>" (a)             ns "bfdt-<pid>-<n>" (b)
//!   bfa 10.231.0.1/24  <--- veth --->  bfb 10.231.0.2/24
//!       fd00:231::1/64                     fd00:231::2/64
//!       fe80::a/64                         fe80::b/64
//! ```
//!
//! Cleanup: namespaces are deleted on drop (every process inside killed
//! first), also when a test panics; a service is stopped on drop before
//! its namespace goes (its sockets would keep the namespace alive); a
//! [`Cut`] removes its nftables table on drop.

#![allow(dead_code)]

pub mod daemons;
pub mod scenario;

use std::io::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bfd::{Bfd, BfdHandle, SessionStatus, State};
use tokio::sync::{oneshot, watch};
use tortie_testkit::netns::{self, Netns};

/// Interface names and addresses of the two ends.
pub const IF_A: &str = "bfa";
/// The other end.
pub const IF_B: &str = "bfb";
/// IPv4 of a.
pub const A4: &str = "10.231.0.1";
/// IPv4 of b.
pub const B4: &str = "10.231.0.2";
/// IPv6 of a.
pub const A6: &str = "fd00:231::1";
/// IPv6 of b.
pub const B6: &str = "fd00:231::2";
/// IPv6 link-local of a (beside the one the kernel makes; a link down
/// removes it, `keep_addr_on_down` keeps no link-local address).
pub const A6_LL: &str = "fe80::a";
/// IPv6 link-local of b.
pub const B6_LL: &str = "fe80::b";

/// Two namespaces joined by a veth pair, addressed, link up.
pub struct Link {
    /// Side a (Tortie runs here).
    pub a: Netns,
    /// Side b (the peer).
    pub b: Netns,
}

/// Every packet in and out of a namespace dropped (one nftables table,
/// `inet`: both families, applied at once by one `nft -f`); the table is
/// deleted on drop.
pub struct Cut<'a> {
    ns: &'a Netns,
    _file: tempfile::NamedTempFile,
}

/// A Tortie BFD service on a thread of its own inside a namespace.
pub struct NsBfd {
    /// Its handle.
    pub handle: BfdHandle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

// ===== impl Link =====

impl Link {
    /// Makes the namespaces, or None (after saying why) when this machine
    /// cannot (not root, no iproute2): a failure under CI.
    pub fn new(test: &str) -> Option<Link> {
        let make = || -> std::io::Result<Link> {
            let a = Netns::new("bfdt")?;
            let b = Netns::new("bfdt")?;
            netns::veth(&a, IF_A, &b, IF_B)?;
            let ends = [(&a, IF_A, A4, A6, A6_LL), (&b, IF_B, B4, B6, B6_LL)];
            for (ns, ifname, v4, v6, ll) in ends {
                // Keep the IPv6 address when a test takes the link down.
                let keep = format!("net.ipv6.conf.{ifname}.keep_addr_on_down=1");
                netns::output(&mut ns.command(&["sysctl", "-qw", &keep]))?;
                ns.ip(&["addr", "add", &format!("{v4}/24"), "dev", ifname])?;
                for v6 in [v6, ll] {
                    let cidr = format!("{v6}/64");
                    ns.ip(&["-6", "addr", "add", &cidr, "dev", ifname, "nodad"])?;
                }
            }
            Ok(Link { a, b })
        };
        match make() {
            Ok(l) => Some(l),
            Err(e) => {
                tortie_testkit::missing(test, &format!("network namespaces (root, iproute2): {e}"));
                None
            }
        }
    }

    /// `ip -n b link set bfb down|up`: the peer's end of the link.
    pub fn peer_link(&self, up: bool) {
        self.b
            .ip(&["link", "set", IF_B, if up { "up" } else { "down" }])
            .unwrap();
    }

    /// Drops every packet in and out of b from now until the [`Cut`]
    /// is dropped (needs `nft`).
    pub fn cut_peer(&self) -> Cut<'_> {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(
            b"table inet tortie_bfd_cut {\n\
              \x20 chain in { type filter hook input priority -400; policy drop; }\n\
              \x20 chain out { type filter hook output priority -400; policy drop; }\n}\n",
        )
        .unwrap();
        let path = file.path().to_str().unwrap().to_string();
        netns::output(&mut self.b.command(&["nft", "-f", &path])).unwrap();
        Cut {
            ns: &self.b,
            _file: file,
        }
    }
}

// ===== impl Cut =====

impl Drop for Cut<'_> {
    fn drop(&mut self) {
        let del = ["nft", "delete", "table", "inet", "tortie_bfd_cut"];
        if let Err(e) = netns::output(&mut self.ns.command(&del)) {
            say(&format!("cleanup: {e}"));
        }
    }
}

// ===== impl NsBfd =====

impl NsBfd {
    /// Starts a service inside `ns`.
    pub fn start(ns: &Netns) -> NsBfd {
        let path = ns.path();
        let (htx, hrx) = std::sync::mpsc::channel();
        let (stop, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            netns::enter_path(&path).unwrap();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let (bfd, handle) = Bfd::new();
                htx.send(handle).unwrap();
                tokio::select! {
                    () = bfd.run() => {}
                    _ = stop_rx => {}
                }
            });
        });
        let handle = hrx.recv().expect("the BFD thread started");
        NsBfd {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for NsBfd {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ===== helpers =====

/// Parses an address.
pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A line on the real stderr (libtest does not capture it): what the
/// test measured.
pub fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Waits (up to `deadline`) until a session's status satisfies `f`.
pub async fn wait_status(
    rx: &mut watch::Receiver<SessionStatus>,
    deadline: Duration,
    what: &str,
    f: impl FnMut(&SessionStatus) -> bool,
) -> SessionStatus {
    let got = match tokio::time::timeout(deadline, rx.wait_for(f)).await {
        Ok(Ok(s)) => Some(*s),
        Ok(Err(_)) => panic!("{what}: the session is gone"),
        Err(_) => None,
    };
    got.unwrap_or_else(|| {
        panic!(
            "timed out after {deadline:?} waiting for {what}: {:?}",
            *rx.borrow()
        )
    })
}

/// Waits until Up.
pub async fn wait_up(rx: &mut watch::Receiver<SessionStatus>, what: &str) -> SessionStatus {
    wait_status(rx, Duration::from_secs(15), &format!("{what} Up"), |s| {
        s.state == State::Up
    })
    .await
}

/// Waits for the session to leave Up after `t0` and returns how long
/// after `t0` the service decided it (the status's own instant, not
/// when this thread woke), and the status.
pub async fn detection_after(
    rx: &mut watch::Receiver<SessionStatus>,
    t0: Instant,
    what: &str,
) -> (Duration, SessionStatus) {
    let s = wait_status(rx, Duration::from_secs(10), &format!("{what} Down"), |s| {
        s.state != State::Up
    })
    .await;
    (s.since.into_std().saturating_duration_since(t0), s)
}

/// Polls a blocking check every 100 ms until it passes or `deadline`.
pub async fn poll_until(
    deadline: Duration,
    what: &str,
    mut check: impl FnMut() -> Result<(), String>,
) {
    let start = Instant::now();
    loop {
        match check() {
            Ok(()) => return,
            Err(why) if start.elapsed() >= deadline => {
                panic!("timed out after {deadline:?} waiting for {what}: {why}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// A temp dir for a daemon's files, readable by other users (FRR drops
/// to user frr).
pub fn daemon_dir(prefix: &str) -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix(&format!("tortie-bfd-{prefix}-"))
        .tempdir()
        .unwrap();
    let _ = std::fs::set_permissions(
        d.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    );
    d
}

/// `path` as &str.
pub fn s(path: &std::path::Path) -> String {
    path.to_str().unwrap().to_string()
}

/// The log file's text, for failure messages.
pub fn read(path: &PathBuf) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Whether `tool` can be run (`tool --version` or at a fixed path).
pub fn have(tool: &str) -> bool {
    if tool.starts_with('/') {
        return std::path::Path::new(tool).exists();
    }
    std::process::Command::new(tool)
        .arg("--version")
        .output()
        .is_ok()
}
