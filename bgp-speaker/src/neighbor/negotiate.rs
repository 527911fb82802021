//! OPEN handling that needs the session's configuration (RFC 4271 §6.2,
//! RFC 5492, RFC 6793): building our OPEN, checking the peer's, and what
//! the two agree on. Pure functions.

use std::net::Ipv4Addr;

use crate::packet::{
    Capabilities, GracefulRestartCap, Notification, Open, MAX_EXTENDED_LEN, MAX_LEN,
};
use crate::route::Afi;
use crate::status::Negotiated;

/// NOTIFICATION codes used by the session (RFC 4271 §4.5, RFC 4486).
pub mod code {
    pub const OPEN: u8 = 2;
    pub const HOLD_TIMER: u8 = 4;
    pub const FSM: u8 = 5;
    pub const CEASE: u8 = 6;
    /// RFC 9687: Send Hold Timer Expired.
    pub const SEND_HOLD_TIMER: u8 = 8;
    /// OPEN subcodes.
    pub const BAD_PEER_AS: u8 = 2;
    pub const BAD_BGP_ID: u8 = 3;
    /// Cease subcodes (RFC 4486, RFC 8538).
    pub const MAX_PREFIX: u8 = 1;
    pub const ADMIN_SHUTDOWN: u8 = 2;
    pub const PEER_DECONFIGURED: u8 = 3;
    pub const ADMIN_RESET: u8 = 4;
    pub const COLLISION: u8 = 7;
    pub const HARD_RESET: u8 = 9;
    /// RFC 9384: the BFD session went down.
    pub const BFD_DOWN: u8 = 10;
}

/// What we offer in our OPEN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalOffer {
    pub asn: u32,
    pub router_id: Ipv4Addr,
    pub hold_time: u16,
    pub families: Vec<Afi>,
    /// `Some` when graceful restart is enabled.
    pub graceful_restart: Option<GracefulRestartCap>,
}

/// The session parameters both sides agreed on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Agreed {
    pub hold_time: u16,
    pub keepalive: u16,
    pub families: Vec<Afi>,
    pub asn4: bool,
    pub max_len: usize,
    pub route_refresh: bool,
    /// The peer's graceful restart capability, when both sides do it.
    pub peer_gr: Option<GracefulRestartCap>,
    pub peer_router_id: Ipv4Addr,
}

// ===== impl LocalOffer =====

impl LocalOffer {
    /// Our OPEN message.
    pub fn open(&self) -> Open {
        Open {
            version: 4,
            asn: self.asn,
            hold_time: self.hold_time,
            router_id: self.router_id,
            capabilities: Capabilities {
                multiprotocol: self.families.clone(),
                four_octet_as: Some(self.asn),
                route_refresh: true,
                enhanced_route_refresh: false,
                graceful_restart: self.graceful_restart.clone(),
                extended_message: true,
                unknown: Vec::new(),
            },
        }
    }
}

/// Checks the peer's OPEN against what we expect of it and agrees on the
/// session parameters. The error is the NOTIFICATION to send.
pub fn check_open(
    local: &LocalOffer,
    expected_asn: u32,
    ibgp: bool,
    open: &Open,
) -> Result<Agreed, (Notification, String)> {
    if open.asn != expected_asn {
        return Err((
            Notification {
                code: code::OPEN,
                subcode: code::BAD_PEER_AS,
                data: bad_as_data(open.asn),
            },
            format!("peer AS is {}, configured {}", open.asn, expected_asn),
        ));
    }
    // RFC 6286 §2.2: for iBGP the identifiers must differ.
    if ibgp && open.router_id == local.router_id {
        return Err((
            Notification {
                code: code::OPEN,
                subcode: code::BAD_BGP_ID,
                data: open.router_id.octets().to_vec(),
            },
            format!("peer uses our own BGP identifier {}", open.router_id),
        ));
    }
    let caps = &open.capabilities;
    // RFC 4760 §8: a peer without the MP capability speaks IPv4 unicast.
    let offered: &[Afi] = if caps.multiprotocol.is_empty() {
        &[Afi::Ipv4]
    } else {
        &caps.multiprotocol
    };
    let families: Vec<Afi> = local
        .families
        .iter()
        .filter(|f| offered.contains(f))
        .copied()
        .collect();
    // RFC 4271 §4.2: the smaller hold time; 0 disables keepalives.
    let hold_time = local.hold_time.min(open.hold_time);
    let both_ext = caps.extended_message;
    Ok(Agreed {
        hold_time,
        keepalive: hold_time / 3,
        families,
        asn4: caps.four_octet_as.is_some(),
        max_len: if both_ext { MAX_EXTENDED_LEN } else { MAX_LEN },
        route_refresh: caps.route_refresh || caps.enhanced_route_refresh,
        peer_gr: local
            .graceful_restart
            .as_ref()
            .and(caps.graceful_restart.clone()),
        peer_router_id: open.router_id,
    })
}

