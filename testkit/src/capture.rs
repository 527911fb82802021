//! tcpdump in a network namespace: how a test's packets looked on the
//! wire (TTL / Hop Limit, TOS / Traffic Class, addresses and ports), as
//! `tcpdump -i DEV -nn -v -l FILTER` prints them.
//!
//! With `-v` tcpdump prints an IPv4 header as `IP (tos 0xc0, ttl 255, ...,
//! length 52)` with the addresses on the next line, and an IPv6 one as
//! `IP6 (class 0xc0, flowlabel ..., hlim 255, ...) SRC.PORT > DST.PORT:`
//! on one line; [`parse`] reads both.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::netns::{Netns, NsChild};

/// A tcpdump running in a namespace; stopped, and its output file
/// removed, on drop.
#[derive(Debug)]
pub struct Capture {
    // Before `log`: the process goes first.
    child: Option<NsChild>,
    log: PathBuf,
}

/// One captured IP packet's header fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    /// The IPv4 TTL or the IPv6 Hop Limit.
    pub hop_limit: u8,
    /// The IPv4 TOS or the IPv6 Traffic Class byte.
    pub tos: u8,
    /// Source address and port.
    pub src: SocketAddr,
    /// Destination address and port.
    pub dst: SocketAddr,
    /// TCP's flags as tcpdump writes them (`S.`, `R.`, `P.`), for TCP.
    pub tcp_flags: Option<String>,
}

impl Packet {
    /// A TCP reset. The kernel sends one for a segment no socket takes
    /// (after a connection collision closed one, RFC 4271 §6.8) with the
    /// namespace's default TTL, whatever TTL the closed socket had set.
    pub fn is_reset(&self) -> bool {
        self.tcp_flags.as_deref().is_some_and(|f| f.contains('R'))
    }
}

// ===== impl Capture =====

impl Capture {
    /// Starts `tcpdump -i dev -nn -v -l FILTER` in `ns` and waits (up to
    /// 10 s) until it listens.
    pub fn start(ns: &Netns, dev: &str, filter: &str) -> io::Result<Capture> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let log = std::env::temp_dir().join(format!("tortie-tcpdump-{}-{n}.log", ns.name()));
        let child = ns.spawn(&["tcpdump", "-i", dev, "-nn", "-v", "-l", filter], &log)?;
        let mut c = Capture {
            child: Some(child),
            log,
        };
        let start = Instant::now();
        while !c.text().contains("listening on") {
            if let Some(st) = c.child.as_mut().and_then(NsChild::exited) {
                return Err(io::Error::other(format!(
                    "tcpdump in {} exited with {st}: {}",
                    ns.name(),
                    c.text()
                )));
            }
            if start.elapsed() > Duration::from_secs(10) {
                return Err(io::Error::other(format!(
                    "tcpdump in {} not listening after 10 s: {}",
                    ns.name(),
                    c.text()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(c)
    }

    /// What tcpdump printed so far.
    pub fn text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The packets captured so far, in order.
    pub fn packets(&self) -> Vec<Packet> {
        parse(&self.text())
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.child.take();
        let _ = std::fs::remove_file(&self.log);
    }
}

// ===== helpers =====

/// The IP packets of `tcpdump -nn -v` output whose header and addresses
/// could be read; other lines (decoded payload, tcpdump's own) are
/// skipped.
pub fn parse(text: &str) -> Vec<Packet> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = vec![];
    for (i, line) in lines.iter().enumerate() {
        let (hop_key, tos_key, at) = if let Some(at) = line.find("IP6 (") {
            ("hlim ", "class ", at)
        } else if let Some(at) = line.find("IP (") {
            ("ttl ", "tos ", at)
        } else {
            continue;
        };
        let line = &line[at..];
        let Some(end) = closing(line) else { continue };
        let header = &line[..end];
        // The addresses follow the header (IPv6) or start the next line.
        let rest = match line[end + 1..].trim() {
            "" => lines.get(i + 1).map_or("", |l| l.trim()),
            r => r,
        };
        let hop_limit = field(header, hop_key).and_then(|v| v.parse().ok());
        // IPv6: no `class` when it is 0.
        let tos = match field(header, tos_key) {
            Some(v) => u8::from_str_radix(v.trim_start_matches("0x"), 16).ok(),
            None => Some(0),
        };
        let (src, dst) = rest.split_once(" > ").unwrap_or_default();
        let src = endpoint(src);
        let dst = dst
            .split_whitespace()
            .next()
            .and_then(|d| d.strip_suffix(':'))
            .and_then(endpoint);
        let tcp_flags = rest
            .split_once("Flags [")
            .and_then(|(_, f)| f.split_once(']'))
            .map(|(f, _)| f.to_string());
        if let (Some(hop_limit), Some(tos), Some(src), Some(dst)) = (hop_limit, tos, src, dst) {
            out.push(Packet {
                hop_limit,
                tos,
                src,
                dst,
                tcp_flags,
            });
        }
    }
    out
}

/// Where the first parenthesis of `s` closes (the header holds nested
/// ones: `proto UDP (17)`).
fn closing(s: &str) -> Option<usize> {
    let mut depth = 0u32;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' if depth == 1 => return Some(i),
            ')' => depth = depth.checked_sub(1)?,
            _ => {}
        }
    }
    None
}

/// The value after `key` up to the next `,` in a header.
fn field<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let at = header.find(key)? + key.len();
    header[at..].split(',').next().map(str::trim)
}

