//! TCP for BGP: connecting, listening, TCP MD5 signatures (RFC 2385) and
//! GTSM (RFC 5082).
//!
//! GTSM on Linux: a socket sends with TTL (IPv6 hop limit) 255 (`IP_TTL`,
//! `IPV6_UNICAST_HOPS`) and the kernel drops every segment that arrives
//! with less than its minimum (`IP_MINTTL`, `IPV6_MINHOPCOUNT`), counting
//! it in `TcpExt: TCPMinTTLDrop` of `/proc/net/netstat`; ICMP errors about
//! the connection are checked the same way. On a listener the minimum
//! applies to SYNs (a SYN from too far is never answered) and an accepted
//! socket inherits the listener's settings. An IPv6 socket carries IPv4
//! peers as v4-mapped connections, which the IPv4 options govern: both are
//! set on it.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// `TCP_MD5SIG_EXT` (linux/tcp.h): like TCP_MD5SIG, with a prefix length.
const TCP_MD5SIG_EXT: libc::c_int = 32;
/// `TCP_MD5SIG_FLAG_PREFIX`: `tcpm_prefixlen` is valid.
const TCP_MD5SIG_FLAG_PREFIX: u8 = 1;
/// `TCP_MD5SIG_MAXKEYLEN`.
pub const MD5_MAX_KEY_LEN: usize = 80;
/// The TTL GTSM sends with.
pub use tortie_config::peer::GTSM_TTL;
/// Room for a saved SYN's IP and TCP headers (IPv6 40 + TCP at most 60).
const SAVED_SYN_MAX: usize = 128;

/// Opens a connection to a peer, from `local` if given, signing with the
/// MD5 key if given, with GTSM if `min_ttl` is given (the peer's SYN-ACK
/// and everything after must arrive with at least that TTL). (The caller
/// bounds how long it may take.)
pub async fn connect(
    peer: SocketAddr,
    local: Option<IpAddr>,
    password: Option<&str>,
    min_ttl: Option<u8>,
) -> io::Result<TcpStream> {
    let sock = match peer {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if let Some(key) = password {
        set_md5(&sock, peer.ip(), None, key, peer.is_ipv6())?;
    }
    if let Some(min) = min_ttl {
        set_gtsm(&sock, peer.is_ipv6(), Some(min))?;
    }
    if let Some(ip) = local {
        sock.bind(SocketAddr::new(ip, 0))?;
    }
    sock.connect(peer).await
}

/// Binds the BGP listener (SO_REUSEADDR, backlog 128).
pub fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let sock = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    sock.set_reuseaddr(true)?;
    sock.bind(addr)?;
    sock.listen(128)
}

/// Installs (or with an empty `key`, removes) an MD5 key on a listening
/// socket for one address or a prefix of addresses.
pub fn set_listener_md5(
    listener: &TcpListener,
    addr: IpAddr,
    prefix_len: Option<u8>,
    key: &str,
) -> io::Result<()> {
    let v6 = listener.local_addr()?.is_ipv6();
    set_md5(listener, addr, prefix_len, key, v6)
}

/// GTSM on the listener, for every peer at once: `None`, no peer uses it
/// (the system's TTL, no minimum, SYNs not kept); `Some(min)`: answer with
/// TTL 255, have the kernel drop SYNs with a TTL below `min` (the lowest
/// any peer may have: 0 when some peer does not use GTSM), and keep each
/// connection's SYN (`TCP_SAVE_SYN`) so that [`saved_syn_ttl`] can check
/// it against the peer's own minimum once accepted.
pub fn set_listener_gtsm(listener: &TcpListener, min_ttl: Option<u8>) -> io::Result<()> {
    let v6 = listener.local_addr()?.is_ipv6();
    set_gtsm(listener, v6, min_ttl)?;
    setsockopt_int(
        listener,
        libc::IPPROTO_TCP,
        libc::TCP_SAVE_SYN,
        i32::from(min_ttl.is_some()),
    )
}

