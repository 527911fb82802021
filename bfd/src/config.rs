//! What a session is configured with ([`SessionConfig`], [`Timers`]), the
//! key it is known by ([`SessionKey`]), and the checks that refuse a bad
//! configuration with an error naming the field, the value and the fix
//! ([`ConfigError`]).

use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// UDP destination port of single-hop Control packets (RFC 5881 §4).
pub const SINGLE_HOP_PORT: u16 = 3784;

/// UDP destination port of multihop Control packets (RFC 5883 §5).
pub const MULTIHOP_PORT: u16 = 4784;

/// UDP source ports of Control packets (RFC 5881 §4, RFC 5883 §5).
pub const SOURCE_PORTS: RangeInclusive<u16> = 49152..=65535;

/// TTL / Hop Limit of every packet we send, and of every single-hop packet
/// we accept (RFC 5881 §5).
pub const TTL: u8 = 255;

/// Shortest interval a session may be configured with. Ten milliseconds,
/// as FRR: below it a shared 2-core node cannot keep a steady beat.
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// Longest interval a session may be configured with (FRR's bound too).
pub const MAX_INTERVAL: Duration = Duration::from_secs(60);

/// Desired Min TX Interval while a session is not Up: at least one second
/// (RFC 5880 §6.8.3).
pub const SLOW_TX: Duration = Duration::from_secs(1);

/// The three timer parameters of a session (RFC 5880 §6.8.1
/// bfd.DesiredMinTxInterval, bfd.RequiredMinRxInterval, bfd.DetectMult).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Timers {
    /// How often we would like to send once Up.
    pub min_tx: Duration,
    /// How often we can receive: the peer sends no faster.
    pub min_rx: Duration,
    /// Detection multiplier: the peer declares us down after this many
    /// intervals without a packet from us.
    pub multiplier: u8,
}

/// Authentication types of RFC 5880 §4.2-4.4. None is implemented: a
/// configuration that asks for one is refused
/// ([`ConfigError::AuthUnsupported`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthType {
    /// 1: Simple Password.
    SimplePassword,
    /// 2: Keyed MD5.
    KeyedMd5,
    /// 3: Meticulous Keyed MD5.
    MeticulousKeyedMd5,
    /// 4: Keyed SHA1.
    KeyedSha1,
    /// 5: Meticulous Keyed SHA1.
    MeticulousKeyedSha1,
}

/// One BFD session to configure.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SessionConfig {
    /// The remote system's address.
    pub peer: IpAddr,
    /// Our address: the source of what we send and the destination of
    /// what we accept. Required for multihop; for single hop, `None`
    /// lets the kernel pick the source and accepts any destination.
    pub local: Option<IpAddr>,
    /// Single hop: the interface the peer is on. Required for an IPv6
    /// link-local peer; `None` accepts the peer on any interface.
    pub interface: Option<String>,
    /// RFC 5883 multihop (port 4784, no TTL 255 rule) instead of RFC 5881
    /// single hop (port 3784, TTL 255 sent and required).
    pub multihop: bool,
    /// Intervals and multiplier.
    pub timers: Timers,
    /// Multihop only: discard packets received with a TTL / Hop Limit
    /// below this (RFC 5883 §2 leaves the check to configuration).
    pub min_ttl: Option<u8>,
    /// Authentication: refused, none is implemented.
    pub auth: Option<AuthType>,
}

/// What names a session: add, remove and reconfigure use it. Two
/// sessions with the same key cannot coexist.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SessionKey {
    /// The remote system's address.
    pub peer: IpAddr,
    /// Our address, if configured.
    pub local: Option<IpAddr>,
    /// The interface, if configured.
    pub interface: Option<String>,
    /// Multihop or single hop.
    pub multihop: bool,
}