/// `ADDR.PORT` (tcpdump's form for IPv4 and IPv6 alike).
fn endpoint(s: &str) -> Option<SocketAddr> {
    let (addr, port) = s.trim().rsplit_once('.')?;
    Some(SocketAddr::new(
        addr.parse::<IpAddr>().ok()?,
        port.parse().ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ipv4_and_ipv6_headers_and_skips_the_rest() {
        let text = "\
tcpdump: listening on bfb, link-type EN10MB (Ethernet), snapshot length 262144 bytes
07:39:19.100000 IP (tos 0xc0, ttl 255, id 0, offset 0, flags [DF], proto UDP (17), length 52)
    10.231.0.1.49152 > 10.231.0.2.3784: BFDv1, length: 24
\tControl, State Up, Flags: [none], Diagnostic: No Diagnostic (0x00)
07:39:19.257654 IP6 (class 0xc0, flowlabel 0x89e78, hlim 255, next-header UDP (17) payload length: 32) fe80::b.49152 > fe80::a.3784: [bad udp cksum 0xfd47 -> 0x4508!] 
07:39:19.300000 IP6 (flowlabel 0x1, hlim 64, next-header TCP (6) payload length: 40) fd00:30::1.179 > fd00:30::2.40000: Flags [S.]
07:39:19.400000 IP (tos 0x0, ttl 1, id 7, offset 0, flags [DF], proto TCP (6), length 60)
    172.30.0.1.41000 > 172.30.0.2.179: Flags [S], cksum 0x0 (incorrect)
07:39:19.500000 IP (tos 0x0, ttl 63, id 0, offset 0, flags [DF], proto TCP (6), length 40)
    172.30.0.2.179 > 172.30.0.1.41000: Flags [R], cksum 0x0 (incorrect), seq 1, win 0, length 0
1 packet captured
";
        let p = parse(text);
        let sa = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(
            p,
            vec![
                Packet {
                    hop_limit: 255,
                    tos: 0xc0,
                    src: sa("10.231.0.1:49152"),
                    dst: sa("10.231.0.2:3784"),
                    tcp_flags: None,
                },
                Packet {
                    hop_limit: 255,
                    tos: 0xc0,
                    src: sa("[fe80::b]:49152"),
                    dst: sa("[fe80::a]:3784"),
                    tcp_flags: None,
                },
                Packet {
                    hop_limit: 64,
                    tos: 0,
                    src: sa("[fd00:30::1]:179"),
                    dst: sa("[fd00:30::2]:40000"),
                    tcp_flags: Some("S.".into()),
                },
                Packet {
                    hop_limit: 1,
                    tos: 0,
                    src: sa("172.30.0.1:41000"),
                    dst: sa("172.30.0.2:179"),
                    tcp_flags: Some("S".into()),
                },
                Packet {
                    hop_limit: 63,
                    tos: 0,
                    src: sa("172.30.0.2:179"),
                    dst: sa("172.30.0.1:41000"),
                    tcp_flags: Some("R".into()),
                },
            ]
        );
        assert_eq!(
            p.iter().map(Packet::is_reset).collect::<Vec<_>>(),
            [false, false, false, false, true]
        );
    }
}
