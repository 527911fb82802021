//! The speakers under test: tortie-rr, BIRD, FRR bgpd (alone, `-Z`) and
//! GoBGP, each started in its own namespace with a generated config, asked
//! for its Loc-RIB size cheaply, and killed on drop.
//!
//! How each one is counted (one query per poll, none of them walks the
//! table):
//! - tortie-rr: `GET /status`, `locRibPrefixes` (the admin server listens
//!   on the speaker's own address inside the namespace).
//! - BIRD: `show protocols all` over its control socket (spoken directly,
//!   no `birdc` process): the sum of `Routes: N imported` over the BGP
//!   protocols.
//! - FRR: `vtysh -c 'show bgp ipv4 unicast summary json'`: the sum of
//!   `pfxRcd` (FRR 8.4's `ribCount` counts tree nodes, not prefixes).
//! - GoBGP: `gobgp global rib summary -a ipv4` in the namespace:
//!   `Destination: N`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use tempfile::TempDir;

use crate::netns::{Netns, NsChild};

/// A command prefix for tortie-rr (whitespace-separated), for profiling.
pub const WRAP_ENV: &str = "TORTIE_BENCH_WRAP";

/// The speaker under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Tortie,
    Bird,
    Frr,
    Gobgp,
}

/// What the speaker is configured for.
#[derive(Clone, Debug)]
pub struct Setup {
    /// The speaker's address (and router id, and cluster id).
    pub address: Ipv4Addr,
    /// Our AS and the peers' (iBGP everywhere).
    pub asn: u32,
    /// The peers that will connect (static neighbours for BIRD, FRR and
    /// GoBGP; tortie-rr takes `dynamic` instead).
    pub peers: Vec<Ipv4Addr>,
    /// tortie-rr's `dynamicPeers` prefix covering every peer.
    pub dynamic: ipnet::Ipv4Net,
    /// Make the peers route reflector clients.
    pub rr_clients: bool,
    /// The route filter comparison: `Some(n)` gives every peer an import
    /// filter of `n` rules matching none of the generated routes (0: no
    /// filter, same setup otherwise). tortie-rr then takes `peers` as
    /// static passive peers (filters are not for dynamic ones).
    pub filter: Option<u32>,
}

/// A running speaker under test.
#[derive(Debug)]
pub struct Receiver {
    /// Which one.
    pub kind: Kind,
    child: NsChild,
    dir: TempDir,
    ns_name: String,
    address: Ipv4Addr,
}

// ===== impl Kind =====

impl Kind {
    /// Every receiver, in table order.
    pub const ALL: [Kind; 4] = [Kind::Tortie, Kind::Bird, Kind::Frr, Kind::Gobgp];

    /// Parses `tortie`, `bird`, `frr`, `gobgp`.
    pub fn parse(s: &str) -> Result<Kind> {
        Ok(match s {
            "tortie" | "tortie-rr" => Kind::Tortie,
            "bird" => Kind::Bird,
            "frr" => Kind::Frr,
            "gobgp" => Kind::Gobgp,
            _ => bail!("receiver {s:?}: unknown; use tortie, bird, frr or gobgp"),
        })
    }

    /// Name in tables.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Tortie => "tortie-rr",
            Kind::Bird => "BIRD 2",
            Kind::Frr => "FRR bgpd -Z",
            Kind::Gobgp => "GoBGP",
        }
    }

    /// How often the benchmark asks for the Loc-RIB size: a process per
    /// query (FRR, GoBGP) costs more than a socket round trip, so they get
    /// 100 ms; tortie-rr and BIRD get [`set_fast_poll`]'s interval.
    pub fn poll_interval(self) -> Duration {
        match self {
            Kind::Tortie | Kind::Bird => {
                Duration::from_micros(FAST_POLL_US.load(std::sync::atomic::Ordering::Relaxed))
            }
            Kind::Frr | Kind::Gobgp => Duration::from_millis(100),
        }
    }
}

/// The poll interval of the receivers answering over a socket, µs.
static FAST_POLL_US: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1000);

/// Sets how often tortie-rr and BIRD are asked for their Loc-RIB size.
pub fn set_fast_poll(every: Duration) {
    let us = u64::try_from(every.as_micros())
        .unwrap_or(u64::MAX)
        .max(100);
    FAST_POLL_US.store(us, std::sync::atomic::Ordering::Relaxed);
}

// ===== impl Receiver =====