/// A configuration the service refuses.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// The detection multiplier is 0.
    #[error("multiplier 0: the detection multiplier must be 1-255 (3 is usual)")]
    MultiplierZero,
    /// An interval outside [`MIN_INTERVAL`]..=[`MAX_INTERVAL`].
    #[error("{field} {value:?} out of range: use {min:?} to {max:?}")]
    IntervalOutOfRange {
        /// `min_tx` or `min_rx`.
        field: &'static str,
        /// The configured value.
        value: Duration,
        /// Smallest allowed.
        min: Duration,
        /// Largest allowed.
        max: Duration,
    },
    /// The peer address cannot be a BFD peer.
    #[error("peer {peer}: not a unicast address; give the peer's own address")]
    BadPeer {
        /// The configured peer.
        peer: IpAddr,
    },
    /// Peer and local address of different families.
    #[error("local address {local} is not of the family of peer {peer}")]
    FamilyMismatch {
        /// The configured peer.
        peer: IpAddr,
        /// The configured local address.
        local: IpAddr,
    },
    /// The local address cannot be ours.
    #[error("local address {local}: not a unicast address; give one of ours or none")]
    BadLocal {
        /// The configured local address.
        local: IpAddr,
    },
    /// An IPv6 link-local peer without an interface.
    #[error("peer {peer} is link-local: name its interface")]
    LinkLocalNeedsInterface {
        /// The configured peer.
        peer: IpAddr,
    },
    /// A multihop session without a local address (RFC 5883 §3
    /// demultiplexes by source and destination address).
    #[error("multihop peer {peer}: set the local address (multihop sessions are known by both)")]
    MultihopNeedsLocal {
        /// The configured peer.
        peer: IpAddr,
    },
    /// An interface on a multihop session.
    #[error("multihop peer {peer}: an interface is for single-hop sessions only; remove it")]
    MultihopWithInterface {
        /// The configured peer.
        peer: IpAddr,
    },
    /// `min_ttl` on a single-hop session, which always requires 255.
    #[error("single-hop peer {peer}: min_ttl is for multihop sessions (single hop requires TTL 255); remove it")]
    MinTtlOnSingleHop {
        /// The configured peer.
        peer: IpAddr,
    },
    /// An interface name Linux would not accept.
    #[error(
        "interface {name:?}: not a valid interface name (1-15 bytes, no '/', ':' or whitespace)"
    )]
    BadInterface {
        /// The configured name.
        name: String,
    },
    /// The interface does not exist.
    #[error("interface {name:?} does not exist")]
    NoSuchInterface {
        /// The configured name.
        name: String,
    },
    /// Authentication was asked for.
    #[error("authentication ({kind:?}) is not implemented: remove it here and on the peer")]
    AuthUnsupported {
        /// What was asked for.
        kind: AuthType,
    },
}

// ===== impl Timers =====

impl Default for Timers {
    /// 300 ms both ways, multiplier 3 (FRR's defaults): detection in
    /// 900 ms.
    fn default() -> Timers {
        Timers {
            min_tx: Duration::from_millis(300),
            min_rx: Duration::from_millis(300),
            multiplier: 3,
        }
    }
}

impl Timers {
    /// Timers with the same interval both ways.
    pub fn new(interval: Duration, multiplier: u8) -> Timers {
        Timers {
            min_tx: interval,
            min_rx: interval,
            multiplier,
        }
    }

    /// Checks the multiplier and both intervals.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.multiplier == 0 {
            return Err(ConfigError::MultiplierZero);
        }
        for (field, value) in [("min_tx", self.min_tx), ("min_rx", self.min_rx)] {
            if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&value) {
                return Err(ConfigError::IntervalOutOfRange {
                    field,
                    value,
                    min: MIN_INTERVAL,
                    max: MAX_INTERVAL,
                });
            }
        }
        Ok(())
    }
}

// ===== impl SessionConfig =====

impl SessionConfig {
    /// A single-hop session to `peer` with default timers, any interface,
    /// the kernel's choice of source address.
    pub fn single_hop(peer: IpAddr) -> SessionConfig {
        SessionConfig {
            peer,
            local: None,
            interface: None,
            multihop: false,
            timers: Timers::default(),
            min_ttl: None,
            auth: None,
        }
    }

    /// A multihop session from `local` to `peer` with default timers.
    pub fn multihop(peer: IpAddr, local: IpAddr) -> SessionConfig {
        SessionConfig {
            local: Some(local),
            multihop: true,
            ..SessionConfig::single_hop(peer)
        }
    }

    /// The same with these timers.
    pub fn with_timers(mut self, timers: Timers) -> SessionConfig {
        self.timers = timers;
        self
    }

    /// The same with this local address.
    pub fn with_local(mut self, local: IpAddr) -> SessionConfig {
        self.local = Some(local);
        self
    }

    /// The same bound to this interface.
    pub fn with_interface(mut self, interface: &str) -> SessionConfig {
        self.interface = Some(interface.to_string());
        self
    }

