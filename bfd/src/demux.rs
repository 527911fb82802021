//! Which session a received packet is for (RFC 5880 §6.3, §6.8.6; RFC
//! 5881 §3, §5; RFC 5883 §3), and the reception checks that need the
//! session: the packet names a session by Your Discriminator; before the
//! remote knows ours (Your Discriminator 0) it is found by its source
//! address and interface (single hop) or source and destination address
//! (multihop). Then the TTL (255 for single hop, the configured minimum
//! for multihop) and the A bit (no session of ours uses authentication).
//!
//! Pure: the service keeps one [`Demux`] beside its sessions.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use crate::config::TTL;
use crate::counters::DiscardReason;
use crate::packet::ControlPacket;

/// Where a datagram came from and how (from the socket's ancillary data).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxMeta {
    /// Source address and port.
    pub src: SocketAddr,
    /// Destination address (IP_PKTINFO / IPV6_PKTINFO), if known.
    pub dst: Option<IpAddr>,
    /// Interface it arrived on, if known.
    pub ifindex: Option<u32>,
    /// Received TTL / Hop Limit, if known.
    pub ttl: Option<u8>,
    /// Arrived on the multihop port (4784) rather than 3784.
    pub multihop: bool,
}

/// How a session's packets are recognised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Path {
    /// The peer's address.
    pub peer: IpAddr,
    /// Our address, if configured: packets must be sent to it.
    pub local: Option<IpAddr>,
    /// The interface's index, if configured: packets must arrive on it.
    pub ifindex: Option<u32>,
    /// RFC 5883 multihop.
    pub multihop: bool,
    /// Multihop: lowest TTL accepted.
    pub min_ttl: Option<u8>,
}

/// Sessions by discriminator and by address.
#[derive(Debug, Default)]
pub struct Demux {
    by_discr: HashMap<u32, Path>,
    /// Single hop: peer -> (ifindex, discriminator) of its sessions.
    single: HashMap<IpAddr, Vec<(Option<u32>, u32)>>,
    /// Multihop: (peer, local) -> discriminator.
    multi: HashMap<(IpAddr, IpAddr), u32>,
}

// ===== impl Path =====

impl Path {
    /// Whether a packet with `meta` can belong to this session.
    fn matches(&self, meta: &RxMeta) -> bool {
        meta.multihop == self.multihop
            && meta.src.ip() == self.peer
            && match (self.local, meta.dst) {
                (Some(l), Some(d)) => l == d,
                _ => true,
            }
            && match (self.ifindex, meta.ifindex) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }

    /// RFC 5881 §5: exactly 255 for single hop; RFC 5883 §2: whatever
    /// the configuration asks for multihop.
    fn ttl_ok(&self, ttl: Option<u8>) -> bool {
        match (self.multihop, ttl) {
            (false, Some(t)) => t == TTL,
            (false, None) => false,
            (true, t) => self.min_ttl.is_none_or(|min| t.is_some_and(|t| t >= min)),
        }
    }

    /// Two sessions the address lookup could not tell apart.
    fn conflicts(&self, other: &Path) -> bool {
        if self.peer != other.peer || self.multihop != other.multihop {
            return false;
        }
        if self.multihop {
            return self.local == other.local;
        }
        match (self.ifindex, other.ifindex) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        }
    }
}

// ===== impl Demux =====

impl Demux {
    /// The discriminator of a session with a conflicting path, if any.
    pub fn conflict(&self, path: &Path) -> Option<u32> {
        self.by_discr
            .iter()
            .find(|(_, p)| p.conflicts(path))
            .map(|(d, _)| *d)
    }

    /// Whether a discriminator is taken.
    pub fn contains(&self, discr: u32) -> bool {
        self.by_discr.contains_key(&discr)
    }

    /// Adds a session (the caller checked [`Demux::conflict`]).
    pub fn insert(&mut self, discr: u32, path: Path) {
        if path.multihop {
            if let Some(local) = path.local {
                self.multi.insert((path.peer, local), discr);
            }
        } else {
            self.single
                .entry(path.peer)
                .or_default()
                .push((path.ifindex, discr));
        }
        self.by_discr.insert(discr, path);
    }

    /// Removes a session.
    pub fn remove(&mut self, discr: u32) {
        let Some(path) = self.by_discr.remove(&discr) else {
            return;
        };
        if let Some(local) = path.local.filter(|_| path.multihop) {
            self.multi.remove(&(path.peer, local));
        }
        if let Some(v) = self.single.get_mut(&path.peer) {
            v.retain(|(_, d)| *d != discr);
            if v.is_empty() {
                self.single.remove(&path.peer);
            }
        }
    }

    /// The session `pkt` is for, after every check of §6.8.6 (and RFC
    /// 5881 §5) that needs one, or why it is discarded.
    pub fn find(&self, pkt: &ControlPacket, meta: &RxMeta) -> Result<u32, DiscardReason> {
        let discr = if pkt.your_discr != 0 {
            let path = self
                .by_discr
                .get(&pkt.your_discr)
                .ok_or(DiscardReason::UnknownDiscriminator)?;
            if !path.matches(meta) {
                return Err(DiscardReason::SessionMismatch);
            }
            pkt.your_discr
        } else {
            self.by_address(meta).ok_or(DiscardReason::NoSession)?
        };
        let path = &self.by_discr[&discr];
        if !path.ttl_ok(meta.ttl) {
            return Err(DiscardReason::BadTtl);
        }
        if pkt.flags.auth {
            return Err(DiscardReason::AuthMismatch);
        }
        Ok(discr)
    }

