//! `tunl0`, the IPIP device: exists, is up, carries one /32 of the node's
//! block, and has MTU = underlay MTU - 20. Reconciled: read the device, plan
//! the difference ([`plan`], pure), write only that (a second pass with
//! nothing changed writes nothing).
//!
//! # Where `tunl0` comes from
//!
//! `tunl0` is the IPIP module's fallback device: loading `ipip` creates one in
//! every network namespace (unless `net.core.fb_tunnels_only_for_init_net`
//! says otherwise). When it is missing, [`Tunl0::reconcile`] asks the kernel
//! to create it (`ip link add tunl0 type ipip`). The kernel loads the module
//! itself for that request if it can (`request_module("rtnl-link-ipip")`), so
//! no `modprobe` runs from here; a loaded module may then answer `EEXIST`
//! (it has just made the fallback device), which counts as success.
//!
//! # No IPIP in the kernel
//!
//! When the kernel knows no `ipip` link type (no module, no autoload), the
//! create fails with `EOPNOTSUPP`: [`IpipDevError::NoKernelSupport`]. It is
//! logged once per [`Tunl0`] (a warning), returned on every pass, and
//! nothing else depends on it: routes via `tunl0` then fail and are reported
//! by the route reconciler, every other route is programmed as usual.
//!
//! The caller passes an rtnetlink [`Handle`] opened in the node's network
//! namespace (felix's `kernel::open` does that from a setns'd thread).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use futures::TryStreamExt;
use nix::errno::Errno;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::link::{InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::{AddressMessageBuilder, Handle, LinkIpIp, LinkUnspec};

/// Name of the IPIP device (the module's fallback device).
pub const TUNL0: &str = "tunl0";
/// Bytes IPIP adds to every packet: the outer IPv4 header.
pub const IPIP_OVERHEAD: u32 = 20;
/// The smallest MTU IPv4 allows (RFC 791): the tunnel must keep at least this.
pub const MIN_IPV4_MTU: u32 = 68;

/// What `tunl0` should look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tunl0Spec {
    /// The tunnel address: one address of the node's block, configured as a
    /// /32 (the source of traffic from the node itself to remote pods).
    pub address: Ipv4Addr,
    /// The underlay interface (e.g. `eth0`) whose MTU the tunnel follows.
    pub underlay: String,
    /// Fixed tunnel MTU; `None` = underlay MTU - [`IPIP_OVERHEAD`].
    pub mtu: Option<u32>,
}

/// `tunl0` as the kernel has it (input of [`plan`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tunl0State {
    /// Interface index.
    pub index: u32,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// Current MTU.
    pub mtu: u32,
    /// IPv4 addresses with prefix length.
    pub addresses: Vec<(Ipv4Addr, u8)>,
}

/// One write [`plan`] asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tunl0Change {
    /// `ip addr del ADDR/LEN dev tunl0`: an address that is not ours.
    DelAddress(Ipv4Addr, u8),
    /// `ip addr add ADDR/32 dev tunl0`.
    AddAddress(Ipv4Addr),
    /// `ip link set tunl0 mtu MTU`.
    SetMtu(u32),
    /// `ip link set tunl0 up`.
    SetUp,
}

/// What one [`Tunl0::reconcile`] pass did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tunl0Report {
    /// Interface index of `tunl0`.
    pub index: u32,
    /// The pass created `tunl0` (it was missing).
    pub created: bool,
    /// The MTU the tunnel should have (and has now).
    pub mtu: u32,
    /// The changes applied after the device existed.
    pub changes: Vec<Tunl0Change>,
    /// Netlink writes made (create + changes): 0 when all was right.
    pub writes: usize,
}

