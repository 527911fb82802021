//! BFD drives BGP: tortie-rr with `bfd` on its peer (100 ms x 3), against
//! BIRD 2 (`bfd on` on the BGP protocol and a `protocol bfd`) and against
//! FRR (zebra, bfdd and bgpd; `neighbor X bfd profile fast`, the profile
//! in bfdd's configuration), in network namespaces, over IPv4 and over
//! IPv6: one BGP session carrying its own family alone, its BFD session
//! between the same addresses. Part of the tortie-rr interop tests
//! (`TORTIE_INTEROP=0` skips them); needs the daemon, `nft` and the built
//! binaries (`cargo build --workspace --bins`).
//!
//! ```text
//! h1 tortie-rr AS 64512 ---- eth0 ---- h2 BIRD or FRR AS 65002, originates
//!    172.30.0.1                            172.30.0.2   10.2.0.0/24
//!    fd00:30::1                            fd00:30::2   fd10:2::/64 (IPv6)
//! ```
//!
//! Checks (`bfd_down_takes_bgp_down_bird`, `bfd_down_takes_bgp_down_frr`,
//! `bfd_down_takes_ipv6_bgp_down_bird`, `bfd_down_takes_ipv6_bgp_down_frr`),
//! three rounds:
//! 1. BGP Established, the peer's route received; tortie-rr's BFD session
//!    to it is single hop on eth0 (the peer is on its subnet) from the BGP
//!    session's address (IPv4 or IPv6) and Up; the peer shows its BFD
//!    session with our address Up.
//! 2. Everything to and from h2 is dropped (nftables in h2's namespace:
//!    no RST, TCP notices nothing; the hold time is 90 s): tortie-rr's
//!    session leaves Established within [`LIMIT`] of the cut (BFD
//!    detects at most 300 ms after the last packet) and the peer's route
//!    is gone from its RIB; its `lastError` says BFD. The times are
//!    printed.
//! 3. While h2 is cut off BFD stays down and the session does not come
//!    back (for 2 s, polled).
//! 4. The drop removed: BFD Up, the session Established again, the route
//!    back.

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;
use tortie_testkit::frr::{start_zebra, zserv, ZEBRA};
use tortie_tests::daemons::bird::Bird;
use tortie_tests::daemons::tortie::{TortieConfig, TortieRr};
use tortie_tests::daemons::{Afi, BgpDaemon as _, DaemonConfig, Neighbor};
use tortie_tests::netns::{Host, Netns, NsChild, Topology};
use tortie_tests::tor::bird_here;
use tortie_tests::{interop_enabled, wait_until};

const AS_RR: u32 = 64512;
const AS_PEER: u32 = 65002;
const WAIT: Duration = Duration::from_secs(30);
const INTERVAL: Duration = Duration::from_millis(100);
/// Cut to "not Established" at most: the 300 ms detection time after the
/// last packet, plus the instance's reaction, the `nft` command and our
/// polling, on a loaded CI machine running tests side by side in a debug
/// build. It only has to tell BFD from BGP's hold timer (90 s here); the
/// <= 350 ms target is measured by `cargo bench -p bfd --bench sessions`
/// (docs/benchmarks.md). The times are printed.
const LIMIT: Duration = Duration::from_millis(1500);
/// What the peer originates, by family.
const ROUTE: &str = "10.2.0.0/24";
const ROUTE6: &str = "fd10:2::/64";
/// Where Debian installs FRR's daemons.
const BFDD: &str = "/usr/lib/frr/bfdd";
const BGPD: &str = "/usr/lib/frr/bgpd";
const VTYSH: &str = "/usr/bin/vtysh";

/// An nftables table in a namespace that drops every packet in and out
/// (applied at once: one `nft -f`); removed on drop.
struct Cut {
    ns: Netns,
    _dir: tempfile::TempDir,
}

/// FRR's zebra, bfdd and bgpd in a namespace, sharing one directory
/// (configs, vty sockets, zserv socket, logs); killed on drop.
struct FrrBfd {
    // Before `dir`: the processes go first.
    children: Vec<NsChild>,
    dir: tempfile::TempDir,
}

// 1., 2., 3., 4.
#[test]
fn bfd_down_takes_bgp_down_bird() -> Result<()> {
    bird("bfd_down_takes_bgp_down_bird", Afi::V4)
}

// 1., 2., 3., 4.
#[test]
fn bfd_down_takes_ipv6_bgp_down_bird() -> Result<()> {
    bird("bfd_down_takes_ipv6_bgp_down_bird", Afi::V6)
}

