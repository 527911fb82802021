//! Target `bgp_session`: a whole speaker (`bgp_speaker::start_with`) on
//! in-memory connections under a paused clock, as the crate's own tests
//! run it (`bgp-speaker/tests/common/pipe.rs`), driven by a sequence of
//! operations read from the input: peers connecting from configured,
//! dynamic and unknown addresses, the speaker's own connection attempts
//! accepted, refused or left hanging, valid-ish messages built with the
//! codec's encoders (OPENs with any capabilities, UPDATEs of up to 2,000
//! prefixes, withdrawals, End-of-RIBs, NOTIFICATIONs, ROUTE-REFRESHes),
//! raw and mutated bytes, connections closed, time passing, local routes
//! and reconfigurations. Everything the harness needs is public API: no
//! `fuzzing` feature is needed.
//!
//! Checked, besides "no panic" (libFuzzer's panic hook aborts on a panic
//! in any task, also one the speaker would contain):
//! - every message the speaker sends frames, and decodes (an UPDATE with
//!   one of the two AS widths);
//! - after the sequence the speaker still answers (a status within 60 s
//!   of virtual time), holds no more routes than the peers sent prefix
//!   encodings (each at least one octet) plus its own, and no more peers
//!   than were configured and connected;
//! - a shutdown finishes within 60 s, closes every connection, and ends
//!   the speaker's task (its best-path channel closes).
//!
//! Input: octet 0 chooses the configuration ([`config`]), then up to
//! [`MAX_OPS`] operations of one octet (the operation, modulo 15; bit 7
//! set: do not let the speaker run before the next one) and their
//! arguments ([`Fuzz::op`]).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bgp_speaker::packet::{
    decode, encode_announce, encode_end_of_rib, encode_keepalive, encode_notification, encode_open,
    encode_route_refresh, encode_withdraw, frame, Capabilities, DecodeCtx, EncodeCtx,
    GracefulRestartCap, Message, Notification, Open, MAX_EXTENDED_LEN,
};
use bgp_speaker::route::AsSegment;
use bgp_speaker::transport::{Dial, Dialer, Dialing, Stream};
use bgp_speaker::{
    start_with, Afi, BestPathChange, DynamicPeerConfig, LocalRoute, MaxPrefix, NextHop, Origin,
    PathAttrs, PeerConfig, Prefix, ShutdownMode, SpeakerConfig, SpeakerHandle, Status,
};
use ipnet::{Ipv4Net, Ipv6Net};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, WriteHalf};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::timeout;

use crate::input::Input;

/// Operations per input, at most.
pub const MAX_OPS: usize = 64;
/// Virtual time the operations may wait in all: past every timer of
/// the speaker (the longest: the stale routes time, 6 min).
const MAX_WAIT: Duration = Duration::from_secs(20 * 60);
/// How long the speaker may take to answer or stop (virtual time).
const PATIENCE: Duration = Duration::from_secs(60);
/// Connections the fuzzer holds at once.
const SLOTS: usize = 4;

pub const SPEAKER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
pub const AS: u32 = 64512;
/// The configured peer.
pub const PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
/// Where connections come from: the configured peer, two addresses of
/// the dynamic prefix 10.0.1.0/24 (when configured), and no peer.
const FROM: [Ipv4Addr; 4] = [
    PEER,
    Ipv4Addr::new(10, 0, 1, 5),
    Ipv4Addr::new(10, 0, 1, 6),
    Ipv4Addr::new(192, 0, 2, 9),
];

/// A connection attempt of the speaker, waiting for an answer.
struct DialRequest {
    reply: oneshot::Sender<io::Result<Stream>>,
}

/// Hands the speaker's connection attempts to the fuzzer.
struct ChannelDialer(mpsc::Sender<DialRequest>);

/// The fuzzer's end of one connection.
struct Conn {
    w: WriteHalf<DuplexStream>,
    /// Reads and checks what the speaker sends, until it closes.
    reader: JoinHandle<()>,
}