/// Why `tunl0` could not be reconciled.
#[derive(Debug, thiserror::Error)]
pub enum IpipDevError {
    /// The kernel has no `ipip` link type.
    #[error(
        "kernel has no ipip module: IPIP routes cannot be programmed; non-IPIP \
         routing continues (load it on the host with `modprobe ipip`; creating \
         {TUNL0} failed: {source})"
    )]
    NoKernelSupport {
        /// The kernel's answer to `ip link add tunl0 type ipip`.
        source: rtnetlink::Error,
    },
    /// An interface named `tunl0` exists but is not an IPIP device.
    #[error(
        "interface {TUNL0} exists but is of kind {kind}, not ipip: remove or \
         rename it so the IPIP fallback device can exist"
    )]
    NotIpip {
        /// The kind the kernel reports (`veth`, `none`, ...).
        kind: String,
    },
    /// The underlay interface does not exist.
    #[error(
        "underlay interface {underlay} does not exist: set the node's underlay interface name"
    )]
    UnderlayMissing {
        /// The name looked for.
        underlay: String,
    },
    /// The tunnel MTU would be below the IPv4 minimum.
    #[error(
        "tunnel MTU {mtu} (from {from}) is below the IPv4 minimum of \
         {MIN_IPV4_MTU}: raise the underlay MTU or the configured tunnel MTU"
    )]
    MtuTooSmall {
        /// The resulting tunnel MTU.
        mtu: u32,
        /// Where it came from (`underlay eth0 MTU 80 - 20`, `configured`).
        from: String,
    },
    /// The tunnel address cannot be an interface address.
    #[error(
        "tunnel address {address} is not a usable unicast address: give one \
         address of the node's block"
    )]
    BadAddress {
        /// The address given.
        address: Ipv4Addr,
    },
    /// A netlink request failed.
    #[error("{TUNL0}: {what} failed: {source}")]
    Netlink {
        /// The step, with its `ip` equivalent.
        what: String,
        /// The cause.
        source: rtnetlink::Error,
    },
}

/// Keeps `tunl0` as a [`Tunl0Spec`] says, pass after pass.
#[derive(Debug)]
pub struct Tunl0 {
    spec: Tunl0Spec,
    unsupported_warnings: u32,
}

/// The tunnel MTU for an underlay MTU: `underlay - 20`, at least 68.
pub fn tunnel_mtu(underlay: &str, underlay_mtu: u32) -> Result<u32, IpipDevError> {
    let mtu = underlay_mtu.saturating_sub(IPIP_OVERHEAD);
    if mtu < MIN_IPV4_MTU {
        return Err(IpipDevError::MtuTooSmall {
            mtu,
            from: format!("underlay {underlay} MTU {underlay_mtu} - {IPIP_OVERHEAD}"),
        });
    }
    Ok(mtu)
}

/// The writes that turn `state` into `address`/32 only, `mtu`, up. Empty
/// when nothing differs. Stray addresses go first so the kernel never holds
/// two of ours at once.
pub fn plan(state: &Tunl0State, address: Ipv4Addr, mtu: u32) -> Vec<Tunl0Change> {
    let mut changes: Vec<Tunl0Change> = state
        .addresses
        .iter()
        .filter(|&&(a, len)| (a, len) != (address, 32))
        .map(|&(a, len)| Tunl0Change::DelAddress(a, len))
        .collect();
    if !state.addresses.contains(&(address, 32)) {
        changes.push(Tunl0Change::AddAddress(address));
    }
    if state.mtu != mtu {
        changes.push(Tunl0Change::SetMtu(mtu));
    }
    if !state.up {
        changes.push(Tunl0Change::SetUp);
    }
    changes
}

// ===== impl Tunl0 =====

impl Tunl0 {
    /// A manager for `spec`; refuses an unusable address or a fixed MTU
    /// below the IPv4 minimum.
    pub fn new(spec: Tunl0Spec) -> Result<Self, IpipDevError> {
        let a = spec.address;
        if a.is_unspecified() || a.is_loopback() || a.is_multicast() || a.is_broadcast() {
            return Err(IpipDevError::BadAddress { address: a });
        }
        if let Some(mtu) = spec.mtu.filter(|m| *m < MIN_IPV4_MTU) {
            return Err(IpipDevError::MtuTooSmall {
                mtu,
                from: "configured".into(),
            });
        }
        Ok(Tunl0 {
            spec,
            unsupported_warnings: 0,
        })
    }

