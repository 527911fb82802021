//! Every RFC 4271 §6 / RFC 7606 error case, sent over a real TCP session to
//! a running speaker: the exact NOTIFICATION code/subcode comes back (or,
//! for treat-as-withdraw, the route goes and the session stays up), and a
//! well-behaved session on the same speaker stays Established throughout.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::*;

use bgp_speaker::{SessionState, ShutdownMode, SpeakerHandle};

async fn peer_state(h: &SpeakerHandle, addr: IpAddr) -> Option<(SessionState, u64, u64)> {
    h.fresh_status()
        .await
        .unwrap()
        .peers
        .iter()
        .find(|p| p.address == addr)
        .map(|p| (p.state, p.prefixes_received, p.flaps))
}

async fn wait_for(
    h: &SpeakerHandle,
    addr: IpAddr,
    want: impl Fn(Option<(SessionState, u64, u64)>) -> bool,
) {
    for _ in 0..200 {
        if want(peer_state(h, addr).await) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "peer {addr} never reached the expected state: {:?}",
        peer_state(h, addr).await
    );
}

/// Errors that end the session: (name, RFC section, whether to establish
/// first, bytes, code, subcode, expected data or None to not check).
type Row = (
    &'static str,
    &'static str,
    bool,
    Vec<u8>,
    u8,
    u8,
    Option<Vec<u8>>,
);

fn fatal_rows() -> Vec<Row> {
    let mut bad_marker = msg(4, &[]);
    bad_marker[3] = 0;
    let mut long = msg(2, &[0; 4]);
    long[16..18].copy_from_slice(&4097u16.to_be_bytes());
    let overrun = {
        // Total path attribute length says 200, only 4 octets follow.
        let mut b = vec![0, 0, 0, 200];
        b.extend_from_slice(&attr(0x40, 1, &[0]));
        msg(2, &b)
    };
    vec![
        (
            "bad marker",
            "4271 §6.1",
            true,
            bad_marker,
            1,
            1,
            Some(vec![]),
        ),
        (
            "length below 19",
            "4271 §6.1",
            true,
            msg(4, &[])[..16]
                .iter()
                .copied()
                .chain([0, 18, 4])
                .collect(),
            1,
            2,
            Some(vec![0, 18]),
        ),
        (
            "length above 4096",
            "4271 §6.1",
            true,
            long,
            1,
            2,
            Some(vec![0x10, 0x01]),
        ),
        (
            "KEEPALIVE with a body",
            "4271 §6.1",
            true,
            msg(4, &[0]),
            1,
            2,
            Some(vec![0, 20]),
        ),
        (
            "unknown type 9",
            "4271 §6.1",
            true,
            msg(9, &[]),
            1,
            3,
            Some(vec![9]),
        ),
        (
            "OPEN version 3",
            "4271 §6.2",
            false,
            open(3, AS, 90, [10, 9, 9, 9]),
            2,
            1,
            Some(vec![0, 4]),
        ),
        (
            "OPEN bad peer AS",
            "4271 §6.2",
            false,
            open(4, 65001, 90, [10, 9, 9, 9]),
            2,
            2,
            None,
        ),
        (
            "OPEN identifier 0.0.0.0",
            "4271 §6.2",
            false,
            open(4, AS, 90, [0, 0, 0, 0]),
            2,
            3,
            None,
        ),
        (
            "OPEN identifier = ours (iBGP)",
            "6286 §2.2",
            false,
            open(4, AS, 90, [10, 9, 0, 1]),
            2,
            3,
            None,
        ),
        (
            "OPEN hold time 1",
            "4271 §6.2",
            false,
            open(4, AS, 1, [10, 9, 9, 9]),
            2,
            6,
            None,
        ),
        (
            "attribute list overruns the message",
            "7606 §4",
            true,
            overrun,
            3,
            1,
            None,
        ),
        (
            "unrecognized well-known attribute",
            "4271 §6.3",
            true,
            update(&[], &[good_attrs(), attr(0x40, 99, &[1])].concat(), &NLRI),
            3,
            2,
            None,
        ),
        (
            "NLRI prefix length 33",
            "7606 §5.3",
            true,
            update(&[], &good_attrs(), &[33, 10, 1, 1, 1, 1]),
            3,
            10,
            None,
        ),
        (
            "NLRI overruns the message",
            "7606 §5.3",
            true,
            update(&[], &good_attrs(), &[24, 10]),
            3,
            10,
            None,
        ),
        (
            "withdrawn prefix length 40",
            "7606 §5.3",
            true,
            update(&[40, 1, 2, 3, 4, 5], &[], &[]),
            3,
            10,
            None,
        ),
        (
            "OPEN while Established",
            "6608 §4",
            true,
            open(4, AS, 90, [10, 9, 9, 9]),
            5,
            3,
            None,
        ),
    ]
}

