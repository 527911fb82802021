//! Property test of the session FSM over real TCP: random sequences of
//! valid, mutated and random messages, sent in any order (OPEN twice,
//! UPDATE before OPEN, garbage after KEEPALIVE, ...). Afterwards the
//! speaker must still be healthy: it answers a well-behaved peer, it holds
//! no route of the closed hostile sessions, and nothing grew without bound.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bgp_speaker::{SessionState, ShutdownMode, SpeakerHandle};
use common::dynamic_speaker;
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

const AS: u32 = 64512;

fn msg(t: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    m.push(t);
    m.extend_from_slice(body);
    m
}

fn open(id: u8) -> Vec<u8> {
    let mut b = vec![
        4, 0xfc, 0x00, 0, 90, 10, 7, 7, id, 16, 2, 6, 1, 4, 0, 1, 0, 1, 2, 6, 65, 4,
    ];
    b.extend_from_slice(&AS.to_be_bytes());
    msg(1, &b)
}

fn update(third: u8) -> Vec<u8> {
    let attrs = [
        0x40, 1, 1, 0, 0x40, 2, 0, 0x40, 3, 4, 192, 168, 0, 1, 0x40, 5, 4, 0, 0, 0, 100,
    ];
    let mut b = vec![0, 0, 0, attrs.len() as u8];
    b.extend_from_slice(&attrs);
    b.extend_from_slice(&[24, 10, 77, third]);
    msg(2, &b)
}

/// One step a hostile peer may take.
#[derive(Clone, Debug)]
enum Step {
    Open,
    Keepalive,
    Update(u8),
    Notification,
    RouteRefresh,
    Random(Vec<u8>),
    /// A valid message with one byte replaced.
    Mutated(u8, usize, u8),
    Pause,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => Just(Step::Open),
        3 => Just(Step::Keepalive),
        4 => any::<u8>().prop_map(Step::Update),
        1 => Just(Step::Notification),
        1 => Just(Step::RouteRefresh),
        1 => proptest::collection::vec(any::<u8>(), 0..64).prop_map(Step::Random),
        3 => (0u8..4, any::<usize>(), any::<u8>()).prop_map(|(k, i, b)| Step::Mutated(k, i, b)),
        1 => Just(Step::Pause),
    ]
}

fn bytes_of(s: &Step, id: u8) -> Vec<u8> {
    match s {
        Step::Open => open(id),
        Step::Keepalive => msg(4, &[]),
        Step::Update(t) => update(*t),
        Step::Notification => msg(3, &[6, 2]),
        Step::RouteRefresh => msg(5, &[0, 1, 0, 1]),
        Step::Random(b) => b.clone(),
        Step::Mutated(k, i, b) => {
            let mut m = match k {
                0 => open(id),
                1 => msg(4, &[]),
                2 => update(1),
                _ => msg(5, &[0, 1, 0, 1]),
            };
            let at = i % m.len();
            m[at] = *b;
            m
        }
        Step::Pause => Vec::new(),
    }
}

async fn play(addr: SocketAddr, from: u8, steps: &[Step]) {
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(127, 0, 3, from)),
        0,
    ))
    .unwrap();
    // The speaker's listener is up for the whole property run: a refused
    // connection is a fault of the speaker, not a case to skip.
    let mut s = sock
        .connect(addr)
        .await
        .unwrap_or_else(|e| panic!("the speaker refused a connection from 127.0.3.{from}: {e}"));
    let mut sink = vec![0u8; 65536];
    for st in steps {
        if matches!(st, Step::Pause) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if s.write_all(&bytes_of(st, from)).await.is_err() {
            break;
        }
        // Drain whatever the speaker says, without waiting for it.
        let _ = tokio::time::timeout(Duration::from_millis(2), s.read(&mut sink)).await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
}

/// Polls `check` on the status for up to 2 s.
async fn eventually(h: &SpeakerHandle, what: &str, check: impl Fn(&bgp_speaker::Status) -> bool) {
    for _ in 0..200 {
        if check(&h.fresh_status().await.unwrap()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what}: {:#?}", h.status());
}

/// A well-behaved peer still reaches Established and gets its route in;
/// once it leaves, nothing of any session is left.
async fn healthy(h: &SpeakerHandle, addr: SocketAddr) {
    let good = IpAddr::V4(Ipv4Addr::new(127, 0, 3, 250));
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::new(good, 0)).unwrap();
    let mut s = sock.connect(addr).await.expect("speaker still accepts");
    s.write_all(&open(250)).await.unwrap();
    let mut head = [0u8; 19];
    for want in [1u8, 4] {
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut head))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(head[18], want, "speaker answers OPEN with OPEN, KEEPALIVE");
        let len = u16::from_be_bytes([head[16], head[17]]) as usize - 19;
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).await.unwrap();
    }
    s.write_all(&[msg(4, &[]), update(250)].concat())
        .await
        .unwrap();
    eventually(h, "good peer Established with its route", |st| {
        st.peers.iter().any(|p| {
            p.address == good && p.state == SessionState::Established && p.prefixes_received == 1
        })
    })
    .await;
    drop(s);
    eventually(h, "no state left of closed sessions", |st| {
        st.peers.is_empty() && st.loc_rib_prefixes == 0
    })
    .await;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn hostile_sequences_never_break_the_speaker(
        seqs in proptest::collection::vec(proptest::collection::vec(step(), 1..24), 1..4)
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async {
            let (h, addr) = dynamic_speaker("127.0.3.0/24", None).await;
            for (i, seq) in seqs.iter().enumerate() {
                play(addr, 10 + i as u8, seq).await;
            }
            healthy(&h, addr).await;
            h.shutdown(ShutdownMode::Hard).await;
        });
    }
}