    /// The spec this manager keeps.
    pub fn spec(&self) -> &Tunl0Spec {
        &self.spec
    }

    /// How often the "no ipip module" warning was logged: at most once.
    pub fn unsupported_warnings(&self) -> u32 {
        self.unsupported_warnings
    }

    /// One pass through `handle` (a connection in the node's namespace):
    /// create `tunl0` if missing, then fix addresses, MTU and state.
    ///
    /// `ip link add tunl0 type ipip` (if missing); `ip addr del`/`add ...
    /// dev tunl0`; `ip link set tunl0 mtu M up`.
    pub async fn reconcile(&mut self, handle: &Handle) -> Result<Tunl0Report, IpipDevError> {
        let result = self.pass(handle).await;
        if let Err(e @ IpipDevError::NoKernelSupport { .. }) = &result {
            if self.unsupported_warnings == 0 {
                tracing::warn!(device = TUNL0, "{e}");
                self.unsupported_warnings += 1;
            }
        }
        result
    }

    async fn pass(&self, handle: &Handle) -> Result<Tunl0Report, IpipDevError> {
        let mtu = match self.spec.mtu {
            Some(mtu) => mtu,
            None => {
                let underlay = get_link(handle, &self.spec.underlay)
                    .await?
                    .ok_or_else(|| IpipDevError::UnderlayMissing {
                        underlay: self.spec.underlay.clone(),
                    })?;
                tunnel_mtu(&self.spec.underlay, link_mtu(&underlay))?
            }
        };
        let mut created = false;
        let link = match get_link(handle, TUNL0).await? {
            Some(link) => link,
            None => {
                created = create(handle, mtu).await?;
                get_link(handle, TUNL0)
                    .await?
                    .ok_or_else(|| IpipDevError::Netlink {
                        what: format!("look-up after `ip link add {TUNL0} type ipip`"),
                        source: rtnetlink::Error::RequestFailed,
                    })?
            }
        };
        let kind = link_kind(&link);
        if kind.as_deref() != Some("ipip") {
            return Err(IpipDevError::NotIpip {
                kind: kind.unwrap_or_else(|| "none".into()),
            });
        }
        let state = Tunl0State {
            index: link.header.index,
            up: link.header.flags.contains(LinkFlags::Up),
            mtu: link_mtu(&link),
            addresses: addresses(handle, link.header.index).await?,
        };
        let changes = plan(&state, self.spec.address, mtu);
        for change in &changes {
            apply(handle, state.index, *change).await?;
        }
        Ok(Tunl0Report {
            index: state.index,
            created,
            mtu,
            writes: changes.len() + usize::from(created),
            changes,
        })
    }
}

// ===== impl Tunl0Change =====

impl fmt::Display for Tunl0Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tunl0Change::DelAddress(a, len) => write!(f, "ip addr del {a}/{len} dev {TUNL0}"),
            Tunl0Change::AddAddress(a) => write!(f, "ip addr add {a}/32 dev {TUNL0}"),
            Tunl0Change::SetMtu(mtu) => write!(f, "ip link set {TUNL0} mtu {mtu}"),
            Tunl0Change::SetUp => write!(f, "ip link set {TUNL0} up"),
        }
    }
}

// ===== helpers =====

fn errno(e: &rtnetlink::Error) -> Option<Errno> {
    match e {
        rtnetlink::Error::NetlinkError(m) => Some(Errno::from_raw(m.raw_code().abs())),
        _ => None,
    }
}

/// `ip link show NAME`: `None` when it does not exist.
async fn get_link(handle: &Handle, name: &str) -> Result<Option<LinkMessage>, IpipDevError> {
    let mut found = handle.link().get().match_name(name.to_owned()).execute();
    match found.try_next().await {
        Ok(link) => Ok(link),
        Err(e) if errno(&e) == Some(Errno::ENODEV) => Ok(None),
        Err(source) => Err(IpipDevError::Netlink {
            what: format!("`ip link show {name}`"),
            source,
        }),
    }
}