/// The state of one run.
struct Fuzz<'a> {
    input: Input<'a>,
    config: SpeakerConfig,
    h: SpeakerHandle,
    dials: mpsc::Receiver<DialRequest>,
    conns: [Option<Conn>; SLOTS],
    /// Connection attempts left hanging (dropped at the end).
    hung: Vec<oneshot::Sender<io::Result<Stream>>>,
    /// Octets sent to the speaker: a bound on the prefixes it can hold.
    sent: usize,
    connects: usize,
    locals: usize,
    waited: Duration,
}

/// The target's body.
pub fn run(data: &[u8]) {
    status_after(data);
}

/// Runs `data` and returns the speaker's status before its shutdown
/// (for the tests of the seeds).
pub fn status_after(data: &[u8]) -> Arc<Status> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime");
    rt.block_on(session(data))
}

async fn session(data: &[u8]) -> Arc<Status> {
    let mut input = Input::new(data);
    let config = config(input.u8());
    let (dial_tx, dials) = mpsc::channel(16);
    let (h, best) = start_with(config.clone(), Arc::new(ChannelDialer(dial_tx)))
        .await
        .expect("the configurations here are valid");
    let best = tokio::spawn(drain_best(best));
    let mut f = Fuzz {
        input,
        config,
        h,
        dials,
        conns: Default::default(),
        hung: Vec::new(),
        sent: 0,
        connects: 0,
        locals: 0,
        waited: Duration::ZERO,
    };
    for _ in 0..MAX_OPS {
        if f.input.is_empty() {
            break;
        }
        let op = f.input.u8();
        f.op(op & 0x7f).await;
        if op & 0x80 == 0 {
            settle().await;
        }
    }
    f.finish(best).await
}

/// The speaker's configuration from octet 0: bit 0 eBGP peer (AS 65001),
/// 1 passive, 2 graceful restart off, 3 route reflector with the peer a
/// client, 4 max-prefix 5 (bit 5: tear down), 6 the dynamic prefix
/// 10.0.1.0/24 (at most 1 peer when bit 7), 7 hold time 3 s.
pub fn config(bits: u8) -> SpeakerConfig {
    let mut c = SpeakerConfig::new(SPEAKER, AS);
    let mut p = PeerConfig::new(IpAddr::V4(PEER), if bits & 1 != 0 { 65001 } else { AS });
    p.passive = bits & 2 != 0;
    c.graceful_restart.enabled = bits & 4 == 0;
    if bits & 8 != 0 {
        c.cluster_id = Some(Ipv4Addr::new(10, 0, 0, 100));
        p.rr_client = true;
    }
    let max_prefix = (bits & 16 != 0).then_some(MaxPrefix {
        limit: 5,
        teardown: bits & 32 != 0,
    });
    p.max_prefix = max_prefix;
    if bits & 128 != 0 {
        p.hold_time = 3;
    }
    c.peers.push(p);
    if bits & 64 != 0 {
        let mut d = DynamicPeerConfig::new("10.0.1.0/24".parse().expect("a prefix"), AS);
        d.max_prefix = max_prefix;
        d.max_peers = if bits & 128 != 0 { 1 } else { 8 };
        c.dynamic_peers.push(d);
    }
    c
}

// ===== impl Fuzz =====

