//! The RFC 4271 §8 state x event table, run with paused time over
//! in-memory connections: each row takes one connection to a state,
//! feeds one event (a message, the peer closing, time passing, a
//! configuration change, a shutdown) and checks what the speaker sends,
//! at which instant to the millisecond, and where the peer's state goes
//! (RFC 6608 subcodes for unexpected messages).
//!
//! The connection and retry rows (Idle/Connect/Active) follow the table.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use bgp_speaker::{PeerConfig, SessionState, ShutdownMode, SpeakerConfig};
use common::pipe::{Net, Peer, SPEAKER};
use common::*;
use tokio::time::Instant;

/// The peer under test (iBGP, AS 64512).
const PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

fn peer_ip() -> IpAddr {
    IpAddr::V4(PEER)
}

fn keepalive() -> Vec<u8> {
    msg(4, &[])
}

/// The peer's OPEN: hold time 90 s, so the keepalive interval is 30 s.
fn peer_open() -> Vec<u8> {
    open(4, AS, 90, PEER.octets())
}

/// Where a row's connection is taken before its event.
#[derive(Clone, Copy, Debug, PartialEq)]
enum At {
    /// The speaker dialed and sent its OPEN.
    OpenSent,
    /// The OPENs are exchanged and the speaker sent its KEEPALIVE.
    OpenConfirm,
    /// Both KEEPALIVEs are in and the speaker sent its End-of-RIB.
    Established,
}

/// One part of a row's event.
enum Step {
    Send(Vec<u8>),
    Wait(u64),
    /// The peer closes the TCP connection (event 18).
    Close,
    /// The peer is removed from the configuration (ManualStop).
    Deconfigure,
    /// The peer's settings change (its hold time: 60 s).
    Change,
    Stop(ShutdownMode),
}

