//! The kernel side: rtnetlink connections in a network namespace, the dump of
//! our routes, and the one executor that writes them.
//!
//! # Our route protocol number: 116
//!
//! Every route felix writes carries `rtm_protocol` [`TORTIE_RT_PROTO`] = 116
//! (`ip route ... proto 116`; `t`, for Tortie, in ASCII). The dump asks the
//! kernel for this protocol only (strict checking) and filters again on our
//! side; every delete carries it too, so the kernel itself refuses to delete
//! another protocol's route with the same prefix.
//!
//! Why 116: it must not collide with numbers other route writers on a node
//! use. Taken (checked in `/etc/iproute2/rt_protos` and `rt_protos.d/` of
//! Debian 12, the kernel's `rtnetlink.h`, and the projects we coexist with):
//! 0-4 kernel/boot/static, 8-16 (gated, ra, mrt, zebra, bird 12, dnrouted,
//! xorp, ntk, dhcp), 17 kube-router, 18 keepalived, 42 babel, 80 Calico
//! (felix), 99 openr, 186-197 FRR (bgp, isis, ospf, rip, ripng, nhrp, eigrp,
//! ldp, sharp, pbr, static, openfabric). 116 is in none of these lists. An
//! operator can name it: `echo "116 tortie" >> /etc/iproute2/rt_protos.d/tortie.conf`.
//!
//! # Network namespaces
//!
//! rtnetlink has no "open in namespace" helper. A netlink socket belongs to
//! the network namespace of the thread that created it, for its whole life,
//! whichever thread uses it later. So [`open`] starts a throwaway std thread,
//! `setns(2)`s it into the namespace, creates the connections there (inside
//! the caller's tokio runtime context, so the sockets register with its
//! reactor), and returns them. A tokio worker thread is never moved.

pub mod apply;
pub mod dump;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use futures::channel::mpsc::UnboundedReceiver;
use futures::StreamExt;
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::sys::{AsyncSocket, SocketAddr};
use rtnetlink::{Handle, MulticastGroup};

/// Route protocol number of every route felix writes (see the module docs).
pub const TORTIE_RT_PROTO: u8 = 116;

/// Receive buffer asked for the notification socket.
pub const MONITOR_RCVBUF: usize = 8 << 20;

/// The main routing table (`RT_TABLE_MAIN`): felix only uses this one.
pub const MAIN_TABLE: u8 = 254;

/// Errors of the kernel layer. Per-route failures are not errors of this
/// type: they are reported in an [`apply::ApplyReport`].
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// The namespace file could not be opened or entered.
    #[error("cannot enter network namespace {path}: {source}")]
    Netns {
        /// The namespace path (e.g. `/run/netns/node-a`).
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A netlink socket could not be created or configured.
    #[error("cannot open netlink socket{}: {source}", netns_suffix(.netns))]
    Socket {
        /// The namespace, if not the caller's.
        netns: Option<PathBuf>,
        /// The cause.
        source: std::io::Error,
    },
    /// A dump request failed as a whole.
    #[error("netlink dump of {what} failed: {source}")]
    Dump {
        /// What was dumped (`IPv4 routes proto 116`, `links`).
        what: String,
        /// The cause.
        source: rtnetlink::Error,
    },
}

/// A change the kernel announced on the multicast groups felix listens to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelEvent {
    /// A route was added or changed (any protocol; the message is raw).
    NewRoute(Box<rtnetlink::packet_route::route::RouteMessage>),
    /// A route was deleted.
    DelRoute(Box<rtnetlink::packet_route::route::RouteMessage>),
    /// A link appeared, changed or went away: interface indexes and
    /// link-down route flushes (which the kernel does not announce per route).
    Link {
        /// Its interface index.
        index: u32,
        /// Its name (every link notification carries one; `None` only for
        /// a malformed message).
        name: Option<String>,
        /// It went away (`RTM_DELLINK`).
        gone: bool,
        /// It is administratively up (`IFF_UP`): the kernel refuses routes
        /// on a link that is down.
        up: bool,
    },
    /// An address was added to or removed from interface `index` (a
    /// changed node address changes which next hops are on-link).
    Address {
        /// The interface.
        index: u32,
    },
    /// The notification socket overflowed (ENOBUFS): notifications were
    /// lost, only a full resync is safe.
    Overrun,
    /// A neighbour or FDB entry on interface `ifindex` was added, changed or
    /// deleted (for `vxlan.tortie`'s entries).
    Neighbour {
        /// The interface.
        ifindex: u32,
    },
}

