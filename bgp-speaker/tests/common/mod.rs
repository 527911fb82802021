//! A hand-driven BGP peer over TCP for session-level tests.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bgp_speaker::{start, DynamicPeerConfig, MaxPrefix, SpeakerConfig, SpeakerHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

pub mod bfd_wire;
pub mod flap;
pub mod pipe;

pub const AS: u32 = 64512;

/// A speaker (AS 64512, router id 10.9.0.1) listening on 127.0.0.1 that
/// accepts any peer of AS 64512 from `prefix`; returns its listen address.
pub async fn dynamic_speaker(
    prefix: &str,
    max_prefix: Option<MaxPrefix>,
) -> (SpeakerHandle, SocketAddr) {
    let mut c = SpeakerConfig::new(Ipv4Addr::new(10, 9, 0, 1), AS);
    c.listen = Some("127.0.0.1:0".parse().unwrap());
    c.dynamic_peers.push(DynamicPeerConfig {
        max_prefix,
        ..DynamicPeerConfig::new(prefix.parse().unwrap(), AS)
    });
    let (h, _best) = start(c).await.unwrap();
    let addr = h.status().listen.unwrap();
    (h, addr)
}

/// A hand-driven BGP peer.
pub struct Client {
    pub stream: TcpStream,
    pub addr: IpAddr,
}

pub fn msg(t: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    m.push(t);
    m.extend_from_slice(body);
    m
}

/// OPEN with MP IPv4 unicast and the 4-octet AS capability.
pub fn open(version: u8, asn: u32, hold: u16, id: [u8; 4]) -> Vec<u8> {
    let mut caps = vec![2, 6, 1, 4, 0, 1, 0, 1, 2, 6, 65, 4];
    caps.extend_from_slice(&asn.to_be_bytes());
    let mut b = vec![version];
    b.extend_from_slice(&u16::try_from(asn).unwrap_or(23456).to_be_bytes());
    b.extend_from_slice(&hold.to_be_bytes());
    b.extend_from_slice(&id);
    b.push(caps.len() as u8);
    b.extend_from_slice(&caps);
    msg(1, &b)
}

/// [`open`] with the graceful restart capability (RFC 4724: restart time
/// 120 s, IPv4 unicast with forwarding state kept), the R bit as given.
pub fn open_gr(asn: u32, hold: u16, id: [u8; 4], restarted: bool) -> Vec<u8> {
    let mut m = open(4, asn, hold, id);
    let r = if restarted { 0x80 } else { 0 };
    let cap = [2, 8, 64, 6, r, 120, 0, 1, 1, 0x80];
    m.extend_from_slice(&cap);
    // Lengths: the message's, and the optional parameters' (byte 28).
    let len = u16::try_from(m.len()).unwrap();
    m[16..18].copy_from_slice(&len.to_be_bytes());
    m[28] += cap.len() as u8;
    m
}

pub fn attr(flags: u8, t: u8, v: &[u8]) -> Vec<u8> {
    let mut a = vec![flags, t, v.len() as u8];
    a.extend_from_slice(v);
    a
}

pub fn update(withdrawn: &[u8], attrs: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut b = (withdrawn.len() as u16).to_be_bytes().to_vec();
    b.extend_from_slice(withdrawn);
    b.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    b.extend_from_slice(attrs);
    b.extend_from_slice(nlri);
    msg(2, &b)
}

pub const NLRI: [u8; 4] = [24, 10, 1, 1];

/// ORIGIN, AS_PATH, NEXT_HOP, LOCAL_PREF with one part replaced.
pub fn attrs_with(origin: Vec<u8>, as_path: Vec<u8>, next_hop: Vec<u8>) -> Vec<u8> {
    [origin, as_path, next_hop, attr(0x40, 5, &[0, 0, 0, 100])].concat()
}

pub fn good_attrs() -> Vec<u8> {
    attrs_with(
        attr(0x40, 1, &[0]),
        attr(0x40, 2, &[]),
        attr(0x40, 3, &[192, 168, 0, 1]),
    )
}

// ===== impl Client =====

impl Client {
    pub async fn connect(speaker: SocketAddr, last: u8) -> Client {
        let addr = IpAddr::V4(Ipv4Addr::new(127, 0, 1, last));
        let sock = TcpSocket::new_v4().unwrap();
        sock.bind(SocketAddr::new(addr, 0)).unwrap();
        let stream = sock.connect(speaker).await.unwrap();
        Client { stream, addr }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Next message (type, body), or None when the speaker closed.
    pub async fn read(&mut self) -> Option<(u8, Vec<u8>)> {
        let mut head = [0u8; 19];
        let fut = async {
            self.stream.read_exact(&mut head).await.ok()?;
            let len = u16::from_be_bytes([head[16], head[17]]) as usize;
            let mut body = vec![0u8; len.saturating_sub(19)];
            self.stream.read_exact(&mut body).await.ok()?;
            Some((head[18], body))
        };
        tokio::time::timeout(Duration::from_secs(10), fut)
            .await
            .expect("speaker answered in time")
    }

    pub async fn establish(&mut self, last: u8) {
        self.send(&open(4, AS, 90, [10, 9, 9, last])).await;
        assert_eq!(
            self.read().await.map(|m| m.0),
            Some(1),
            "speaker sends OPEN"
        );
        assert_eq!(
            self.read().await.map(|m| m.0),
            Some(4),
            "speaker sends KEEPALIVE"
        );
        self.send(&msg(4, &[])).await;
    }

    /// Reads until a NOTIFICATION: (code, subcode, data).
    pub async fn notification(&mut self) -> (u8, u8, Vec<u8>) {
        loop {
            match self.read().await {
                Some((3, b)) => return (b[0], b[1], b[2..].to_vec()),
                Some(_) => continue,
                None => panic!("connection closed without a NOTIFICATION"),
            }
        }
    }
}