/// What the speaker does after the event (seconds from the instant the
/// connection reached the row's state).
enum Then {
    /// Sends this NOTIFICATION (code, subcode, data if it matters) at
    /// this instant and closes.
    Notify(u8, u8, Option<&'static [u8]>, u64),
    /// Closes without a NOTIFICATION at once.
    Quiet,
    /// Sends a message of this type first, at this instant.
    Sends(u8, u64),
}

/// What becomes of the peer afterwards.
enum Next {
    /// Active, and dialed again after the first retry delay (250 ms less
    /// up to a quarter of jitter).
    Redial,
    /// Stays in this state.
    Stays(SessionState),
    /// Removed: no state, no dial.
    Gone,
    /// Started again as a new peer: dialed within 200 ms.
    Restarted,
    /// The speaker stopped.
    Stopped,
}

struct Row {
    at: At,
    event: &'static str,
    steps: Vec<Step>,
    then: Then,
    next: Next,
}

fn row(at: At, event: &'static str, steps: Vec<Step>, then: Then, next: Next) -> Row {
    Row {
        at,
        event,
        steps,
        then,
        next,
    }
}

fn rows() -> Vec<Row> {
    use At::*;
    use Next::*;
    use Step::*;
    use Then::*;
    let mut bad_marker = keepalive();
    bad_marker[3] = 0;
    let short = keepalive()[..16]
        .iter()
        .copied()
        .chain([0, 18, 4])
        .collect::<Vec<_>>();
    let an_update = update(&[], &good_attrs(), &NLRI);
    let notification = msg(3, &[6, 2]);
    let overrun = {
        // Total path attribute length 200; 4 octets follow.
        let mut b = vec![0, 0, 0, 200];
        b.extend_from_slice(&attr(0x40, 1, &[0]));
        msg(2, &b)
    };
    vec![
        // ----- OpenSent -----
        row(
            OpenSent,
            "E10 HoldTimer_Expires: no OPEN in the large hold time (4 min)",
            vec![],
            Notify(4, 0, None, 240),
            Redial,
        ),
        row(
            OpenSent,
            "E19 BGPOpen: KEEPALIVE at once",
            vec![Send(peer_open())],
            Sends(4, 0),
            Stays(SessionState::OpenConfirm),
        ),
        row(
            OpenSent,
            "E21 BGPHeaderErr: marker not all ones",
            vec![Send(bad_marker.clone())],
            Notify(1, 1, Some(&[]), 0),
            Redial,
        ),
        row(
            OpenSent,
            "E21 BGPHeaderErr: length below 19",
            vec![Send(short)],
            Notify(1, 2, Some(&[0, 18]), 0),
            Redial,
        ),
        row(
            OpenSent,
            "E21 BGPHeaderErr: unknown type",
            vec![Send(msg(9, &[]))],
            Notify(1, 3, Some(&[9]), 0),
            Redial,
        ),
        row(
            OpenSent,
            "E22 BGPOpenMsgErr: version 3",
            vec![Send(open(3, AS, 90, PEER.octets()))],
            Notify(2, 1, Some(&[0, 4]), 0),
            Redial,
        ),
        row(
            OpenSent,
            "E22 BGPOpenMsgErr: another AS",
            vec![Send(open(4, 65001, 90, PEER.octets()))],
            Notify(2, 2, None, 0),
            Redial,
        ),
        row(
            OpenSent,
            "E22 BGPOpenMsgErr: BGP identifier 0.0.0.0",
            vec![Send(open(4, AS, 90, [0; 4]))],
            Notify(2, 3, None, 0),
            Redial,
        ),
        row(
            OpenSent,
            "E22 BGPOpenMsgErr: our own identifier on iBGP (RFC 6286)",
            vec![Send(open(4, AS, 90, SPEAKER.octets()))],
            Notify(2, 3, None, 0),
            Redial,
        ),
        row(
            OpenSent,
            "E22 BGPOpenMsgErr: hold time 2",
            vec![Send(open(4, AS, 2, PEER.octets()))],
            Notify(2, 6, None, 0),
            Redial,
        ),
        row(
            OpenSent,
            "E25 NotifMsg",
            vec![Send(notification.clone())],
            Quiet,
            Redial,
        ),
        row(
            OpenSent,
            "E26 KeepAliveMsg (RFC 6608: 5/1)",
            vec![Send(keepalive())],
            Notify(5, 1, None, 0),
            Redial,
        ),
        row(
            OpenSent,
            "E27 UpdateMsg (RFC 6608: 5/1)",
            vec![Send(an_update.clone())],
            Notify(5, 1, None, 0),
            Redial,
        ),
        row(
            OpenSent,
            "E18 TcpConnectionFails",
            vec![Close],
            Quiet,
            Redial,
        ),
        row(
            OpenSent,
            "ManualStop: peer removed from the configuration (Cease/3)",
            vec![Deconfigure],
            Notify(6, 3, None, 0),
            Gone,
        ),
        row(
            OpenSent,
            "ManualStop: hard shutdown (Cease/Hard Reset carrying 2)",
            vec![Stop(ShutdownMode::Hard)],
            Notify(6, 9, Some(&[2]), 0),
            Stopped,
        ),
        // ----- OpenConfirm -----
        row(
            OpenConfirm,
            "E11 KeepaliveTimer_Expires: KEEPALIVE every 30 s",
            vec![],
            Sends(4, 30),
            Stays(SessionState::OpenConfirm),
        ),
        row(
            OpenConfirm,
            "E10 HoldTimer_Expires at the negotiated 90 s",
            vec![],
            Notify(4, 0, None, 90),
            Redial,
        ),
        row(
            OpenConfirm,
            "E26 KeepAliveMsg: Established, End-of-RIB sent",
            vec![Send(keepalive())],
            Sends(2, 0),
            Stays(SessionState::Established),
        ),
        row(
            OpenConfirm,
            "E21 BGPHeaderErr",
            vec![Send(bad_marker.clone())],
            Notify(1, 1, None, 0),
            Redial,
        ),
        row(
            OpenConfirm,
            "OPEN again on the same connection (RFC 6608: 5/2)",
            vec![Send(peer_open())],
            Notify(5, 2, None, 0),
            Redial,
        ),
        row(
            OpenConfirm,
            "E27 UpdateMsg (RFC 6608: 5/2)",
            vec![Send(an_update.clone())],
            Notify(5, 2, None, 0),
            Redial,
        ),
        row(
            OpenConfirm,
            "E25 NotifMsg",
            vec![Send(notification.clone())],
            Quiet,
            Redial,
        ),
        row(
            OpenConfirm,
            "E18 TcpConnectionFails",
            vec![Close],
            Quiet,
            Redial,
        ),
        row(
            OpenConfirm,
            "ManualStop: peer removed from the configuration (Cease/3)",
            vec![Deconfigure],
            Notify(6, 3, None, 0),
            Gone,
        ),
        row(
            OpenConfirm,
            "ManualStop: graceful shutdown (Cease/4)",
            vec![Stop(ShutdownMode::Graceful)],
            Notify(6, 4, None, 0),
            Stopped,
        ),
        // ----- Established -----
        row(
            Established,
            "E11 KeepaliveTimer_Expires: KEEPALIVE every 30 s",
            vec![],
            Sends(4, 30),
            Stays(SessionState::Established),
        ),
        row(
            Established,
            "E10 HoldTimer_Expires at 90 s",
            vec![],
            Notify(4, 0, None, 90),
            Redial,
        ),
        row(
            Established,
            "E26 KeepAliveMsg at 60 s restarts the hold timer (expires at 150 s)",
            vec![Wait(60), Send(keepalive())],
            Notify(4, 0, None, 150),
            Redial,
        ),
        row(
            Established,
            "E27 UpdateMsg at 60 s restarts the hold timer (expires at 150 s)",
            vec![Wait(60), Send(an_update)],
            Notify(4, 0, None, 150),
            Redial,
        ),
        row(
            Established,
            "E28 UpdateMsgErr: attributes overrun the message (3/1)",
            vec![Send(overrun)],
            Notify(3, 1, None, 0),
            Redial,
        ),
        row(
            Established,
            "OPEN on the Established connection (RFC 6608: 5/3)",
            vec![Send(peer_open())],
            Notify(5, 3, None, 0),
            Redial,
        ),
        row(
            Established,
            "E21 BGPHeaderErr",
            vec![Send(bad_marker)],
            Notify(1, 1, None, 0),
            Redial,
        ),
        row(
            Established,
            "E25 NotifMsg",
            vec![Send(notification)],
            Quiet,
            Redial,
        ),
        row(
            Established,
            "E18 TcpConnectionFails",
            vec![Close],
            Quiet,
            Redial,
        ),
        row(
            Established,
            "ManualStop: peer removed from the configuration (Cease/3)",
            vec![Deconfigure],
            Notify(6, 3, None, 0),
            Gone,
        ),
        row(
            Established,
            "the peer's settings changed (Cease/6, RFC 4486)",
            vec![Change],
            Notify(6, 6, None, 0),
            Restarted,
        ),
        row(
            Established,
            "ManualStop: hard shutdown (Cease/Hard Reset carrying 2, RFC 8538)",
            vec![Stop(ShutdownMode::Hard)],
            Notify(6, 9, Some(&[2]), 0),
            Stopped,
        ),
        row(
            Established,
            "ManualStop: graceful shutdown (Cease/4 Administrative Reset)",
            vec![Stop(ShutdownMode::Graceful)],
            Notify(6, 4, None, 0),
            Stopped,
        ),
    ]
}

fn active_peer() -> PeerConfig {
    PeerConfig::new(peer_ip(), AS)
}

/// Takes a connection to `at`; returns the peer and the instant the state
/// was reached (the speaker's message that entered it arrived).
async fn reach(net: &mut Net, at: At) -> (Peer, Instant) {
    let dial = net.next_dial().await;
    assert_eq!(dial.dial.peer.to_string(), "10.0.0.2:179");
    let mut p = dial.accept();
    p.expect(1, "the speaker's OPEN").await;
    let mut entered = Instant::now();
    if at != At::OpenSent {
        p.send(&peer_open()).await;
        p.expect(4, "the speaker's KEEPALIVE").await;
        entered = Instant::now();
    }
    if at == At::Established {
        p.send(&keepalive()).await;
        assert_eq!(p.expect(2, "End-of-RIB").await, [0, 0, 0, 0]);
        entered = Instant::now();
    }
    let want = match at {
        At::OpenSent => SessionState::OpenSent,
        At::OpenConfirm => SessionState::OpenConfirm,
        At::Established => SessionState::Established,
    };
    let s = net.h.fresh_status().await.unwrap();
    assert_eq!(s.peers[0].state, want, "reached {at:?}");
    (p, entered)
}

async fn run_row(r: Row) {
    let name = format!("{:?} x {}", r.at, r.event);
    let mut net = Net::start(vec![active_peer()]).await;
    let (mut p, entered) = reach(&mut net, r.at).await;
    for step in r.steps {
        match step {
            Step::Send(b) => p.send(&b).await,
            Step::Wait(s) => tokio::time::sleep(Duration::from_secs(s)).await,
            Step::Close => p.close().await,
            Step::Deconfigure => {
                let c = SpeakerConfig::new(SPEAKER, AS);
                net.h.reconfigure(c).await.unwrap();
            }
            Step::Change => {
                let mut c = SpeakerConfig::new(SPEAKER, AS);
                c.peers.push(PeerConfig {
                    hold_time: 60,
                    ..active_peer()
                });
                net.h.reconfigure(c).await.unwrap();
            }
            Step::Stop(mode) => net.h.shutdown(mode).await,
        }
    }
    let closed_at = match r.then {
        Then::Notify(code, subcode, data, at) => {
            let got = p.notification().await;
            let (c, s, d) = got.unwrap_or_else(|| panic!("{name}: closed without a NOTIFICATION"));
            assert_eq!((c, s), (code, subcode), "{name}: NOTIFICATION");
            if let Some(data) = data {
                assert_eq!(d, data, "{name}: NOTIFICATION data");
            }
            assert_eq!(entered.elapsed(), Duration::from_secs(at), "{name}: when");
            assert_eq!(
                p.recv().await,
                None,
                "{name}: closed after the NOTIFICATION"
            );
            Some(Instant::now())
        }
        Then::Quiet => {
            assert_eq!(p.notification().await, None, "{name}: no NOTIFICATION");
            assert_eq!(entered.elapsed(), Duration::ZERO, "{name}: closed at once");
            Some(Instant::now())
        }
        Then::Sends(t, at) => {
            let (got, _) = p.recv().await.unwrap_or_else(|| panic!("{name}: closed"));
            assert_eq!(got, t, "{name}: message type");
            assert_eq!(entered.elapsed(), Duration::from_secs(at), "{name}: when");
            None
        }
    };
    match r.next {
        Next::Redial => {
            assert_eq!(
                net.state(peer_ip()).await,
                Some(SessionState::Active),
                "{name}: Active"
            );
            let _again = net.next_dial().await;
            let after = closed_at.expect("closed").elapsed();
            assert!(
                (Duration::from_micros(187_500)..=Duration::from_millis(250)).contains(&after),
                "{name}: dialed again after {after:?}"
            );
        }
        Next::Stays(state) => {
            assert_eq!(
                net.h.fresh_status().await.unwrap().peers[0].state,
                state,
                "{name}"
            );
        }
        Next::Gone => {
            assert_eq!(net.state(peer_ip()).await, None, "{name}: peer gone");
            tokio::time::sleep(Duration::from_secs(600)).await;
            assert!(net.try_dial().is_none(), "{name}: never dialed again");
        }
        Next::Restarted => {
            let again = net.next_dial().await;
            let after = closed_at.expect("closed").elapsed();
            assert!(
                after <= Duration::from_millis(200),
                "{name}: dialed after {after:?}"
            );
            let mut p = again.accept();
            let open = p.expect(1, "OPEN").await;
            assert_eq!(
                &open[3..5],
                &60u16.to_be_bytes(),
                "{name}: the new hold time"
            );
        }
        Next::Stopped => {
            assert!(net.h.ping().await.is_err(), "{name}: speaker stopped");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn the_state_event_table() {
    let rows = rows();
    let n = rows.len();
    for r in rows {
        run_row(r).await;
    }
    assert!(n >= 30, "{n} rows");
}