/// The connections felix uses in one namespace.
pub struct Kernel {
    /// Request connection (strict checking on), used by the dump and the
    /// executor.
    pub handle: Handle,
    /// Notifications (route v4/v6, link, neighbour) from the namespace.
    pub events: KernelEvents,
    /// The namespace, for messages.
    pub netns: Option<PathBuf>,
}

/// Stream of [`KernelEvent`]s from the namespace. It ends when the
/// connection ends.
pub struct KernelEvents {
    rx: UnboundedReceiver<(NetlinkMessage<RouteNetlinkMessage>, SocketAddr)>,
}

/// Interface index <-> name, from a link dump.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Links {
    by_name: HashMap<String, u32>,
    by_index: HashMap<u32, String>,
    /// The interfaces known to be down (not `IFF_UP`).
    down: HashSet<u32>,
}

/// Opens felix's netlink connections in `netns` (a path such as
/// `/run/netns/NAME`), or in the caller's namespace for `None`. Must be
/// called inside a tokio runtime; spawns the connection tasks on it.
pub fn open(netns: Option<&Path>) -> Result<Kernel, KernelError> {
    let runtime = tokio::runtime::Handle::current();
    let path = netns.map(Path::to_path_buf);
    let ns = path.clone();
    let opened = std::thread::spawn(move || {
        let _guard = runtime.enter();
        crate::netns::enter(ns.as_deref()).map_err(|e| KernelError::Netns {
            path: e.path,
            source: e.source,
        })?;
        let socket_err = |source| KernelError::Socket {
            netns: ns.clone(),
            source,
        };
        let requests = rtnetlink::new_connection_with_strict_check().map_err(socket_err)?;
        let groups = [
            MulticastGroup::Ipv4Route,
            MulticastGroup::Ipv6Route,
            MulticastGroup::Link,
            MulticastGroup::Neigh,
            MulticastGroup::Ipv4Ifaddr,
            MulticastGroup::Ipv6Ifaddr,
        ];
        let mut monitor = rtnetlink::new_multicast_connection(&groups).map_err(socket_err)?;
        // Best effort (capped by net.core.rmem_max): fewer overruns when a
        // large batch of our own writes echoes back. Overruns are handled.
        let _ = monitor
            .0
            .socket_mut()
            .socket_mut()
            .set_rx_buf_sz(MONITOR_RCVBUF);
        Ok::<_, KernelError>((requests, monitor))
    })
    .join()
    .map_err(|_| KernelError::Socket {
        netns: path.clone(),
        source: std::io::Error::other("netns opener thread panicked"),
    })?;
    let ((conn, handle, _), (mconn, _mhandle, rx)) = opened?;
    tokio::spawn(conn);
    tokio::spawn(mconn);
    Ok(Kernel {
        handle,
        events: KernelEvents { rx },
        netns: path,
    })
}

// ===== impl KernelEvents =====

