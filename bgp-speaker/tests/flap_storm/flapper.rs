//! The flapping peer of `thousand_resets`: what its session `k`
//! announces, its OPEN's graceful restart, and the ten ways it ends a
//! session ([`reset`]).

use std::net::Ipv4Addr;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::common;
use super::common::flap::{
    announce, attrs, close_fin, close_rst, connect, expect, host, notification, Gr, PeerSide, V4,
};
use super::{Rig, BASE, FLAPPER, FLAPPER_AS};

/// Routes a few sessions announce on top.
const BIG: usize = 5000;

/// How session `k` of the flapping peer ends.
#[derive(Clone, Copy, Debug)]
enum Way {
    /// TCP RST (SO_LINGER 0).
    Rst,
    /// FIN, then read to the speaker's FIN.
    Fin,
    /// NOTIFICATION Cease/Administrative Shutdown, then FIN.
    CeaseShutdown,
    /// NOTIFICATION Cease/Administrative Reset (graceful with the N bit).
    CeaseReset,
    /// NOTIFICATION Cease/Hard Reset (RFC 8538: never graceful).
    HardReset,
    /// A second connection's OPEN while Established: with graceful
    /// restart it replaces the session (it is session k + 1), without it
    /// loses (Cease/7) and the session is then reset by a RST.
    Collision,
    /// Half an UPDATE, then RST.
    MidUpdateRst,
    /// Half an UPDATE, then FIN.
    MidUpdateFin,
    /// FIN; then a connection that resets (RST) in OpenSent.
    InOpenSent,
    /// RST; then a connection that resets in OpenConfirm.
    InOpenConfirm,
}

const RESET_WAYS: [Way; 10] = [
    Way::Rst,
    Way::Fin,
    Way::CeaseShutdown,
    Way::CeaseReset,
    Way::HardReset,
    Way::Collision,
    Way::MidUpdateRst,
    Way::MidUpdateFin,
    Way::InOpenSent,
    Way::InOpenConfirm,
];

// ===== the flapping peer =====

pub(crate) fn flapper(k: usize) -> PeerSide {
    PeerSide {
        addr: FLAPPER,
        asn: FLAPPER_AS,
        router_id: Ipv4Addr::new(10, 9, 5, 2),
        hold: 90,
        gr: match k % 3 {
            0 => Gr::Off,
            1 => Gr::On(120),
            _ => Gr::WithN(120),
        },
    }
}

fn big(k: usize) -> bool {
    k % 250 == 125
}

/// What session `k` announces: the shared base, one route of its own,
/// and for a few sessions 5,000 more.
pub(crate) fn session_routes(k: usize) -> Vec<V4> {
    let mut r: Vec<V4> = (0..BASE).map(|i| host(10, 100, 0, i)).collect();
    r.push(host(10, 200, (k >> 8) as u8, (k & 255) as u8));
    if big(k) {
        r.extend((0..BIG).map(|j| host(10, 150, (j >> 8) as u8, (j & 255) as u8)));
    }
    r
}

pub(crate) fn flapper_attrs() -> Vec<u8> {
    attrs(&[FLAPPER_AS], FLAPPER, None)
}

pub(crate) async fn send(s: &mut TcpStream, bytes: &[u8]) {
    // A write may fail when the speaker has closed the connection already.
    let _ = s.write_all(bytes).await;
}

/// Without graceful restart session `k`'s routes go at once: waits for
/// that, so that the next OPEN does not meet the old session (which would
/// win, RFC 4271 §6.8).
async fn withdrawn(rig: &mut Rig, k: usize) {
    if flapper(k).gr == Gr::Off {
        let what = format!("session {k} reset: routes withdrawn");
        rig.converged(&[], &what).await;
    }
}

/// Ends session `k` as `how`; returns session `k + 1` when the reset
/// itself brought it up (a collision won by the new connection).
pub(crate) async fn reset(rig: &mut Rig, k: usize, mut s: TcpStream) -> Option<TcpStream> {
    let how = RESET_WAYS[k % RESET_WAYS.len()];
    let side = flapper(k);
    let what = format!("session {k} ({how:?}, {:?})", side.gr);
    match how {
        Way::Rst => close_rst(s),
        Way::Fin => close_fin(s).await,
        Way::CeaseShutdown | Way::CeaseReset | Way::HardReset => {
            let n = match how {
                Way::CeaseShutdown => notification(6, 2, &[]),
                Way::CeaseReset => notification(6, 4, &[]),
                _ => notification(6, 9, &[6, 2]),
            };
            send(&mut s, &n).await;
            close_fin(s).await;
        }
        Way::Collision => {
            let mut b = connect(rig.addr, FLAPPER).await;
            send(&mut b, &common::flap::open(flapper(k + 1))).await;
            let o = expect(&mut b, 1, "the speaker's OPEN").await;
            o.unwrap_or_else(|e| panic!("{what}: {e}"));
            if side.gr != Gr::Off {
                let ka = expect(&mut b, 4, "KEEPALIVE (the peer restarted)").await;
                ka.unwrap_or_else(|e| panic!("{what}: {e}"));
                send(&mut b, &common::msg(4, &[])).await;
                close_rst(s);
                return Some(b);
            }
            let n = expect(&mut b, 3, "NOTIFICATION Cease/7 (the session wins)").await;
            let n = n.unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(n[..2], [6, 7], "{what}: the new connection loses");
            drop(b);
            close_rst(s);
        }
        Way::MidUpdateRst | Way::MidUpdateFin => {
            let u = announce(&flapper_attrs(), &[host(10, 201, 0, 1)]);
            send(&mut s, &u[..u.len() / 2]).await;
            if matches!(how, Way::MidUpdateRst) {
                close_rst(s);
            } else {
                close_fin(s).await;
            }
        }
        Way::InOpenSent => {
            close_fin(s).await;
            withdrawn(rig, k).await;
            let mut b = connect(rig.addr, FLAPPER).await;
            let o = expect(&mut b, 1, "the speaker's OPEN").await;
            o.unwrap_or_else(|e| panic!("{what}: {e}"));
            close_rst(b);
        }
        Way::InOpenConfirm => {
            close_rst(s);
            withdrawn(rig, k).await;
            let mut b = connect(rig.addr, FLAPPER).await;
            send(&mut b, &common::flap::open(flapper(k + 1))).await;
            for (t, m) in [(1, "the speaker's OPEN"), (4, "the speaker's KEEPALIVE")] {
                let r = expect(&mut b, t, m).await;
                r.unwrap_or_else(|e| panic!("{what}: {e}"));
            }
            close_rst(b);
        }
    }
    withdrawn(rig, k).await;
    None
}