/// GTSM on a socket: `Some(min)`: send with TTL (hop limit) 255, and have
/// the kernel drop segments arriving with less than `min`; `None`: the
/// system's TTL, no minimum. On an IPv6 socket both families' options.
/// `ip`'s nearest equivalent: none (per socket); `nstat -az
/// TcpExtTCPMinTTLDrop` shows the drops.
pub fn set_gtsm(sock: &impl AsRawFd, v6: bool, min_ttl: Option<u8>) -> io::Result<()> {
    // -1: the default TTL (sysctl net.ipv4.ip_default_ttl, or the route's
    // hop limit for IPv6).
    let ttl = min_ttl.map_or(-1, |_| i32::from(GTSM_TTL));
    let min = i32::from(min_ttl.unwrap_or(0));
    setsockopt_int(sock, libc::IPPROTO_IP, libc::IP_TTL, ttl)?;
    setsockopt_int(sock, libc::IPPROTO_IP, libc::IP_MINTTL, min)?;
    if v6 {
        setsockopt_int(sock, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, ttl)?;
        setsockopt_int(sock, libc::IPPROTO_IPV6, libc::IPV6_MINHOPCOUNT, min)?;
    }
    Ok(())
}

/// The TTL (IPv6 hop limit) the SYN of an accepted connection arrived
/// with, from the headers its listener kept (`TCP_SAVED_SYN`, which hands
/// them out once). `None` when none were kept: the listener did not ask
/// (see [`set_listener_gtsm`]), or the connection came through a SYN
/// cookie (a SYN flood), or they were read already.
pub fn saved_syn_ttl(stream: &TcpStream) -> io::Result<Option<u8>> {
    let mut buf = [0u8; SAVED_SYN_MAX];
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: `buf` is writable for `len` bytes and `len` is a valid
    // socklen_t the kernel updates; the fd is open (borrowed).
    #[allow(unsafe_code)]
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_SAVED_SYN,
            buf.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(header_ttl(&buf[..(len as usize).min(buf.len())]))
}

/// Segments this network namespace's kernel dropped for a TTL below a
/// socket's minimum (`TcpExt: TCPMinTTLDrop` of `/proc/net/netstat`),
/// since boot, for every socket of every program in it. `None` when the
/// counter cannot be read.
pub fn min_ttl_drops() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/net/netstat").ok()?;
    netstat_counter(&text, "TcpExt:", "TCPMinTTLDrop")
}

/// setsockopt(TCP_MD5SIG_EXT) with a `struct tcp_md5sig` laid out by hand:
/// sockaddr_storage (128), flags (1), prefixlen (1), keylen (2, native),
/// ifindex (4), key (80).
fn set_md5(
    sock: &impl AsRawFd,
    addr: IpAddr,
    prefix_len: Option<u8>,
    key: &str,
    v6_socket: bool,
) -> io::Result<()> {
    if key.len() > MD5_MAX_KEY_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "TCP MD5 key is {} bytes, at most {MD5_MAX_KEY_LEN}",
                key.len()
            ),
        ));
    }
    // A v6 socket sees IPv4 peers as v4-mapped addresses.
    let (addr, prefix_len) = match (addr, v6_socket) {
        (IpAddr::V4(a), true) => (IpAddr::V6(a.to_ipv6_mapped()), prefix_len.map(|l| l + 96)),
        other => (other.0, prefix_len),
    };
    let mut buf = [0u8; 216];
    match addr {
        IpAddr::V4(a) => {
            buf[0..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
            buf[4..8].copy_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            buf[0..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
            buf[8..24].copy_from_slice(&a.octets());
        }
    }
    if let Some(len) = prefix_len {
        buf[128] = TCP_MD5SIG_FLAG_PREFIX;
        buf[129] = len;
    }
    buf[130..132].copy_from_slice(&(key.len() as u16).to_ne_bytes());
    buf[136..136 + key.len()].copy_from_slice(key.as_bytes());
    // SAFETY: `buf` is a valid, initialized `struct tcp_md5sig` of the
    // length passed; the kernel only reads it; the fd is open (borrowed).
    #[allow(unsafe_code)]
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_TCP,
            TCP_MD5SIG_EXT,
            buf.as_ptr().cast(),
            buf.len() as libc::socklen_t,
        )
    };
    if rc != 0 {
        let err = io::Error::last_os_error();
        // Removing a key that is not there is fine.
        if key.is_empty() && err.raw_os_error() == Some(libc::ENOENT) {
            return Ok(());
        }
        return Err(err);
    }
    Ok(())
}

