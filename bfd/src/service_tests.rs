//! The whole service with paused time: two services joined by an
//! in-memory wire (the [`Network`] seam), so that every instant is exact.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::{timeout, Instant};

use super::*;
use crate::config::AuthType;
use crate::counters::DiscardReason;
use crate::demux::RxMeta;
use crate::net::{Inbound, MAX_PACKET};
use crate::packet::Diag;

const A: &str = "10.0.0.1";
const B: &str = "10.0.0.2";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The shared medium: each node's inbox, and a log of what crossed it.
#[derive(Default)]
struct WireState {
    inboxes: HashMap<IpAddr, mpsc::Sender<Inbound>>,
    up: bool,
    ttl: u8,
    /// (when, from, to, packet) of every delivered packet.
    log: Vec<(Instant, IpAddr, IpAddr, ControlPacket)>,
}

#[derive(Clone)]
struct Wire(Arc<Mutex<WireState>>);

/// One node's side of the wire.
struct MemNet {
    wire: Wire,
    me: IpAddr,
    sessions: HashMap<TxId, Endpoint>,
    next: TxId,
}

impl Wire {
    fn new() -> Wire {
        Wire(Arc::new(Mutex::new(WireState {
            up: true,
            ttl: 255,
            ..WireState::default()
        })))
    }

    fn set_up(&self, up: bool) {
        self.0.lock().unwrap().up = up;
    }

    /// Last packet delivered to `to`.
    fn last_to(&self, to: IpAddr) -> Instant {
        let w = self.0.lock().unwrap();
        w.log.iter().rev().find(|e| e.2 == to).unwrap().0
    }

    /// Puts raw bytes into `to`'s inbox as if they came from `from`.
    fn inject(&self, to: IpAddr, from: IpAddr, bytes: &[u8], ttl: u8) {
        let mut buf = [0u8; MAX_PACKET];
        buf[..bytes.len()].copy_from_slice(bytes);
        let r = Received {
            buf,
            len: bytes.len(),
            meta: RxMeta {
                src: SocketAddr::new(from, 49999),
                dst: Some(to),
                ifindex: Some(1),
                ttl: Some(ttl),
                multihop: false,
            },
        };
        let w = self.0.lock().unwrap();
        w.inboxes[&to]
            .try_send(Inbound::Packet(Box::new(r)))
            .unwrap();
    }
}

impl Network for MemNet {
    fn start(&mut self, inbox: mpsc::Sender<Inbound>) {
        self.wire.0.lock().unwrap().inboxes.insert(self.me, inbox);
    }

    fn open(&mut self, ep: &Endpoint) -> io::Result<TxId> {
        self.next += 1;
        self.sessions.insert(self.next, ep.clone());
        Ok(self.next)
    }

    fn send(&mut self, tx: TxId, data: &[u8]) -> io::Result<()> {
        let ep = &self.sessions[&tx];
        let mut w = self.wire.0.lock().unwrap();
        if !w.up {
            return Ok(());
        }
        let Some(inbox) = w.inboxes.get(&ep.peer).cloned() else {
            return Ok(());
        };
        let mut buf = [0u8; MAX_PACKET];
        buf[..data.len()].copy_from_slice(data);
        let r = Received {
            buf,
            len: data.len(),
            meta: RxMeta {
                src: SocketAddr::new(ep.local.unwrap_or(self.me), 49152 + tx as u16),
                dst: Some(ep.peer),
                ifindex: Some(1),
                ttl: Some(w.ttl),
                multihop: ep.multihop,
            },
        };
        let pkt = ControlPacket::decode(data).unwrap();
        w.log.push((Instant::now(), self.me, ep.peer, pkt));
        inbox
            .try_send(Inbound::Packet(Box::new(r)))
            .map_err(|e| io::Error::other(e.to_string()))
    }

    fn close(&mut self, tx: TxId) {
        self.sessions.remove(&tx);
    }
}