    fn by_address(&self, meta: &RxMeta) -> Option<u32> {
        let peer = meta.src.ip();
        let discr = if meta.multihop {
            *self.multi.get(&(peer, meta.dst?))?
        } else {
            let v = self.single.get(&peer)?;
            // An interface-bound session first, then one for any interface.
            v.iter()
                .find(|(i, _)| i.is_some() && *i == meta.ifindex)
                .or_else(|| v.iter().find(|(i, _)| i.is_none()))?
                .1
        };
        self.by_discr[&discr].matches(meta).then_some(discr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{Diag, Flags, State};

    fn pkt(your: u32) -> ControlPacket {
        ControlPacket {
            diag: Diag::None,
            state: State::Down,
            flags: Flags::default(),
            detect_mult: 3,
            my_discr: 9,
            your_discr: your,
            desired_min_tx: 1_000_000,
            required_min_rx: 1_000_000,
            required_min_echo_rx: 0,
            auth_type: None,
        }
    }

    fn meta(src: &str, ifindex: u32, ttl: u8, multihop: bool) -> RxMeta {
        RxMeta {
            src: SocketAddr::new(src.parse().unwrap(), 49152),
            dst: Some("10.0.0.1".parse().unwrap()),
            ifindex: Some(ifindex),
            ttl: Some(ttl),
            multihop,
        }
    }

    fn path(peer: &str, ifindex: Option<u32>, multihop: bool) -> Path {
        Path {
            peer: peer.parse().unwrap(),
            local: Some("10.0.0.1".parse().unwrap()),
            ifindex,
            multihop,
            min_ttl: multihop.then_some(250),
        }
    }

    #[test]
    fn finds_by_discriminator_then_by_address_and_says_why_not() {
        let mut d = Demux::default();
        d.insert(1, path("10.0.0.2", None, false));
        d.insert(2, path("10.0.0.3", Some(7), false));
        d.insert(3, path("10.0.0.2", None, true));
        let cases = [
            (pkt(1), meta("10.0.0.2", 5, 255, false), Ok(1)),
            (pkt(0), meta("10.0.0.2", 5, 255, false), Ok(1)),
            (pkt(0), meta("10.0.0.3", 7, 255, false), Ok(2)),
            (pkt(0), meta("10.0.0.2", 5, 251, true), Ok(3)),
            (
                pkt(0),
                meta("10.0.0.3", 8, 255, false),
                Err(DiscardReason::NoSession),
            ),
            (
                pkt(0),
                meta("10.0.0.9", 5, 255, false),
                Err(DiscardReason::NoSession),
            ),
            (
                pkt(42),
                meta("10.0.0.2", 5, 255, false),
                Err(DiscardReason::UnknownDiscriminator),
            ),
            (
                pkt(2),
                meta("10.0.0.3", 8, 255, false),
                Err(DiscardReason::SessionMismatch),
            ),
            (
                pkt(1),
                meta("10.0.0.3", 5, 255, false),
                Err(DiscardReason::SessionMismatch),
            ),
            (
                pkt(1),
                meta("10.0.0.2", 5, 255, true),
                Err(DiscardReason::SessionMismatch),
            ),
            (
                pkt(1),
                meta("10.0.0.2", 5, 254, false),
                Err(DiscardReason::BadTtl),
            ),
            (
                pkt(3),
                meta("10.0.0.2", 5, 249, true),
                Err(DiscardReason::BadTtl),
            ),
            (
                ControlPacket {
                    flags: Flags {
                        auth: true,
                        ..Flags::default()
                    },
                    ..pkt(1)
                },
                meta("10.0.0.2", 5, 255, false),
                Err(DiscardReason::AuthMismatch),
            ),
        ];
        for (i, (p, m, want)) in cases.iter().enumerate() {
            assert_eq!(d.find(p, m), *want, "case {i}");
        }
        let mut wrong_dst = meta("10.0.0.2", 5, 255, false);
        wrong_dst.dst = Some("10.0.0.99".parse().unwrap());
        assert_eq!(
            d.find(&pkt(1), &wrong_dst),
            Err(DiscardReason::SessionMismatch)
        );
        d.remove(1);
        assert_eq!(
            d.find(&pkt(0), &meta("10.0.0.2", 5, 255, false)),
            Err(DiscardReason::NoSession)
        );
        assert!(!d.single.contains_key(&"10.0.0.2".parse().unwrap()));
    }

    #[test]
    fn conflicting_paths_are_found() {
        let mut d = Demux::default();
        d.insert(1, path("10.0.0.2", Some(3), false));
        assert_eq!(d.conflict(&path("10.0.0.2", None, false)), Some(1));
        assert_eq!(d.conflict(&path("10.0.0.2", Some(3), false)), Some(1));
        assert_eq!(d.conflict(&path("10.0.0.2", Some(4), false)), None);
        assert_eq!(d.conflict(&path("10.0.0.2", None, true)), None);
    }
}