/// Data of a Bad Peer AS NOTIFICATION: the AS from My AS (2 octets, as
/// RFC 4271 says; AS_TRANS for 4-octet ASNs).
fn bad_as_data(asn: u32) -> Vec<u8> {
    let two = u16::try_from(asn).unwrap_or(23456);
    two.to_be_bytes().to_vec()
}

// ===== impl Agreed =====

impl Agreed {
    /// The status view of what was negotiated.
    pub fn status(&self) -> Negotiated {
        Negotiated {
            hold_time: self.hold_time,
            keepalive: self.keepalive,
            families: self.families.clone(),
            four_octet_as: self.asn4,
            route_refresh: self.route_refresh,
            extended_message: self.max_len > MAX_LEN,
            graceful_restart: self.peer_gr.as_ref().map(|g| g.restart_time),
            peer_router_id: self.peer_router_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer() -> LocalOffer {
        LocalOffer {
            asn: 64512,
            router_id: Ipv4Addr::new(1, 1, 1, 1),
            hold_time: 90,
            families: vec![Afi::Ipv4, Afi::Ipv6],
            graceful_restart: Some(GracefulRestartCap {
                restart_time: 120,
                ..Default::default()
            }),
        }
    }

    fn peer_open(asn: u32, id: [u8; 4], hold: u16) -> Open {
        Open {
            version: 4,
            asn,
            hold_time: hold,
            router_id: Ipv4Addr::from(id),
            capabilities: Capabilities::default(),
        }
    }

    #[test]
    fn bad_peer_as_and_same_identifier() {
        let (n, why) =
            check_open(&offer(), 64512, true, &peer_open(65001, [2, 2, 2, 2], 90)).unwrap_err();
        assert_eq!((n.code, n.subcode, n.data), (2, 2, vec![0xfd, 0xe9]));
        assert!(why.contains("65001"), "{why}");
        let (n, _) =
            check_open(&offer(), 64512, true, &peer_open(64512, [1, 1, 1, 1], 90)).unwrap_err();
        assert_eq!((n.code, n.subcode), (2, 3));
        // eBGP may share an identifier (RFC 6286 allows it across ASes).
        assert!(check_open(&offer(), 64512, false, &peer_open(64512, [1, 1, 1, 1], 90)).is_ok());
    }

    #[test]
    fn agrees_on_smaller_hold_and_common_families() {
        let mut open = peer_open(64512, [2, 2, 2, 2], 30);
        let a = check_open(&offer(), 64512, true, &open).unwrap();
        assert_eq!((a.hold_time, a.keepalive), (30, 10));
        assert_eq!(
            a.families,
            vec![Afi::Ipv4],
            "no MP capability means IPv4 only"
        );
        assert_eq!(
            (a.asn4, a.max_len, a.peer_gr.is_some()),
            (false, MAX_LEN, false)
        );
        open.hold_time = 0;
        open.capabilities.multiprotocol = vec![Afi::Ipv6];
        open.capabilities.four_octet_as = Some(64512);
        open.capabilities.extended_message = true;
        open.capabilities.graceful_restart = Some(GracefulRestartCap::default());
        let a = check_open(&offer(), 64512, true, &open).unwrap();
        assert_eq!((a.hold_time, a.keepalive), (0, 0));
        assert_eq!(a.families, vec![Afi::Ipv6]);
        assert_eq!(
            (a.asn4, a.max_len, a.peer_gr.is_some()),
            (true, MAX_EXTENDED_LEN, true)
        );
    }
}