impl Fuzz<'_> {
    /// One operation and its arguments.
    async fn op(&mut self, op: u8) {
        match op % 15 {
            0 => {
                let slot = self.slot();
                let from = FROM[usize::from(self.input.u8()) % FROM.len()];
                let (ours, theirs) = Stream::pipe(IpAddr::V4(SPEAKER));
                let port = 40000 + slot as u16;
                if self
                    .h
                    .accept(ours, SocketAddr::new(IpAddr::V4(from), port))
                    .await
                    .is_ok()
                {
                    self.connects += 1;
                    self.attach(slot, theirs).await;
                }
            }
            1 => {
                let how = self.input.u8() % 3;
                if let Ok(d) = self.dials.try_recv() {
                    match how {
                        0 => {
                            let (ours, theirs) = Stream::pipe(IpAddr::V4(SPEAKER));
                            let _ = d.reply.send(Ok(ours));
                            self.connects += 1;
                            self.attach(0, theirs).await;
                        }
                        1 => {
                            let _ = d.reply.send(Err(io::ErrorKind::ConnectionRefused.into()));
                        }
                        _ => self.hung.push(d.reply),
                    }
                }
            }
            2 => {
                let slot = self.slot();
                let m = self.open(slot);
                self.send(slot, &m).await;
            }
            3 => {
                let slot = self.slot();
                self.send(slot, &encode_keepalive()).await;
            }
            4 => {
                let slot = self.slot();
                for m in self.update() {
                    self.send(slot, &m).await;
                }
            }
            5 => {
                let slot = self.slot();
                let (ctx, prefixes) = (self.ectx(), self.prefixes());
                let mut out = Vec::new();
                encode_withdraw(&ctx, &prefixes, &mut out);
                for m in out {
                    self.send(slot, &m).await;
                }
            }
            6 => {
                let slot = self.slot();
                let afi = if self.input.bool() { Afi::Ipv6 } else { Afi::Ipv4 };
                self.send(slot, &encode_end_of_rib(afi)).await;
            }
            7 => {
                let slot = self.slot();
                let n = Notification {
                    code: self.input.u8() % 8,
                    subcode: self.input.u8() % 12,
                    data: Vec::new(),
                };
                self.send(slot, &encode_notification(&n)).await;
            }
            8 => {
                let slot = self.slot();
                let afi = if self.input.bool() { Afi::Ipv6 } else { Afi::Ipv4 };
                let m = encode_route_refresh(afi, self.input.u8() % 4);
                self.send(slot, &m).await;
            }
            9 => {
                let slot = self.slot();
                let raw = self.input.sized(4200).to_vec();
                self.send(slot, &raw).await;
            }
            10 => {
                let slot = self.slot();
                let template = self.input.u8();
                let (at, b) = (usize::from(self.input.u16()), self.input.u8());
                let mut m = match template % 4 {
                    0 => self.open(slot),
                    1 => encode_keepalive(),
                    2 => self.update().into_iter().next().unwrap_or_default(),
                    _ => encode_route_refresh(Afi::Ipv4, 0),
                };
                if !m.is_empty() {
                    let n = m.len();
                    m[at % n] = b;
                }
                self.send(slot, &m).await;
            }
            11 => {
                let d = Duration::from_millis(u64::from(self.input.u16()) * 10);
                let d = d.min(MAX_WAIT.saturating_sub(self.waited));
                self.waited += d;
                tokio::time::sleep(d).await;
            }
            12 => {
                let slot = self.slot();
                if self.input.bool() {
                    // Both ways: the speaker reads the end, its writes fail.
                    if let Some(c) = self.conns[slot].take() {
                        c.close().await;
                    }
                } else if let Some(c) = self.conns[slot].as_mut() {
                    // Our direction only: the speaker reads the end.
                    let _ = c.w.shutdown().await;
                }
            }
            13 => {
                let i = self.input.u8();
                let prefix = local_prefix(i);
                if i & 0x80 == 0 {
                    let nh = NextHop::V4(SPEAKER);
                    let mut attrs = PathAttrs::local(nh);
                    attrs.atomic_aggregate = i & 0x40 != 0;
                    let route = LocalRoute { prefix, attrs };
                    self.locals += 1;
                    let _ = self.h.originate(vec![route]).await;
                } else {
                    let _ = self.h.withdraw(vec![prefix]).await;
                }
            }
            _ => {
                let mut c = self.config.clone();
                match self.input.u8() % 4 {
                    0 => c.peers[0].hold_time = [0, 3, 30, 240][usize::from(self.input.u8() % 4)],
                    1 => c.peers.clear(),
                    2 => c.peers[0].passive = !c.peers[0].passive,
                    _ => c.dynamic_peers.clear(),
                }
                let _ = self.h.reconfigure(c).await;
            }
        }
    }

    fn slot(&mut self) -> usize {
        usize::from(self.input.u8()) % SLOTS
    }

    /// Takes the peer's end of a new connection into `slot` (the
    /// connection there before is closed).
    async fn attach(&mut self, slot: usize, io: DuplexStream) {
        let (r, w) = tokio::io::split(io);
        let reader = tokio::spawn(read_speaker(r));
        if let Some(old) = self.conns[slot].replace(Conn { w, reader }) {
            old.close().await;
        }
    }

    /// Sends `bytes` on `slot`, if connected; a speaker that stopped
    /// reading makes the write give up after 10 s.
    async fn send(&mut self, slot: usize, bytes: &[u8]) {
        if let Some(c) = self.conns[slot].as_mut() {
            self.sent += bytes.len();
            let _ = timeout(Duration::from_secs(10), c.w.write_all(bytes)).await;
        }
    }

    /// An OPEN: AS, hold time, identifier and capabilities from the input.
    fn open(&mut self, slot: usize) -> Vec<u8> {
        let asn = match self.input.u8() % 5 {
            0 | 1 => self.config.peers.first().map_or(AS, |p| p.asn),
            2 => AS,
            3 => 4_200_000_001,
            _ => u32::from(self.input.u16()),
        };
        let hold_time = match self.input.u8() % 5 {
            0 => 90,
            1 => 0,
            2 => 3,
            3 => 65535,
            _ => self.input.u16(),
        };
        let router_id = match self.input.u8() % 4 {
            0 | 1 => Ipv4Addr::new(10, 0, 0, 2 + slot as u8),
            2 => SPEAKER,
            _ => Ipv4Addr::from(self.input.u32()),
        };
        let bits = self.input.u16();
        let mut multiprotocol = Vec::new();
        if bits & 1 == 0 {
            multiprotocol.push(Afi::Ipv4);
        }
        if bits & 2 != 0 {
            multiprotocol.push(Afi::Ipv6);
        }
        let graceful_restart = (bits & 32 == 0).then(|| GracefulRestartCap {
            restart_state: bits & 64 != 0,
            notification: bits & 128 != 0,
            restart_time: if bits & 256 != 0 { 1 } else { 120 },
            families: multiprotocol.iter().map(|a| (*a, bits & 512 != 0)).collect(),
        });
        let mut unknown = Vec::new();
        if bits & 1024 != 0 {
            // Add-path (RFC 7911), which we do not offer.
            unknown.push((69, vec![0, 1, 1, 3]));
        }
        encode_open(&Open {
            version: 4,
            asn,
            hold_time,
            router_id,
            capabilities: Capabilities {
                multiprotocol,
                four_octet_as: (bits & 16 == 0).then_some(asn),
                route_refresh: bits & 4 == 0,
                enhanced_route_refresh: bits & 8 != 0,
                graceful_restart,
                extended_message: bits & 2048 != 0,
                unknown,
            },
        })
    }

    /// An encode context: 4-octet ASNs, extended messages, from the input.
    fn ectx(&mut self) -> EncodeCtx {
        let b = self.input.u8();
        EncodeCtx {
            asn4: b & 1 == 0,
            max_len: if b & 2 != 0 { MAX_EXTENDED_LEN } else { 4096 },
        }
    }

    /// Up to 2,000 prefixes of one family, consecutive from a base: octet
    /// `b`, bits 0-1: 0 or 1: 1 + bits 3-5 prefixes, 2: 1 + the next
    /// octet, 3: 1 + the next two modulo 2,000; bit 2: IPv6 /64s, else
    /// IPv4 /24s; then the base (two octets).
    fn prefixes(&mut self) -> Vec<Prefix> {
        let b = self.input.u8();
        let n = match b & 3 {
            0 | 1 => 1 + usize::from(b >> 3) % 8,
            2 => 1 + usize::from(self.input.u8()),
            _ => 1 + usize::from(self.input.u16()) % 2000,
        };
        let base = u32::from(self.input.u16());
        (0..n as u32)
            .map(|i| {
                let k = base.wrapping_add(i);
                if b & 4 != 0 {
                    let a = Ipv6Addr::new(0x2001, 0xdb8, (k >> 16) as u16, k as u16, 0, 0, 0, 0);
                    Prefix::V6(Ipv6Net::new(a, 64).expect("a prefix length"))
                } else {
                    let a = Ipv4Addr::from(0x0a00_0000 | (k << 8));
                    Prefix::V4(Ipv4Net::new(a, 24).expect("a prefix length"))
                }
            })
            .collect()
    }

    /// UPDATE messages announcing prefixes with attributes from the input.
    fn update(&mut self) -> Vec<Vec<u8>> {
        let ctx = self.ectx();
        let prefixes = self.prefixes();
        let b = self.input.u16();
        let peer_as = self.config.peers.first().map_or(AS, |p| p.asn);
        let as_path = match b & 7 {
            0 | 1 => vec![],
            2 => vec![AsSegment::Sequence(vec![peer_as])],
            3 => vec![AsSegment::Sequence(vec![peer_as, 65010, 4_200_000_001])],
            4 => vec![AsSegment::Sequence(vec![peer_as, AS])],
            5 => vec![AsSegment::ConfedSequence(vec![65100]), AsSegment::Sequence(vec![peer_as])],
            6 => vec![AsSegment::Set(vec![65010, 65011])],
            _ => vec![AsSegment::Sequence(vec![peer_as; 300])],
        };
        let next_hop = match ((b >> 3) & 3, prefixes[0]) {
            (_, Prefix::V6(_)) if b & 32 == 0 => NextHop::V6 {
                global: "2001:db8::2".parse().expect("an address"),
                link_local: (b & 64 != 0).then(|| "fe80::2".parse().expect("an address")),
            },
            (0, _) => NextHop::V4(PEER),
            (1, _) => NextHop::V4(SPEAKER),
            (2, _) => NextHop::V4(Ipv4Addr::UNSPECIFIED),
            _ => NextHop::V4(Ipv4Addr::new(224, 0, 0, 1)),
        };
        let mut attrs = PathAttrs::local(next_hop);
        attrs.origin = [Origin::Igp, Origin::Egp, Origin::Incomplete][usize::from(b >> 7) % 3];
        attrs.as_path = as_path;
        attrs.local_pref = (b & 512 == 0).then_some(100);
        attrs.med = (b & 1024 != 0).then_some(7);
        if b & 2048 != 0 {
            // NO_EXPORT, NO_ADVERTISE, and a plain one.
            attrs.communities = vec![0xffff_ff01, 0xffff_ff02, 0xfde8_0001];
        }
        if b & 4096 != 0 {
            attrs.originator_id = Some(if b & 8192 != 0 { SPEAKER } else { PEER });
            attrs.cluster_list = vec![Ipv4Addr::new(10, 0, 0, 100)];
        }
        attrs.atomic_aggregate = b & 16384 != 0;
        let mut out = Vec::new();
        encode_announce(&ctx, &attrs, &prefixes, &mut out);
        out
    }

    /// The checks at the end, then the shutdown.
    async fn finish(mut self, best: JoinHandle<()>) -> Arc<Status> {
        settle().await;
        let status = timeout(PATIENCE, self.h.fresh_status())
            .await
            .expect("the speaker answers within a minute")
            .expect("the speaker runs");
        let received: u64 = status.peers.iter().map(|p| p.prefixes_received).sum();
        assert!(
            received <= self.sent as u64,
            "{received} prefixes held from {} octets sent",
            self.sent
        );
        assert!(status.loc_rib_prefixes <= self.sent as u64 + self.locals as u64);
        assert!(
            status.peers.len() <= self.config.peers.len() + self.connects,
            "{} peers",
            status.peers.len()
        );
        let mode = if self.input.bool() {
            ShutdownMode::Graceful
        } else {
            ShutdownMode::Hard
        };
        timeout(PATIENCE, self.h.shutdown(mode))
            .await
            .expect("the speaker stops within a minute");
        self.hung.clear();
        for c in self.conns.iter_mut().filter_map(Option::take) {
            timeout(PATIENCE, c.reader)
                .await
                .expect("the speaker closes every connection when it stops")
                .expect("a reader ends without a panic");
        }
        drop(self.h);
        timeout(PATIENCE, best)
            .await
            .expect("the speaker's task ends when it stops")
            .expect("no panic");
        status
    }
}