struct Pair {
    wire: Wire,
    a: BfdHandle,
    b: BfdHandle,
    key_a: SessionKey,
    sa: watch::Receiver<SessionStatus>,
    sb: watch::Receiver<SessionStatus>,
}

fn node(wire: &Wire, me: &str, seed: u64) -> BfdHandle {
    let net = MemNet {
        wire: wire.clone(),
        me: ip(me),
        sessions: HashMap::new(),
        next: 0,
    };
    let (bfd, h) = Bfd::with_network(net, Some(seed));
    tokio::spawn(bfd.run());
    h
}

fn cfg(peer: &str, local: &str, timers: Timers) -> SessionConfig {
    SessionConfig::single_hop(ip(peer))
        .with_local(ip(local))
        .with_timers(timers)
}

async fn pair(timers: Timers) -> Pair {
    let wire = Wire::new();
    let a = node(&wire, A, 1);
    let b = node(&wire, B, 2);
    let ca = cfg(B, A, timers);
    let key_a = ca.key();
    let sa = a.add(ca).await.unwrap();
    let sb = b.add(cfg(A, B, timers)).await.unwrap();
    Pair {
        wire,
        a,
        b,
        key_a,
        sa,
        sb,
    }
}

async fn wait(
    rx: &mut watch::Receiver<SessionStatus>,
    what: &str,
    f: impl FnMut(&SessionStatus) -> bool,
) -> SessionStatus {
    *timeout(Duration::from_secs(30), rx.wait_for(f))
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
        .unwrap()
}

async fn up(p: &mut Pair) {
    wait(&mut p.sa, "A Up", |s| s.state == State::Up).await;
    wait(&mut p.sb, "B Up", |s| s.state == State::Up).await;
}

