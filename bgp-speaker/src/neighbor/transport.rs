//! What carries a session's bytes: a TCP connection, or an in-memory pipe.
//!
//! The speaker gets its connections in two ways: its listener accepts them
//! (or the caller hands one over, [`crate::SpeakerHandle::accept`]), and it
//! opens them through a [`Dialer`] ([`TcpDialer`] unless
//! [`crate::start_with`] is given another). A pipe ([`Stream::pipe`]) and a
//! dialer that answers from a channel let a test be the peer on the other
//! end with no socket at all, so that the state machine and its timers run
//! under `tokio::time::pause` exactly.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use super::tcp;

/// Bytes a pipe holds in each direction before a writer waits (a socket
/// buffer's worth).
pub const PIPE_BUFFER: usize = 64 * 1024;

/// One connection to a peer.
#[derive(Debug)]
pub struct Stream(Kind);

#[derive(Debug)]
enum Kind {
    Tcp(TcpStream),
    /// In memory: our end, and our address on it.
    Pipe {
        io: DuplexStream,
        local: IpAddr,
    },
}

/// What the speaker asks a [`Dialer`] for: a connection to a peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dial {
    pub peer: SocketAddr,
    /// The address to connect from (`localAddress`), if set.
    pub local: Option<IpAddr>,
    /// The TCP MD5 key (RFC 2385), if set.
    pub password: Option<String>,
    /// GTSM (RFC 5082): the lowest TTL the peer's packets may arrive with
    /// (ours leave with 255), if set.
    pub min_ttl: Option<u8>,
}

/// A connection attempt under way.
pub type Dialing = Pin<Box<dyn Future<Output = io::Result<Stream>> + Send>>;

/// How the speaker opens connections to its peers. The speaker bounds
/// every attempt (10 s) itself.
pub trait Dialer: Send + Sync + 'static {
    /// Starts a connection attempt.
    fn dial(&self, to: Dial) -> Dialing;
}

/// Connects over TCP, signed with the MD5 key when the peer has one, with
/// GTSM when it has that.
#[derive(Clone, Copy, Debug, Default)]
pub struct TcpDialer;

/// The read side of a [`Stream`].
#[derive(Debug)]
pub(crate) enum ReadHalf {
    Tcp(OwnedReadHalf),
    Pipe(tokio::io::ReadHalf<DuplexStream>),
}

/// The write side of a [`Stream`].
#[derive(Debug)]
pub(crate) enum WriteHalf {
    Tcp(OwnedWriteHalf),
    Pipe(tokio::io::WriteHalf<DuplexStream>),
}

// ===== impl Stream =====

impl Stream {
    /// An in-memory connection: the speaker's end (with `local` as our
    /// address on it) and the peer's end.
    pub fn pipe(local: IpAddr) -> (Stream, DuplexStream) {
        Self::pipe_with(local, PIPE_BUFFER)
    }

    /// [`Self::pipe`] holding `buffer` bytes in each direction.
    pub fn pipe_with(local: IpAddr, buffer: usize) -> (Stream, DuplexStream) {
        let (ours, theirs) = tokio::io::duplex(buffer);
        (Stream(Kind::Pipe { io: ours, local }), theirs)
    }

    /// Our address on the connection.
    pub(crate) fn local_ip(&self) -> io::Result<IpAddr> {
        match &self.0 {
            Kind::Tcp(s) => s.local_addr().map(|a| a.ip()),
            Kind::Pipe { local, .. } => Ok(*local),
        }
    }

    /// Our link-local address toward a peer on our subnet, for the
    /// second IPv6 next hop (RFC 2545 §3; see `link.rs`). None for a pipe.
    pub(crate) fn link_local(&self) -> Option<std::net::Ipv6Addr> {
        match &self.0 {
            Kind::Tcp(s) => {
                super::link::link_local_toward(s.local_addr().ok()?.ip(), s.peer_addr().ok()?.ip())
            }
            Kind::Pipe { .. } => None,
        }
    }