// ===== impl Conn =====

impl Conn {
    /// Closes the connection both ways (a reset, as far as the speaker
    /// can tell): its reads end, its writes fail.
    async fn close(mut self) {
        let _ = self.w.shutdown().await;
        self.reader.abort();
        let _ = self.reader.await;
    }
}

// ===== impl ChannelDialer =====

impl Dialer for ChannelDialer {
    fn dial(&self, _to: Dial) -> Dialing {
        let tx = self.0.clone();
        Box::pin(async move {
            let (reply, answer) = oneshot::channel();
            tx.send(DialRequest { reply })
                .await
                .map_err(|_| io::Error::other("the fuzzer is gone"))?;
            answer
                .await
                .unwrap_or_else(|_| Err(io::ErrorKind::ConnectionRefused.into()))
        })
    }
}

// ===== helpers =====

/// Lets every task run until all wait (the paused clock then moves on by
/// a millisecond).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

async fn drain_best(mut best: mpsc::Receiver<Vec<BestPathChange>>) {
    while best.recv().await.is_some() {}
}

/// Reads what the speaker sends until it closes; every message must
/// frame and decode.
async fn read_speaker(mut r: tokio::io::ReadHalf<DuplexStream>) {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        match r.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        loop {
            let n = match frame(&buf, MAX_EXTENDED_LEN) {
                Ok(Some(n)) => n,
                Ok(None) => break,
                Err(e) => panic!("the speaker sent a bad header: {e}"),
            };
            check_sent(&buf[..n]);
            buf.drain(..n);
        }
    }
}

/// A message the speaker sent decodes (an UPDATE with one of the AS
/// widths: which one the session negotiated is not known here).
fn check_sent(msg: &[u8]) {
    let ctx = |asn4| DecodeCtx {
        asn4,
        ibgp: false,
        max_len: MAX_EXTENDED_LEN,
        families: vec![Afi::Ipv4, Afi::Ipv6],
    };
    let four = decode(msg, &ctx(true));
    if let Err(e) = &four {
        let two = decode(msg, &ctx(false));
        assert!(
            two.is_ok() && matches!(two, Ok(Message::Update(_))),
            "the speaker sent a message that does not decode: {e} {msg:02x?}"
        );
    }
}

/// A local route: one of eight IPv4 blocks, or an IPv6 one (bit 3).
fn local_prefix(i: u8) -> Prefix {
    if i & 8 != 0 {
        let a = Ipv6Addr::new(0xfd00, 0, 0, u16::from(i & 7), 0, 0, 0, 0);
        Prefix::V6(Ipv6Net::new(a, 122).expect("a prefix length"))
    } else {
        let a = Ipv4Addr::new(10, 244, i & 7, 0);
        Prefix::V4(Ipv4Net::new(a, 26).expect("a prefix length"))
    }
}
