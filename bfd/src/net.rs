//! What carries Control packets: the [`Network`] seam, and its UDP
//! implementation [`UdpNetwork`].
//!
//! Receiving: one socket per family and mode (IPv4/IPv6 x port 3784/4784),
//! bound when the first session that needs it is added, each read by a
//! task of its own that hands datagrams with their ancillary data (TTL,
//! destination address, interface) to the service's inbox.
//!
//! Sending: one socket per session, bound to the session's local address
//! (IP_FREEBIND: it may appear later) and to a source port of its own in
//! 49152-65535 (RFC 5881 §4: the same port for the whole session, unique
//! among sessions), to the interface if one is named, TTL / Hop Limit 255
//! (RFC 5881 §5) and DSCP CS6 (network control, as BIRD and FRR send).

use std::collections::HashMap;
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;

use nix::sys::socket::{self as nix_sock, sockopt, ControlMessageOwned, MsgFlags, SockaddrStorage};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::Interest;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::{MULTIHOP_PORT, SINGLE_HOP_PORT, SOURCE_PORTS, TTL};
use crate::demux::RxMeta;

/// Largest datagram read whole: the Length field cannot exceed 255.
pub const MAX_PACKET: usize = 256;

/// DSCP CS6 in the TOS / Traffic Class byte.
const TOS_CS6: u32 = 0xc0;

/// One received datagram.
#[derive(Clone, Copy, Debug)]
pub struct Received {
    /// The payload, `len` bytes of it.
    pub buf: [u8; MAX_PACKET],
    /// Payload length.
    pub len: usize,
    /// Where it came from, and how.
    pub meta: RxMeta,
}

/// What a network hands the service.
#[derive(Clone, Debug)]
pub enum Inbound {
    /// A datagram.
    Packet(Box<Received>),
    /// A socket read failed (counted; the reader pauses 10 ms).
    RxError,
}

/// What a session sends to and from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The peer's address.
    pub peer: IpAddr,
    /// Our address, if configured.
    pub local: Option<IpAddr>,
    /// Interface name and index, if configured.
    pub interface: Option<(String, u32)>,
    /// RFC 5883 multihop.
    pub multihop: bool,
}

/// Identifies what [`Network::open`] made for one session.
pub type TxId = u32;

/// The seam between the service and the wire: UDP sockets
/// ([`UdpNetwork`]), or an in-memory network in tests.
pub trait Network: Send + 'static {
    /// Called once before anything else: received datagrams go to `inbox`.
    fn start(&mut self, inbox: mpsc::Sender<Inbound>);
    /// Makes ready to send and receive for one session.
    fn open(&mut self, endpoint: &Endpoint) -> io::Result<TxId>;
    /// Sends one packet for the session; never waits.
    fn send(&mut self, tx: TxId, data: &[u8]) -> io::Result<()>;
    /// The session is gone.
    fn close(&mut self, tx: TxId);
}

/// Control packets over UDP, in the network namespace of the thread that
/// runs the service.
#[derive(Debug, Default)]
pub struct UdpNetwork {
    inbox: Option<mpsc::Sender<Inbound>>,
    /// Receiving sockets' reader tasks by (IPv6, multihop).
    readers: HashMap<(bool, bool), Reader>,
    /// Sending sockets by session.
    senders: HashMap<TxId, (UdpSocket, SocketAddr)>,
    next_id: TxId,
}

/// A reader task, aborted on drop.
#[derive(Debug)]
struct Reader(JoinHandle<()>);

// ===== impl UdpNetwork =====

impl UdpNetwork {
    /// A network with no socket yet.
    pub fn new() -> UdpNetwork {
        UdpNetwork::default()
    }

    fn ensure_reader(&mut self, v6: bool, multihop: bool) -> io::Result<()> {
        if self.readers.contains_key(&(v6, multihop)) {
            return Ok(());
        }
        let inbox = self
            .inbox
            .clone()
            .ok_or_else(|| io::Error::other("network used before start"))?;
        let sock = rx_socket(v6, multihop)?;
        let sock = tokio::net::UdpSocket::from_std(sock)?;
        let task = tokio::spawn(read_loop(sock, multihop, inbox));
        self.readers.insert((v6, multihop), Reader(task));
        Ok(())
    }
}

impl Network for UdpNetwork {
    fn start(&mut self, inbox: mpsc::Sender<Inbound>) {
        self.inbox = Some(inbox);
    }