// 1., 2., 3., 4.
#[test]
fn bfd_down_takes_bgp_down_frr() -> Result<()> {
    frr("bfd_down_takes_bgp_down_frr", Afi::V4)
}

// 1., 2., 3., 4.
#[test]
fn bfd_down_takes_ipv6_bgp_down_frr() -> Result<()> {
    frr("bfd_down_takes_ipv6_bgp_down_frr", Afi::V6)
}

/// FRR on h2 with one session of `afi` to h1, then the rounds.
fn frr(test: &str, afi: Afi) -> Result<()> {
    if !interop_enabled(test) || !tools(test, &[BGPD, BFDD, ZEBRA, VTYSH]) {
        return Ok(());
    }
    let topo = Topology::new(2)?;
    let (h1, h2) = (&topo.hosts[0], &topo.hosts[1]);
    let ours = addr(h1, afi).to_string();
    let frr = FrrBfd::start(&h2.ns, h2.v4, addr(h1, afi))?;
    let peer_bfd_up = || {
        let v = frr
            .json("show bfd peers json")
            .map_err(|e| format!("{e:#}"))?;
        let up = v.as_array().is_some_and(|ps| {
            ps.iter()
                .any(|p| p["peer"] == ours.as_str() && p["status"] == "up")
        });
        if up {
            Ok(())
        } else {
            Err(v.to_string())
        }
    };
    rounds(test, &topo, afi, &peer_bfd_up).with_context(|| frr.logs())
}

/// BIRD on h2 with one session of `afi` to h1 (`bfd on`, `direct`), then
/// the rounds.
fn bird(test: &str, afi: Afi) -> Result<()> {
    if !interop_enabled(test) || !bird_here(test) || !tools(test, &[]) {
        return Ok(());
    }
    let topo = Topology::new(2)?;
    let (h1, h2) = (&topo.hosts[0], &topo.hosts[1]);
    let route = if afi == Afi::V4 { ROUTE } else { ROUTE6 };
    let bird = Bird::start(
        &h2.ns,
        DaemonConfig::new(h2, AS_PEER)
            .neighbor(Neighbor::new(addr(h1, afi), AS_RR).bfd(INTERVAL, 3))
            .originate(&[route]),
    )?;
    // "ADDR IFACE STATE SINCE INTERVAL TIMEOUT", one line a session.
    let ours = addr(h1, afi).to_string();
    let peer_bfd_up = || {
        let out = bird
            .birdc(&["show", "bfd", "sessions"])
            .map_err(|e| format!("{e:#}"))?;
        let up = out.lines().any(|l| {
            let t: Vec<&str> = l.split_whitespace().collect();
            t.first() == Some(&ours.as_str()) && t.contains(&"Up")
        });
        if up {
            Ok(())
        } else {
            Err(out)
        }
    };
    rounds(test, &topo, afi, &peer_bfd_up)
        .with_context(|| format!("{}{}", bird.config_text(), bird.log()))
}