impl Receiver {
    /// Writes the config and starts `kind` in `ns`; returns once it answers
    /// its control interface (or fails at `deadline`). `tortie_rr` is the
    /// binary to run for [`Kind::Tortie`].
    pub fn start(
        kind: Kind,
        ns: &Netns,
        setup: &Setup,
        tortie_rr: &std::path::Path,
        deadline: Instant,
    ) -> Result<Receiver> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("tortie-bench-{kind:?}-").to_lowercase())
            .tempdir()
            .context("creating a temp dir")?;
        let d = dir
            .path()
            .to_str()
            .context("temp dir is not UTF-8")?
            .to_string();
        let log = dir.path().join("daemon.log");
        let child = match kind {
            Kind::Tortie => {
                std::fs::write(format!("{d}/rr.yaml"), tortie_yaml(setup))?;
                let bin = tortie_rr.to_str().context("tortie-rr path is not UTF-8")?;
                // Profiling aid: e.g. TORTIE_BENCH_WRAP="perf record -g -o /tmp/rr.perf".
                // The measured pid is then the wrapper's: ignore RSS and CPU.
                let wrap = std::env::var(WRAP_ENV).unwrap_or_default();
                let conf = format!("{d}/rr.yaml");
                let mut argv: Vec<&str> = wrap.split_whitespace().collect();
                argv.extend([
                    bin,
                    "--config",
                    &conf,
                    "--state-dir",
                    &d,
                    "--log-level",
                    "warn",
                ]);
                ns.spawn(&argv, &log)?
            }
            Kind::Bird => {
                std::fs::write(format!("{d}/bird.conf"), bird_conf(setup))?;
                let argv = [
                    "bird",
                    "-f",
                    "-c",
                    &format!("{d}/bird.conf"),
                    "-s",
                    &format!("{d}/bird.ctl"),
                    "-P",
                    &format!("{d}/bird.pid"),
                ];
                ns.spawn(&argv, &log)?
            }
            Kind::Frr => {
                std::fs::write(format!("{d}/bgpd.conf"), frr_conf(setup))?;
                let argv = [
                    "/usr/lib/frr/bgpd",
                    "-Z",
                    "-S",
                    "-P",
                    "0",
                    "-f",
                    &format!("{d}/bgpd.conf"),
                    "-i",
                    &format!("{d}/bgpd.pid"),
                    "--vty_socket",
                    &d,
                ];
                ns.spawn(&argv, &log)?
            }
            Kind::Gobgp => {
                std::fs::write(format!("{d}/gobgpd.toml"), gobgp_conf(setup))?;
                let argv = [
                    "gobgpd",
                    "-f",
                    &format!("{d}/gobgpd.toml"),
                    "-p",
                    "--api-hosts",
                    "127.0.0.1:50051",
                ];
                ns.spawn(&argv, &log)?
            }
        };
        let mut r = Receiver {
            kind,
            child,
            dir,
            ns_name: ns.name().to_string(),
            address: setup.address,
        };
        let mut last = String::new();
        while Instant::now() < deadline {
            crate::stop::check()?;
            if let Some(st) = r.child.exited() {
                bail!("{} exited with {st}: {}", r.child.what(), r.log_tail());
            }
            match r.loc_rib() {
                Ok(_) => return Ok(r),
                Err(e) => last = format!("{e:#}"),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!(
            "{} did not answer in time: {last}; log: {}",
            kind.label(),
            r.log_tail()
        )
    }

    /// The process id of the daemon.
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Prefixes in the Loc-RIB (learned ones; see the module doc for how).
    /// tortie-rr's admin address is only reachable from a thread inside the
    /// benchmark's namespaces.
    pub fn loc_rib(&self) -> Result<u64> {
        match self.kind {
            Kind::Tortie => {
                let v = self.tortie_status()?;
                v["locRibPrefixes"]
                    .as_u64()
                    .ok_or_else(|| anyhow!("/status has no locRibPrefixes: {v}"))
            }
            Kind::Bird => bird_imported(&self.bird("show protocols all")?),
            Kind::Frr => {
                let text = self.vtysh("show bgp ipv4 unicast summary json")?;
                frr_pfx_rcd(&text)
            }
            Kind::Gobgp => {
                let out = self.gobgp(&["global", "rib", "summary", "-a", "ipv4"])?;
                gobgp_destinations(&out)
            }
        }
    }

    /// tortie-rr's `/status` JSON.
    pub fn tortie_status(&self) -> Result<Value> {
        let body = http_get(self.address, 9180, "/status")?;
        serde_json::from_str(&body).with_context(|| format!("/status is not JSON: {body}"))
    }

    /// The last lines of the daemon's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default();
        let lines: Vec<_> = text.lines().rev().take(8).collect();
        lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
    }

    /// Keeps the temp dir (config, log) and returns its path.
    pub fn keep_dir(self) -> PathBuf {
        let Receiver { dir, .. } = self;
        dir.keep()
    }

    fn bird(&self, cmd: &str) -> Result<String> {
        let path = self.dir.path().join("bird.ctl");
        let s = UnixStream::connect(&path)
            .with_context(|| format!("connecting to {}", path.display()))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut w = s.try_clone()?;
        let mut r = BufReader::new(s);
        let mut text = String::new();
        let mut line = String::new();
        // Greeting: "0001 BIRD 2.0.12 ready."
        r.read_line(&mut line)?;
        writeln!(w, "{cmd}")?;
        loop {
            line.clear();
            if r.read_line(&mut line)? == 0 {
                bail!("BIRD closed the control socket after {text:?}");
            }
            text.push_str(&line);
            // A reply ends with a line "NNNN text" (code, space); "NNNN-"
            // and " text" lines continue it. Codes 8xxx/9xxx are errors.
            let b = line.as_bytes();
            if b.len() >= 5 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b' ' {
                if matches!(b[0], b'8' | b'9') {
                    bail!("BIRD {cmd:?}: {}", line.trim());
                }
                return Ok(text);
            }
        }
    }

    fn vtysh(&self, cmd: &str) -> Result<String> {
        let out = std::process::Command::new("vtysh")
            .arg("--vty_socket")
            .arg(self.dir.path())
            .args(["-c", cmd])
            .output()
            .context("running vtysh")?;
        if !out.status.success() {
            bail!(
                "vtysh {cmd:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn gobgp(&self, args: &[&str]) -> Result<String> {
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &self.ns_name, "gobgp"])
            .args(args)
            .output()
            .context("running gobgp")?;
        if !out.status.success() {
            bail!(
                "gobgp {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

// ===== helpers =====

/// `GET path` with `Connection: close`; the body of a 200 answer.
fn http_get(addr: Ipv4Addr, port: u16, path: &str) -> Result<String> {
    let mut s = TcpStream::connect_timeout(&(addr, port).into(), Duration::from_secs(2))
        .with_context(|| format!("connecting to {addr}:{port}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)
        .context("reading the HTTP answer")?;
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("HTTP answer without a header end: {raw:?}"))?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        bail!("GET {path}: {}", head.lines().next().unwrap_or(""));
    }
    Ok(body.to_string())
}

fn tortie_yaml(s: &Setup) -> String {
    if let Some(n) = s.filter {
        let mut y = format!(
            "routerId: {a}\nasNumber: {asn}\nlisten: \"{a}:179\"\nadmin: \"{a}:9180\"\n\
             families: [ipv4]\ngracefulRestart:\n  enabled: false\nfilters:\n  - name: bench\n",
            a = s.address,
            asn = s.asn,
        );
        if n > 0 {
            y.push_str("    importV4:\n");
            for (cidr, len) in filter_rules(n) {
                y.push_str(&format!(
                    "      - {{action: Reject, matchOperator: In, cidr: {cidr}/{len}, prefixLength: {{max: 28}}}}\n"
                ));
            }
        }
        y.push_str("peers:\n");
        for p in &s.peers {
            y.push_str(&format!(
                "  - {{address: {p}, asNumber: {asn}, passive: true, client: {c}, filters: [bench]}}\n",
                asn = s.asn,
                c = s.rr_clients,
            ));
        }
        return y;
    }
    format!(
        "routerId: {a}\nasNumber: {asn}\nlisten: \"{a}:179\"\nadmin: \"{a}:9180\"\n\
         families: [ipv4]\ngracefulRestart:\n  enabled: false\n\
         dynamicPeers:\n  - prefix: {p}\n    asNumber: {asn}\n    client: {c}\n",
        a = s.address,
        asn = s.asn,
        p = s.dynamic,
        c = s.rr_clients,
    )
}

fn bird_conf(s: &Setup) -> String {
    let mut c = format!(
        "router id {a};\nlog stderr all;\nprotocol device {{ }}\n\
         protocol direct {{ ipv4; interface \"eth0\"; }}\n",
        a = s.address
    );
    let rr = if s.rr_clients {
        format!("  rr client;\n  rr cluster id {};\n", s.address)
    } else {
        String::new()
    };
    let import = match s.filter {
        Some(n) if n > 0 => {
            c.push_str("filter bench_in {\n");
            for (cidr, len) in filter_rules(n) {
                c.push_str(&format!(
                    "  if net ~ [ {cidr}/{len}{{{len},28}} ] then reject;\n"
                ));
            }
            c.push_str("  accept;\n}\n");
            "import filter bench_in;"
        }
        _ => "import all;",
    };
    for (i, p) in s.peers.iter().enumerate() {
        c.push_str(&format!(
            "protocol bgp n{i} {{\n  local {a} as {asn};\n  neighbor {p} as {asn};\n  passive on;\n{rr}  ipv4 {{ {import} export all; }};\n}}\n",
            a = s.address,
            asn = s.asn,
        ));
    }
    c
}

/// The filter comparison's rules: (network, length) of `Reject In
/// 192.i.0.0/L`, L = 16 + i % 9, each taking lengths up to /28; none
/// holds a generated route (`100.64.0.0` on).
fn filter_rules(n: u32) -> Vec<(Ipv4Addr, u8)> {
    (0..n)
        .map(|i| {
            let len = 16 + (i % 9) as u8;
            (Ipv4Addr::from(0xc000_0000 + (i << 16)), len)
        })
        .collect()
}

fn frr_conf(s: &Setup) -> String {
    let mut c = format!(
        "frr defaults traditional\nhostname bench\n!\nrouter bgp {asn}\n bgp router-id {a}\n \
         no bgp default ipv4-unicast\n no bgp network import-check\n bgp cluster-id {a}\n",
        asn = s.asn,
        a = s.address
    );
    for p in &s.peers {
        // advertisement-interval 0: measure bgpd's work, not its MRAI timer.
        c.push_str(&format!(
            " neighbor {p} remote-as {}\n neighbor {p} passive\n neighbor {p} advertisement-interval 0\n",
            s.asn
        ));
    }
    c.push_str(" address-family ipv4 unicast\n");
    for p in &s.peers {
        c.push_str(&format!("  neighbor {p} activate\n"));
        if s.rr_clients {
            c.push_str(&format!("  neighbor {p} route-reflector-client\n"));
        }
    }
    c.push_str(" exit-address-family\n!\n");
    c
}

fn gobgp_conf(s: &Setup) -> String {
    let mut c = format!(
        "[global.config]\n  as = {asn}\n  router-id = \"{a}\"\n  local-address-list = [\"{a}\"]\n\
         [global.apply-policy.config]\n  default-import-policy = \"accept-route\"\n  \
         default-export-policy = \"accept-route\"\n",
        asn = s.asn,
        a = s.address
    );
    for p in &s.peers {
        c.push_str(&format!(
            "[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{p}\"\n    peer-as = {asn}\n  \
             [neighbors.transport.config]\n    passive-mode = true\n    local-address = \"{a}\"\n",
            asn = s.asn,
            a = s.address
        ));
        if s.rr_clients {
            c.push_str(&format!(
                "  [neighbors.route-reflector.config]\n    route-reflector-client = true\n    \
                 route-reflector-cluster-id = \"{}\"\n",
                s.address
            ));
        }
        c.push_str("  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"ipv4-unicast\"\n");
    }
    c
}

/// Sum of `Routes: N imported` in BIRD's `show protocols all`.
fn bird_imported(text: &str) -> Result<u64> {
    let mut sum = 0;
    for line in text.lines() {
        let b = line.as_bytes();
        let coded = b.len() >= 5 && b[..4].iter().all(u8::is_ascii_digit);
        let body = if coded { &line[5..] } else { line }.trim_start();
        if let Some(rest) = body.strip_prefix("Routes:") {
            let n = rest.split_whitespace().next().unwrap_or("");
            sum += n
                .parse::<u64>()
                .with_context(|| format!("BIRD routes line {line:?}"))?;
        }
    }
    Ok(sum)
}

/// Sum of `pfxRcd` over the peers of `show bgp ipv4 unicast summary json`.
fn frr_pfx_rcd(text: &str) -> Result<u64> {
    let v: Value =
        serde_json::from_str(text).with_context(|| format!("vtysh gave no JSON: {text}"))?;
    let Some(peers) = v["peers"].as_object() else {
        // No peer configured or none up yet: an empty object.
        return Ok(0);
    };
    Ok(peers.values().filter_map(|p| p["pfxRcd"].as_u64()).sum())
}

/// `Destination: N, Path: M` in `gobgp global rib summary`.
fn gobgp_destinations(text: &str) -> Result<u64> {
    let rest = text
        .split("Destination:")
        .nth(1)
        .ok_or_else(|| anyhow!("no 'Destination:' in {text:?}"))?;
    let n = rest
        .trim_start()
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap_or("");
    n.parse().with_context(|| format!("gobgp summary {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bird_protocols() {
        let text = "2002-Name       Proto      Table      State  Since         Info\n\
                    1002-n0         BGP        ---        up     00:46:01.123  Established\n\
                    1006-  BGP state:          Established\n\
                    \x20    Routes:         100000 imported, 0 exported, 100000 preferred\n\
                    1002-direct1    Direct     ---        up     00:46:00.100\n\
                    1006-    Routes:         1 imported, 0 exported, 1 preferred\n\
                    0000 \n";
        // The direct protocol's route counts too; callers subtract the baseline.
        assert_eq!(bird_imported(text).unwrap(), 100_001);
        assert!(bird_imported("1006-    Routes:  x imported").is_err());
    }

    #[test]
    fn parses_frr_summary() {
        let t = r#"{"routerId":"10.77.0.1","peers":{"10.77.0.2":{"pfxRcd":1234},"10.77.0.3":{"pfxRcd":6}}}"#;
        assert_eq!(frr_pfx_rcd(t).unwrap(), 1240);
        assert_eq!(frr_pfx_rcd("{}").unwrap(), 0);
        assert!(frr_pfx_rcd("% error").is_err());
    }

    #[test]
    fn parses_gobgp_summary() {
        assert_eq!(
            gobgp_destinations("Table ipv4-unicast\nDestination: 100000, Path: 100000\n").unwrap(),
            100_000
        );
        assert!(gobgp_destinations("Table ipv4-unicast\n").is_err());
    }

    #[test]
    fn configs_list_every_peer() {
        let s = Setup {
            address: Ipv4Addr::new(10, 77, 0, 1),
            asn: 64512,
            peers: vec![Ipv4Addr::new(10, 77, 1, 1), Ipv4Addr::new(10, 77, 1, 2)],
            dynamic: "10.77.0.0/16".parse().unwrap(),
            rr_clients: true,
            filter: None,
        };
        assert_eq!(bird_conf(&s).matches("rr client;").count(), 2);
        assert_eq!(frr_conf(&s).matches("route-reflector-client").count(), 2);
        assert_eq!(
            gobgp_conf(&s)
                .matches("route-reflector-client = true")
                .count(),
            2
        );
        assert!(tortie_yaml(&s).contains("prefix: 10.77.0.0/16"));
    }

    /// The filter comparison's files: tortie-rr's is a valid RR file whose
    /// static peers run the rules; BIRD's filter has as many, and both
    /// keep every generated route (and would refuse 192.i.0.0/L..28).
    #[test]
    fn the_filter_comparison_gives_both_the_same_rules() {
        use tortie_config::filter::FilterAction;
        let mut s = Setup {
            address: Ipv4Addr::new(10, 77, 0, 1),
            asn: 64512,
            peers: vec![Ipv4Addr::new(10, 77, 1, 1)],
            dynamic: "10.77.0.0/16".parse().unwrap(),
            rr_clients: false,
            filter: Some(100),
        };
        let rr = tortie_config::RrConfig::from_yaml(&tortie_yaml(&s)).unwrap();
        assert!(rr.dynamic_peers.is_empty());
        let rules = &rr.peers[0].import_filter;
        assert!(rr.peers[0].passive);
        assert_eq!(rules.v4.len(), 100);
        let v = |p: &str| p.parse().unwrap();
        assert_eq!(rules.verdict(&v("100.64.0.7/32"), true), None);
        assert_eq!(
            rules.verdict(&v("192.8.0.0/28"), true),
            Some(FilterAction::Reject)
        );
        assert_eq!(rules.verdict(&v("192.8.0.0/29"), true), None);
        assert_eq!(bird_conf(&s).matches("then reject;").count(), 100);
        assert!(bird_conf(&s).contains("if net ~ [ 192.8.0.0/24{24,28} ] then reject;"));
        assert!(bird_conf(&s).contains("import filter bench_in;"));
        s.filter = Some(0);
        let rr = tortie_config::RrConfig::from_yaml(&tortie_yaml(&s)).unwrap();
        assert!(rr.peers[0].import_filter.is_empty());
        assert!(bird_conf(&s).contains("import all;"));
    }
}
