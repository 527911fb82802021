//! BGP messages: framing, decoding with RFC 4271 §6 / RFC 7606 error
//! handling, and encoding with the negotiated size limit.
//!
//! Layout (bytes, frames and meaning live apart):
//! - `error`: NOTIFICATION codes and [`DecodeError`] constructors.
//! - `frame`: finds one whole message in a byte buffer (incomplete vs
//!   malformed header), RFC 4271 §4.1 / §6.1.
//! - `update`: walks the UPDATE framing and attribute TLVs ourselves
//!   (netgauze is not RFC 7606-ready), decides Discard / treat-as-withdraw /
//!   session reset per attribute, then builds [`Update`].
//! - `attribute`: one check and parse per path attribute type, each with
//!   its RFC 7606 approach; RFC 6793 AS4_PATH merging.
//! - `nlri`: prefixes on the wire.
//! - `open`: OPEN and capabilities, both ways.
//! - `message`: [`decode`] (the entry point), NOTIFICATION, KEEPALIVE,
//!   ROUTE-REFRESH, End-of-RIB.
//! - `encode`: UPDATE packing (many NLRI per message, split at the
//!   negotiated maximum length).
//!
//! The public types below are the contract with the rest of the speaker.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::route::{Afi, PathAttrs, Prefix};

mod attribute;
mod encode;
pub mod error;
mod frame;
mod message;
mod nlri;
mod open;
mod update;

pub use encode::{encode_announce, encode_withdraw};
pub use frame::frame;
pub use message::{
    decode, encode_end_of_rib, encode_keepalive, encode_notification, encode_route_refresh,
};
pub use open::encode_open;

/// BGP header length (marker 16, length 2, type 1).
pub const HEADER_LEN: usize = 19;
/// Maximum message length without RFC 8654.
pub const MAX_LEN: usize = 4096;
/// Maximum message length with RFC 8654 extended messages.
pub const MAX_EXTENDED_LEN: usize = 65535;

/// A decoded BGP message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    Open(Open),
    Update(Update),
    Notification(Notification),
    Keepalive,
    /// ROUTE-REFRESH (RFC 2918), with the RFC 7313 subtype (0 = normal
    /// request, 1 = BoRR, 2 = EoRR).
    RouteRefresh {
        afi: Afi,
        subtype: u8,
    },
}

/// An OPEN message, with the AS number already resolved from the 4-octet AS
/// capability when present (RFC 6793).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Open {
    pub version: u8,
    /// The sender's AS: the FourOctetAs capability if sent, else My AS.
    pub asn: u32,
    pub hold_time: u16,
    pub router_id: Ipv4Addr,
    pub capabilities: Capabilities,
}

/// The capabilities (RFC 5492) that a speaker advertised in its OPEN.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Multiprotocol (RFC 4760): the unicast families offered. Empty means the
    /// peer sent no MP capability, which implies IPv4 unicast only.
    pub multiprotocol: Vec<Afi>,
    /// 4-octet AS number capability (RFC 6793).
    pub four_octet_as: Option<u32>,
    /// Route refresh (RFC 2918).
    pub route_refresh: bool,
    /// Enhanced route refresh (RFC 7313).
    pub enhanced_route_refresh: bool,
    /// Graceful restart (RFC 4724, RFC 8538 N bit).
    pub graceful_restart: Option<GracefulRestartCap>,
    /// Extended messages (RFC 8654).
    pub extended_message: bool,
    /// Capabilities we do not interpret: (code, value).
    pub unknown: Vec<(u8, Vec<u8>)>,
}

/// The graceful restart capability (RFC 4724 §3, RFC 8538 §2).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GracefulRestartCap {
    /// R bit: the sender has restarted.
    pub restart_state: bool,
    /// N bit (RFC 8538): the sender supports graceful NOTIFICATION.
    pub notification: bool,
    /// Restart time in seconds (12 bits).
    pub restart_time: u16,
    /// Per family: whether forwarding state was preserved (F bit).
    pub families: Vec<(Afi, bool)>,
}

/// An UPDATE after RFC 7606 handling.
///
/// Prefixes of an UPDATE whose attributes were judged "treat-as-withdraw"
/// are moved into `withdrawn` (and `announced` is empty); attributes
/// judged "attribute discard" are dropped and listed in `issues`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Update {
    /// Withdrawn routes: WITHDRAWN ROUTES, MP_UNREACH_NLRI, and NLRI that
    /// were treated as withdrawn.
    pub withdrawn: Vec<Prefix>,
    /// Announcements: one entry per family present (IPv4 NLRI field, and
    /// MP_REACH_NLRI), each with the next hop of that family filled in.
    pub announced: Vec<Announcement>,
    /// Set when the message is an End-of-RIB marker (RFC 4724 §2).
    pub end_of_rib: Option<Afi>,
    /// What RFC 7606 handling did (empty for a clean message).
    pub issues: Vec<AttrIssue>,
}

/// Routes sharing one set of attributes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announcement {
    pub attrs: PathAttrs,
    pub nlri: Vec<Prefix>,
}

/// One attribute problem that did not reset the session (RFC 7606).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttrIssue {
    /// The attribute type code (0 when the problem is not one attribute's).
    pub type_code: u8,
    pub action: AttrAction,
    /// Human-readable reason, e.g. "ORIGIN value 7 is undefined".
    pub reason: String,
}

/// RFC 7606 §2 error-handling approaches short of a session reset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttrAction {
    /// "attribute discard": the attribute was dropped, routes kept.
    Discard,
    /// "treat-as-withdraw": the message's NLRI were withdrawn.
    TreatAsWithdraw,
}

/// A NOTIFICATION message (RFC 4271 §4.5). Decoded by hand so that unknown
/// codes are still read (netgauze rejects them).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub code: u8,
    pub subcode: u8,
    pub data: Vec<u8>,
}

/// What the decoder needs to know of the session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeCtx {
    /// Both sides negotiated 4-octet ASNs (RFC 6793): AS_PATH is 4 octets.
    pub asn4: bool,
    /// The session is iBGP (LOCAL_PREF expected; RFC 7606 §7.5).
    pub ibgp: bool,
    /// Maximum accepted message length (4096, or 65535 after RFC 8654).
    pub max_len: usize,
    /// The families negotiated; NLRI of other families are ignored with an
    /// issue (RFC 4760 §7).
    pub families: Vec<Afi>,
}

/// What the encoder needs to know of the session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodeCtx {
    /// Write 4-octet AS_PATH (RFC 6793); otherwise 2-octet with AS_TRANS
    /// and AS4_PATH.
    pub asn4: bool,
    /// Maximum message length the peer accepts (4096, or 65535 after RFC 8654).
    pub max_len: usize,
}

/// A message could not be decoded: the NOTIFICATION to send before closing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason} (NOTIFICATION {}/{})", notification.code, notification.subcode)]
pub struct DecodeError {
    pub notification: Notification,
    pub reason: String,
}