/// tortie-rr on h1 with BFD to h2's address of `afi` (where the peer
/// already runs), then the three rounds of checks 1-4.
fn rounds(
    test: &str,
    topo: &Topology,
    afi: Afi,
    peer_bfd_up: &dyn Fn() -> Result<(), String>,
) -> Result<()> {
    let (h1, h2) = (&topo.hosts[0], &topo.hosts[1]);
    let peer = addr(h2, afi);
    let rr = TortieRr::start(
        &h1.ns,
        TortieConfig::new(h1.v4, AS_RR).peer(peer, AS_PEER, |p| {
            p.bfd = Some("{enabled: true, minRx: 100ms, minTx: 100ms, multiplier: 3}".into());
        }),
    )?;
    let mut times = Vec::new();
    for round in 1..=3 {
        // 1.
        // Up starts on the slow timers (1 s); the 100 ms ones apply once
        // the Poll sequence that follows ends (RFC 5880 §6.8.3): wait
        // for the 300 ms detection time too.
        let p = wait_until(
            WAIT,
            "Established, BFD Up at 300 ms, the peer's route in",
            || {
                let p = rr.peer_status(peer).map_err(|e| format!("{e:#}"))?;
                let up = p["state"] == "Established"
                    && p["bfd"]["session"]["state"] == "up"
                    && p["bfd"]["session"]["detectionTimeMs"] == 300
                    && p["prefixesReceived"].as_u64() == Some(1);
                if up {
                    Ok(p)
                } else {
                    Err(p.to_string())
                }
            },
        )
        .with_context(|| format!("round {round}\n{}", rr.log()))?;
        let session = &p["bfd"]["session"];
        assert_eq!(session["multihop"], false, "{p}");
        assert_eq!(session["interface"], "eth0", "{p}");
        assert_eq!(session["local"], addr(h1, afi).to_string(), "{p}");
        wait_until(WAIT, "the peer's BFD session Up", peer_bfd_up)?;

        // 2.
        let start = Instant::now();
        let cut = Cut::start(&h2.ns)?;
        let applied = start.elapsed();
        let (mut down, mut withdrawn) = (None, None);
        while down.is_none() || withdrawn.is_none() {
            if start.elapsed() > Duration::from_secs(5) {
                bail!("round {round}: after 5 s, left Established {down:?}, route withdrawn {withdrawn:?}:\n{}", rr.log());
            }
            let s = rr.status()?;
            let at = start.elapsed();
            let p = peer_of(&s, peer)?;
            if down.is_none() && p["state"] != "Established" {
                down = Some((at, p.clone()));
            }
            if withdrawn.is_none() && s["locRibPrefixes"].as_u64() == Some(0) {
                withdrawn = Some(at);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let (down, p) = down.unwrap_or_default();
        let withdrawn = withdrawn.unwrap_or_default();
        let _ = writeln!(
            std::io::stderr(),
            "{test}: round {round}: from the start of `nft -f` (done after {applied:?}): \
             tortie-rr left Established after {down:?}, the peer's route gone from its RIB \
             after {withdrawn:?} (BFD 100 ms x 3)"
        );
        times.push(down);
        assert!(
            down <= LIMIT,
            "round {round}: left Established {down:?} after the cut (limit {LIMIT:?}): {p}"
        );
        assert!(
            withdrawn <= LIMIT,
            "round {round}: route gone after {withdrawn:?}"
        );
        let why = p["lastError"].as_str().unwrap_or_default();
        assert!(why.starts_with("BFD down"), "round {round}: {p}");
        assert_eq!(p["bfd"]["holding"], true, "{p}");

        // 3.
        let held = Instant::now();
        while held.elapsed() < Duration::from_secs(2) {
            let p = rr.peer_status(peer)?;
            assert_ne!(
                p["state"], "Established",
                "round {round}: up while cut off: {p}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }

        // 4.
        drop(cut);
    }
    let p = rr.peer_status(peer)?;
    assert_eq!(p["bfd"]["bgpDowns"], 3, "{p}");
    let _ = writeln!(
        std::io::stderr(),
        "{test}: cut -> not Established: {times:?}"
    );
    Ok(())
}

// ===== impl FrrBfd =====

impl FrrBfd {
    /// zebra, then bfdd and bgpd (AS [`AS_PEER`], router id `me`), with
    /// one eBGP neighbour `peer` (AS [`AS_RR`]) with BFD 100 ms x 3, its
    /// family alone on the session, originating [`ROUTE`] or [`ROUTE6`].
    fn start(ns: &Netns, me: Ipv4Addr, peer: IpAddr) -> Result<FrrBfd> {
        let (af, route) = match peer {
            IpAddr::V4(_) => ("ipv4", ROUTE),
            IpAddr::V6(_) => ("ipv6", ROUTE6),
        };
        let dir = tempfile::Builder::new()
            .prefix("tortie-frr-bfd-")
            .tempdir()?;
        std::fs::write(
            dir.path().join("bfdd.conf"),
            "log stdout informational\nbfd\n profile fast\n  receive-interval 100\n  \
             transmit-interval 100\n  detect-multiplier 3\n !\n!\n",
        )?;
        std::fs::write(
            dir.path().join("bgpd.conf"),
            format!(
                "frr defaults traditional\nlog stdout informational\nrouter bgp {AS_PEER}\n \
                 bgp router-id {me}\n no bgp ebgp-requires-policy\n no bgp network import-check\n \
                 no bgp default ipv4-unicast\n neighbor {peer} remote-as {AS_RR}\n \
                 neighbor {peer} bfd profile fast\n neighbor {peer} timers connect 2\n \
                 address-family {af} unicast\n  network {route}\n  neighbor {peer} activate\n \
                 exit-address-family\n"
            ),
        )?;
        // zebra and bfdd drop to user frr: start_zebra makes the
        // directory, with the configs, theirs.
        let zebra = start_zebra(ns.as_ref(), dir.path()).context("zebra")?;
        let zserv = zserv(dir.path()).display().to_string();
        let vty = dir.path().display().to_string();
        let mut f = FrrBfd {
            children: vec![zebra],
            dir,
        };
        let common = [
            "-z",
            zserv.as_str(),
            "--vty_socket",
            vty.as_str(),
            "-P",
            "0",
        ];
        // bfdd as root without -u frr refuses (root is not in group frrvty).
        let (bfdd_conf, bfdd_pid, bfdd_ctl) =
            (f.path("bfdd.conf"), f.path("bfdd.pid"), f.path("bfdd.sock"));
        let mut argv = vec![
            BFDD, "-u", "frr", "-g", "frr", "-f", &bfdd_conf, "-i", &bfdd_pid, "--bfdctl",
            &bfdd_ctl,
        ];
        argv.extend_from_slice(&common);
        f.children
            .push(ns.spawn(&argv, Path::new(&f.path("bfdd.log")))?);
        // bgpd as root needs -S (skip runas).
        let (bgpd_conf, bgpd_pid) = (f.path("bgpd.conf"), f.path("bgpd.pid"));
        let mut argv = vec![BGPD, "-S", "-f", &bgpd_conf, "-i", &bgpd_pid];
        argv.extend_from_slice(&common);
        f.children
            .push(ns.spawn(&argv, Path::new(&f.path("bgpd.log")))?);
        wait_until(Duration::from_secs(10), "vtysh to answer", || {
            f.json("show bgp summary json")
                .and_then(|_| f.json("show bfd peers json"))
                .map(|_| ())
                .map_err(|e| format!("{e:#}"))
        })
        .with_context(|| f.logs())?;
        Ok(f)
    }

    fn path(&self, file: &str) -> String {
        self.dir.path().join(file).display().to_string()
    }

    /// `vtysh -c CMD` (a `... json` command), parsed.
    fn json(&self, cmd: &str) -> Result<Value> {
        let out = std::process::Command::new(VTYSH)
            .arg("--vty_socket")
            .arg(self.dir.path())
            .args(["-c", cmd])
            .output()
            .context("running vtysh")?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            bail!(
                "vtysh -c {cmd:?}: {} {text}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        serde_json::from_str(&text)
            .with_context(|| format!("vtysh -c {cmd:?} gave no JSON: {text}"))
    }

    /// The daemons' logs, for failure messages.
    fn logs(&self) -> String {
        ["zebra", "bfdd", "bgpd"]
            .iter()
            .map(|d| {
                let log =
                    std::fs::read_to_string(self.path(&format!("{d}.log"))).unwrap_or_default();
                format!("--- {d}.log\n{log}")
            })
            .collect()
    }
}

// ===== impl Cut =====

impl Cut {
    /// Drops everything in `ns`, both ways, from now.
    fn start(ns: &Netns) -> Result<Cut> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("cut.nft");
        std::fs::write(
            &file,
            "table inet tortie_cut {\n\
             \x20 chain in { type filter hook input priority -400; policy drop; }\n\
             \x20 chain out { type filter hook output priority -400; policy drop; }\n}\n",
        )?;
        let path = file.to_str().context("temp path is not UTF-8")?;
        ns.run(&["nft", "-f", path]).context("nft -f cut.nft")?;
        Ok(Cut {
            ns: ns.clone(),
            _dir: dir,
        })
    }
}

impl Drop for Cut {
    fn drop(&mut self) {
        let _ = self
            .ns
            .run(&["nft", "delete", "table", "inet", "tortie_cut"]);
    }
}

// ===== helpers =====

/// `host`'s address of `afi` on the segment.
fn addr(host: &Host, afi: Afi) -> IpAddr {
    match afi {
        Afi::V4 => host.v4.into(),
        Afi::V6 => host.v6.into(),
    }
}

/// `peers[]` entry of `peer` in a `/status`.
fn peer_of(s: &Value, peer: IpAddr) -> Result<Value> {
    s["peers"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["address"] == peer.to_string()))
        .cloned()
        .with_context(|| format!("/status lists no peer {peer}: {s}"))
}

/// Whether FRR's programs (at their paths), nft and tortie-rr are here;
/// says why not.
fn tools(test: &str, frr: &[&str]) -> bool {
    let runs = |argv: &[&str]| {
        std::process::Command::new(argv[0])
            .args(&argv[1..])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    for prog in frr {
        if !Path::new(prog).exists() {
            tortie_testkit::missing(test, &format!("no {prog} (apt-get install frr)"));
            return false;
        }
    }
    if !runs(&["nft", "--version"]) {
        tortie_testkit::missing(test, "no nft (apt-get install nftables)");
        return false;
    }
    if let Err(e) = TortieRr::binary() {
        tortie_testkit::missing(test, &format!("{e:#} (cargo build --workspace --bins)"));
        return false;
    }
    true
}