    /// The key the session is known by.
    pub fn key(&self) -> SessionKey {
        SessionKey {
            peer: self.peer,
            local: self.local,
            interface: self.interface.clone(),
            multihop: self.multihop,
        }
    }

    /// Every check that needs no kernel (the interface's existence is
    /// checked when the session is added).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.timers.validate()?;
        if let Some(kind) = self.auth {
            return Err(ConfigError::AuthUnsupported { kind });
        }
        let peer = self.peer;
        if !is_unicast(peer) {
            return Err(ConfigError::BadPeer { peer });
        }
        if let Some(local) = self.local {
            if local.is_ipv4() != peer.is_ipv4() {
                return Err(ConfigError::FamilyMismatch { peer, local });
            }
            if !is_unicast(local) {
                return Err(ConfigError::BadLocal { local });
            }
        }
        if let Some(name) = &self.interface {
            if !valid_ifname(name) {
                return Err(ConfigError::BadInterface { name: name.clone() });
            }
        }
        if self.multihop {
            if self.local.is_none() {
                return Err(ConfigError::MultihopNeedsLocal { peer });
            }
            if self.interface.is_some() {
                return Err(ConfigError::MultihopWithInterface { peer });
            }
        } else {
            if self.min_ttl.is_some() {
                return Err(ConfigError::MinTtlOnSingleHop { peer });
            }
            if is_link_local(peer) && self.interface.is_none() {
                return Err(ConfigError::LinkLocalNeedsInterface { peer });
            }
        }
        Ok(())
    }
}

// ===== helpers =====

fn is_unicast(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(v4) => !(v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast()),
        IpAddr::V6(v6) => !(v6.is_unspecified() || v6.is_multicast()),
    }
}

/// An IPv6 link-local (fe80::/10) address.
pub(crate) fn is_link_local(a: IpAddr) -> bool {
    matches!(a, IpAddr::V6(v6) if v6.is_unicast_link_local())
}

fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() < 16
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn each_bad_field_is_named() {
        let peer: IpAddr = "10.0.0.2".parse().unwrap();
        let ok = SessionConfig::single_hop(peer);
        assert_eq!(ok.validate(), Ok(()));
        let cases: Vec<(SessionConfig, &str)> = vec![
            (
                ok.clone().with_timers(Timers::new(ms(100), 0)),
                "multiplier 0",
            ),
            (
                ok.clone().with_timers(Timers::new(ms(1), 3)),
                "min_tx 1ms out of range",
            ),
            (
                ok.clone().with_timers(Timers {
                    min_rx: Duration::from_secs(61),
                    ..Timers::default()
                }),
                "min_rx 61s out of range",
            ),
            (
                SessionConfig {
                    auth: Some(AuthType::KeyedSha1),
                    ..ok.clone()
                },
                "authentication (KeyedSha1) is not implemented",
            ),
            (
                SessionConfig::single_hop("224.0.0.1".parse().unwrap()),
                "not a unicast address",
            ),
            (
                ok.clone().with_local("fd00::1".parse().unwrap()),
                "not of the family",
            ),
            (
                SessionConfig::single_hop("fe80::1".parse().unwrap()),
                "link-local: name its interface",
            ),
            (
                SessionConfig {
                    multihop: true,
                    ..ok.clone()
                },
                "set the local address",
            ),
            (
                SessionConfig::multihop(peer, "10.0.0.1".parse().unwrap()).with_interface("eth0"),
                "single-hop sessions only",
            ),
            (
                SessionConfig {
                    min_ttl: Some(250),
                    ..ok.clone()
                },
                "min_ttl is for multihop",
            ),
            (ok.clone().with_interface("a/b"), "not a valid interface"),
            (
                ok.clone().with_interface("sixteen-chars-xx"),
                "not a valid interface",
            ),
        ];
        for (cfg, want) in cases {
            let err = cfg.validate().expect_err(want).to_string();
            assert!(err.contains(want), "{err:?} should say {want:?}");
        }
        let mh = SessionConfig {
            min_ttl: Some(250),
            ..SessionConfig::multihop(peer, "10.0.0.1".parse().unwrap())
        };
        assert_eq!(mh.validate(), Ok(()));
        let ll = SessionConfig::single_hop("fe80::1".parse().unwrap()).with_interface("eth0");
        assert_eq!(ll.validate(), Ok(()));
    }
}