impl KernelEvents {
    /// The next event; `None` once the connection is gone.
    pub async fn next(&mut self) -> Option<KernelEvent> {
        loop {
            let (msg, _) = self.rx.next().await?;
            let inner = match msg.payload {
                NetlinkPayload::InnerMessage(inner) => inner,
                NetlinkPayload::Overrun(_) => return Some(KernelEvent::Overrun),
                _ => continue,
            };
            match inner {
                RouteNetlinkMessage::NewRoute(r) => {
                    return Some(KernelEvent::NewRoute(Box::new(r)))
                }
                RouteNetlinkMessage::DelRoute(r) => {
                    return Some(KernelEvent::DelRoute(Box::new(r)))
                }
                RouteNetlinkMessage::NewLink(l) => return Some(link_event(&l, false)),
                RouteNetlinkMessage::DelLink(l) => return Some(link_event(&l, true)),
                RouteNetlinkMessage::NewAddress(a) | RouteNetlinkMessage::DelAddress(a) => {
                    return Some(KernelEvent::Address {
                        index: a.header.index,
                    })
                }
                RouteNetlinkMessage::NewNeighbour(n) | RouteNetlinkMessage::DelNeighbour(n) => {
                    return Some(KernelEvent::Neighbour {
                        ifindex: n.header.ifindex,
                    })
                }
                _ => continue,
            }
        }
    }
}

fn link_event(msg: &rtnetlink::packet_route::link::LinkMessage, gone: bool) -> KernelEvent {
    use rtnetlink::packet_route::link::LinkAttribute;
    let name = msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.clone()),
        _ => None,
    });
    KernelEvent::Link {
        index: msg.header.index,
        name,
        gone,
        up: msg
            .header
            .flags
            .contains(rtnetlink::packet_route::link::LinkFlags::Up),
    }
}

// ===== impl Links =====

impl Links {
    /// Builds the table from (index, name) pairs.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (u32, String)>) -> Self {
        let mut links = Links::default();
        for (index, name) in pairs {
            links.by_name.insert(name.clone(), index);
            links.by_index.insert(index, name);
        }
        links
    }

    /// Records that interface `index` is now called `name` (a new link, or
    /// one renamed: its old name is forgotten) and whether it is up.
    pub fn insert(&mut self, index: u32, name: String, up: bool) {
        self.remove(index);
        if !up {
            self.down.insert(index);
        }
        if let Some(old) = self.by_name.insert(name.clone(), index) {
            self.by_index.remove(&old);
        }
        self.by_index.insert(index, name);
    }

    /// Forgets interface `index`.
    pub fn remove(&mut self, index: u32) {
        self.down.remove(&index);
        if let Some(name) = self.by_index.remove(&index) {
            self.by_name.remove(&name);
        }
    }

    /// The index of interface `name`, if it exists and is up.
    pub fn index_up(&self, name: &str) -> Option<u32> {
        self.index(name).filter(|i| !self.down.contains(i))
    }

    /// Marks interface `index` down (as a dump found it).
    pub fn set_down(&mut self, index: u32) {
        if self.by_index.contains_key(&index) {
            self.down.insert(index);
        }
    }

    /// The index of interface `name`.
    pub fn index(&self, name: &str) -> Option<u32> {
        self.by_name.get(name).copied()
    }

    /// The name of interface `index`.
    pub fn name(&self, index: u32) -> Option<&str> {
        self.by_index.get(&index).map(String::as_str)
    }
}

// ===== helpers =====

fn netns_suffix(netns: &Option<PathBuf>) -> String {
    netns
        .as_ref()
        .map(|p| format!(" in network namespace {}", p.display()))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::Links;

    #[test]
    fn links_follow_renames_and_removals() {
        let mut l = Links::from_pairs([(2, "eth0".to_string()), (7, "tmp123".to_string())]);
        l.insert(7, "tort0123456789a".into(), false);
        assert_eq!(l.index_up("tort0123456789a"), None, "down: not usable");
        l.insert(7, "tort0123456789a".into(), true);
        assert_eq!(l.index_up("tort0123456789a"), Some(7));
        assert_eq!(l.name(7), Some("tort0123456789a"));
        assert_eq!(l.index("tmp123"), None, "the old name is forgotten");
        // A name reused by a new interface: the old index no longer has it.
        l.insert(9, "tort0123456789a".into(), true);
        assert_eq!((l.index("tort0123456789a"), l.name(7)), (Some(9), None));
        l.remove(9);
        assert_eq!(l.index("tort0123456789a"), None);
        assert_eq!(l.index("eth0"), Some(2));
    }
}
