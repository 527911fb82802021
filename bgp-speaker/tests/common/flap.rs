//! What the flap storm tests (`flap_storm.rs`) are built from: counting
//! the process's tasks, file descriptors and memory; a stable peer that
//! records what the speaker sends it; scripted peers over loopback TCP
//! that open, announce and reset sessions in the ways a real one does.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;

use super::{attr, msg, update};

/// An IPv4 prefix as (address, length).
pub type V4 = (u32, u8);

/// How long any one step may take before the test fails.
pub const STEP: Duration = Duration::from_secs(20);

/// What the process holds at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    /// Tasks alive in the calling tokio runtime (the speaker's and the
    /// test's own, which are constant where probes are compared).
    pub tasks: usize,
    /// Open file descriptors (/proc/self/fd).
    pub fds: usize,
    /// Of those, sockets.
    pub sockets: usize,
    /// Resident set size (VmRSS of /proc/self/status), KiB.
    pub rss_kib: u64,
}

/// Graceful restart in an OPEN (RFC 4724 §3; the N bit of RFC 8538 §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gr {
    Off,
    /// Restart time in seconds, IPv4 unicast with forwarding state.
    On(u16),
    /// The same with the N bit: a NOTIFICATION other than Hard Reset
    /// keeps the routes as stale too.
    WithN(u16),
}

/// A peer's side of one session.
#[derive(Clone, Copy, Debug)]
pub struct PeerSide {
    pub addr: Ipv4Addr,
    pub asn: u32,
    pub router_id: Ipv4Addr,
    pub hold: u16,
    pub gr: Gr,
}

/// What the stable peer was sent.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    pub routes: BTreeSet<V4>,
    pub updates: u64,
    /// The connection ended (the speaker closed it, or sent garbage).
    pub closed: Option<String>,
}

/// A peer that stays up through a storm and keeps the set of IPv4
/// prefixes the speaker announced to it and did not withdraw.
pub struct Watcher {
    pub seen: watch::Receiver<Seen>,
    /// Reads the session; ends with it.
    _task: tokio::task::JoinHandle<()>,
}

// ===== impl Probe =====

