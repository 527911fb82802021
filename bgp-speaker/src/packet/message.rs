//! The decode entry point, and the small messages both ways: NOTIFICATION
//! (RFC 4271 §4.5, decoded by hand so unknown codes are kept), KEEPALIVE,
//! ROUTE-REFRESH (RFC 2918, RFC 7313) and End-of-RIB (RFC 4724 §2).

use super::error::*;
use super::frame::{
    finish_header, frame, start_message, KEEPALIVE, NOTIFICATION, OPEN, ROUTE_REFRESH,
    ROUTE_REFRESH_LEN, UPDATE,
};
use super::open::{afi_number, decode_open, family};
use super::update::decode_update;
use super::{AttrAction, AttrIssue, DecodeCtx, DecodeError, Message, Notification, Update};
use super::{HEADER_LEN, MAX_LEN};
use crate::route::Afi;

/// Decodes one framed message `msg` (header included, as delimited by
/// [`frame`]). The header is checked again, so a buffer that is not exactly
/// one message is a 1/2 Bad Message Length error, never a panic.
///
/// A ROUTE-REFRESH for an AFI/SAFI other than IPv4/IPv6 unicast must be
/// ignored (RFC 2918 §4); as [`Message`] cannot name such a family, it is
/// returned as an empty [`Update`] (no routes, no End-of-RIB) whose one
/// issue says why, so the session has nothing to do but log it.
pub fn decode(msg: &[u8], ctx: &DecodeCtx) -> Result<Message, DecodeError> {
    match frame(msg, ctx.max_len)? {
        Some(n) if n == msg.len() => {}
        _ => {
            let field = msg
                .get(16..18)
                .map_or(0, |l| u16::from_be_bytes([l[0], l[1]]));
            return Err(DecodeError::bad_length(
                field,
                format!(
                    "message buffer is {} octets but the header says {field}",
                    msg.len()
                ),
            ));
        }
    }
    match msg[18] {
        OPEN => decode_open(msg).map(Message::Open),
        UPDATE => decode_update(msg, ctx).map(Message::Update),
        NOTIFICATION => Ok(Message::Notification(Notification {
            code: msg[HEADER_LEN],
            subcode: msg[HEADER_LEN + 1],
            data: msg[HEADER_LEN + 2..].to_vec(),
        })),
        KEEPALIVE => Ok(Message::Keepalive),
        ROUTE_REFRESH => decode_route_refresh(msg),
        // frame() rejected every other type.
        t => Err(DecodeError::new(
            HEADER_ERROR,
            BAD_MESSAGE_TYPE,
            vec![t],
            format!("message type {t} is unknown"),
        )),
    }
}

/// Decodes a ROUTE-REFRESH (RFC 2918 §3, RFC 7313 §3).
fn decode_route_refresh(msg: &[u8]) -> Result<Message, DecodeError> {
    if msg.len() != ROUTE_REFRESH_LEN {
        // RFC 7313 §5: a length other than 4 octets (after the header) is
        // 7/1 Invalid Message Length, data = the complete message. We
        // negotiate no ORF (RFC 5291), so this holds for every subtype.
        return Err(DecodeError::new(
            ROUTE_REFRESH_ERROR,
            RR_INVALID_LENGTH,
            msg.to_vec(),
            format!("ROUTE-REFRESH length {} is not 23", msg.len()),
        ));
    }
    let afi = u16::from_be_bytes([msg[19], msg[20]]);
    let subtype = msg[21];
    let safi = msg[22];
    match family(afi, safi) {
        Some(afi) => Ok(Message::RouteRefresh { afi, subtype }),
        None => Ok(Message::Update(Update {
            issues: vec![AttrIssue {
                type_code: 0,
                action: AttrAction::Discard,
                reason: format!(
                    "ROUTE-REFRESH for AFI {afi} SAFI {safi} ignored (RFC 2918 §4: not advertised)"
                ),
            }],
            ..Update::default()
        })),
    }
}

/// Encodes a KEEPALIVE (a bare header).
pub fn encode_keepalive() -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN);
    start_message(&mut out, KEEPALIVE);
    finish_header(&mut out);
    out
}

/// Encodes a NOTIFICATION. Data that would take the message over 4096
/// octets is cut there: the extended length may not be negotiated yet (or
/// any more) when a NOTIFICATION is sent.
pub fn encode_notification(n: &Notification) -> Vec<u8> {
    let data = &n.data[..n.data.len().min(MAX_LEN - HEADER_LEN - 2)];
    let mut out = Vec::with_capacity(HEADER_LEN + 2 + data.len());
    start_message(&mut out, NOTIFICATION);
    out.extend_from_slice(&[n.code, n.subcode]);
    out.extend_from_slice(data);
    finish_header(&mut out);
    out
}

/// Encodes a ROUTE-REFRESH for `afi` unicast with the RFC 7313 `subtype`
/// (0 = normal request, 1 = BoRR, 2 = EoRR).
pub fn encode_route_refresh(afi: Afi, subtype: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(ROUTE_REFRESH_LEN);
    start_message(&mut out, ROUTE_REFRESH);
    out.extend_from_slice(&afi_number(afi).to_be_bytes());
    out.extend_from_slice(&[subtype, 1]);
    finish_header(&mut out);
    out
}

/// Encodes the End-of-RIB marker of `afi` (RFC 4724 §2): for IPv4 an
/// UPDATE with nothing in it; for IPv6 an UPDATE holding only an empty
/// MP_UNREACH_NLRI for AFI 2 / SAFI 1.
pub fn encode_end_of_rib(afi: Afi) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + 10);
    start_message(&mut out, UPDATE);
    match afi {
        Afi::Ipv4 => out.extend_from_slice(&[0, 0, 0, 0]),
        Afi::Ipv6 => {
            // Flags optional (0x80), type 15, length 3: AFI 2, SAFI 1.
            out.extend_from_slice(&[0, 0, 0, 6, 0x80, 15, 3]);
            out.extend_from_slice(&afi_number(afi).to_be_bytes());
            out.push(1);
        }
    }
    finish_header(&mut out);
    out
}