/// Errors handled by treat-as-withdraw (RFC 7606): (name, section, attrs).
fn withdraw_rows() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let origin = || attr(0x40, 1, &[0]);
    let path = || attr(0x40, 2, &[]);
    let nh = || attr(0x40, 3, &[192, 168, 0, 1]);
    vec![
        (
            "ORIGIN value 7",
            "7606 §7.1",
            attrs_with(attr(0x40, 1, &[7]), path(), nh()),
        ),
        (
            "ORIGIN length 2",
            "7606 §7.1",
            attrs_with(attr(0x40, 1, &[0, 0]), path(), nh()),
        ),
        (
            "ORIGIN flagged optional",
            "7606 §3 c",
            attrs_with(attr(0xc0, 1, &[0]), path(), nh()),
        ),
        (
            "AS_PATH segment type 9",
            "7606 §7.2",
            attrs_with(origin(), attr(0x40, 2, &[9, 1, 0, 0, 0xfd, 0xe9]), nh()),
        ),
        (
            "AS_PATH segment overruns",
            "7606 §7.2",
            attrs_with(origin(), attr(0x40, 2, &[2, 5, 0, 0, 0xfd, 0xe9]), nh()),
        ),
        (
            "NEXT_HOP length 5",
            "7606 §7.3",
            attrs_with(origin(), path(), attr(0x40, 3, &[1, 2, 3, 4, 5])),
        ),
        (
            "NEXT_HOP 0.0.0.0",
            "4271 §6.3",
            attrs_with(origin(), path(), attr(0x40, 3, &[0, 0, 0, 0])),
        ),
        (
            "NEXT_HOP multicast",
            "4271 §6.3",
            attrs_with(origin(), path(), attr(0x40, 3, &[224, 0, 0, 1])),
        ),
        (
            "missing ORIGIN",
            "7606 §3 d",
            [path(), nh(), attr(0x40, 5, &[0, 0, 0, 100])].concat(),
        ),
        (
            "missing NEXT_HOP",
            "7606 §3 d",
            [origin(), path(), attr(0x40, 5, &[0, 0, 0, 100])].concat(),
        ),
        (
            "MED length 3",
            "7606 §7.4",
            [good_attrs(), attr(0x80, 4, &[0, 0, 1])].concat(),
        ),
        (
            "COMMUNITIES length 5",
            "7606 §7.8",
            [good_attrs(), attr(0xc0, 8, &[0, 0, 0, 1, 2])].concat(),
        ),
        (
            "ORIGINATOR_ID length 3",
            "7606 §7.9",
            [good_attrs(), attr(0x80, 9, &[1, 2, 3])].concat(),
        ),
        (
            "CLUSTER_LIST length 6",
            "7606 §7.10",
            [good_attrs(), attr(0x80, 10, &[1, 2, 3, 4, 5, 6])].concat(),
        ),
        (
            "last attribute's length overruns the attribute list",
            "7606 §4",
            [good_attrs(), vec![0xc0, 8, 8, 0, 0]].concat(),
        ),
        (
            "2 octets left after the last attribute",
            "7606 §4",
            [good_attrs(), vec![0x40, 5]].concat(),
        ),
    ]
}

#[tokio::test]
async fn malformed_input_gets_the_rfc_answer_and_spares_other_sessions() {
    let (h, addr) = dynamic_speaker("127.0.1.0/24", None).await;
    let mut bystander = Client::connect(addr, 1).await;
    bystander.establish(1).await;
    bystander.send(&update(&[], &good_attrs(), &NLRI)).await;
    wait_for(&h, bystander.addr, |s| {
        s == Some((SessionState::Established, 1, 0))
    })
    .await;

    let mut last = 10u8;
    for (name, rfc, establish, bytes, code, subcode, data) in fatal_rows() {
        last += 1;
        let mut c = Client::connect(addr, last).await;
        if establish {
            c.establish(last).await;
            wait_for(&h, c.addr, |s| {
                s.is_some_and(|s| s.0 == SessionState::Established)
            })
            .await;
        }
        c.send(&bytes).await;
        let (got_code, got_sub, got_data) = c.notification().await;
        assert_eq!((got_code, got_sub), (code, subcode), "{name} (RFC {rfc})");
        if let Some(d) = data {
            assert_eq!(got_data, d, "{name}: NOTIFICATION data (RFC {rfc})");
        }
    }
    for (name, rfc, attrs) in withdraw_rows() {
        last += 1;
        let mut c = Client::connect(addr, last).await;
        c.establish(last).await;
        c.send(&update(&[], &good_attrs(), &NLRI)).await;
        wait_for(&h, c.addr, |s| s == Some((SessionState::Established, 1, 0))).await;
        c.send(&update(&[], &attrs, &NLRI)).await;
        // The earlier route is withdrawn; the session stays.
        wait_for(&h, c.addr, |s| s == Some((SessionState::Established, 0, 0))).await;
        let _ = (name, rfc);
    }
    // The bystander never noticed.
    assert_eq!(
        peer_state(&h, bystander.addr).await,
        Some((SessionState::Established, 1, 0))
    );
    h.shutdown(ShutdownMode::Hard).await;
}