    fn open(&mut self, ep: &Endpoint) -> io::Result<TxId> {
        self.ensure_reader(ep.peer.is_ipv6(), ep.multihop)?;
        let (sock, dst) = tx_socket(ep)?;
        self.next_id = self.next_id.wrapping_add(1);
        self.senders.insert(self.next_id, (sock, dst));
        Ok(self.next_id)
    }

    fn send(&mut self, tx: TxId, data: &[u8]) -> io::Result<()> {
        let (sock, dst) = self
            .senders
            .get(&tx)
            .ok_or_else(|| io::Error::other("no such session socket"))?;
        sock.send_to(data, *dst).map(|_| ())
    }

    fn close(&mut self, tx: TxId) {
        self.senders.remove(&tx);
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.0.abort();
    }
}

// ===== helpers =====

/// `[::]:PORT` or `0.0.0.0:PORT`, asking for TTL, destination and
/// interface of every datagram.
fn rx_socket(v6: bool, multihop: bool) -> io::Result<UdpSocket> {
    let port = if multihop {
        MULTIHOP_PORT
    } else {
        SINGLE_HOP_PORT
    };
    let what = |e: io::Error, step: &str| {
        io::Error::new(
            e.kind(),
            format!(
                "BFD {} socket on port {port}: {step}: {e}",
                if v6 { "IPv6" } else { "IPv4" }
            ),
        )
    };
    let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP)).map_err(|e| what(e, "socket"))?;
    s.set_reuse_address(true)
        .map_err(|e| what(e, "SO_REUSEADDR"))?;
    let any: SocketAddr = if v6 {
        s.set_only_v6(true).map_err(|e| what(e, "IPV6_V6ONLY"))?;
        nix_sock::setsockopt(&s, sockopt::Ipv6RecvPacketInfo, &true)
            .map_err(|e| what(e.into(), "IPV6_RECVPKTINFO"))?;
        nix_sock::setsockopt(&s, sockopt::Ipv6RecvHopLimit, &true)
            .map_err(|e| what(e.into(), "IPV6_RECVHOPLIMIT"))?;
        (Ipv6Addr::UNSPECIFIED, port).into()
    } else {
        nix_sock::setsockopt(&s, sockopt::Ipv4PacketInfo, &true)
            .map_err(|e| what(e.into(), "IP_PKTINFO"))?;
        nix_sock::setsockopt(&s, sockopt::Ipv4RecvTtl, &true)
            .map_err(|e| what(e.into(), "IP_RECVTTL"))?;
        (Ipv4Addr::UNSPECIFIED, port).into()
    };
    s.bind(&any.into()).map_err(|e| what(e, "bind"))?;
    s.set_nonblocking(true).map_err(|e| what(e, "O_NONBLOCK"))?;
    Ok(s.into())
}

/// The session's own sending socket and where it sends to.
fn tx_socket(ep: &Endpoint) -> io::Result<(UdpSocket, SocketAddr)> {
    let v6 = ep.peer.is_ipv6();
    let what = |e: io::Error, step: &str| {
        io::Error::new(
            e.kind(),
            format!("BFD send socket to {}: {step}: {e}", ep.peer),
        )
    };
    let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP)).map_err(|e| what(e, "socket"))?;
    s.set_nonblocking(true).map_err(|e| what(e, "O_NONBLOCK"))?;
    let ifindex = ep.interface.as_ref().map(|(_, i)| *i).unwrap_or(0);
    if v6 {
        s.set_only_v6(true).map_err(|e| what(e, "IPV6_V6ONLY"))?;
        s.set_unicast_hops_v6(u32::from(TTL))
            .map_err(|e| what(e, "IPV6_UNICAST_HOPS"))?;
        s.set_tclass_v6(TOS_CS6)
            .map_err(|e| what(e, "IPV6_TCLASS"))?;
        s.set_freebind_v6(true)
            .map_err(|e| what(e, "IPV6_FREEBIND"))?;
    } else {
        s.set_ttl_v4(u32::from(TTL))
            .map_err(|e| what(e, "IP_TTL"))?;
        s.set_tos_v4(TOS_CS6).map_err(|e| what(e, "IP_TOS"))?;
        s.set_freebind_v4(true)
            .map_err(|e| what(e, "IP_FREEBIND"))?;
    }
    if let Some((name, _)) = &ep.interface {
        s.bind_device(Some(name.as_bytes()))
            .map_err(|e| what(e, "SO_BINDTODEVICE"))?;
    }
    let local = ep.local.unwrap_or(if v6 {
        Ipv6Addr::UNSPECIFIED.into()
    } else {
        Ipv4Addr::UNSPECIFIED.into()
    });
    bind_source_port(&s, local, ifindex).map_err(|e| what(e, "bind"))?;
    let port = if ep.multihop {
        MULTIHOP_PORT
    } else {
        SINGLE_HOP_PORT
    };
    let dst = match ep.peer {
        IpAddr::V6(p) if crate::config::is_link_local(ep.peer) => {
            SocketAddr::V6(SocketAddrV6::new(p, port, 0, ifindex))
        }
        p => SocketAddr::new(p, port),
    };
    Ok((s.into(), dst))
}

