//! Counters of the whole service: packets in and out, and every discarded
//! packet by the reason RFC 5880 §6.8.6 / RFC 5881 §5 gives for it.
//!
//! Plain numbers, snapshot by [`crate::BfdHandle::counters`], for the
//! caller to export (one Prometheus counter family with a `reason` label:
//! [`DiscardReason::as_str`] is the label value).

use serde::{Deserialize, Serialize};

/// Why a received packet was dropped. One counter each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiscardReason {
    /// Fewer than 4 bytes: no version or length to read.
    TooShort,
    /// Version is not 1 (§6.8.6).
    BadVersion,
    /// Length below 24 (26 with the A bit), or a bad Auth Len (§6.8.6).
    BadLength,
    /// Length larger than the UDP payload (§6.8.6).
    LengthExceedsPayload,
    /// Detect Mult is zero (§6.8.6).
    DetectMultZero,
    /// The Multipoint bit is set (§6.8.6).
    Multipoint,
    /// My Discriminator is zero (§6.8.6).
    MyDiscriminatorZero,
    /// Your Discriminator is zero while State is Init or Up (§6.8.6).
    YourDiscriminatorZero,
    /// Your Discriminator names no session of ours (§6.8.6).
    UnknownDiscriminator,
    /// Your Discriminator is zero and no session is configured for the
    /// source address (and interface, or local address for multihop).
    NoSession,
    /// The session the discriminator names is for another peer address,
    /// interface, local address or mode (single hop vs multihop).
    SessionMismatch,
    /// Single hop: TTL / Hop Limit not 255 (RFC 5881 §5); multihop: below
    /// the session's configured minimum (RFC 5883 §2).
    BadTtl,
    /// The A bit is set: this implementation has no authentication, so
    /// its sessions never expect it (§6.8.6 "A bit set and bfd.AuthType
    /// zero").
    AuthMismatch,
}

/// Service-wide counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Datagrams read from the BFD sockets, valid or not.
    pub rx_packets: u64,
    /// Control packets sent.
    pub tx_packets: u64,
    /// Sends the kernel refused (no route, interface down, ...).
    pub tx_errors: u64,
    /// Socket read errors.
    pub rx_errors: u64,
    /// Transitions from Up to Down, all sessions.
    pub up_to_down: u64,
    /// Discarded packets, indexed by [`DiscardReason::index`].
    discards: [u64; DiscardReason::ALL.len()],
}

// ===== impl DiscardReason =====

impl DiscardReason {
    /// Every reason, in a stable order.
    pub const ALL: [DiscardReason; 13] = [
        DiscardReason::TooShort,
        DiscardReason::BadVersion,
        DiscardReason::BadLength,
        DiscardReason::LengthExceedsPayload,
        DiscardReason::DetectMultZero,
        DiscardReason::Multipoint,
        DiscardReason::MyDiscriminatorZero,
        DiscardReason::YourDiscriminatorZero,
        DiscardReason::UnknownDiscriminator,
        DiscardReason::NoSession,
        DiscardReason::SessionMismatch,
        DiscardReason::BadTtl,
        DiscardReason::AuthMismatch,
    ];

    /// Position in [`DiscardReason::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// snake_case name: the metrics label value.
    pub fn as_str(self) -> &'static str {
        match self {
            DiscardReason::TooShort => "too_short",
            DiscardReason::BadVersion => "bad_version",
            DiscardReason::BadLength => "bad_length",
            DiscardReason::LengthExceedsPayload => "length_exceeds_payload",
            DiscardReason::DetectMultZero => "detect_mult_zero",
            DiscardReason::Multipoint => "multipoint",
            DiscardReason::MyDiscriminatorZero => "my_discriminator_zero",
            DiscardReason::YourDiscriminatorZero => "your_discriminator_zero",
            DiscardReason::UnknownDiscriminator => "unknown_discriminator",
            DiscardReason::NoSession => "no_session",
            DiscardReason::SessionMismatch => "session_mismatch",
            DiscardReason::BadTtl => "bad_ttl",
            DiscardReason::AuthMismatch => "auth_mismatch",
        }
    }
}

// ===== impl Counters =====

impl Counters {
    /// Counts one discarded packet.
    pub fn discard(&mut self, reason: DiscardReason) {
        self.discards[reason.index()] += 1;
    }

    /// Packets discarded for `reason`.
    pub fn discarded(&self, reason: DiscardReason) -> u64 {
        self.discards[reason.index()]
    }

    /// All discards, whatever the reason.
    pub fn discarded_total(&self) -> u64 {
        self.discards.iter().sum()
    }

    /// `(reason, count)` for every reason, zeros included (a metrics
    /// exporter wants every label present).
    pub fn discards(&self) -> impl Iterator<Item = (DiscardReason, u64)> + '_ {
        DiscardReason::ALL
            .iter()
            .map(move |r| (*r, self.discards[r.index()]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_its_own_slot_and_label() {
        let mut c = Counters::default();
        for (i, r) in DiscardReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
            for _ in 0..=i {
                c.discard(*r);
            }
        }
        for (r, n) in c.discards() {
            assert_eq!(n, r.index() as u64 + 1, "{}", r.as_str());
        }
        let labels: std::collections::HashSet<_> =
            DiscardReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(labels.len(), DiscardReason::ALL.len());
    }
}
