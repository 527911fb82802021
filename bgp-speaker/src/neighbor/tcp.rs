//! TCP for BGP: connecting, listening, and TCP MD5 signatures (RFC 2385).

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

/// Opens a connection to a peer, from `local` if given, signing with the
/// MD5 key if given. (The caller bounds how long it may take.)
pub async fn connect(
    peer: SocketAddr,
    local: Option<IpAddr>,
    password: Option<&str>,
) -> io::Result<TcpStream> {
    let sock = match peer {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if let Some(key) = password {
        set_md5(&sock, peer.ip(), None, key, peer.is_ipv6())?;
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