/// Binds to a free port of [`SOURCE_PORTS`], starting at a random one.
fn bind_source_port(s: &Socket, local: IpAddr, scope: u32) -> io::Result<()> {
    let lo = *SOURCE_PORTS.start();
    let n = u32::from(*SOURCE_PORTS.end() - lo) + 1;
    let start = fastrand::u32(0..n);
    let mut last = io::Error::other("no source port tried");
    for i in 0..n {
        let port = lo + ((start + i) % n) as u16;
        let addr = match local {
            IpAddr::V6(a) if crate::config::is_link_local(local) => {
                SocketAddr::V6(SocketAddrV6::new(a, port, 0, scope))
            }
            a => SocketAddr::new(a, port),
        };
        match s.bind(&addr.into()) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// Reads datagrams until the inbox closes (or the task is aborted).
async fn read_loop(sock: tokio::net::UdpSocket, multihop: bool, inbox: mpsc::Sender<Inbound>) {
    loop {
        let mut r = Received {
            buf: [0; MAX_PACKET],
            len: 0,
            meta: RxMeta {
                src: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
                dst: None,
                ifindex: None,
                ttl: None,
                multihop,
            },
        };
        let got = sock
            .async_io(Interest::READABLE, || recv_with_meta(&sock, &mut r))
            .await;
        let msg = match got {
            Ok(()) => Inbound::Packet(Box::new(r)),
            Err(e) => {
                tracing::debug!(error = %e, "bfd: receive error");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                Inbound::RxError
            }
        };
        if inbox.send(msg).await.is_err() {
            return;
        }
    }
}

/// One `recvmsg(2)`: payload, source, and the ancillary data.
fn recv_with_meta(sock: &tokio::net::UdpSocket, r: &mut Received) -> io::Result<()> {
    let mut cmsg = nix::cmsg_space!(libc_pktinfo6, i32, i32);
    let mut iov = [IoSliceMut::new(&mut r.buf)];
    let msg = nix_sock::recvmsg::<SockaddrStorage>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::empty(),
    )
    .map_err(io::Error::from)?;
    r.len = msg.bytes.min(MAX_PACKET);
    if let Some(src) = msg.address {
        if let Some(v4) = src.as_sockaddr_in() {
            r.meta.src = SocketAddr::from((v4.ip(), v4.port()));
        } else if let Some(v6) = src.as_sockaddr_in6() {
            r.meta.src = SocketAddr::V6(SocketAddrV6::new(v6.ip(), v6.port(), 0, v6.scope_id()));
        }
    }
    for c in msg.cmsgs().map_err(io::Error::from)? {
        match c {
            ControlMessageOwned::Ipv4PacketInfo(pi) => {
                r.meta.dst = Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(pi.ipi_addr.s_addr))));
                r.meta.ifindex = u32::try_from(pi.ipi_ifindex).ok();
            }
            ControlMessageOwned::Ipv6PacketInfo(pi) => {
                r.meta.dst = Some(IpAddr::V6(Ipv6Addr::from(pi.ipi6_addr.s6_addr)));
                r.meta.ifindex = Some(pi.ipi6_ifindex);
            }
            ControlMessageOwned::Ipv4Ttl(t) | ControlMessageOwned::Ipv6HopLimit(t) => {
                r.meta.ttl = u8::try_from(t).ok();
            }
            _ => {}
        }
    }
    Ok(())
}

/// Sized like the larger of the two pktinfo structures, for cmsg_space.
#[allow(non_camel_case_types)]
type libc_pktinfo6 = [u8; 20];

/// The index of interface `name`, if it exists.
pub fn ifindex(name: &str) -> Option<u32> {
    nix::net::if_::if_nametoindex(name).ok()
}
