//! What a session has to write: the outbox of bytes the socket has not
//! taken yet, and a batch of routes encoded into UPDATEs.

use std::sync::atomic::Ordering;

use super::session::Counters;
use crate::packet::{self, EncodeCtx};
use crate::rib::{Nlri, OutBatch};

/// Bytes queued for the peer and how far they are written. The session
/// never waits on a write: the hold timer, the peer's messages and the
/// send hold timer go on while a peer that reads nothing (a zero receive
/// window) holds the bytes back.
#[derive(Debug, Default)]
pub(super) struct Outbox {
    buf: Vec<u8>,
    done: usize,
}

/// Encodes a batch into one buffer: withdrawals first, then announcements
/// (one family per group as the RIB builds them). A route that cannot be
/// encoded for this peer (attributes too large for its message size) is
/// withdrawn instead, so that the peer does not keep an older path of it,
/// and counted.
pub(super) fn encode_batch(enc: &EncodeCtx, batch: OutBatch, counters: &Counters) -> Vec<u8> {
    let mut msgs: Vec<Vec<u8>> = Vec::new();
    packet::encode_withdraw(enc, &batch.withdraw_v4, &mut msgs);
    packet::encode_withdraw(enc, &batch.withdraw_v6, &mut msgs);
    let mut unsent = Vec::new();
    for (attrs, nlri) in batch.announce {
        unsent.extend(match nlri {
            Nlri::V4(keys) => packet::encode_announce(enc, &attrs, &keys, &mut msgs),
            Nlri::V6(keys) => packet::encode_announce(enc, &attrs, &keys, &mut msgs),
        });
    }
    if !unsent.is_empty() {
        counters
            .unsendable
            .fetch_add(unsent.len() as u64, Ordering::Relaxed);
        packet::encode_withdraw(enc, &unsent, &mut msgs);
    }
    counters
        .updates_out
        .fetch_add(msgs.len() as u64, Ordering::Relaxed);
    counters
        .messages_out
        .fetch_add(msgs.len().saturating_sub(1) as u64, Ordering::Relaxed);
    match msgs.len() {
        // A batch is about one message's worth: no copy then.
        1 => msgs.pop().unwrap_or_default(),
        _ => msgs.concat(),
    }
}

// ===== impl Outbox =====

impl Outbox {
    pub(super) fn is_empty(&self) -> bool {
        self.done == self.buf.len()
    }

    pub(super) fn push(&mut self, bytes: Vec<u8>) {
        if self.is_empty() {
            self.buf = bytes;
            self.done = 0;
        } else {
            self.buf.extend_from_slice(&bytes);
        }
    }

    pub(super) fn pending(&self) -> &[u8] {
        &self.buf[self.done..]
    }

    pub(super) fn advance(&mut self, n: usize) {
        self.done += n;
        if self.is_empty() {
            self.buf = Vec::new();
            self.done = 0;
        }
    }
}