impl Probe {
    pub fn now() -> Probe {
        let mut fds = 0;
        let mut sockets = 0;
        for e in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
            fds += 1;
            if std::fs::read_link(e.path())
                .is_ok_and(|l| l.to_string_lossy().starts_with("socket:"))
            {
                sockets += 1;
            }
        }
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let rss_kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/self/status");
        Probe {
            tasks: tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks(),
            fds,
            sockets,
            rss_kib,
        }
    }

    /// Waits (10 s at most) until tasks, fds and sockets are those of
    /// `base` again; a session that is closing may hold its task and
    /// socket for up to 2 s while its NOTIFICATION goes out. Fails,
    /// naming what stayed, if they are not.
    pub async fn back_to(base: Probe, what: &str) -> Probe {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let first = Probe::now();
        loop {
            let now = Probe::now();
            let same = (now.tasks, now.fds, now.sockets) == (base.tasks, base.fds, base.sockets);
            if same {
                return now;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "{what}: tasks {} fds {} sockets {} 10 s later ({} {} {} at first), {} {} {} \
                     before: leaked (or lost) {:+} tasks, {:+} fds, {:+} sockets",
                    now.tasks,
                    now.fds,
                    now.sockets,
                    first.tasks,
                    first.fds,
                    first.sockets,
                    base.tasks,
                    base.fds,
                    base.sockets,
                    now.tasks as i64 - base.tasks as i64,
                    now.fds as i64 - base.fds as i64,
                    now.sockets as i64 - base.sockets as i64,
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

// ===== impl Watcher =====

impl Watcher {
    /// Opens a session from `side` (hold time 0: neither side sends
    /// keepalives, so a slow run cannot expire it) and records every
    /// UPDATE from then on.
    pub async fn start(speaker: SocketAddr, side: PeerSide) -> Watcher {
        let mut s = establish(speaker, side)
            .await
            .unwrap_or_else(|e| panic!("the stable peer {}: {e}", side.addr));
        let (tx, seen) = watch::channel(Seen::default());
        let task = tokio::spawn(async move {
            loop {
                let Some((t, body)) = read_msg(&mut s).await else {
                    tx.send_modify(|s| s.closed = Some("connection closed".into()));
                    return;
                };
                match t {
                    2 => {
                        let parsed = parse_update(&body);
                        tx.send_modify(|seen| {
                            seen.updates += 1;
                            match parsed {
                                Ok((gone, new)) => {
                                    for p in gone {
                                        seen.routes.remove(&p);
                                    }
                                    seen.routes.extend(new);
                                }
                                Err(e) => seen.closed = Some(e),
                            }
                        });
                    }
                    3 => {
                        tx.send_modify(|s| s.closed = Some(format!("NOTIFICATION {body:?}")));
                        return;
                    }
                    _ => {}
                }
            }
        });
        Watcher { seen, _task: task }
    }

    /// Waits until the stable peer holds exactly `want`; fails with the
    /// difference (and `what`) after [`STEP`].
    pub async fn wait_for(&mut self, want: &BTreeSet<V4>, what: &dyn std::fmt::Display) {
        let done = matches!(
            tokio::time::timeout(
                STEP,
                self.seen
                    .wait_for(|s| &s.routes == want || s.closed.is_some()),
            )
            .await,
            Ok(Ok(_))
        );
        let seen = self.seen.borrow().clone();
        if let Some(why) = &seen.closed {
            panic!("{what}: the stable peer's session ended: {why}");
        }
        if !done {
            let extra: Vec<_> = seen
                .routes
                .difference(want)
                .take(5)
                .map(|p| show(*p))
                .collect();
            let missing: Vec<_> = want
                .difference(&seen.routes)
                .take(5)
                .map(|p| show(*p))
                .collect();
            panic!(
                "{what}: the stable peer has {} routes, {} wanted, after {STEP:?}; extra \
                 (stale) {} e.g. {extra:?}; missing {} e.g. {missing:?}",
                seen.routes.len(),
                want.len(),
                seen.routes.difference(want).count(),
                want.difference(&seen.routes).count(),
            );
        }
    }
}

// ===== sessions =====

/// Connects from `side.addr`, exchanges OPENs and KEEPALIVEs: the
/// session is Established. An error says what the speaker did instead.
pub async fn establish(speaker: SocketAddr, side: PeerSide) -> Result<TcpStream, String> {
    let mut s = connect(speaker, side.addr).await;
    s.write_all(&open(side)).await.map_err(|e| e.to_string())?;
    expect(&mut s, 1, "the speaker's OPEN").await?;
    expect(&mut s, 4, "the speaker's KEEPALIVE").await?;
    s.write_all(&msg(4, &[])).await.map_err(|e| e.to_string())?;
    Ok(s)
}

/// A TCP connection to the speaker from `from` (any 127/8 address: all
/// are on `lo`).
pub async fn connect(speaker: SocketAddr, from: Ipv4Addr) -> TcpStream {
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::new(IpAddr::V4(from), 0)).unwrap();
    tokio::time::timeout(STEP, sock.connect(speaker))
        .await
        .expect("connect in time")
        .unwrap_or_else(|e| panic!("connect from {from}: {e}"))
}

/// Reads the next message, which must be of type `t`.
pub async fn expect(s: &mut TcpStream, t: u8, what: &str) -> Result<Vec<u8>, String> {
    match read_msg(s).await {
        Some((got, body)) if got == t => Ok(body),
        Some((3, b)) => Err(format!(
            "NOTIFICATION {}/{} instead of {what}",
            b.first().copied().unwrap_or(0),
            b.get(1).copied().unwrap_or(0)
        )),
        Some((got, _)) => Err(format!("message type {got} instead of {what}")),
        None => Err(format!("connection closed instead of {what}")),
    }
}

/// The next message (type, body), or `None` when the connection ended.
pub async fn read_msg(s: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut head = [0u8; 19];
    s.read_exact(&mut head).await.ok()?;
    let len = usize::from(u16::from_be_bytes([head[16], head[17]]));
    let mut body = vec![0u8; len.saturating_sub(19)];
    s.read_exact(&mut body).await.ok()?;
    Some((head[18], body))
}

/// Closes with a TCP RST (SO_LINGER 0): the speaker reads ECONNRESET.
pub fn close_rst(s: TcpStream) {
    s.set_zero_linger().unwrap();
    drop(s);
}

/// Closes with a FIN and reads until the speaker closes too (so that no
/// unread byte turns our close into a RST).
pub async fn close_fin(mut s: TcpStream) {
    let _ = s.shutdown().await;
    let mut sink = vec![0u8; 64 * 1024];
    let _ = tokio::time::timeout(STEP, async {
        while let Ok(n) = s.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

// ===== messages =====

/// OPEN: IPv4 unicast, 4-octet AS, graceful restart as `side.gr` says.
pub fn open(side: PeerSide) -> Vec<u8> {
    let mut caps = vec![2, 6, 1, 4, 0, 1, 0, 1, 2, 6, 65, 4];
    caps.extend_from_slice(&side.asn.to_be_bytes());
    let gr = match side.gr {
        Gr::Off => None,
        Gr::On(t) => Some((0u8, t)),
        Gr::WithN(t) => Some((0x40, t)),
    };
    if let Some((flags, time)) = gr {
        let [hi, lo] = time.min(4095).to_be_bytes();
        caps.extend_from_slice(&[2, 8, 64, 6, flags | hi, lo, 0, 1, 1, 0x80]);
    }
    let mut b = vec![4];
    b.extend_from_slice(&u16::try_from(side.asn).unwrap_or(23456).to_be_bytes());
    b.extend_from_slice(&side.hold.to_be_bytes());
    b.extend_from_slice(&side.router_id.octets());
    b.push(caps.len() as u8);
    b.extend_from_slice(&caps);
    msg(1, &b)
}

/// ORIGIN IGP, AS_PATH (one AS_SEQUENCE of `path`, or empty), NEXT_HOP,
/// and LOCAL_PREF when `local_pref` is given (iBGP).
pub fn attrs(path: &[u32], next_hop: Ipv4Addr, local_pref: Option<u32>) -> Vec<u8> {
    let mut seg = Vec::new();
    if !path.is_empty() {
        seg.extend_from_slice(&[2, path.len() as u8]);
        for a in path {
            seg.extend_from_slice(&a.to_be_bytes());
        }
    }
    let mut a = [
        attr(0x40, 1, &[0]),
        attr(0x40, 2, &seg),
        attr(0x40, 3, &next_hop.octets()),
    ]
    .concat();
    if let Some(lp) = local_pref {
        a.extend(attr(0x40, 5, &lp.to_be_bytes()));
    }
    a
}

/// UPDATEs announcing `prefixes` with `attrs`, ~700 to a message.
pub fn announce(attrs: &[u8], prefixes: &[V4]) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in prefixes.chunks(700) {
        out.extend(update(&[], attrs, &encode_prefixes(chunk)));
    }
    out
}

/// The IPv4 unicast End-of-RIB (an empty UPDATE).
pub fn end_of_rib() -> Vec<u8> {
    update(&[], &[], &[])
}

/// A NOTIFICATION.
pub fn notification(code: u8, subcode: u8, data: &[u8]) -> Vec<u8> {
    msg(3, &[&[code, subcode][..], data].concat())
}

pub fn encode_prefixes(prefixes: &[V4]) -> Vec<u8> {
    let mut out = Vec::new();
    for (addr, len) in prefixes {
        out.push(*len);
        let n = usize::from(len.div_ceil(8));
        out.extend_from_slice(&addr.to_be_bytes()[..n]);
    }
    out
}

/// A /32.
pub fn host(a: u8, b: u8, c: u8, d: u8) -> V4 {
    (u32::from(Ipv4Addr::new(a, b, c, d)), 32)
}

pub fn show((addr, len): V4) -> String {
    format!("{}/{len}", Ipv4Addr::from(addr))
}

/// (withdrawn, announced) IPv4 prefixes of an UPDATE body; other
/// families are refused (none was offered).
fn parse_update(b: &[u8]) -> Result<(Vec<V4>, Vec<V4>), String> {
    let bad = || format!("malformed UPDATE from the speaker: {b:?}");
    let wlen = usize::from(u16::from_be_bytes([
        *b.first().ok_or_else(bad)?,
        *b.get(1).ok_or_else(bad)?,
    ]));
    let withdrawn = b.get(2..2 + wlen).ok_or_else(bad)?;
    let rest = &b[2 + wlen..];
    let alen = usize::from(u16::from_be_bytes([
        *rest.first().ok_or_else(bad)?,
        *rest.get(1).ok_or_else(bad)?,
    ]));
    let attrs = rest.get(2..2 + alen).ok_or_else(bad)?;
    let mut i = 0;
    while i + 2 < attrs.len() {
        let (flags, t) = (attrs[i], attrs[i + 1]);
        if t == 14 || t == 15 {
            return Err(format!("MP_REACH/MP_UNREACH from the speaker: {b:?}"));
        }
        let (len, head) = if flags & 0x10 != 0 {
            (
                usize::from(u16::from_be_bytes([
                    attrs[i + 2],
                    *attrs.get(i + 3).ok_or_else(bad)?,
                ])),
                4,
            )
        } else {
            (usize::from(attrs[i + 2]), 3)
        };
        i += head + len;
    }
    Ok((
        decode_prefixes(withdrawn).ok_or_else(bad)?,
        decode_prefixes(&rest[2 + alen..]).ok_or_else(bad)?,
    ))
}

fn decode_prefixes(mut b: &[u8]) -> Option<Vec<V4>> {
    let mut out = Vec::new();
    while let Some((&len, rest)) = b.split_first() {
        let n = usize::from(len.div_ceil(8));
        if len > 32 || rest.len() < n {
            return None;
        }
        let mut octets = [0u8; 4];
        octets[..n].copy_from_slice(&rest[..n]);
        out.push((u32::from_be_bytes(octets), len));
        b = &rest[n..];
    }
    Some(out)
}

/// The Loc-RIB as the best-path stream tells it: the caller's view
/// (tortie-node programs routes from it).
pub struct LocRib {
    pub rib: watch::Receiver<BTreeSet<V4>>,
    _task: tokio::task::JoinHandle<()>,
}

// ===== impl LocRib =====

impl LocRib {
    /// Drains `best` (an unread stream would stop the speaker) into the set
    /// of IPv4 prefixes with a best path.
    pub fn start(
        mut best: tokio::sync::mpsc::Receiver<Vec<bgp_speaker::BestPathChange>>,
    ) -> LocRib {
        let (tx, rib) = watch::channel(BTreeSet::new());
        let task = tokio::spawn(async move {
            while let Some(batch) = best.recv().await {
                tx.send_modify(|rib| {
                    for c in batch {
                        let ipnet::IpNet::V4(p) = c.prefix else {
                            continue;
                        };
                        let key = (u32::from(p.addr()), p.prefix_len());
                        match c.best {
                            Some(_) => rib.insert(key),
                            None => rib.remove(&key),
                        };
                    }
                });
            }
        });
        LocRib { rib, _task: task }
    }

    /// Waits until the Loc-RIB is exactly `want`; fails with the
    /// difference after [`STEP`].
    pub async fn wait_for(&mut self, want: &BTreeSet<V4>, what: &dyn std::fmt::Display) {
        let done = matches!(
            tokio::time::timeout(STEP, self.rib.wait_for(|r| r == want)).await,
            Ok(Ok(_))
        );
        if !done {
            let rib = self.rib.borrow().clone();
            let extra: Vec<_> = rib.difference(want).take(5).map(|p| show(*p)).collect();
            let missing: Vec<_> = want.difference(&rib).take(5).map(|p| show(*p)).collect();
            panic!(
                "{what}: the Loc-RIB has {} prefixes, {} wanted; extra (stale) {extra:?}, \
                 missing {missing:?}",
                rib.len(),
                want.len()
            );
        }
    }
}