/// setsockopt of one `int` option.
fn setsockopt_int(
    sock: &impl AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: i32,
) -> io::Result<()> {
    let value: libc::c_int = value;
    // SAFETY: `value` is a valid c_int of the size passed; the kernel only
    // reads it; the fd is open (borrowed).
    #[allow(unsafe_code)]
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            std::ptr::from_ref(&value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The TTL (IPv4, octet 8) or hop limit (IPv6, octet 7) of an IP header;
/// `None` for anything else.
fn header_ttl(ip: &[u8]) -> Option<u8> {
    match ip.first().map(|b| b >> 4) {
        Some(4) => ip.get(8).copied(),
        Some(6) => ip.get(7).copied(),
        _ => None,
    }
}

/// One counter of `/proc/net/netstat` (or `/proc/net/snmp`): lines come in
/// pairs, `Prefix: Name1 Name2 ...` then `Prefix: value1 value2 ...`.
fn netstat_counter(text: &str, prefix: &str, name: &str) -> Option<u64> {
    let mut lines = text.lines();
    while let Some(names) = lines.next() {
        let values = lines.next()?;
        let (Some(names), Some(values)) = (names.strip_prefix(prefix), values.strip_prefix(prefix))
        else {
            continue;
        };
        let at = names.split_whitespace().position(|n| n == name)?;
        return values.split_whitespace().nth(at)?.parse().ok();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_of_ipv4_and_ipv6_headers() {
        let mut v4 = [0u8; 20];
        v4[0] = 0x45;
        v4[8] = 254;
        assert_eq!(header_ttl(&v4), Some(254));
        let mut v6 = [0u8; 40];
        v6[0] = 0x60;
        v6[7] = 255;
        assert_eq!(header_ttl(&v6), Some(255));
        assert_eq!(header_ttl(&[]), None);
        assert_eq!(header_ttl(&[0x45, 0, 0]), None, "cut short");
        assert_eq!(header_ttl(&[0x10; 40]), None);
    }

    #[test]
    fn min_ttl_drops_come_from_the_tcpext_pair() {
        let text = "TcpExt: SyncookiesSent TCPMinTTLDrop TW\nTcpExt: 3 17 9\n\
                    IpExt: InNoRoutes\nIpExt: 0\n";
        assert_eq!(netstat_counter(text, "TcpExt:", "TCPMinTTLDrop"), Some(17));
        assert_eq!(netstat_counter(text, "IpExt:", "InNoRoutes"), Some(0));
        assert_eq!(netstat_counter(text, "TcpExt:", "Nothing"), None);
        assert_eq!(netstat_counter("", "TcpExt:", "TCPMinTTLDrop"), None);
        // This machine's kernel has the counter.
        assert!(min_ttl_drops().is_some());
    }

    /// The kernel side, on loopback (TTL 64 by default): a listener with
    /// minimum 255 never answers; one that keeps SYNs tells their TTL, and
    /// its accepted sockets inherit TTL 255 and the minimum.
    #[tokio::test]
    async fn listener_minimum_and_saved_syn() {
        let strict = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        set_listener_gtsm(&strict, Some(255)).unwrap();
        let to = strict.local_addr().unwrap();
        let before = min_ttl_drops().unwrap();
        let attempt = tokio::time::timeout(
            std::time::Duration::from_millis(1500),
            connect(to, None, None, None),
        )
        .await;
        assert!(attempt.is_err(), "a SYN with TTL 64 was answered");
        assert!(
            min_ttl_drops().unwrap() > before,
            "the kernel counted no drop"
        );

        let open = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        set_listener_gtsm(&open, Some(1)).unwrap();
        let to = open.local_addr().unwrap();
        let client = connect(to, None, None, None).await.unwrap();
        let (accepted, _) = open.accept().await.unwrap();
        assert_eq!(saved_syn_ttl(&accepted).unwrap(), Some(64));
        assert_eq!(saved_syn_ttl(&accepted).unwrap(), None, "handed out once");
        let get = |level, name| {
            let mut v: libc::c_int = 0;
            let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: as in saved_syn_ttl, with an int.
            #[allow(unsafe_code)]
            let rc = unsafe {
                libc::getsockopt(
                    accepted.as_raw_fd(),
                    level,
                    name,
                    std::ptr::from_mut(&mut v).cast(),
                    &mut len,
                )
            };
            assert_eq!(rc, 0);
            v
        };
        assert_eq!(get(libc::IPPROTO_IP, libc::IP_TTL), 255);
        assert_eq!(get(libc::IPPROTO_IP, libc::IP_MINTTL), 1);
        // A GTSM client: its SYN leaves with 255.
        let gtsm = connect(to, None, None, Some(255)).await.unwrap();
        let (accepted, _) = open.accept().await.unwrap();
        assert_eq!(saved_syn_ttl(&accepted).unwrap(), Some(255));
        drop((client, gtsm));
    }
}