#[tokio::test(start_paused = true)]
async fn three_way_bring_up_and_down_after_up_at_exactly_the_detection_time() {
    let mut p = pair(Timers::new(ms(100), 3)).await;
    up(&mut p).await;
    // A's first packet went out before B existed: B speaks first.
    let states: Vec<_> = {
        let w = p.wire.0.lock().unwrap();
        w.log.iter().map(|e| (e.1, e.3.state)).take(4).collect()
    };
    assert_eq!(
        states,
        vec![
            (ip(B), State::Down),
            (ip(A), State::Init),
            (ip(B), State::Up),
            (ip(A), State::Up),
        ]
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let s = *p.sa.borrow();
    assert_eq!(s.tx_interval, Some(ms(100)));
    assert_eq!(s.detection_time, Some(ms(300)));
    p.wire.set_up(false);
    let s = wait(&mut p.sa, "A Down", |s| s.state == State::Down).await;
    let seen = Instant::now();
    let last = p.wire.last_to(ip(A));
    assert_eq!(s.since - last, ms(300), "3 x 100 ms after the last packet");
    assert_eq!(seen, s.since, "the subscriber is told at once");
    assert_eq!(s.local_diag, Diag::ControlDetectionTimeExpired);
    assert_eq!((s.ups, s.downs), (1, 1));
    let c = p.a.counters().await.unwrap();
    assert_eq!(c.up_to_down, 1);
    // The link comes back: Up again.
    p.wire.set_up(true);
    up(&mut p).await;
    assert_eq!(p.sa.borrow().ups, 2);
}

#[tokio::test(start_paused = true)]
async fn reconfigure_while_up_polls_without_going_down() {
    let mut p = pair(Timers::new(ms(100), 3)).await;
    up(&mut p).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    p.a.reconfigure(&p.key_a, Timers::new(ms(300), 5))
        .await
        .unwrap();
    // B now detects A in 5 x 300 ms; A sends every 300 ms.
    let sb = wait(&mut p.sb, "B's new detection time", |s| {
        s.detection_time == Some(ms(1500))
    })
    .await;
    let sa = wait(&mut p.sa, "A's new interval", |s| {
        s.tx_interval == Some(ms(300))
    })
    .await;
    assert_eq!((sa.state, sb.state), (State::Up, State::Up));
    assert_eq!((sa.ups, sb.ups, sa.downs, sb.downs), (1, 1, 0, 0));
    let polls = {
        let w = p.wire.0.lock().unwrap();
        let p_a = w
            .log
            .iter()
            .filter(|e| e.1 == ip(A) && e.3.flags.poll)
            .count();
        let f_b = w
            .log
            .iter()
            .filter(|e| e.1 == ip(B) && e.3.flags.final_)
            .count();
        (p_a > 0, f_b > 0)
    };
    assert_eq!(polls, (true, true));
    assert!(p
        .a
        .reconfigure(&p.key_a, Timers::new(ms(100), 0))
        .await
        .unwrap_err()
        .to_string()
        .contains("multiplier 0"));
}

#[tokio::test(start_paused = true)]
async fn admin_down_brings_the_peer_down_with_neighbor_signaled_and_back() {
    let mut p = pair(Timers::new(ms(100), 3)).await;
    up(&mut p).await;
    p.a.set_admin_down(&p.key_a, true).await.unwrap();
    let sb = wait(&mut p.sb, "B Down", |s| s.state == State::Down).await;
    assert_eq!(sb.local_diag, Diag::NeighborSignaledSessionDown);
    assert_eq!(sb.remote_state, State::AdminDown);
    assert_eq!(sb.remote_diag, Diag::AdministrativelyDown);
    let sa = *p.sa.borrow();
    assert_eq!(
        (sa.state, sa.local_diag),
        (State::AdminDown, Diag::AdministrativelyDown)
    );
    // Held down.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(p.sb.borrow().state, State::Down);
    p.a.set_admin_down(&p.key_a, false).await.unwrap();
    up(&mut p).await;
}

#[tokio::test(start_paused = true)]
async fn remove_says_admin_down_and_closes_the_watch() {
    let mut p = pair(Timers::new(ms(100), 3)).await;
    up(&mut p).await;
    p.a.remove(&p.key_a).await.unwrap();
    let sb = wait(&mut p.sb, "B Down", |s| s.state == State::Down).await;
    assert_eq!(sb.remote_state, State::AdminDown);
    while p.sa.changed().await.is_ok() {}
    assert!(p.a.sessions().await.unwrap().is_empty());
    assert!(matches!(
        p.a.remove(&p.key_a).await,
        Err(BfdError::NotFound(_))
    ));
    // Shutting B down says AdminDown too (A no longer listens: counted).
    p.b.shutdown().await.unwrap();
    assert!(matches!(p.b.counters().await, Err(BfdError::Stopped)));
}

#[tokio::test(start_paused = true)]
async fn every_reception_check_discards_and_counts() {
    let mut p = pair(Timers::new(ms(100), 3)).await;
    up(&mut p).await;
    let sa = *p.sa.borrow();
    let good = ControlPacket {
        diag: Diag::None,
        state: State::Up,
        flags: Default::default(),
        detect_mult: 3,
        my_discr: sa.remote_discr,
        your_discr: sa.local_discr,
        desired_min_tx: 100_000,
        required_min_rx: 100_000,
        required_min_echo_rx: 0,
        auth_type: None,
    };
    let with = |f: &dyn Fn(&mut [u8; 24])| {
        let mut b = good.encode();
        f(&mut b);
        b.to_vec()
    };
    let mut auth = with(&|b| {
        b[1] |= 0x04;
        b[3] = 32;
    });
    auth.extend_from_slice(&[1, 8, 1, b'p', b'a', b's', b's', 0]);
    let down_zero = ControlPacket {
        state: State::Down,
        your_discr: 0,
        ..good
    };
    let cases: Vec<(Vec<u8>, &str, u8, DiscardReason)> = vec![
        (vec![0x20, 0xc0, 3], B, 255, DiscardReason::TooShort),
        (with(&|b| b[0] = 0x40), B, 255, DiscardReason::BadVersion),
        (with(&|b| b[3] = 20), B, 255, DiscardReason::BadLength),
        (with(&|b| b[1] |= 0x04), B, 255, DiscardReason::BadLength),
        (
            with(&|b| b[3] = 30),
            B,
            255,
            DiscardReason::LengthExceedsPayload,
        ),
        (with(&|b| b[2] = 0), B, 255, DiscardReason::DetectMultZero),
        (with(&|b| b[1] |= 0x01), B, 255, DiscardReason::Multipoint),
        (
            with(&|b| b[4..8].fill(0)),
            B,
            255,
            DiscardReason::MyDiscriminatorZero,
        ),
        (
            with(&|b| b[8..12].fill(0)),
            B,
            255,
            DiscardReason::YourDiscriminatorZero,
        ),
        (
            with(&|b| b[8..12].copy_from_slice(&7u32.to_be_bytes())),
            B,
            255,
            DiscardReason::UnknownDiscriminator,
        ),
        (
            down_zero.encode().to_vec(),
            "10.0.0.9",
            255,
            DiscardReason::NoSession,
        ),
        (
            good.encode().to_vec(),
            "10.0.0.9",
            255,
            DiscardReason::SessionMismatch,
        ),
        (good.encode().to_vec(), B, 254, DiscardReason::BadTtl),
        (auth, B, 255, DiscardReason::AuthMismatch),
    ];
    for (bytes, from, ttl, _) in &cases {
        p.wire.inject(ip(A), ip(from), bytes, *ttl);
    }
    // Let the owner task drain its inbox (paused time advances only when
    // every task is idle).
    tokio::time::sleep(ms(1)).await;
    let before = p.a.counters().await.unwrap();
    let got: Vec<_> = before.discards().filter(|(_, n)| *n > 0).collect();
    for (_, _, _, reason) in &cases {
        let want = cases.iter().filter(|c| c.3 == *reason).count() as u64;
        assert_eq!(
            before.discarded(*reason),
            want,
            "{}: {got:?}",
            reason.as_str()
        );
    }
    assert_eq!(before.discarded_total(), cases.len() as u64);
    // None of it touched the session.
    let now = *p.sa.borrow();
    assert_eq!((now.state, now.ups, now.downs), (State::Up, 1, 0));
}

#[tokio::test(start_paused = true)]
async fn bad_configurations_are_refused_by_name() {
    let wire = Wire::new();
    let a = node(&wire, A, 1);
    let err = |r: Result<watch::Receiver<SessionStatus>, BfdError>| r.unwrap_err().to_string();
    let c = cfg(B, A, Timers::new(ms(100), 0));
    assert!(err(a.add(c).await).contains("multiplier 0"));
    let c = cfg(B, A, Timers::new(ms(5), 3));
    assert!(err(a.add(c).await).contains("min_tx 5ms out of range"));
    let c = SessionConfig {
        auth: Some(AuthType::KeyedMd5),
        ..cfg(B, A, Timers::default())
    };
    assert!(err(a.add(c).await).contains("authentication (KeyedMd5) is not implemented"));
    let c = cfg(B, A, Timers::default()).with_interface("nosuch0");
    assert!(err(a.add(c).await).contains("interface \"nosuch0\" does not exist"));
    a.add(cfg(B, A, Timers::default())).await.unwrap();
    assert!(matches!(
        a.add(cfg(B, A, Timers::default())).await,
        Err(BfdError::Exists(_))
    ));
    let other_local = cfg(B, "10.0.0.7", Timers::default());
    assert!(matches!(
        a.add(other_local).await,
        Err(BfdError::Conflict { .. })
    ));
    // Multihop to the same peer is another session.
    let mh = SessionConfig::multihop(ip(B), ip(A));
    a.add(mh).await.unwrap();
    assert_eq!(a.sessions().await.unwrap().len(), 2);
}