/// `ip link add tunl0 type ipip mtu M up`. `Ok(true)` if this request made
/// it, `Ok(false)` if it appeared meanwhile (module autoload made the
/// fallback device).
async fn create(handle: &Handle, mtu: u32) -> Result<bool, IpipDevError> {
    let msg = LinkIpIp::new(TUNL0).mtu(mtu).up().build();
    match handle.link().add(msg).execute().await {
        Ok(()) => Ok(true),
        Err(e) if errno(&e) == Some(Errno::EEXIST) => Ok(false),
        Err(source) if errno(&source) == Some(Errno::EOPNOTSUPP) => {
            Err(IpipDevError::NoKernelSupport { source })
        }
        Err(source) => Err(IpipDevError::Netlink {
            what: format!("`ip link add {TUNL0} type ipip`"),
            source,
        }),
    }
}

fn link_mtu(link: &LinkMessage) -> u32 {
    link.attributes
        .iter()
        .find_map(|a| match a {
            LinkAttribute::Mtu(m) => Some(*m),
            _ => None,
        })
        .unwrap_or(0)
}

/// The link's kind as `ip -d link` names it, if it has one.
fn link_kind(link: &LinkMessage) -> Option<String> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
            LinkInfo::Kind(InfoKind::IpIp) => Some("ipip".to_owned()),
            LinkInfo::Kind(k) => Some(k.to_string()),
            _ => None,
        }),
        _ => None,
    })
}

/// `ip -4 addr show dev tunl0`.
async fn addresses(handle: &Handle, index: u32) -> Result<Vec<(Ipv4Addr, u8)>, IpipDevError> {
    let mut req = handle.address().get().set_link_index_filter(index);
    req.message_mut().header.family = AddressFamily::Inet;
    let msgs: Vec<AddressMessage> =
        req.execute()
            .try_collect()
            .await
            .map_err(|source| IpipDevError::Netlink {
                what: format!("`ip -4 addr show dev {TUNL0}`"),
                source,
            })?;
    Ok(msgs
        .iter()
        .filter(|m| m.header.index == index)
        .filter_map(|m| {
            let local = m.attributes.iter().find_map(|a| match a {
                AddressAttribute::Local(IpAddr::V4(v4)) => Some(*v4),
                _ => None,
            });
            let addr = local.or_else(|| {
                m.attributes.iter().find_map(|a| match a {
                    AddressAttribute::Address(IpAddr::V4(v4)) => Some(*v4),
                    _ => None,
                })
            })?;
            Some((addr, m.header.prefix_len))
        })
        .collect())
}

