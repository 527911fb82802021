//! An in-memory wire for BFD services (the `bfd::Network` seam), so that
//! the speaker's BFD runs under paused time: every node delivers into the
//! inbox of the address a session names, at once, unless the wire is cut.
//! No socket: the real UDP service is tested in `bfd/tests` and in
//! network namespaces (`tests/tests/bfd_bgp.rs`).

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use bfd::demux::RxMeta;
use bfd::net::{Endpoint, Inbound, Received, TxId, MAX_PACKET};
use bfd::{Bfd, BfdHandle, Network};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The medium: each node's inbox; whether it carries; when each address
/// last got a packet.
#[derive(Default)]
struct State {
    inboxes: HashMap<IpAddr, mpsc::Sender<Inbound>>,
    cut: bool,
    last_to: HashMap<IpAddr, Instant>,
}

/// A wire shared by the nodes on it.
#[derive(Clone, Default)]
pub struct Wire(Arc<Mutex<State>>);

/// One node's side.
struct Node {
    wire: Wire,
    me: IpAddr,
    sessions: HashMap<TxId, Endpoint>,
    next: TxId,
}

impl Wire {
    /// A BFD service at `me` on this wire (discriminators and jitter from
    /// `seed`).
    pub fn node(&self, me: IpAddr, seed: u64) -> BfdHandle {
        let net = Node {
            wire: self.clone(),
            me,
            sessions: HashMap::new(),
            next: 0,
        };
        let (bfd, h) = Bfd::with_network(net, Some(seed));
        tokio::spawn(bfd.run());
        h
    }

    /// Cuts the wire (`true`) or mends it: nothing crosses while cut.
    pub fn cut(&self, cut: bool) {
        self.0.lock().unwrap().cut = cut;
    }

    /// When `to` last got a packet.
    pub fn last_to(&self, to: IpAddr) -> Option<Instant> {
        self.0.lock().unwrap().last_to.get(&to).copied()
    }
}

impl Network for Node {
    fn start(&mut self, inbox: mpsc::Sender<Inbound>) {
        self.wire.0.lock().unwrap().inboxes.insert(self.me, inbox);
    }

    fn open(&mut self, ep: &Endpoint) -> io::Result<TxId> {
        self.next += 1;
        self.sessions.insert(self.next, ep.clone());
        Ok(self.next)
    }

    fn send(&mut self, tx: TxId, data: &[u8]) -> io::Result<()> {
        let ep = &self.sessions[&tx];
        let mut w = self.wire.0.lock().unwrap();
        let Some(inbox) = w.inboxes.get(&ep.peer).cloned().filter(|_| !w.cut) else {
            return Ok(());
        };
        let mut buf = [0u8; MAX_PACKET];
        buf[..data.len()].copy_from_slice(data);
        let r = Received {
            buf,
            len: data.len(),
            meta: RxMeta {
                src: SocketAddr::new(ep.local.unwrap_or(self.me), 49152 + tx as u16),
                dst: Some(ep.peer),
                ifindex: None,
                ttl: Some(255),
                multihop: ep.multihop,
            },
        };
        w.last_to.insert(ep.peer, Instant::now());
        inbox
            .try_send(Inbound::Packet(Box::new(r)))
            .map_err(|e| io::Error::other(e.to_string()))
    }

    fn close(&mut self, tx: TxId) {
        self.sessions.remove(&tx);
    }
}
