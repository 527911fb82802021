//! A speaker whose connections are in-memory pipes, and hand-driven peers
//! on their other ends. No socket is involved, so a test runs under
//! `tokio::time::pause` (`#[tokio::test(start_paused = true)]`): the clock
//! moves only when every task waits, straight to the next timer, and a
//! timer's effect is seen at its exact instant.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bgp_speaker::transport::{Dial, Dialer, Dialing, Stream};
use bgp_speaker::{
    start_with, BestPathChange, PeerConfig, SessionState, SpeakerConfig, SpeakerHandle,
};
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::{mpsc, oneshot};

use super::AS;

/// The speaker's router id and its address on every pipe.
pub const SPEAKER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
/// The longest a peer waits for the speaker (virtual time): far longer
/// than any timer, short enough that a test that waits for nothing ends.
const PATIENCE: Duration = Duration::from_secs(3600);

/// A connection attempt of the speaker, waiting for the test's answer.
pub struct DialRequest {
    pub dial: Dial,
    reply: oneshot::Sender<io::Result<Stream>>,
}

/// Answers the speaker's connection attempts from a channel.
struct ChannelDialer(mpsc::Sender<DialRequest>);

/// A running speaker on pipes.
pub struct Net {
    pub h: SpeakerHandle,
    pub best: mpsc::Receiver<Vec<BestPathChange>>,
    dials: mpsc::Receiver<DialRequest>,
}

/// The test's end of one connection: a hand-driven BGP peer.
pub struct Peer {
    io: DuplexStream,
    buf: BytesMut,
}

// ===== impl Net =====

impl Net {
    /// Starts a speaker (AS 64512, router id [`SPEAKER`], no listener)
    /// with these peers.
    pub async fn start(peers: Vec<PeerConfig>) -> Net {
        let mut c = SpeakerConfig::new(SPEAKER, AS);
        c.peers = peers;
        Net::start_config(c).await
    }

    pub async fn start_config(c: SpeakerConfig) -> Net {
        let (tx, dials) = mpsc::channel(16);
        let (h, best) = start_with(c, Arc::new(ChannelDialer(tx))).await.unwrap();
        Net { h, best, dials }
    }

    /// [`Self::start_config`] with its BFD sessions on `bfd` (see
    /// `bfd_wire`).
    pub async fn start_with_bfd(c: SpeakerConfig, bfd: bfd::BfdHandle) -> Net {
        let (tx, dials) = mpsc::channel(16);
        let (h, best) = bgp_speaker::start_with_bfd(c, Arc::new(ChannelDialer(tx)), bfd)
            .await
            .unwrap();
        Net { h, best, dials }
    }

    /// The speaker's next connection attempt.
    pub async fn next_dial(&mut self) -> DialRequest {
        tokio::time::timeout(PATIENCE, self.dials.recv())
            .await
            .expect("the speaker dials within the hour")
            .expect("the speaker is running")
    }

    /// A connection attempt already made, if any.
    pub fn try_dial(&mut self) -> Option<DialRequest> {
        self.dials.try_recv().ok()
    }

    /// A peer at `from` connects to the speaker.
    pub async fn connect_from(&self, from: IpAddr) -> Peer {
        self.connect_from_with(from, bgp_speaker::transport::PIPE_BUFFER)
            .await
    }

    /// [`Self::connect_from`] over a connection that holds `buffer` bytes
    /// each way.
    pub async fn connect_from_with(&self, from: IpAddr, buffer: usize) -> Peer {
        let (ours, theirs) = Stream::pipe_with(IpAddr::V4(SPEAKER), buffer);
        self.h
            .accept(ours, SocketAddr::new(from, 40000))
            .await
            .unwrap();
        Peer::new(theirs)
    }

    /// The state of `peer`, once everything under way is done (a
    /// millisecond of virtual time passes).
    pub async fn state(&self, peer: IpAddr) -> Option<SessionState> {
        settle().await;
        let s = self.h.fresh_status().await.unwrap();
        s.peers.iter().find(|p| p.address == peer).map(|p| p.state)
    }

    /// The next batch of best-path changes.
    pub async fn changes(&mut self) -> Vec<BestPathChange> {
        tokio::time::timeout(PATIENCE, self.best.recv())
            .await
            .expect("best paths change within the hour")
            .expect("the speaker is running")
    }
}

/// Lets every task run until all wait (the paused clock then moves by a
/// millisecond).
pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(1)).await;
}

// ===== impl DialRequest =====

impl DialRequest {
    /// The connection succeeds: the peer's end.
    pub fn accept(self) -> Peer {
        let (ours, theirs) = Stream::pipe(IpAddr::V4(SPEAKER));
        let _ = self.reply.send(Ok(ours));
        Peer::new(theirs)
    }

    /// The connection is refused (RFC 4271 event 18).
    pub fn refuse(self) {
        let _ = self
            .reply
            .send(Err(io::ErrorKind::ConnectionRefused.into()));
    }

    /// The connection attempt never ends (a peer that drops SYNs): keep
    /// the returned value alive for as long as it should hang.
    pub fn hang(self) -> oneshot::Sender<io::Result<Stream>> {
        self.reply
    }
}

impl Dialer for ChannelDialer {
    fn dial(&self, dial: Dial) -> Dialing {
        let tx = self.0.clone();
        Box::pin(async move {
            let (reply, answer) = oneshot::channel();
            tx.send(DialRequest { dial, reply })
                .await
                .map_err(|_| io::Error::other("the test is gone"))?;
            answer
                .await
                .unwrap_or_else(|_| Err(io::ErrorKind::ConnectionRefused.into()))
        })
    }
}

// ===== impl Peer =====

impl Peer {
    fn new(io: DuplexStream) -> Peer {
        Peer {
            io,
            buf: BytesMut::new(),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.io.write_all(bytes).await.unwrap();
    }

    /// The next message (type, body), or `None` once the speaker closed.
    pub async fn recv(&mut self) -> Option<(u8, Vec<u8>)> {
        tokio::time::timeout(PATIENCE, self.recv_now())
            .await
            .expect("the speaker sends or closes within the hour")
    }

    async fn recv_now(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            if self.buf.len() >= 19 {
                let len = usize::from(u16::from_be_bytes([self.buf[16], self.buf[17]]));
                if self.buf.len() >= len {
                    let t = self.buf[18];
                    let body = self.buf[19..len].to_vec();
                    self.buf.advance(len);
                    return Some((t, body));
                }
            }
            match self.io.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// Whether the speaker sends nothing (and keeps the connection) for `d`.
    pub async fn quiet_for(&mut self, d: Duration) -> bool {
        tokio::time::timeout(d, self.recv_now()).await.is_err()
    }

    /// The next message, which must be of type `t`; its body.
    pub async fn expect(&mut self, t: u8, what: &str) -> Vec<u8> {
        match self.recv().await {
            Some((got, body)) if got == t => body,
            other => panic!("expected {what} (type {t}), got {other:?}"),
        }
    }

    /// Reads past KEEPALIVEs and UPDATEs to a NOTIFICATION: (code,
    /// subcode, data); `None` if the speaker closed without one.
    pub async fn notification(&mut self) -> Option<(u8, u8, Vec<u8>)> {
        loop {
            match self.recv().await? {
                (3, b) => return Some((b[0], b[1], b[2..].to_vec())),
                _ => continue,
            }
        }
    }

    /// Closes our side of the connection (the speaker reads end of
    /// file); what the speaker still sends can be read.
    pub async fn close(&mut self) {
        let _ = self.io.shutdown().await;
    }
}