async fn apply(handle: &Handle, index: u32, change: Tunl0Change) -> Result<(), IpipDevError> {
    let result = match change {
        Tunl0Change::DelAddress(a, len) => {
            let msg = AddressMessageBuilder::<Ipv4Addr>::new()
                .index(index)
                .address(a, len)
                .build();
            match handle.address().del(msg).execute().await {
                // Already gone: what we wanted.
                Err(e) if errno(&e) == Some(Errno::EADDRNOTAVAIL) => Ok(()),
                other => other,
            }
        }
        Tunl0Change::AddAddress(a) => {
            match handle.address().add(index, a.into(), 32).execute().await {
                Err(e) if errno(&e) == Some(Errno::EEXIST) => Ok(()),
                other => other,
            }
        }
        Tunl0Change::SetMtu(mtu) => {
            let msg = LinkUnspec::new_with_index(index).mtu(mtu).build();
            handle.link().set(msg).execute().await
        }
        Tunl0Change::SetUp => {
            let msg = LinkUnspec::new_with_index(index).up().build();
            handle.link().set(msg).execute().await
        }
    };
    result.map_err(|source| IpipDevError::Netlink {
        what: format!("`{change}`"),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn state(up: bool, mtu: u32, addrs: &[(&str, u8)]) -> Tunl0State {
        Tunl0State {
            index: 7,
            up,
            mtu,
            addresses: addrs.iter().map(|(a, l)| (v4(a), *l)).collect(),
        }
    }

    #[test]
    fn plan_is_empty_when_all_is_right() {
        let s = state(true, 1480, &[("10.244.3.1", 32)]);
        assert_eq!(plan(&s, v4("10.244.3.1"), 1480), vec![]);
    }

    #[test]
    fn plan_fixes_everything_of_a_fresh_fallback_device() {
        // What `modprobe ipip` leaves: down, MTU 1480, no address.
        let s = state(false, 1480, &[]);
        assert_eq!(
            plan(&s, v4("10.244.3.1"), 1380),
            vec![
                Tunl0Change::AddAddress(v4("10.244.3.1")),
                Tunl0Change::SetMtu(1380),
                Tunl0Change::SetUp,
            ]
        );
    }

    #[test]
    fn plan_removes_stray_addresses_first_and_keeps_ours() {
        let s = state(
            true,
            1480,
            &[("10.99.0.1", 32), ("10.244.3.1", 32), ("10.244.3.1", 24)],
        );
        assert_eq!(
            plan(&s, v4("10.244.3.1"), 1480),
            vec![
                Tunl0Change::DelAddress(v4("10.99.0.1"), 32),
                Tunl0Change::DelAddress(v4("10.244.3.1"), 24),
            ]
        );
    }

    #[test]
    fn mtu_is_underlay_minus_20_and_never_below_68() {
        assert_eq!(tunnel_mtu("eth0", 1500).unwrap(), 1480);
        assert_eq!(tunnel_mtu("eth0", 9000).unwrap(), 8980);
        assert_eq!(tunnel_mtu("eth0", 88).unwrap(), 68);
        let err = tunnel_mtu("eth0", 87).unwrap_err();
        assert!(
            matches!(err, IpipDevError::MtuTooSmall { mtu: 67, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("underlay eth0 MTU 87"), "{err}");
        assert!(tunnel_mtu("eth0", 0).is_err());
    }

    #[test]
    fn new_rejects_unusable_addresses_and_tiny_mtu() {
        let spec = |a: &str, mtu| Tunl0Spec {
            address: v4(a),
            underlay: "eth0".into(),
            mtu,
        };
        for bad in ["0.0.0.0", "127.0.0.1", "224.0.0.5", "255.255.255.255"] {
            let err = Tunl0::new(spec(bad, None)).unwrap_err();
            assert!(err.to_string().contains(bad), "{err}");
        }
        let err = Tunl0::new(spec("10.244.3.1", Some(60))).unwrap_err();
        assert!(err.to_string().contains("configured"), "{err}");
        let t = Tunl0::new(spec("10.244.3.1", Some(1400))).unwrap();
        assert_eq!(t.spec().mtu, Some(1400));
        assert_eq!(t.unsupported_warnings(), 0);
    }

    #[test]
    fn changes_print_as_ip_commands() {
        assert_eq!(
            Tunl0Change::DelAddress(v4("10.99.0.1"), 24).to_string(),
            "ip addr del 10.99.0.1/24 dev tunl0"
        );
        assert_eq!(
            Tunl0Change::AddAddress(v4("10.244.3.1")).to_string(),
            "ip addr add 10.244.3.1/32 dev tunl0"
        );
        assert_eq!(
            Tunl0Change::SetMtu(1480).to_string(),
            "ip link set tunl0 mtu 1480"
        );
        assert_eq!(Tunl0Change::SetUp.to_string(), "ip link set tunl0 up");
    }

    #[test]
    fn no_support_message_says_what_continues() {
        let e = IpipDevError::NoKernelSupport {
            source: rtnetlink::Error::RequestFailed,
        };
        let s = e.to_string();
        assert!(
            s.starts_with(
                "kernel has no ipip module: IPIP routes cannot be programmed; \
                 non-IPIP routing continues"
            ),
            "{s}"
        );
    }
}