    /// The TTL an accepted connection's SYN arrived with, when its
    /// listener kept it (see [`tcp::saved_syn_ttl`]). A pipe is no IP
    /// path: it counts as directly connected (255).
    pub(crate) fn syn_ttl(&self) -> io::Result<Option<u8>> {
        match &self.0 {
            Kind::Tcp(s) => tcp::saved_syn_ttl(s),
            Kind::Pipe { .. } => Ok(Some(tcp::GTSM_TTL)),
        }
    }

    /// GTSM from now on (an accepted connection: its listener may have
    /// been more lenient): send with TTL 255, and have the kernel drop
    /// what arrives with less than `min_ttl`. Nothing for a pipe.
    pub(crate) fn set_gtsm(&self, min_ttl: u8) -> io::Result<()> {
        match &self.0 {
            Kind::Tcp(s) => tcp::set_gtsm(s, s.local_addr()?.is_ipv6(), Some(min_ttl)),
            Kind::Pipe { .. } => Ok(()),
        }
    }

    /// Sends small messages (KEEPALIVEs, the last UPDATE of a burst) at
    /// once (TCP_NODELAY); the session batches itself.
    pub(crate) fn set_nodelay(&self) {
        if let Kind::Tcp(s) = &self.0 {
            let _ = s.set_nodelay(true);
        }
    }

    pub(crate) fn into_split(self) -> (ReadHalf, WriteHalf) {
        match self.0 {
            Kind::Tcp(s) => {
                let (r, w) = s.into_split();
                (ReadHalf::Tcp(r), WriteHalf::Tcp(w))
            }
            Kind::Pipe { io, .. } => {
                let (r, w) = tokio::io::split(io);
                (ReadHalf::Pipe(r), WriteHalf::Pipe(w))
            }
        }
    }
}

impl From<TcpStream> for Stream {
    fn from(s: TcpStream) -> Stream {
        Stream(Kind::Tcp(s))
    }
}

// ===== impl TcpDialer =====

impl Dialer for TcpDialer {
    fn dial(&self, to: Dial) -> Dialing {
        Box::pin(async move {
            tcp::connect(to.peer, to.local, to.password.as_deref(), to.min_ttl)
                .await
                .map(Stream::from)
        })
    }
}

// ===== impl ReadHalf =====

impl AsyncRead for ReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ReadHalf::Tcp(r) => Pin::new(r).poll_read(cx, buf),
            ReadHalf::Pipe(r) => Pin::new(r).poll_read(cx, buf),
        }
    }
}

// ===== impl WriteHalf =====

impl WriteHalf {
    /// Writes what the connection takes now; `WouldBlock` when it takes
    /// nothing.
    pub(crate) fn try_write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            WriteHalf::Tcp(w) => w.try_write(buf),
            WriteHalf::Pipe(w) => {
                // One poll that wakes no one: the session's own write
                // (in its select) registers the real waker when it waits.
                let mut cx = Context::from_waker(Waker::noop());
                match Pin::new(w).poll_write(&mut cx, buf) {
                    Poll::Ready(r) => r,
                    Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
                }
            }
        }
    }
}

impl AsyncWrite for WriteHalf {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            WriteHalf::Tcp(w) => Pin::new(w).poll_write(cx, buf),
            WriteHalf::Pipe(w) => Pin::new(w).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteHalf::Tcp(w) => Pin::new(w).poll_flush(cx),
            WriteHalf::Pipe(w) => Pin::new(w).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteHalf::Tcp(w) => Pin::new(w).poll_shutdown(cx),
            WriteHalf::Pipe(w) => Pin::new(w).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_full_pipe_would_block_and_takes_more_once_read() {
        let (ours, mut theirs) = Stream::pipe_with("10.0.0.1".parse().unwrap(), 8);
        assert_eq!(ours.local_ip().unwrap().to_string(), "10.0.0.1");
        let (_r, mut w) = ours.into_split();
        assert_eq!(w.try_write(b"0123456789").unwrap(), 8);
        let e = w.try_write(b"89").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        let mut got = [0u8; 8];
        theirs.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"01234567");
        assert_eq!(w.try_write(b"89").unwrap(), 2);
        w.shutdown().await.unwrap();
        let mut rest = Vec::new();
        theirs.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"89");
    }
}
