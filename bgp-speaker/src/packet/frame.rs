//! Framing: find one whole message at the start of a byte buffer and check
//! its header (RFC 4271 §4.1, §6.1; RFC 8654 for extended messages).
//!
//! Incomplete input is `Ok(None)`; a malformed header is an error carrying
//! the NOTIFICATION to send. The body is not looked at.

use super::error::*;
use super::{DecodeError, HEADER_LEN, MAX_LEN};

/// Message type codes (RFC 4271 §4.1, RFC 2918 §3).
pub(crate) const OPEN: u8 = 1;
pub(crate) const UPDATE: u8 = 2;
pub(crate) const NOTIFICATION: u8 = 3;
pub(crate) const KEEPALIVE: u8 = 4;
pub(crate) const ROUTE_REFRESH: u8 = 5;

/// Minimum OPEN length: header + 10 fixed octets (RFC 4271 §4.2).
const MIN_OPEN: usize = 29;
/// Minimum UPDATE length: header + two length fields (RFC 4271 §4.3).
const MIN_UPDATE: usize = 23;
/// Minimum NOTIFICATION length: header + code + subcode (RFC 4271 §4.5).
const MIN_NOTIFICATION: usize = 21;
/// ROUTE-REFRESH length: header + AFI, subtype, SAFI (RFC 2918 §3).
pub(crate) const ROUTE_REFRESH_LEN: usize = 23;

/// Looks at the start of `buf` and returns the length of the first whole
/// message, `Ok(None)` if more bytes are needed, or the NOTIFICATION to send
/// when the header is malformed (RFC 4271 §6.1):
///
/// - marker not all ones: 1/1 Connection Not Synchronized;
/// - length < 19 or > `max_len`, or wrong for the type (OPEN < 29,
///   UPDATE < 23, KEEPALIVE != 19, NOTIFICATION < 21, ROUTE-REFRESH < 23):
///   1/2 Bad Message Length, data = the length field;
/// - unknown type: 1/3 Bad Message Type, data = the type octet.
///
/// OPEN and KEEPALIVE are limited to 4096 octets whatever `max_len`
/// (RFC 8654 §4). A ROUTE-REFRESH longer than 23 octets passes the framing
/// so that [`decode`](super::decode) can answer 7/1 as RFC 7313 §5 asks.
/// The header is checked as soon as its 19 octets are in, before the body
/// has arrived.
pub fn frame(buf: &[u8], max_len: usize) -> Result<Option<usize>, DecodeError> {
    let Some(header) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    if header[..16].iter().any(|b| *b != 0xff) {
        return Err(DecodeError::new(
            HEADER_ERROR,
            CONNECTION_NOT_SYNCHRONIZED,
            Vec::new(),
            "header marker is not all ones",
        ));
    }
    let len_field = u16::from_be_bytes([header[16], header[17]]);
    let len = usize::from(len_field);
    let msg_type = header[18];
    if len < HEADER_LEN || len > max_len {
        return Err(DecodeError::bad_length(
            len_field,
            format!("header length {len} is outside 19..={max_len}"),
        ));
    }
    let (min, max, name) = match msg_type {
        OPEN => (MIN_OPEN, MAX_LEN, "OPEN"),
        UPDATE => (MIN_UPDATE, max_len, "UPDATE"),
        NOTIFICATION => (MIN_NOTIFICATION, max_len, "NOTIFICATION"),
        KEEPALIVE => (HEADER_LEN, HEADER_LEN, "KEEPALIVE"),
        ROUTE_REFRESH => (ROUTE_REFRESH_LEN, max_len, "ROUTE-REFRESH"),
        other => {
            return Err(DecodeError::new(
                HEADER_ERROR,
                BAD_MESSAGE_TYPE,
                vec![other],
                format!("message type {other} is unknown"),
            ))
        }
    };
    if len < min || len > max {
        return Err(DecodeError::bad_length(
            len_field,
            format!("{name} length {len} is outside {min}..={max}"),
        ));
    }
    if buf.len() < len {
        return Ok(None);
    }
    Ok(Some(len))
}

/// Writes a header with a placeholder length; [`finish_header`] fills it.
pub(crate) fn start_message(out: &mut Vec<u8>, msg_type: u8) {
    out.extend_from_slice(&[0xff; 16]);
    out.extend_from_slice(&[0, 0, msg_type]);
}

/// Fills in the length field of a message started by [`start_message`].
/// The caller guarantees the length fits (checked by the packers).
pub(crate) fn finish_header(out: &mut [u8]) {
    let len = u16::try_from(out.len()).unwrap_or(u16::MAX);
    out[16..18].copy_from_slice(&len.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(len: u16, t: u8) -> Vec<u8> {
        let mut v = vec![0xff; 16];
        v.extend_from_slice(&len.to_be_bytes());
        v.push(t);
        v
    }

    #[test]
    fn incomplete_header_and_body_need_more() {
        assert_eq!(frame(&[0xff; 10], 4096), Ok(None));
        assert_eq!(frame(&header(23, UPDATE), 4096), Ok(None));
    }

    #[test]
    fn whole_keepalive_is_found_in_a_longer_buffer() {
        let mut b = header(19, KEEPALIVE);
        b.extend_from_slice(&header(19, KEEPALIVE));
        assert_eq!(frame(&b, 4096), Ok(Some(19)));
    }

    #[test]
    fn open_is_limited_to_4096_even_with_extended_messages() {
        let e = frame(&header(4097, OPEN), 65535).unwrap_err();
        assert_eq!(e.notification.subcode, BAD_MESSAGE_LENGTH);
        assert_eq!(e.notification.data, vec![0x10, 0x01]);
        assert_eq!(frame(&header(4097, UPDATE), 65535), Ok(None));
    }
}
